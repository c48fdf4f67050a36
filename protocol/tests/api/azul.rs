//! spec/audit-log.md §3, §4: bkv's log formats cross-checked against the field's own Rust
//! crates, Cloudflare's `signed_note` (C2SP signed-note) and `tlog_tiles` (the Go sumdb
//! tlog algorithms and C2SP tlog-checkpoint), on the same RustCrypto generation. Every note
//! bkv signs opens with `signed_note`, and the reverse; every checkpoint body, tree hash,
//! inclusion proof and consistency proof bkv computes is the one `tlog_tiles` computes, and
//! each side's proofs verify with the other's verifier. bkv keeps its own code where those
//! crates stop: `cosignature/v1` (type 0x04), C2SP tile paths and entry bundles.

use bkv_protocol::audit_log::merkle::{Hash, Tree, verify_consistency, verify_inclusion};
use bkv_protocol::audit_log::note::{self, Note, SIG_TYPE_ED25519, VerifierKey};
use bkv_protocol::audit_log::{Checkpoint, LogAnchors, verify_checkpoint};
use bkv_protocol::crypto::Ed25519Signer;
use signed_note::{StandardSigner, StandardVerifier, VerifierList};
use tlog_tiles::{HashReader, check_record, check_tree, prove_record, prove_tree, stored_hashes, tree_hash};

const ORIGIN: &str = "log.azul-check.example/bkv";

/// Every stored hash of a tree built by `tlog_tiles`, in its stored-hash index order.
struct Stored(Vec<tlog_tiles::Hash>);

impl HashReader for Stored {
    fn read_hashes(&self, indexes: &[u64]) -> Result<Vec<tlog_tiles::Hash>, tlog_tiles::Error> {
        indexes
            .iter()
            .map(|i| self.0.get(*i as usize).copied().ok_or(tlog_tiles::Error::IndexesNotInTree))
            .collect()
    }
}

fn entry(i: u64) -> Vec<u8> {
    format!("entry {i}").into_bytes()
}

/// The same `n` entries in a bkv [`Tree`] and in `tlog_tiles`' stored hashes.
fn trees(n: u64) -> (Tree, Stored) {
    let mut bkv = Tree::new();
    let mut stored = Stored(Vec::new());
    for i in 0..n {
        bkv.push(&entry(i));
        let new = stored_hashes(i, &entry(i), &stored).unwrap();
        stored.0.extend(new);
    }
    (bkv, stored)
}

fn t(h: &Hash) -> tlog_tiles::Hash {
    tlog_tiles::Hash(*h)
}

fn b(h: &tlog_tiles::Hash) -> Hash {
    h.0
}

#[test]
fn tree_hashes_and_proofs_agree_with_tlog_tiles() {
    let n = 70;
    let (bkv, stored) = trees(n);
    for size in 1..=n {
        let root = bkv.root_at(size).unwrap();
        assert_eq!(tree_hash(size, &stored).unwrap(), t(&root), "tree hash of size {size}");
        for index in (0..size).step_by(7).chain([size - 1]) {
            let ours = bkv.inclusion_proof(index, size).unwrap();
            let theirs = prove_record(size, index, &stored).unwrap();
            assert_eq!(ours, theirs.iter().map(b).collect::<Vec<_>>(), "inclusion {index} in {size}");
            let leaf = bkv_protocol::audit_log::merkle::leaf_hash(&entry(index));
            check_record(&ours.iter().map(t).collect(), size, t(&root), index, t(&leaf)).unwrap();
            verify_inclusion(&leaf, index, size, &theirs.iter().map(b).collect::<Vec<_>>(), &root).unwrap();
        }
        for old in (1..size).step_by(5) {
            let ours = bkv.consistency_proof(old, size).unwrap();
            let theirs = prove_tree(size, old, &stored).unwrap();
            assert_eq!(ours, theirs.iter().map(b).collect::<Vec<_>>(), "consistency {old} to {size}");
            let old_root = bkv.root_at(old).unwrap();
            check_tree(&ours.iter().map(t).collect(), size, t(&root), old, t(&old_root)).unwrap();
            verify_consistency(old, size, &theirs.iter().map(b).collect::<Vec<_>>(), &old_root, &root)
                .unwrap();
        }
    }
}

#[test]
fn checkpoint_bodies_agree_with_tlog_tiles() {
    let (bkv, _) = trees(13);
    let cp = Checkpoint { origin: ORIGIN.into(), size: 13, root: bkv.root() };
    let theirs = tlog_tiles::Checkpoint::new(ORIGIN, 13, t(&bkv.root()), "").unwrap();
    assert_eq!(cp.body().into_bytes(), theirs.to_bytes());
    let parsed = tlog_tiles::Checkpoint::from_bytes(cp.body().as_bytes()).unwrap();
    assert_eq!((parsed.origin(), parsed.size(), parsed.hash()), (ORIGIN, 13, &t(&bkv.root())));
    assert_eq!(Checkpoint::parse_body(&String::from_utf8(theirs.to_bytes()).unwrap()).unwrap(), cp);
}

#[test]
fn notes_bkv_signs_open_with_signed_note_and_the_reverse() {
    let key = Ed25519Signer::from_seed(&[0x42; 32]);
    let vkey = note::verifier_key(ORIGIN, SIG_TYPE_ED25519, &key).unwrap();
    let (bkv, _) = trees(5);
    let body = Checkpoint { origin: ORIGIN.into(), size: 5, root: bkv.root() }.body();
    // bkv signs; signed_note verifies with the verifier key bkv encodes.
    let signed = format!("{body}\n{}", note::sign_note(&body, ORIGIN, &key).unwrap().to_line());
    let verifier = StandardVerifier::new(&vkey.encode()).unwrap();
    let parsed = signed_note::Note::from_bytes(signed.as_bytes()).unwrap();
    let (verified, unverified) = parsed.verify(&VerifierList::new(vec![Box::new(verifier)])).unwrap();
    assert_eq!((verified.len(), unverified.len()), (1, 0));
    assert_eq!(parsed.text(), body.as_bytes());
    // signed_note signs with the same key; bkv verifies the checkpoint (no witnesses: K = 0).
    let skey = format!(
        "PRIVATE+KEY+{ORIGIN}+{:08x}+{}",
        u32::from_be_bytes(vkey.key_id()),
        b64(&[&[1u8][..], &[0x42; 32]].concat())
    );
    let signer = StandardSigner::new(&skey).unwrap();
    let mut theirs = signed_note::Note::new(body.as_bytes(), &[]).unwrap();
    theirs.add_sigs(&[&signer]).unwrap();
    let text = String::from_utf8(theirs.to_bytes()).unwrap();
    assert_eq!(text, signed, "Ed25519 is deterministic: the same note, byte for byte");
    let anchors =
        LogAnchors { origin: ORIGIN.into(), log_key: vkey.clone(), witnesses: vec![], threshold: 0 };
    let v = verify_checkpoint(&text, &anchors).unwrap();
    assert_eq!(v.checkpoint.size, 5);
    // The verifier key strings are the same.
    assert_eq!(VerifierKey::parse(&vkey.encode()).unwrap(), vkey);
    assert_eq!(Note::parse(&text).unwrap().text, body);
}

fn b64(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}
