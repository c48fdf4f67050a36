//! The client's full check of a released bundle, spec/validation-bundle.md §5.1 steps 1–12
//! (step 12 is spec/audit-log.md §7.2), against its raw primitives measured in the same run:
//! 2 bundle signature verifies (Ed25519 by the third party, ESP256 by the operator), 1 log
//! signature verify, K cosignature verifies, and the leaf hash plus the log2(n) node
//! hashes of the inclusion proof.
//!
//! The log holds 1,000,000 entries (the bundle's entry among them, not at an edge); the
//! checkpoint carries the log signature and K = 2 cosignatures, of 3 pinned witnesses.
//!
//! `cargo bench -p bkv-protocol --bench client_check`

use bkv_protocol::audit_log::merkle::{Tree, leaf_hash, node_hash};
use bkv_protocol::audit_log::note::{
    Note, SIG_TYPE_COSIGNATURE, SIG_TYPE_ED25519, cosign, cosignature_message, sign_note, verifier_key,
};
use bkv_protocol::audit_log::{
    Checkpoint, InclusionProof, LogAnchors, LogEntry, LogProof, LogState, verify_logged_bundle,
};
use bkv_protocol::crypto::{Algorithm, Ed25519Signer, PublicKey};
use bkv_protocol::fixtures::bundle::{NOW, keyset, organisations};
use bkv_protocol::validation_bundle::*;
use criterion::{Criterion, criterion_group, criterion_main};
use std::hint::black_box;

const LOG_SIZE: u64 = 1_000_000;
const BUNDLE_INDEX: u64 = 654_321;
const K: u64 = 2;
const ORIGIN: &str = "bench.example/log";

/// The released bundle, its anchors, its log proof and the log anchors.
struct Fixture {
    bundle: Vec<u8>,
    anchors: TrustAnchors,
    keyset: FleetKeySet,
    proof: LogProof,
    log: LogAnchors,
}

fn fixture() -> Fixture {
    let orgs = organisations();
    let ks = keyset(1, None);
    let bundle = orgs.bundle(&ks);
    let entry = LogEntry::bundle(&ks.fleet_id, ks.epoch, &bundle).to_cbor();
    let mut tree = Tree::new();
    for i in 0..LOG_SIZE {
        if i == BUNDLE_INDEX {
            tree.push(&entry);
        } else {
            tree.push_leaf_hash(leaf_hash(&i.to_be_bytes()));
        }
    }
    let text = Checkpoint { origin: ORIGIN.into(), size: LOG_SIZE, root: tree.root() }.body();
    let log_signer = Ed25519Signer::from_seed(&[7; 32]);
    let witnesses: Vec<Ed25519Signer> = (0..3).map(|i| Ed25519Signer::from_seed(&[20 + i; 32])).collect();
    let mut signatures = vec![sign_note(&text, ORIGIN, &log_signer).unwrap()];
    for (i, w) in witnesses.iter().take(K as usize).enumerate() {
        signatures.push(cosign(&text, &format!("w{i}"), w, 1_700_000_000 + i as u64).unwrap());
    }
    let checkpoint = Note { text, signatures }.encode();
    let proof = LogProof {
        inclusion: InclusionProof {
            tree_size: LOG_SIZE,
            leaf_index: BUNDLE_INDEX,
            path: tree.inclusion_proof(BUNDLE_INDEX, LOG_SIZE).unwrap(),
        },
        checkpoint,
    };
    let log = LogAnchors {
        origin: ORIGIN.into(),
        log_key: verifier_key(ORIGIN, SIG_TYPE_ED25519, &log_signer).unwrap(),
        witnesses: witnesses
            .iter()
            .enumerate()
            .map(|(i, w)| verifier_key(&format!("w{i}"), SIG_TYPE_COSIGNATURE, w).unwrap())
            .collect(),
        threshold: K,
    };
    Fixture { bundle, anchors: orgs.anchors, keyset: ks, proof, log }
}

/// Steps 1–12 as a client runs them on first contact (no held state).
fn full_check(f: &Fixture) -> u64 {
    let verified = verify_bundle(&f.bundle, &f.anchors, &ClientState::default(), NOW).unwrap();
    let ks = verified.keyset();
    verify_logged_bundle(&f.bundle, &ks.fleet_id, ks.epoch, &f.proof, &f.log, &LogState::default(), None)
        .unwrap()
        .leaf_index
}

fn bench(c: &mut Criterion) {
    let f = fixture();
    assert_eq!(full_check(&f), BUNDLE_INDEX);
    assert_eq!(f.keyset.epoch, 1);

    // The raw inputs of the baseline, taken apart once.
    let parsed = Parsed::parse(&f.bundle).unwrap();
    let cs = parsed.countersignature.clone().unwrap();
    let (tbs, cs_tbs) = (parsed.to_be_signed(), parsed.countersign_to_be_signed(&cs));
    let (tp_key, op_key) = (f.anchors.third_party[0].key.clone(), f.anchors.operator[0].key.clone());
    let note = Note::parse(&f.proof.checkpoint).unwrap();
    let ed = |key: &[u8; 32]| PublicKey { alg: Algorithm::Ed25519, key: key.to_vec() };
    let log_key = ed(&f.log.log_key.key);
    let cosigs: Vec<(PublicKey, Vec<u8>, Vec<u8>)> = note.signatures[1..]
        .iter()
        .zip(&f.log.witnesses)
        .map(|(s, w)| {
            let t = u64::from_be_bytes(s.signature[..8].try_into().unwrap());
            (ed(&w.key), cosignature_message(&note.text, t), s.signature[8..].to_vec())
        })
        .collect();
    let entry = LogEntry::bundle(&f.keyset.fleet_id, f.keyset.epoch, &f.bundle).to_cbor();
    let path = f.proof.inclusion.path.clone();
    assert_eq!(path.len(), 20, "log2(1,000,000) rounded up");

    let mut g = c.benchmark_group("client_check");
    g.bench_function("baseline: 2 + 1 + K signature verifies and 1 + log2(n) hashes", |b| {
        b.iter(|| {
            let mut ok = tp_key.verify(black_box(&tbs), &parsed.signature);
            ok &= op_key.verify(black_box(&cs_tbs), &cs.signature);
            ok &= log_key.verify(black_box(note.text.as_bytes()), &note.signatures[0].signature);
            for (k, m, s) in &cosigs {
                ok &= k.verify(black_box(m), s);
            }
            let mut h = leaf_hash(black_box(&entry));
            for p in &path {
                h = node_hash(p, &h);
            }
            (ok, h)
        })
    });
    g.bench_function("full check, steps 1-12 (1M-entry log, K = 2 of 3)", |b| {
        b.iter(|| full_check(black_box(&f)))
    });
    g.bench_function("part: steps 1-11 (verify_bundle)", |b| {
        b.iter(|| verify_bundle(black_box(&f.bundle), &f.anchors, &ClientState::default(), NOW).unwrap())
    });
    let ks = &f.keyset;
    g.bench_function("part: step 12 (verify_logged_bundle)", |b| {
        b.iter(|| {
            verify_logged_bundle(
                black_box(&f.bundle),
                &ks.fleet_id,
                ks.epoch,
                &f.proof,
                &f.log,
                &LogState::default(),
                None,
            )
            .unwrap()
        })
    });
    g.bench_function("part: keyset decode and validation (FleetKeySet::from_bytes)", |b| {
        b.iter(|| FleetKeySet::from_bytes(black_box(&parsed.payload)).unwrap())
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(50).measurement_time(std::time::Duration::from_secs(4));
    targets = bench
}
criterion_main!(benches);
