//! spec/audit-log.md §7: the client rule, one test per failure code.

use super::merkle::Tree;
use super::note::{self, Note, SIG_TYPE_COSIGNATURE, SIG_TYPE_ED25519, VerifierKey};
use super::*;
use crate::crypto::Ed25519Signer;

const ORIGIN: &str = "log.example/bkv-test";
const FLEET: &str = "fleet-1";

struct Fixture {
    log: Ed25519Signer,
    witnesses: Vec<(String, Ed25519Signer)>,
    tree: Tree,
    bundles: Vec<Vec<u8>>,
}

impl Fixture {
    fn new() -> Self {
        let witnesses = (0..3u8)
            .map(|i| (format!("witness{i}.example/w"), Ed25519Signer::from_seed(&[10 + i; 32])))
            .collect();
        let mut f = Fixture {
            log: Ed25519Signer::from_seed(&[1; 32]),
            witnesses,
            tree: Tree::new(),
            bundles: vec![],
        };
        for epoch in 0..5u64 {
            f.append(format!("bundle bytes {epoch}").into_bytes(), epoch);
        }
        f
    }

    fn append(&mut self, bundle: Vec<u8>, epoch: u64) -> u64 {
        let i = self.tree.push(&LogEntry::bundle(FLEET, epoch, &bundle).to_cbor());
        self.bundles.push(bundle);
        i
    }

    fn anchors(&self, k: u64) -> LogAnchors {
        LogAnchors {
            origin: ORIGIN.into(),
            log_key: note::verifier_key(ORIGIN, SIG_TYPE_ED25519, &self.log).unwrap(),
            witnesses: self
                .witnesses
                .iter()
                .map(|(n, s)| note::verifier_key(n, SIG_TYPE_COSIGNATURE, s).unwrap())
                .collect(),
            threshold: k,
        }
    }

    /// A checkpoint note at `size`, signed by the log and cosigned by the first `w` witnesses.
    fn note(&self, size: u64, w: usize) -> String {
        let cp = Checkpoint { origin: ORIGIN.into(), size, root: self.tree.root_at(size).unwrap() };
        self.sign(&cp.body(), w)
    }

    fn sign(&self, text: &str, w: usize) -> String {
        let mut sigs = vec![note::sign_note(text, ORIGIN, &self.log).unwrap()];
        for (name, s) in &self.witnesses[..w] {
            sigs.push(note::cosign(text, name, s, 1_700_000_000).unwrap());
        }
        Note { text: text.into(), signatures: sigs }.encode()
    }

    fn proof(&self, index: u64, size: u64, w: usize) -> LogProof {
        LogProof {
            inclusion: InclusionProof {
                tree_size: size,
                leaf_index: index,
                path: self.tree.inclusion_proof(index, size).unwrap(),
            },
            checkpoint: self.note(size, w),
        }
    }

    fn verify(&self, index: u64, proof: &LogProof, k: u64, state: &LogState) -> Result<LogVerified> {
        verify_logged_bundle(
            &self.bundles[index as usize],
            FLEET,
            index,
            proof,
            &self.anchors(k),
            state,
            None,
        )
    }
}

#[test]
fn logged_and_witnessed_bundle_is_accepted() {
    let f = Fixture::new();
    let v = f.verify(3, &f.proof(3, 5, 2), 2, &LogState::default()).unwrap();
    assert_eq!(v.leaf_index, 3);
    assert_eq!(v.checkpoint.cosigners, vec!["witness0.example/w", "witness1.example/w"]);
    assert!(!v.development_only);
    assert_eq!(v.state.largest, Some(TreeHead { size: 5, root: f.tree.root_at(5).unwrap() }));
}

#[test]
fn k_zero_is_flagged_development_only() {
    let f = Fixture::new();
    let v = f.verify(0, &f.proof(0, 5, 0), 0, &LogState::default()).unwrap();
    assert!(v.development_only && v.checkpoint.development_only);
}

