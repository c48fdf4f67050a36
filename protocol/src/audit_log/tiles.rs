//! spec/audit-log.md §8.1: the C2SP `tlog-tiles` read API of the log (hash tiles and
//! entry bundles, tile height 8, width 256): tile paths, and the tile formats as the log
//! serves them and a client reads them.

use super::merkle::{Hash, Tree};

/// Hashes (or entries) per full tile.
pub const WIDTH: u64 = 256;

/// A parsed tile path: `<L>/<N>[.p/<W>]` or `entries/<N>[.p/<W>]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TilePath {
    /// Tree level of the tile (`None` for an entry bundle).
    pub level: Option<u32>,
    /// Tile index.
    pub index: u64,
    /// Width: 256 for a full tile, 1..=255 for a partial one.
    pub width: u64,
}

impl TilePath {
    /// The part of the tile's URL after `/tile/` ([`parse`] inverted).
    pub fn to_path(&self) -> String {
        let first = self.level.map_or_else(|| "entries".to_owned(), |l| l.to_string());
        let partial = if self.width < WIDTH { format!(".p/{}", self.width) } else { String::new() };
        format!("{first}/{}{partial}", encode_index(self.index))
    }
}

/// Encode a tile index as C2SP path elements: `1234067` -> `x001/x234/067`.
pub fn encode_index(n: u64) -> String {
    let mut groups = vec![format!("{:03}", n % 1000)];
    let mut rest = n / 1000;
    while rest > 0 {
        groups.push(format!("x{:03}", rest % 1000));
        rest /= 1000;
    }
    groups.reverse();
    groups.join("/")
}

/// Parse the part of a tile URL after `/tile/`.
pub fn parse(path: &str) -> Option<TilePath> {
    let mut parts: Vec<&str> = path.split('/').collect();
    let first = parts.first().copied()?;
    let level = if first == "entries" {
        None
    } else if first.len() <= 2
        && first.bytes().all(|b| b.is_ascii_digit())
        && (first == "0" || !first.starts_with('0'))
    {
        Some(first.parse::<u32>().ok().filter(|l| *l < 64)?)
    } else {
        return None;
    };
    parts.remove(0);
    let mut width = WIDTH;
    if parts.len() >= 2 && parts[parts.len() - 2].ends_with(".p") {
        let w = parts.pop()?;
        if w.is_empty() || w.starts_with('0') || !w.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        width = w.parse().ok().filter(|w| (1..WIDTH).contains(w))?;
        let last = parts.pop()?.strip_suffix(".p")?;
        parts.push(last);
    }
    let (last, prefix) = parts.split_last()?;
    let mut index: u64 = 0;
    for g in prefix {
        let d = g.strip_prefix('x')?;
        index = index.checked_mul(1000)?.checked_add(three_digits(d)?)?;
    }
    index = index.checked_mul(1000)?.checked_add(three_digits(last)?)?;
    Some(TilePath { level, index, width })
}

fn three_digits(s: &str) -> Option<u64> {
    (s.len() == 3 && s.bytes().all(|b| b.is_ascii_digit())).then(|| s.parse().ok())?
}

/// Every tile a log of `size` entries serves (spec/audit-log.md §8.1): its entry bundles,
/// and at each level with at least one complete subtree hash its hash tiles, each run of
/// tiles ending in a partial one where the count is not a multiple of [`WIDTH`]. A monitor
/// fetches them all (spec/audit-log.md §9).
pub fn tiles_for_size(size: u64) -> Vec<TilePath> {
    let mut out = Vec::new();
    let mut run = |level: Option<u32>, count: u64| {
        out.extend((0..count / WIDTH).map(|index| TilePath { level, index, width: WIDTH }));
        if !count.is_multiple_of(WIDTH) {
            out.push(TilePath { level, index: count / WIDTH, width: count % WIDTH });
        }
    };
    run(None, size);
    for level in 0..8u32 {
        let count = size >> (8 * level);
        if count == 0 {
            break;
        }
        run(Some(level), count);
    }
    out
}

/// The hash tile at `path` from `tree`, if all its hashes exist.
pub fn hash_tile(tree: &Tree, level: u32, index: u64, width: u64) -> Option<Vec<u8>> {
    let tree_level = level.checked_mul(8)?;
    let mut out = Vec::with_capacity(32 * width as usize);
    for j in 0..width {
        out.extend_from_slice(&tree.node(tree_level, index.checked_mul(WIDTH)?.checked_add(j)?)?);
    }
    Some(out)
}

