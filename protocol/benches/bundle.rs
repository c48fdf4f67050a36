//! Bundle verification (spec/validation-bundle.md §5) against its baseline measured in
//! the same run: the two raw signature verifications the bundle contains (Ed25519 by
//! the third party, ESP256 by the operator) over the same to-be-signed bytes.
//!
//! Run: `cargo bench -p bkv-protocol --bench bundle`

use bkv_protocol::crypto::{Ed25519Signer, Esp256Signer, Signer};
use bkv_protocol::validation_bundle::keyset::{OPAQUE_SUITE_1, SESSION_SUITE_X25519};
use bkv_protocol::validation_bundle::*;
use criterion::{Criterion, criterion_group, criterion_main};
use std::hint::black_box;

const NOW: u64 = 1_800_000_000;

fn fixture() -> (Vec<u8>, TrustAnchors) {
    let tp = Ed25519Signer::from_seed(&[1; 32]);
    let op = Esp256Signer::from_scalar(&[2; 32]).unwrap();
    let nodes = (1..=5u8)
        .map(|i| Node {
            id: format!("node-{i}"),
            datacenter: format!("dc-{}", i % 3),
            keys: vec![
                NodeKey { role: KeyRole::Session, suite: SESSION_SUITE_X25519, key: vec![i; 32] },
                NodeKey { role: KeyRole::Opaque, suite: OPAQUE_SUITE_1, key: vec![0xaa; 32] },
                NodeKey {
                    role: KeyRole::Signing,
                    suite: -19,
                    key: Ed25519Signer::from_seed(&[100 + i; 32]).public_key().key.clone(),
                },
            ],
        })
        .collect();
    let ks = FleetKeySet {
        v: 1,
        fleet_id: "bench".into(),
        epoch: 1,
        not_before: NOW - 10,
        not_after: NOW + 10,
        guess_limit: 10,
        quorum: 3,
        nodes,
        prev: None,
        evidence: None,
    };
    let claims = Claims { iss: "tp".into(), sub: "bench".into(), iat: NOW };
    let bundle = countersign(&sign(&ks.to_bytes(), &claims, &tp), &op).unwrap();
    let anchor = |name: &str, k: &bkv_protocol::crypto::PublicKey| Anchor {
        name: name.into(),
        key: k.clone(),
        not_before: 0,
        not_after: u64::MAX,
    };
    let anchors = TrustAnchors {
        v: 1,
        fleet_id: "bench".into(),
        third_party: vec![anchor("tp", tp.public_key())],
        operator: vec![anchor("op", op.public_key())],
        pinned: vec![],
    };
    (bundle, anchors)
}

fn bench(c: &mut Criterion) {
    let (bundle, anchors) = fixture();
    let parsed = Parsed::parse(&bundle).unwrap();
    let cs = parsed.countersignature.clone().unwrap();
    let tbs = parsed.to_be_signed();
    let cs_tbs = parsed.countersign_to_be_signed(&cs);
    let (tp_key, op_key) = (anchors.third_party[0].key.clone(), anchors.operator[0].key.clone());
    assert!(tp_key.verify(&tbs, &parsed.signature) && op_key.verify(&cs_tbs, &cs.signature));

    let mut g = c.benchmark_group("bundle");
    g.bench_function("baseline: raw Ed25519 + ESP256 verify", |b| {
        b.iter(|| {
            black_box(tp_key.verify(black_box(&tbs), &parsed.signature))
                & black_box(op_key.verify(black_box(&cs_tbs), &cs.signature))
        })
    });
    g.bench_function("verify_bundle (full §5)", |b| {
        b.iter(|| verify_bundle(black_box(&bundle), &anchors, &ClientState::default(), NOW).unwrap())
    });
    g.bench_function("parse only (§5 steps 1-2)", |b| b.iter(|| Parsed::parse(black_box(&bundle)).unwrap()));
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(50).measurement_time(std::time::Duration::from_secs(4));
    targets = bench
}
criterion_main!(benches);
