//! Bundle verification (spec/validation-bundle.md §5) against its baseline measured in
//! the same run: the two raw signature verifications the bundle contains (Ed25519 by
//! the third party, ESP256 by the operator) over the same to-be-signed bytes.
//!
//! Run: `cargo bench -p bkv-protocol --bench bundle`

use bkv_protocol::fixtures::bundle::{NOW, keyset, organisations};
use bkv_protocol::validation_bundle::*;
use criterion::{Criterion, criterion_group, criterion_main};
use std::hint::black_box;

/// The sample deployment of the bundle vectors: its epoch-1 bundle and the app's anchors.
fn fixture() -> (Vec<u8>, TrustAnchors) {
    let orgs = organisations();
    (orgs.bundle(&keyset(1, None)), orgs.anchors)
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