/// An entry bundle: each entry as a big-endian u16 length followed by its bytes.
pub fn entry_bundle(entries: &[Vec<u8>]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    for e in entries {
        out.extend_from_slice(&u16::try_from(e.len()).ok()?.to_be_bytes());
        out.extend_from_slice(e);
    }
    Some(out)
}

/// Read a hash tile of `width` hashes; `None` when it is not exactly that.
pub fn parse_hash_tile(bytes: &[u8], width: u64) -> Option<Vec<Hash>> {
    if bytes.len() as u64 != width.checked_mul(32)? {
        return None;
    }
    Some(bytes.chunks_exact(32).map(|h| h.try_into().expect("32 bytes")).collect())
}

/// Read an entry bundle; `None` when a length runs past the end.
pub fn parse_entry_bundle(mut bytes: &[u8]) -> Option<Vec<Vec<u8>>> {
    let mut out = Vec::new();
    while !bytes.is_empty() {
        let (len, rest) = bytes.split_first_chunk::<2>()?;
        let len = usize::from(u16::from_be_bytes(*len));
        if rest.len() < len {
            return None;
        }
        out.push(rest[..len].to_vec());
        bytes = &rest[len..];
    }
    Some(out)
}

#[cfg(test)]
mod tests {

    #[test]
    fn tiles_for_size_lists_bundles_and_every_level() {
        let path = |t: &TilePath| t.to_path();
        assert!(tiles_for_size(0).is_empty());
        assert_eq!(tiles_for_size(3).iter().map(path).collect::<Vec<_>>(), ["entries/000.p/3", "0/000.p/3"]);
        let big: Vec<String> = tiles_for_size(256 * 256 + 300).iter().map(path).collect();
        // 257 full bundles and a partial of 44; as many level-0 tiles; level 1: 257 hashes
        // (one full tile and a partial of 1); level 2: one hash.
        assert_eq!(big.iter().filter(|p| p.starts_with("entries/")).count(), 258);
        assert_eq!(big.iter().filter(|p| p.starts_with("0/")).count(), 258);
        assert!(big.contains(&"entries/257.p/44".to_owned()), "{big:?}");
        assert_eq!(
            big.iter().filter(|p| p.starts_with("1/")).cloned().collect::<Vec<_>>(),
            ["1/000", "1/001.p/1"]
        );
        assert_eq!(big.iter().filter(|p| p.starts_with("2/")).cloned().collect::<Vec<_>>(), ["2/000.p/1"]);
    }

    use super::*;

    #[test]
    fn index_encoding_follows_c2sp() {
        assert_eq!(encode_index(1234067), "x001/x234/067");
        assert_eq!(encode_index(0), "000");
        assert_eq!(encode_index(1000), "x001/000");
        assert_eq!(parse("0/x001/x234/067"), Some(TilePath { level: Some(0), index: 1234067, width: 256 }));
        assert_eq!(parse("entries/x001.p/12"), None);
        assert_eq!(parse("entries/x001/002.p/12"), Some(TilePath { level: None, index: 1002, width: 12 }));
        assert_eq!(parse("1/000.p/256"), None);
        assert_eq!(parse("1/000.p/0"), None);
        assert_eq!(parse("1/00.p/3"), None);
        assert_eq!(parse("01/000"), None);
        assert_eq!(parse("64/000"), None);
        assert_eq!(parse("0/001/002"), None);
    }

    #[test]
    fn paths_round_trip() {
        for t in [
            TilePath { level: Some(0), index: 1234067, width: 256 },
            TilePath { level: None, index: 1002, width: 12 },
            TilePath { level: Some(2), index: 0, width: 1 },
        ] {
            assert_eq!(parse(&t.to_path()), Some(t));
        }
        assert_eq!(TilePath { level: None, index: 1002, width: 12 }.to_path(), "entries/x001/002.p/12");
    }

    #[test]
    fn tiles_read_back_what_is_written() {
        let entries = vec![b"a".to_vec(), Vec::new(), vec![7; 300]];
        assert_eq!(parse_entry_bundle(&entry_bundle(&entries).unwrap()), Some(entries));
        assert_eq!(parse_entry_bundle(&[0, 2, 1]), None, "a length past the end");
        assert_eq!(parse_entry_bundle(&[0]), None, "half a length");
        let mut tree = Tree::new();
        for i in 0..3u8 {
            tree.push(&[i]);
        }
        let tile = hash_tile(&tree, 0, 0, 3).unwrap();
        let hashes = parse_hash_tile(&tile, 3).unwrap();
        assert_eq!(hashes[1], tree.leaf(1).unwrap());
        assert_eq!(parse_hash_tile(&tile[1..], 3), None);
    }
}
