//! spec/audit-log.md §3: the RFC 9162 §2.1 SHA-256 Merkle tree, its inclusion and
//! consistency proofs, and their verification algorithms (RFC 9162 §2.1.3, §2.1.4).

use crate::crypto::ct_eq;
use crate::error::{Error, Result};
use sha2::{Digest, Sha256};

/// A SHA-256 tree hash.
pub type Hash = [u8; 32];

/// spec/audit-log.md §3.1: `MTH({}) = SHA-256()`, the root of the empty tree.
pub fn empty_root() -> Hash {
    Sha256::digest([]).into()
}

/// spec/audit-log.md §3.1: `MTH({d}) = SHA-256(0x00 || d)`.
pub fn leaf_hash(entry: &[u8]) -> Hash {
    let mut h = Sha256::new();
    h.update([0x00]);
    h.update(entry);
    h.finalize().into()
}

/// spec/audit-log.md §3.1: `SHA-256(0x01 || left || right)`.
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    let mut h = Sha256::new();
    h.update([0x01]);
    h.update(left);
    h.update(right);
    h.finalize().into()
}

/// The largest power of two strictly smaller than `n` (`n >= 2`), RFC 9162 §2.1.1 `k`.
fn split(n: u64) -> u64 {
    debug_assert!(n >= 2);
    1 << (63 - (n - 1).leading_zeros())
}

/// The most hashes a proof in a tree of `size` leaves holds: its depth, plus one for a
/// consistency proof's own subtree (RFC 9162 §2.1.3.1, §2.1.4.1), so that building one
/// never reallocates.
fn proof_capacity(size: u64) -> usize {
    (u64::BITS - size.saturating_sub(1).leading_zeros()) as usize + 1
}

/// An append-only Merkle tree held in memory (spec/audit-log.md §3.1, §3.2).
///
/// `levels[k][i]` is the hash of the complete subtree of `2^k` leaves starting at leaf
/// `i * 2^k`. Only complete subtrees are stored, and they never change, so the root
/// and proofs of every earlier tree size stay available. Appending costs one leaf hash
/// and on average one node hash; a root or proof costs `O(log² n)` hashes at most.
#[derive(Debug, Clone, Default)]
pub struct Tree {
    levels: Vec<Vec<Hash>>,
}

impl Tree {
    /// An empty tree.
    pub fn new() -> Self {
        Tree { levels: vec![Vec::new()] }
    }

    /// The number of leaves.
    pub fn size(&self) -> u64 {
        self.levels.first().map_or(0, |l| l.len() as u64)
    }

    /// Append an entry; returns its leaf index.
    pub fn push(&mut self, entry: &[u8]) -> u64 {
        self.push_leaf_hash(leaf_hash(entry))
    }

    /// Append a leaf whose hash is already known; returns its leaf index.
    pub fn push_leaf_hash(&mut self, hash: Hash) -> u64 {
        if self.levels.is_empty() {
            self.levels.push(Vec::new());
        }
        let index = self.size();
        self.levels[0].push(hash);
        let (mut level, mut i) = (0usize, index as usize);
        while i & 1 == 1 {
            let parent = node_hash(&self.levels[level][i - 1], &self.levels[level][i]);
            level += 1;
            if self.levels.len() == level {
                self.levels.push(Vec::new());
            }
            self.levels[level].push(parent);
            i >>= 1;
        }
        index
    }

    /// The leaf hash at `index`, if present.
    pub fn leaf(&self, index: u64) -> Option<Hash> {
        self.levels.first()?.get(usize::try_from(index).ok()?).copied()
    }

    /// The hash of the complete subtree of `2^level` leaves starting at leaf
    /// `index * 2^level`, if all its leaves are present (C2SP tlog-tiles serves these).
    pub fn node(&self, level: u32, index: u64) -> Option<Hash> {
        self.levels.get(level as usize)?.get(usize::try_from(index).ok()?).copied()
    }

    /// `MTH(D[start:end])`, `start < end <= size`.
    fn subtree(&self, start: u64, end: u64) -> Hash {
        let n = end - start;
        if n.is_power_of_two() && start.is_multiple_of(n) {
            let k = n.trailing_zeros() as usize;
            return self.levels[k][(start >> k) as usize];
        }
        let k = split(n);
        node_hash(&self.subtree(start, start + k), &self.subtree(start + k, end))
    }

    /// The root of the tree as it was at `size` leaves (`size <= self.size()`).
    pub fn root_at(&self, size: u64) -> Option<Hash> {
        match size {
            0 => Some(empty_root()),
            s if s <= self.size() => Some(self.subtree(0, s)),
            _ => None,
        }
    }

    /// The current root.
    pub fn root(&self) -> Hash {
        self.root_at(self.size()).unwrap_or_else(empty_root)
    }

    /// RFC 9162 §2.1.3.1 `PATH(index, D[size])`; `None` unless `index < size <= self.size()`.
    pub fn inclusion_proof(&self, index: u64, size: u64) -> Option<Vec<Hash>> {
        if index >= size || size > self.size() {
            return None;
        }
        let mut out = Vec::with_capacity(proof_capacity(size));
        self.path(index, 0, size, &mut out);
        Some(out)
    }

    fn path(&self, m: u64, start: u64, end: u64, out: &mut Vec<Hash>) {
        let n = end - start;
        if n == 1 {
            return;
        }
        let k = split(n);
        if m < k {
            self.path(m, start, start + k, out);
            out.push(self.subtree(start + k, end));
        } else {
            self.path(m - k, start + k, end, out);
            out.push(self.subtree(start, start + k));
        }
    }