#[test]
fn wrapper_round_trips_as_deterministic_cbor() {
    let f = Fixture::new();
    let w = LoggedBundle { v: 1, bundle: f.bundles[2].clone(), proof: f.proof(2, 5, 3) };
    let bytes = w.to_cbor();
    assert_eq!(LoggedBundle::from_cbor(&bytes).unwrap(), w);
    let mut v2 = w.clone();
    v2.v = 2;
    assert_eq!(LoggedBundle::from_cbor(&v2.to_cbor()), Err(Error::CborSchema));
    // A 31-byte path element is a schema error.
    let mut val: ciborium::Value = ciborium::from_reader(bytes.as_slice()).unwrap();
    let short = ciborium::Value::Bytes(vec![0; 31]);
    if let ciborium::Value::Map(m) = &mut val {
        for (k, v) in m.iter_mut() {
            if k.as_text() == Some("proof")
                && let ciborium::Value::Map(pm) = v
            {
                for (pk, pv) in pm.iter_mut() {
                    if pk.as_text() == Some("inclusion")
                        && let ciborium::Value::Array(a) = pv
                        && let ciborium::Value::Array(path) = &mut a[2]
                    {
                        path[0] = short.clone();
                    }
                }
            }
        }
    }
    assert_eq!(LoggedBundle::from_cbor(&crate::cbor::value_to_vec(&val)), Err(Error::CborSchema));
}

#[test]
fn entry_encoding_is_the_cddl() {
    let e = LogEntry::bundle("f", 7, b"abc");
    let bytes = e.to_cbor();
    // Keys sorted bytewise: "v" (0x61 76), "type", "epoch", "digest", "fleet_id".
    let val: ciborium::Value = ciborium::from_reader(bytes.as_slice()).unwrap();
    let keys: Vec<_> = val.as_map().unwrap().iter().map(|(k, _)| k.as_text().unwrap().to_owned()).collect();
    assert_eq!(keys, ["v", "type", "epoch", "digest", "fleet_id"]);
    assert_eq!(LogEntry::from_cbor(&bytes).unwrap(), e);
    assert_eq!(e.digest, sha256(b"abc"));
    let evidence = LogEntry { kind: EntryType::Evidence, ..e };
    assert!(evidence.to_cbor().windows(8).any(|w| w == b"evidence"));
}

/// spec/audit-log.md §5: every field is bounded; the largest entry fits `MAX_ENCODED`, and
/// an empty or over-long `fleet_id`, or an over-long body, is `cbor.schema`.
#[test]
fn entry_fields_are_bounded() {
    let largest = LogEntry::bundle(&"f".repeat(255), u64::MAX, b"abc");
    assert!(largest.to_cbor().len() <= LogEntry::MAX_ENCODED, "{}", largest.to_cbor().len());
    assert_eq!(LogEntry::from_cbor(&largest.to_cbor()).unwrap(), largest);
    for fleet_id in [String::new(), "f".repeat(256), "f".repeat(80_000)] {
        let bytes = LogEntry::bundle(&fleet_id, 1, b"abc").to_cbor();
        assert_eq!(LogEntry::from_cbor(&bytes), Err(Error::CborSchema), "{} bytes", fleet_id.len());
    }
}

#[test]
fn wrong_root_index_truncated_padded_and_missing_entry_are_inclusion_invalid() {
    let f = Fixture::new();
    let s = LogState::default();
    let good = f.proof(3, 5, 2);
    // Wrong index.
    let mut p = good.clone();
    p.inclusion.leaf_index = 2;
    assert_eq!(f.verify(3, &p, 2, &s), Err(Error::LogInclusionInvalid));
    // Truncated and padded path.
    let mut p = good.clone();
    p.inclusion.path.pop();
    assert_eq!(f.verify(3, &p, 2, &s), Err(Error::LogInclusionInvalid));
    let mut p = good.clone();
    p.inclusion.path.push([0; 32]);
    assert_eq!(f.verify(3, &p, 2, &s), Err(Error::LogInclusionInvalid));
    // Tree size differs from the checkpoint.
    let mut p = good.clone();
    p.inclusion.tree_size = 4;
    assert_eq!(f.verify(3, &p, 2, &s), Err(Error::LogInclusionInvalid));
    // Wrong root: a validly signed checkpoint over another root.
    let mut p = good.clone();
    p.checkpoint = f.sign(&Checkpoint { origin: ORIGIN.into(), size: 5, root: [7; 32] }.body(), 2);
    assert_eq!(f.verify(3, &p, 2, &s), Err(Error::LogInclusionInvalid));
    // A bundle whose entry is not in the log (same epoch, other bytes).
    let other = b"bundle bytes 3, but another one";
    assert_eq!(
        verify_logged_bundle(other, FLEET, 3, &good, &f.anchors(2), &s, None),
        Err(Error::LogInclusionInvalid)
    );
    // Right bytes, wrong fleet or epoch claimed.
    assert_eq!(
        verify_logged_bundle(&f.bundles[3], "fleet-2", 3, &good, &f.anchors(2), &s, None),
        Err(Error::LogInclusionInvalid)
    );
}

