//! spec/audit-log.md §3: Merkle tree cost at 1,000,000 entries, each figure as a ratio to
//! the raw SHA-256 work the same operation needs, measured in the same run.
//!
//! `cargo bench -p bkv-protocol --bench audit_log`
//!
//! Baselines hash the same inputs (leaf: `0x00 || entry`; node: 65 bytes) the same number
//! of times with `sha2` directly, with no tree bookkeeping. The hash counts of the tree
//! operations are computed by count-only mirrors of the algorithms below.

use bkv_protocol::audit_log::LogEntry;
use bkv_protocol::audit_log::merkle::{Hash, Tree, verify_consistency, verify_inclusion};
use criterion::{Criterion, Throughput};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::hint::black_box;
use std::sync::Mutex;
use std::time::{Duration, Instant};

const N: u64 = 1_000_000;
const CASES: usize = 1024;

static TIMES: Mutex<BTreeMap<&'static str, (Duration, u64)>> = Mutex::new(BTreeMap::new());

fn record(name: &'static str, d: Duration, iters: u64) {
    let mut t = TIMES.lock().unwrap();
    let e = t.entry(name).or_default();
    e.0 += d;
    e.1 += iters;
}

fn per_iter(name: &str) -> f64 {
    let t = TIMES.lock().unwrap();
    let (d, n) = t[name];
    d.as_secs_f64() / n as f64
}

fn node_work(k: u64, seed: &mut Hash) {
    let mut buf = [0u8; 65];
    buf[0] = 1;
    for _ in 0..k {
        buf[1..33].copy_from_slice(seed);
        *seed = Sha256::digest(buf).into();
    }
}

fn split(n: u64) -> u64 {
    1 << (63 - (n - 1).leading_zeros())
}

/// Node hashes `Tree` computes for `MTH(D[start:end])` from stored complete subtrees.
fn ragged(start: u64, end: u64) -> u64 {
    let n = end - start;
    if n.is_power_of_two() && start.is_multiple_of(n) {
        return 0;
    }
    let k = split(n);
    1 + ragged(start, start + k) + ragged(start + k, end)
}

fn path_cost(m: u64, start: u64, end: u64) -> u64 {
    let n = end - start;
    if n == 1 {
        return 0;
    }
    let k = split(n);
    if m < k {
        path_cost(m, start, start + k) + ragged(start + k, end)
    } else {
        path_cost(m - k, start + k, end) + ragged(start, start + k)
    }
}

fn subproof_cost(m: u64, start: u64, end: u64, complete: bool) -> u64 {
    let n = end - start;
    if m == n {
        return if complete { 0 } else { ragged(start, end) };
    }
    let k = split(n);
    if m <= k {
        subproof_cost(m, start, start + k, complete) + ragged(start + k, end)
    } else {
        subproof_cost(m - k, start + k, end, false) + ragged(start, start + k)
    }
}

/// Hashes RFC 9162 §2.1.4.2 computes for a consistency proof (fr and sr updates).
fn consistency_verify_cost(size1: u64, size2: u64, proof_len: usize) -> u64 {
    let mut len = proof_len as u64;
    if size1.is_power_of_two() {
        len += 1;
    }
    let (mut fn_, mut sn) = (size1 - 1, size2 - 1);
    while fn_ & 1 == 1 {
        fn_ >>= 1;
        sn >>= 1;
    }
    let mut cost = 0;
    for _ in 1..len {
        if fn_ & 1 == 1 || fn_ == sn {
            cost += 2;
            if fn_ & 1 == 0 {
                while fn_ & 1 == 0 && fn_ != 0 {
                    fn_ >>= 1;
                    sn >>= 1;
                }
            }
        } else {
            cost += 1;
        }
        fn_ >>= 1;
        sn >>= 1;
    }
    cost
}