    /// RFC 9162 §2.1.4.1 `PROOF(size1, D[size2])`; `None` unless `0 < size1 <= size2 <= self.size()`.
    pub fn consistency_proof(&self, size1: u64, size2: u64) -> Option<Vec<Hash>> {
        if size1 == 0 || size1 > size2 || size2 > self.size() {
            return None;
        }
        let mut out = Vec::with_capacity(proof_capacity(size2));
        self.subproof(size1, 0, size2, true, &mut out);
        Some(out)
    }

    fn subproof(&self, m: u64, start: u64, end: u64, complete: bool, out: &mut Vec<Hash>) {
        let n = end - start;
        if m == n {
            if !complete {
                out.push(self.subtree(start, end));
            }
            return;
        }
        let k = split(n);
        if m <= k {
            self.subproof(m, start, start + k, complete, out);
            out.push(self.subtree(start + k, end));
        } else {
            self.subproof(m - k, start + k, end, false, out);
            out.push(self.subtree(start, start + k));
        }
    }
}

fn hash32(bytes: &[u8]) -> Option<Hash> {
    bytes.try_into().ok()
}

/// spec/audit-log.md §3.3 (RFC 9162 §2.1.3.2): verify that the leaf with hash
/// `leaf` is at `index` in the tree of `size` leaves whose root is `root`.
///
/// Every hash must be 32 bytes; the proof must have exactly the length the
/// algorithm consumes. Any failure is `log.inclusion.invalid`.
pub fn verify_inclusion<P: AsRef<[u8]>>(
    leaf: &[u8],
    index: u64,
    size: u64,
    proof: &[P],
    root: &[u8],
) -> Result<()> {
    let bad = Error::LogInclusionInvalid;
    // A path never has more than 64 elements (one per level of a 2^64 tree).
    if index >= size || proof.len() > 64 {
        return Err(bad);
    }
    let mut r = hash32(leaf).ok_or(bad)?;
    let (mut fn_, mut sn) = (index, size - 1);
    for p in proof {
        let p = hash32(p.as_ref()).ok_or(bad)?;
        if sn == 0 {
            return Err(bad);
        }
        if fn_ & 1 == 1 || fn_ == sn {
            r = node_hash(&p, &r);
            if fn_ & 1 == 0 {
                while fn_ & 1 == 0 && fn_ != 0 {
                    fn_ >>= 1;
                    sn >>= 1;
                }
            }
        } else {
            r = node_hash(&r, &p);
        }
        fn_ >>= 1;
        sn >>= 1;
    }
    if sn == 0 && ct_eq(&r, root) { Ok(()) } else { Err(bad) }
}

/// spec/audit-log.md §3.4 (RFC 9162 §2.1.4.2): verify that the tree of `size2`
/// leaves with root `root2` extends the tree of `size1` leaves with root `root1`.
///
/// `size1` must be positive (a consistency proof from the empty tree proves
/// nothing); equal sizes need an empty proof and equal roots. Any failure is
/// `log.consistency.invalid`.
pub fn verify_consistency<P: AsRef<[u8]>>(
    size1: u64,
    size2: u64,
    proof: &[P],
    root1: &[u8],
    root2: &[u8],
) -> Result<()> {
    let bad = Error::LogConsistencyInvalid;
    if size1 == 0 || size2 < size1 {
        return Err(bad);
    }
    if size1 == size2 {
        return if proof.is_empty() && ct_eq(root1, root2) { Ok(()) } else { Err(bad) };
    }
    // A consistency proof never has more than 2 * 64 elements.
    if proof.is_empty() || proof.len() > 128 {
        return Err(bad);
    }
    let first = hash32(root1).ok_or(bad)?;
    let mut path = Vec::with_capacity(proof.len() + 1);
    // RFC 9162 §2.1.4.2 step 2: if first is an exact power of 2, prepend first_hash.
    if size1.is_power_of_two() {
        path.push(first);
    }
    for p in proof {
        path.push(hash32(p.as_ref()).ok_or(bad)?);
    }
    let (mut fn_, mut sn) = (size1 - 1, size2 - 1);
    while fn_ & 1 == 1 {
        fn_ >>= 1;
        sn >>= 1;
    }
    let (mut fr, mut sr) = (path[0], path[0]);
    for c in &path[1..] {
        if sn == 0 {
            return Err(bad);
        }
        if fn_ & 1 == 1 || fn_ == sn {
            fr = node_hash(c, &fr);
            sr = node_hash(c, &sr);
            if fn_ & 1 == 0 {
                while fn_ & 1 == 0 && fn_ != 0 {
                    fn_ >>= 1;
                    sn >>= 1;
                }
            }
        } else {
            sr = node_hash(&sr, c);
        }
        fn_ >>= 1;
        sn >>= 1;
    }
    if sn == 0 && ct_eq(&fr, &first) && ct_eq(&sr, root2) { Ok(()) } else { Err(bad) }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `proof_capacity` bounds every proof, so building one never reallocates; and it is
    /// tight: some proof of each size reaches the depth.
    #[test]
    fn proofs_fit_their_capacity() {
        let mut tree = Tree::new();
        for n in 1..=130u64 {
            tree.push(&n.to_be_bytes());
            let cap = proof_capacity(n);
            let mut longest = 0;
            for i in 0..n {
                let p = tree.inclusion_proof(i, n).unwrap();
                assert!(p.len() < cap, "inclusion {i} of {n}: {} hashes, capacity {cap}", p.len());
                longest = longest.max(p.len());
                let c = tree.consistency_proof(i + 1, n).unwrap();
                assert!(c.len() <= cap, "consistency {} to {n}: {} hashes, capacity {cap}", i + 1, c.len());
            }
            assert_eq!(longest + 1, cap, "size {n}");
        }
    }
}