#[test]
fn checkpoint_from_wrong_origin() {
    let f = Fixture::new();
    let mut p = f.proof(1, 5, 2);
    let body =
        Checkpoint { origin: "other.example/log".into(), size: 5, root: f.tree.root_at(5).unwrap() }.body();
    p.checkpoint = f.sign(&body, 2);
    assert_eq!(f.verify(1, &p, 2, &LogState::default()), Err(Error::LogCheckpointOrigin));
}

#[test]
fn bad_log_signature_and_unsigned_checkpoint() {
    let f = Fixture::new();
    let good = f.proof(1, 5, 2);
    let mut n = Note::parse(&good.checkpoint).unwrap();
    n.signatures[0].signature[0] ^= 1;
    let p = LogProof { checkpoint: n.encode(), ..good.clone() };
    assert_eq!(f.verify(1, &p, 2, &LogState::default()), Err(Error::LogCheckpointSignatureInvalid));
    let mut n = Note::parse(&good.checkpoint).unwrap();
    n.signatures.remove(0);
    let p = LogProof { checkpoint: n.encode(), ..good.clone() };
    assert_eq!(f.verify(1, &p, 2, &LogState::default()), Err(Error::LogCheckpointUnsigned));
    // A signature by another key under the log's name is ignored (unknown key id), so unsigned.
    let mut n = Note::parse(&good.checkpoint).unwrap();
    n.signatures[0] = note::sign_note(&n.text, ORIGIN, &Ed25519Signer::from_seed(&[99; 32])).unwrap();
    let p = LogProof { checkpoint: n.encode(), ..good };
    assert_eq!(f.verify(1, &p, 2, &LogState::default()), Err(Error::LogCheckpointUnsigned));
}

#[test]
fn bad_cosignature_and_too_few_witnesses() {
    let f = Fixture::new();
    let good = f.proof(1, 5, 3);
    let mut n = Note::parse(&good.checkpoint).unwrap();
    n.signatures[2].signature[20] ^= 1;
    let p = LogProof { checkpoint: n.encode(), ..good.clone() };
    assert_eq!(f.verify(1, &p, 2, &LogState::default()), Err(Error::LogCosignatureInvalid));
    // Changing the cosignature timestamp breaks it too.
    let mut n = Note::parse(&good.checkpoint).unwrap();
    n.signatures[1].signature[7] ^= 1;
    let p = LogProof { checkpoint: n.encode(), ..good.clone() };
    assert_eq!(f.verify(1, &p, 2, &LogState::default()), Err(Error::LogCosignatureInvalid));
    // Two witnesses, K = 3.
    assert_eq!(f.verify(1, &f.proof(1, 5, 2), 3, &LogState::default()), Err(Error::LogWitnessInsufficient));
    // One witness's line repeated still counts once.
    let mut n = Note::parse(&f.proof(1, 5, 1).checkpoint).unwrap();
    n.signatures.push(n.signatures[1].clone());
    let p = LogProof { checkpoint: n.encode(), ..good.clone() };
    assert_eq!(f.verify(1, &p, 2, &LogState::default()), Err(Error::LogWitnessInsufficient));
    // An unpinned witness does not count.
    let mut n = Note::parse(&f.proof(1, 5, 1).checkpoint).unwrap();
    let stranger = Ed25519Signer::from_seed(&[55; 32]);
    n.signatures.push(note::cosign(&n.text, "stranger.example/w", &stranger, 1).unwrap());
    let p = LogProof { checkpoint: n.encode(), ..good };
    assert_eq!(f.verify(1, &p, 2, &LogState::default()), Err(Error::LogWitnessInsufficient));
}

