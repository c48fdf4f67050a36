//! The `bkv` binary end to end: `demo` produces a bundle and anchors, `bundle verify`
//! accepts them, and refuses a tampered bundle with its spec code and exit status 1.

use std::path::Path;
use std::process::{Command, Output};

fn bkv(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_bkv")).args(args).output().expect("run bkv")
}

fn demo(dir: &Path) {
    let out = bkv(&["demo", "--dir", dir.to_str().unwrap()]);
    assert!(out.status.success(), "demo failed: {}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("refused [bundle.signer.unknown]"), "{text}");
    assert!(text.contains("refused [bundle.countersignature.missing]"), "{text}");
}

fn tempdir(name: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("bkv-cli-test-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

#[test]
fn demo_bundle_verifies_and_tampering_is_refused_with_its_code() {
    let dir = tempdir("verify");
    demo(&dir);
    let bundle = dir.join("bundle.cbor");
    let anchors = dir.join("anchors.cbor");
    let (b, a) = (bundle.to_str().unwrap(), anchors.to_str().unwrap());

    let ok = bkv(&["bundle", "verify", b, "--anchors", a, "--json"]);
    assert!(ok.status.success());
    let v: serde_json::Value = serde_json::from_slice(&ok.stdout).unwrap();
    assert_eq!(v["result"], "valid");
    assert_eq!(v["keyset"]["epoch"], 1);
    assert_eq!(v["keyset"]["nodes"].as_array().unwrap().len(), 5);

    // Flip the last byte: the signature is the last element of the COSE_Sign1.
    let mut bytes = std::fs::read(&bundle).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0x01;
    let tampered = dir.join("tampered.cbor");
    std::fs::write(&tampered, &bytes).unwrap();
    let bad = bkv(&["bundle", "verify", tampered.to_str().unwrap(), "--anchors", a, "--json"]);
    assert_eq!(bad.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&bad.stdout).unwrap();
    assert_eq!(v["result"], "invalid");
    assert_eq!(v["error_code"], "bundle.signature.invalid");

    // Verification in the past, before the anchors' window.
    let early = bkv(&["bundle", "verify", b, "--anchors", a, "--now", "1"]);
    assert_eq!(early.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&early.stdout).contains("[bundle.signer.expired]"));
}

#[test]
fn rollback_state_file_is_kept_across_runs() {
    let dir = tempdir("state");
    demo(&dir);
    let (b, a) = (dir.join("bundle.cbor"), dir.join("anchors.cbor"));
    let state = dir.join("state.json");
    let args = |s: &Path| {
        vec![
            "bundle".to_string(),
            "verify".into(),
            b.display().to_string(),
            "--anchors".into(),
            a.display().to_string(),
            "--state".into(),
            s.display().to_string(),
        ]
    };
    let run = |s: &Path| {
        let v = args(s);
        bkv(&v.iter().map(String::as_str).collect::<Vec<_>>())
    };
    assert!(run(&state).status.success());
    let st: serde_json::Value = serde_json::from_slice(&std::fs::read(&state).unwrap()).unwrap();
    assert_eq!(st["epoch"], 1);
    // A state that claims a higher epoch makes the same bundle a rollback.
    std::fs::write(&state, br#"{"epoch": 2, "bundle_sha256": "0000000000000000000000000000000000000000000000000000000000000000"}"#).unwrap();
    let out = run(&state);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout).contains("[bundle.epoch.rollback]"));
}

#[test]
fn inspect_prints_the_keyset_and_rejects_garbage() {
    let dir = tempdir("inspect");
    demo(&dir);
    let out = bkv(&["bundle", "inspect", dir.join("bundle.cbor").to_str().unwrap()]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("quorum           3 of 5 nodes"), "{text}");
    assert!(text.contains("not verified"), "{text}");

    let junk = dir.join("junk.cbor");
    std::fs::write(&junk, [0xa2, 0x02, 0x00, 0x01, 0x00]).unwrap();
    let out = bkv(&["bundle", "inspect", junk.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cbor.map.unsorted"));
}
