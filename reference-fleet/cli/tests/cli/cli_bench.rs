//! `bkv bench`: each benchmark runs its baseline and the replicated fleet in one run and
//! reports every configuration with its ratio to the baseline (BENCHMARKS.md). Only the
//! shape and the counts are checked here; speed is measured by the benchmarks themselves.

use serde_json::Value;
use std::process::Command;

fn bench_json(args: &[&str]) -> Value {
    let out = Command::new(env!("CARGO_BIN_EXE_bkv"))
        .arg("bench")
        .args(args)
        .arg("--json")
        .output()
        .expect("run bkv");
    assert!(out.status.success(), "bkv bench {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    let v: Value = serde_json::from_slice(&out.stdout).expect("JSON on stdout");
    assert_eq!(v["ok"], true, "the success envelope: {v}");
    v["result"].clone()
}

fn check(v: &Value, labels: &[&str]) {
    let results = v["results"].as_array().expect("results");
    let got: Vec<&str> = results.iter().map(|r| r["label"].as_str().expect("label")).collect();
    assert_eq!(got, labels);
    assert_eq!(v["baseline"], labels[0]);
    for r in results {
        assert!(r["ops"].as_u64().expect("ops") > 0, "nothing measured: {r}");
        assert_eq!(r["errors"], 0, "every operation of a healthy fleet succeeds: {r}");
        let (ops, secs, rate) =
            (r["ops"].as_f64().unwrap(), r["secs"].as_f64().unwrap(), r["ops_per_sec"].as_f64().unwrap());
        assert!((rate - ops / secs).abs() < 1e-6 * rate.max(1.0), "ops/s is ops over the wall time: {r}");
        assert!(r["p50_ms"].as_f64().unwrap() <= r["p99_ms"].as_f64().unwrap(), "{r}");
    }
    let base = results[0]["ops_per_sec"].as_f64().unwrap();
    for r in results {
        let ratio = r["ratio_to_baseline"].as_f64().unwrap();
        assert!((ratio - r["ops_per_sec"].as_f64().unwrap() / base).abs() < 1e-9, "{r}");
    }
}

/// With `--processes`, the same fleet again with one `bkv-node run` process per node.
#[test]
fn recovery_bench_reports_full_recoveries_against_an_unreplicated_node() {
    let _serial = crate::support::serial();
    let v = bench_json(&["recovery", "--nodes", "3", "--clients", "2", "--secs", "1", "--processes"]);
    check(
        &v,
        &["single node, no replication", "3-node replicated fleet", "3-node fleet, one process per node"],
    );
}

#[test]
fn replication_bench_reports_commits_against_an_unreplicated_log() {
    let _serial = crate::support::serial();
    let v = bench_json(&["replication", "--nodes", "3", "--clients", "2", "--secs", "1"]);
    check(&v, &["single node, no replication", "1-node Raft, no replication", "3-node replicated (Raft)"]);
}