#[test]
fn fork_missing_and_invalid_consistency() {
    let mut f = Fixture::new();
    let s0 = LogState::default();
    let s5 = f.verify(4, &f.proof(4, 5, 2), 2, &s0).unwrap().state;
    // Same size, same root: fine, state unchanged.
    assert_eq!(f.verify(2, &f.proof(2, 5, 2), 2, &s5).unwrap().state, s5);
    // Same size, different root: a fork.
    let mut forked = Fixture::new();
    forked.tree = Tree::new();
    forked.bundles.clear();
    for e in 0..5u64 {
        forked.append(format!("other {e}").into_bytes(), e);
    }
    assert_eq!(forked.verify(0, &forked.proof(0, 5, 2), 2, &s5), Err(Error::LogFork));
    // Grow the log: a larger checkpoint needs a consistency proof.
    f.append(b"bundle bytes 5".to_vec(), 5);
    f.append(b"bundle bytes 6".to_vec(), 6);
    let p7 = f.proof(6, 7, 2);
    assert_eq!(f.verify(6, &p7, 2, &s5), Err(Error::LogConsistencyMissing));
    let cons = f.tree.consistency_proof(5, 7).unwrap();
    let v = verify_logged_bundle(&f.bundles[6], FLEET, 6, &p7, &f.anchors(2), &s5, Some(cons.as_slice()))
        .unwrap();
    assert_eq!(v.state.largest.unwrap().size, 7);
    // A bad consistency proof is refused and the state is not advanced.
    let mut bad = cons.clone();
    bad[0][0] ^= 1;
    assert_eq!(
        verify_logged_bundle(&f.bundles[6], FLEET, 6, &p7, &f.anchors(2), &s5, Some(bad.as_slice())),
        Err(Error::LogConsistencyInvalid)
    );
    // An older checkpoint needs a proof to the held larger one, and the state stays at 7.
    let p5 = f.proof(1, 5, 2);
    let v =
        verify_logged_bundle(&f.bundles[1], FLEET, 1, &p5, &f.anchors(2), &v.state, Some(cons.as_slice()))
            .unwrap();
    assert_eq!(v.state.largest.unwrap().size, 7);
}