fn main() {
    let entries: Vec<Vec<u8>> =
        (0..N).map(|i| LogEntry::bundle("fleet-bench", i, &i.to_be_bytes()).to_cbor()).collect();
    let mut c = Criterion::default().configure_from_args().without_plots().sample_size(10);

    // ---- append 1,000,000 entries --------------------------------------------------
    let nodes = N - u64::from(N.count_ones());
    let mut g = c.benchmark_group("audit_log/append_1m");
    g.sample_size(10).measurement_time(Duration::from_secs(15)).throughput(Throughput::Elements(N));
    g.bench_function("tree", |b| {
        b.iter_custom(|iters| {
            let start = Instant::now();
            for _ in 0..iters {
                let mut t = Tree::new();
                for e in &entries {
                    t.push(e);
                }
                black_box(&t);
            }
            let d = start.elapsed();
            record("append", d, iters);
            d
        })
    });
    g.bench_function("raw_sha256", |b| {
        b.iter_custom(|iters| {
            let start = Instant::now();
            for _ in 0..iters {
                let mut seed = [0u8; 32];
                for e in &entries {
                    let h: Hash = Sha256::new().chain_update([0u8]).chain_update(e).finalize().into();
                    seed[0] ^= h[0];
                }
                node_work(nodes, &mut seed);
                black_box(seed);
            }
            let d = start.elapsed();
            record("append_base", d, iters);
            d
        })
    });
    g.finish();

    // ---- proofs at 1,000,000 entries -----------------------------------------------
    let mut tree = Tree::new();
    for e in &entries {
        tree.push(e);
    }
    drop(entries);
    let root = tree.root();
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let idx: Vec<u64> = (0..CASES).map(|_| next() % N).collect();
    let sizes: Vec<u64> = (0..CASES).map(|_| 1 + next() % (N - 1)).collect();
    let inc: Vec<Vec<Hash>> = idx.iter().map(|&i| tree.inclusion_proof(i, N).unwrap()).collect();
    let cons: Vec<Vec<Hash>> = sizes.iter().map(|&m| tree.consistency_proof(m, N).unwrap()).collect();
    let old_roots: Vec<Hash> = sizes.iter().map(|&m| tree.root_at(m).unwrap()).collect();
    let leaves: Vec<Hash> = idx.iter().map(|&i| tree.leaf(i).unwrap()).collect();
    let inc_gen_cost: Vec<u64> = idx.iter().map(|&i| path_cost(i, 0, N)).collect();
    let inc_ver_cost: Vec<u64> = inc.iter().map(|p| p.len() as u64).collect();
    let cons_gen_cost: Vec<u64> = sizes.iter().map(|&m| subproof_cost(m, 0, N, true)).collect();
    let cons_ver_cost: Vec<u64> =
        sizes.iter().zip(&cons).map(|(&m, p)| consistency_verify_cost(m, N, p.len())).collect();

    let mut g = c.benchmark_group("audit_log/proofs_at_1m");
    g.sample_size(50).measurement_time(Duration::from_secs(5));
    macro_rules! pair {
        ($name:literal, $base:literal, $costs:expr, $op:expr) => {
            g.bench_function($name, |b| {
                b.iter_custom(|iters| {
                    let start = Instant::now();
                    for i in 0..iters as usize {
                        let k = i % CASES;
                        black_box($op(k));
                    }
                    let d = start.elapsed();
                    record($name, d, iters);
                    d
                })
            });
            g.bench_function($base, |b| {
                b.iter_custom(|iters| {
                    let start = Instant::now();
                    let mut seed = [0u8; 32];
                    for i in 0..iters as usize {
                        node_work($costs[i % CASES], &mut seed);
                    }
                    black_box(seed);
                    let d = start.elapsed();
                    record($base, d, iters);
                    d
                })
            });
        };
    }
    pair!("inclusion_generate", "inclusion_generate_base", inc_gen_cost, |k: usize| tree
        .inclusion_proof(idx[k], N));
    pair!("inclusion_verify", "inclusion_verify_base", inc_ver_cost, |k: usize| verify_inclusion(
        &leaves[k], idx[k], N, &inc[k], &root
    )
    .is_ok());
    pair!("consistency_generate", "consistency_generate_base", cons_gen_cost, |k: usize| tree
        .consistency_proof(sizes[k], N));
    pair!("consistency_verify", "consistency_verify_base", cons_ver_cost, |k: usize| verify_consistency(
        sizes[k],
        N,
        &cons[k],
        &old_roots[k],
        &root
    )
    .is_ok());
    g.finish();

    let avg = |v: &[u64]| v.iter().sum::<u64>() as f64 / v.len() as f64;
    println!(
        "\naudit_log benchmark, n = {N} entries; ratio = operation time / raw SHA-256 time for the same hashes"
    );
    let a = per_iter("append");
    let ab = per_iter("append_base");
    println!(
        "append 1M:            {:>10.0} entries/s  raw SHA-256 {:>10.0} entries/s  ratio {:.2}  ({} leaf + {} node hashes)",
        N as f64 / a,
        N as f64 / ab,
        a / ab,
        N,
        nodes
    );
    for (op, base, costs) in [
        ("inclusion_generate", "inclusion_generate_base", &inc_gen_cost),
        ("inclusion_verify", "inclusion_verify_base", &inc_ver_cost),
        ("consistency_generate", "consistency_generate_base", &cons_gen_cost),
        ("consistency_verify", "consistency_verify_base", &cons_ver_cost),
    ] {
        let t = per_iter(op);
        let b = per_iter(base);
        println!(
            "{op:<21} {:>9.2} us/op  raw SHA-256 {:>9.2} us/op  ratio {:.2}  ({:.2} hashes/op avg)",
            t * 1e6,
            b * 1e6,
            t / b,
            avg(costs)
        );
    }
}
