//! The output and exit-code contract through the binary (README "Output and exit codes"):
//! `--json` output validates against `bkv schema output` for a success and for failures,
//! exit statuses separate verification, usage and operational failures, a wrong KEK keeps
//! its `hsm.*` code, and `--log-format json` prints the node's events with their fields.

use crate::support::{bkv, fleet_up, fleet_up_with, tempdir};
use serde_json::{Value, json};
use std::io::Read;
use std::process::{Output, Stdio};

fn run(args: &[&str]) -> Output {
    bkv().args(args).output().expect("run bkv")
}

fn validator() -> jsonschema::Validator {
    let out = run(&["schema", "output"]);
    assert!(out.status.success());
    let schema: Value = serde_json::from_slice(&out.stdout).expect("the schema is JSON");
    jsonschema::validator_for(&schema).expect("a valid JSON Schema")
}

/// Standard output as the one JSON document the contract promises, validated.
fn envelope(v: &jsonschema::Validator, out: &Output) -> Value {
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!("stdout is not one JSON document ({e}): {}", String::from_utf8_lossy(&out.stdout))
    });
    let errors: Vec<String> = v.iter_errors(&doc).map(|e| e.to_string()).collect();
    assert!(errors.is_empty(), "{doc} does not match the output schema: {errors:?}");
    doc
}

#[test]
fn json_success_and_failures_match_the_output_schema() {
    let _serial = crate::support::serial();
    let v = validator();
    // The schema itself refuses what the contract forbids, so it can fail.
    assert!(!v.is_valid(&json!({"ok": true, "error": {"code": "x", "message": "y"}})));
    assert!(!v.is_valid(&json!({"ok": false, "result": 1})));
    assert!(!v.is_valid(&json!({"ok": false, "error": {"code": "x"}})));

    let ok = run(&["version", "--json"]);
    assert_eq!(ok.status.code(), Some(0));
    let doc = envelope(&v, &ok);
    assert_eq!(doc["ok"], true);
    assert_eq!(doc["result"]["version"], env!("CARGO_PKG_VERSION"));
    assert!(!doc["result"]["source_rev"].as_str().unwrap().is_empty());

    // An operational failure: the file is named.
    let missing = tempdir("contract").join("no-such-bundle.cbor");
    let io = run(&["bundle", "inspect", missing.to_str().unwrap(), "--json"]);
    assert_eq!(io.status.code(), Some(3), "{}", String::from_utf8_lossy(&io.stderr));
    let doc = envelope(&v, &io);
    assert_eq!(doc["ok"], false);
    assert_eq!(doc["error"]["code"], "io.read");
    assert_eq!(doc["error"]["file"], missing.to_str().unwrap());

    // A usage error, found by the argument parser before any command runs.
    let usage = run(&["bundle", "inspect", "--json"]);
    assert_eq!(usage.status.code(), Some(2));
    let doc = envelope(&v, &usage);
    assert_eq!(doc["error"]["code"], "cli.usage");
}

#[test]
fn a_wrong_kek_is_hsm_unseal_failed() {
    let _serial = crate::support::serial();
    let dir = tempdir("wrong-kek");
    drop(fleet_up(&dir, 1));
    let out = bkv()
        .env("BKV_HSM_KEK", "11".repeat(32))
        .args(["fleet", "up", "--nodes", "1", "--dir", dir.to_str().unwrap(), "--json"])
        .output()
        .expect("run bkv");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(stderr.contains("error [hsm.unseal.failed]"), "{stderr}");
    let doc: Value = serde_json::from_slice(&out.stdout).expect("the failure envelope");
    assert_eq!(doc["error"]["code"], "hsm.unseal.failed");
    assert!(doc["error"]["hint"].as_str().is_some_and(|h| h.contains("BKV_HSM_KEK")), "{doc}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// `RUST_LOG=info bkv fleet up --log-format json` prints one JSON object per event on
/// stderr, with the event's fields: a leader elected (with its term) and the vote gates.
#[test]
fn json_logs_carry_the_events_and_their_fields() {
    let _serial = crate::support::serial();
    let dir = tempdir("json-logs");
    let mut cmd = bkv();
    cmd.env("RUST_LOG", "bkv_node=info")
        .args([
            "fleet",
            "up",
            "--nodes",
            "3",
            "--dir",
            dir.to_str().unwrap(),
            "--json",
            "--log-format",
            "json",
        ])
        .stderr(Stdio::piped());
    let (mut fleet, _) = fleet_up_with(cmd);
    let mut stderr = fleet.0.stderr.take().expect("piped stderr");
    drop(fleet); // killed and reaped: its stderr ends
    let mut text = String::new();
    stderr.read_to_string(&mut text).unwrap();
    let events: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not a JSON event ({e}): {l}")))
        .collect();
    let find = |message: &str| events.iter().find(|e| e["fields"]["message"] == message).cloned();
    let leader = find("leader elected").unwrap_or_else(|| panic!("no leader event in {text}"));
    assert!(leader["fields"]["term"].as_u64().is_some_and(|t| t >= 1), "{leader}");
    assert!(leader["fields"]["leader"].is_u64(), "{leader}");
    let gate = find("vote gate open").unwrap_or_else(|| panic!("no vote-gate event in {text}"));
    assert!(gate["fields"]["node"].is_u64() && gate["fields"]["term"].is_u64(), "{gate}");
    assert_eq!(gate["level"], "INFO");
    let _ = std::fs::remove_dir_all(&dir);
}