#[test]
fn malformed_notes_checkpoints_and_anchors() {
    let f = Fixture::new();
    let good = f.proof(1, 5, 2);
    for bad in [
        "no blank line\n— a AAAAAAA=\n",
        "text\n\n",                     // no signatures
        "text\n\n— a AAAAAAA=",         // no final newline
        "text\n\n- a AAAAAAA=\n",       // ASCII dash
        "te\txt\n\n— a AAAAAAA=\n",     // control character
        "text\n\n— a+b AAAAAAA=\n",     // plus in name
        "text\n\n— a AAAA\n",           // fewer than 5 bytes
        "text\n\n— a not-base64!\n",    // base64
        "text\n\n— a AAAAAAA= extra\n", // extra field
    ] {
        assert_eq!(Note::parse(bad), Err(Error::LogNoteMalformed), "{bad:?}");
    }
    let p = LogProof { checkpoint: "garbage".into(), ..good.clone() };
    assert_eq!(f.verify(1, &p, 2, &LogState::default()), Err(Error::LogNoteMalformed));
    let root = B64.encode(f.tree.root_at(5).unwrap());
    for body in [
        format!("{ORIGIN}\n05\n{root}\n"),
        format!("{ORIGIN}\n5\n{root}\next\n"),
        format!("{ORIGIN}\n-5\n{root}\n"),
        format!("{ORIGIN}\n18446744073709551616\n{root}\n"),
        format!("{ORIGIN}\n5\n{}\n", B64.encode([0u8; 31])),
        format!("\n5\n{root}\n"),
    ] {
        assert_eq!(Checkpoint::parse_body(&body), Err(Error::LogCheckpointMalformed), "{body:?}");
        let p = LogProof { checkpoint: f.sign(&body, 2), ..good.clone() };
        assert_eq!(f.verify(1, &p, 2, &LogState::default()), Err(Error::LogCheckpointMalformed), "{body:?}");
    }
    // Anchors.
    let mut a = f.anchors(2);
    a.threshold = 4;
    assert_eq!(a.validate(), Err(Error::LogAnchorsInvalid));
    let mut a = f.anchors(2);
    a.origin = "other".into();
    assert_eq!(a.validate(), Err(Error::LogAnchorsInvalid));
    let mut a = f.anchors(2);
    a.witnesses[1] = a.witnesses[0].clone();
    assert_eq!(a.validate(), Err(Error::LogAnchorsInvalid));
    let mut a = f.anchors(2);
    a.witnesses[0] = VerifierKey::new(&a.witnesses[0].name, SIG_TYPE_ED25519, a.witnesses[0].key).unwrap();
    assert_eq!(
        verify_logged_bundle(&f.bundles[1], FLEET, 1, &good, &a, &LogState::default(), None),
        Err(Error::LogAnchorsInvalid)
    );
    // Anchors round trip through CBOR with vkey strings.
    let a = f.anchors(2);
    let bytes = crate::cbor::to_vec(&a);
    assert_eq!(crate::cbor::from_slice::<LogAnchors>(&bytes).unwrap(), a);
}

#[test]
fn vkey_encoding_round_trips_for_generated_keys() {
    let f = Fixture::new();
    for k in f.anchors(1).witnesses.iter().chain([&f.anchors(1).log_key]) {
        assert_eq!(&VerifierKey::parse(&k.encode()).unwrap(), k);
    }
    // Wrong key algorithm for a note signer.
    let p256 = crate::crypto::Esp256Signer::from_scalar(&[7; 32]).unwrap();
    assert_eq!(note::sign_note("x\n", "n", &p256), Err(Error::LogVkeyMalformed));
}

#[test]
fn witness_checks_consistency_before_cosigning() {
    let mut f = Fixture::new();
    let key = f.anchors(0).log_key;
    let n5 = f.note(5, 0);
    let (_, h5) = witness_check(&key, None, &n5, &[]).unwrap();
    assert_eq!(h5.size, 5);
    // Same checkpoint again: fine. Same size, other root: fork.
    assert!(witness_check(&key, Some(h5), &n5, &[]).is_ok());
    let other = f.sign(&Checkpoint { origin: ORIGIN.into(), size: 5, root: [9; 32] }.body(), 0);
    assert_eq!(witness_check(&key, Some(h5), &other, &[]).map(|x| x.1), Err(Error::LogFork));
    f.append(b"b5".to_vec(), 5);
    f.append(b"b6".to_vec(), 6);
    let n7 = f.note(7, 0);
    let proof = f.tree.consistency_proof(5, 7).unwrap();
    let (_, h7) = witness_check(&key, Some(h5), &n7, &proof).unwrap();
    assert_eq!(h7.size, 7);
    assert_eq!(witness_check(&key, Some(h5), &n7, &[]).map(|x| x.1), Err(Error::LogConsistencyInvalid));
    // Older than held: conflict.
    assert_eq!(witness_check(&key, Some(h7), &n5, &[]).map(|x| x.1), Err(Error::LogWitnessConflict));
    // Wrong origin, unsigned, bad signature.
    let wrong = f.sign(&Checkpoint { origin: "x.example/l".into(), size: 7, root: h7.root }.body(), 0);
    assert_eq!(witness_check(&key, None, &wrong, &[]).map(|x| x.1), Err(Error::LogCheckpointOrigin));
    let mut n = Note::parse(&n7).unwrap();
    n.signatures[0].signature[3] ^= 1;
    assert_eq!(
        witness_check(&key, None, &n.encode(), &[]).map(|x| x.1),
        Err(Error::LogCheckpointSignatureInvalid)
    );
}
