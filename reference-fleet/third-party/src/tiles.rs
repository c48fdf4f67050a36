//! spec/audit-log.md §8.1: the C2SP `tlog-tiles` read API of the log (hash tiles and
//! entry bundles, tile height 8, width 256).

use bkv_protocol::audit_log::merkle::Tree;

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

#[cfg(test)]
mod tests {
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
}
