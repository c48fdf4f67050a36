//! spec/conventions.md §3.3: the strict deterministic-CBOR check.
//!
//! A single pass over the bytes, without building a value. It rejects, each with its
//! own code: malformed input, trailing bytes, non-shortest heads, indefinite lengths,
//! unsorted or duplicate map keys, floats, simple values other than false/true/null,
//! tags not in the caller's allow-list, and nesting deeper than [`MAX_DEPTH`].

use crate::error::{Error, Result};

/// spec/conventions.md §3.3 rule 9: the deepest nesting of arrays, maps and tags.
pub const MAX_DEPTH: usize = 32;

/// Check that `bytes` is exactly one deterministic CBOR data item that uses only the
/// tags in `allowed_tags`.
pub fn check(bytes: &[u8], allowed_tags: &[u64]) -> Result<()> {
    let mut r = Reader { bytes, pos: 0, allowed_tags };
    r.item(0)?;
    if r.pos != bytes.len() {
        return Err(Error::CborTrailingBytes);
    }
    Ok(())
}

struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
    allowed_tags: &'a [u64],
}

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8]> {
        let end = self.pos.checked_add(n).ok_or(Error::CborMalformed)?;
        let s = self.bytes.get(self.pos..end).ok_or(Error::CborMalformed)?;
        self.pos = end;
        Ok(s)
    }

    /// Read an initial byte and its argument; returns (major type, additional info, argument).
    fn head(&mut self) -> Result<(u8, u8, u64)> {
        let ib = self.take(1)?[0];
        let (major, ai) = (ib >> 5, ib & 0x1f);
        let arg = match ai {
            0..=23 => u64::from(ai),
            24..=27 => {
                let n = 1usize << (ai - 24);
                let mut buf = [0u8; 8];
                buf[8 - n..].copy_from_slice(self.take(n)?);
                let v = u64::from_be_bytes(buf);
                // Floats (major 7, ai 25..27) are rejected by the caller, not here.
                if major != 7 {
                    let min = match ai {
                        24 => 24,
                        25 => 0x100,
                        26 => 0x1_0000,
                        _ => 0x1_0000_0000,
                    };
                    if v < min {
                        return Err(Error::CborNonMinimal);
                    }
                }
                v
            }
            28..=30 => return Err(Error::CborMalformed),
            _ => {
                // ai == 31: indefinite length (majors 2..5) or "break" (major 7);
                // majors 0, 1 and 6 make it malformed.
                return Err(match major {
                    2..=5 => Error::CborIndefiniteLength,
                    _ => Error::CborMalformed,
                });
            }
        };
        Ok((major, ai, arg))
    }

    fn len(&self, arg: u64) -> Result<usize> {
        let n = usize::try_from(arg).map_err(|_| Error::CborMalformed)?;
        // Every element takes at least one byte: a longer length is truncated input.
        if n > self.bytes.len() - self.pos {
            return Err(Error::CborMalformed);
        }
        Ok(n)
    }

    fn item(&mut self, depth: usize) -> Result<()> {
        if depth > MAX_DEPTH {
            return Err(Error::CborDepthExceeded);
        }
        let (major, ai, arg) = self.head()?;
        match major {
            0 | 1 => Ok(()),
            2 => {
                let n = self.len(arg)?;
                self.take(n).map(|_| ())
            }
            3 => {
                let n = self.len(arg)?;
                let s = self.take(n)?;
                core::str::from_utf8(s).map(|_| ()).map_err(|_| Error::CborMalformed)
            }
            4 => {
                let n = self.len(arg)?;
                (0..n).try_for_each(|_| self.item(depth + 1))
            }
            5 => {
                let n = self.len(arg)?;
                let mut prev: Option<(usize, usize)> = None;
                for _ in 0..n {
                    let start = self.pos;
                    self.item(depth + 1)?;
                    let key = (start, self.pos);
                    if let Some((ps, pe)) = prev {
                        match self.bytes[ps..pe].cmp(&self.bytes[key.0..key.1]) {
                            core::cmp::Ordering::Less => {}
                            core::cmp::Ordering::Equal => return Err(Error::CborMapDuplicateKey),
                            core::cmp::Ordering::Greater => return Err(Error::CborMapUnsorted),
                        }
                    }
                    prev = Some(key);
                    self.item(depth + 1)?;
                }
                Ok(())
            }
            6 => {
                if !self.allowed_tags.contains(&arg) {
                    return Err(Error::CborTagUnknown);
                }
                self.item(depth + 1)
            }
            _ => match ai {
                20..=22 => Ok(()),
                25..=27 => Err(Error::CborFloat),
                // 0..=19 and 23 (undefined) are unassigned/unsupported simple values;
                // ai 24 is a one-byte simple value, which must be >= 32 to be well-formed.
                24 if arg < 32 => Err(Error::CborMalformed),
                _ => Err(Error::CborSimpleUnsupported),
            },
        }
    }
}
