//! spec/vault.md §5.3: the node's work to answer a guess (a sealed KE1, through the node
//! step of spec/node-api.md §5 and the state machine) for a registered record and for an
//! id that was never registered, in the same run. The two should cost the same: the ratio
//! of their times is the figure (BENCHMARKS.md "Guesses at unknown ids").
//!
//! Registered: guesses rotate over 1,000 registered records with guess limit 100, so none
//! locks during the run. Unknown: each guess is at a fresh id (the forging attacker's case:
//! the entry is created). The client's sealing of each KE1 is outside the timing.
//!
//! `cargo bench -p bkv-protocol --bench unknown_ids`

#[path = "../tests/api/common/mod.rs"]
mod common;

use bkv_protocol::vault::BackupKey;
use common::{Client, Node};
use criterion::{BatchSize, Criterion, criterion_group, criterion_main};

const RECORDS: u32 = 1_000;

fn id(kind: &[u8; 4], n: u32) -> Vec<u8> {
    let mut id = b"????-record-id-00000000000000000".to_vec();
    id[..4].copy_from_slice(kind);
    id[28..].copy_from_slice(&n.to_be_bytes());
    id
}

fn bench(c: &mut Criterion) {
    let mut node = Node::new(1, 100);
    let mut client = Client::new(2, &node);
    let key = BackupKey::generate(&mut client.rng);
    for n in 0..RECORDS {
        client.register(&mut node, &id(b"reg-", n), b"123456", &key).unwrap();
    }
    let (mut registered, mut unknown) = (0u32, 0u32);
    let mut g = c.benchmark_group("guess: the node answers a KE1");
    g.bench_function("registered record", |b| {
        b.iter_batched(
            || {
                registered += 1;
                client.sealed_guess(&id(b"reg-", registered % RECORDS), b"000000")
            },
            |request| node.serve(&request),
            BatchSize::SmallInput,
        )
    });
    g.bench_function("unknown id", |b| {
        b.iter_batched(
            || {
                unknown += 1;
                client.sealed_guess(&id(b"unk-", unknown), b"000000")
            },
            |request| node.serve(&request),
            BatchSize::SmallInput,
        )
    });
    g.finish();
    assert!(u64::from(registered) < u64::from(RECORDS) * 99, "a registered record would have locked");
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(50).measurement_time(std::time::Duration::from_secs(5));
    targets = bench
}
criterion_main!(benches);
