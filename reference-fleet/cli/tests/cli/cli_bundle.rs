//! The `bkv` binary end to end: `demo` produces a released bundle and the client's trust,
//! `bundle verify` accepts them with every step of spec/validation-bundle.md §5.1 (log
//! inclusion included), and refuses a tampered bundle with its spec code and exit status 1.

use crate::support::tempdir;
use std::path::Path;
use std::process::{Command, Output};

fn bkv(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_bkv")).args(args).output().expect("run bkv")
}

/// The demo runs once for every test of this file (it is the expensive part), on 3 nodes.
fn demo_dir() -> &'static Path {
    static DIR: std::sync::OnceLock<std::path::PathBuf> = std::sync::OnceLock::new();
    DIR.get_or_init(|| {
        let dir =
            Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("bkv-cli-test-demo-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let out = bkv(&["demo", "--nodes", "3", "--dir", dir.to_str().unwrap()]);
        assert!(out.status.success(), "demo failed: {}", String::from_utf8_lossy(&out.stderr));
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains("refused [bundle.signer.unknown]"), "{text}");
        assert!(text.contains("refused [bundle.countersignature.missing]"), "{text}");
        std::fs::write(dir.join("demo-output.txt"), text.as_bytes()).unwrap();
        dir
    })
}

/// A fresh directory holding the demo's bundle and client files.
fn demo(dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    for f in ["bundle.cbor", "released-bundle.cbor", "anchors.cbor", "trust.cbor"] {
        std::fs::copy(demo_dir().join(f), dir.join(f)).unwrap();
    }
}

#[test]
fn demo_bundle_verifies_and_tampering_is_refused_with_its_code() {
    let dir = tempdir("verify");
    demo(&dir);
    let released = dir.join("released-bundle.cbor");
    let (bundle, trust, anchors) =
        (dir.join("bundle.cbor"), dir.join("trust.cbor"), dir.join("anchors.cbor"));
    let (r, b, t, a) = (
        released.to_str().unwrap(),
        bundle.to_str().unwrap(),
        trust.to_str().unwrap(),
        anchors.to_str().unwrap(),
    );

    // Every step of spec/validation-bundle.md §5.1, log inclusion (step 12) included.
    let ok = bkv(&["bundle", "verify", r, "--trust", t, "--json"]);
    assert!(ok.status.success(), "{}", String::from_utf8_lossy(&ok.stdout));
    let v: serde_json::Value = serde_json::from_slice(&ok.stdout).unwrap();
    assert_eq!(v["ok"], true, "{v}");
    let v = &v["result"];
    assert_eq!(v["result"], "valid");
    assert_eq!(v["complete"], true);
    assert_eq!(v["keyset"]["epoch"], 1);
    assert_eq!(v["keyset"]["nodes"].as_array().unwrap().len(), 3);
    assert!(v["log"]["tree_size"].as_u64().unwrap() > v["log"]["leaf_index"].as_u64().unwrap());

    // A bare bundle carries no log proof: step 12 cannot pass.
    let bare = bkv(&["bundle", "verify", b, "--trust", t, "--json"]);
    assert_eq!(bare.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&bare.stdout).unwrap();
    assert_eq!(v["error"]["code"], "log.inclusion.invalid");
    assert!(v["error"]["message"].as_str().unwrap().contains("verify released-bundle.cbor"), "{v}");

    // Bundle anchors alone cannot run step 12: refused unless the caller opts out, and the
    // opt-out says the verification is incomplete.
    let no_log = bkv(&["bundle", "verify", b, "--anchors", a]);
    assert_eq!(no_log.status.code(), Some(2), "{}", String::from_utf8_lossy(&no_log.stdout));
    let partial = bkv(&["bundle", "verify", b, "--anchors", a, "--skip-log"]);
    assert!(partial.status.success());
    assert!(String::from_utf8_lossy(&partial.stdout).contains("NOT a complete verification"));

    // Flip the last byte: the signature is the last element of the COSE_Sign1.
    let mut bytes = std::fs::read(&bundle).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0x01;
    let tampered = dir.join("tampered.cbor");
    std::fs::write(&tampered, &bytes).unwrap();
    let bad = bkv(&["bundle", "verify", tampered.to_str().unwrap(), "--anchors", a, "--skip-log", "--json"]);
    assert_eq!(bad.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&bad.stdout).unwrap();
    assert_eq!(v["ok"], false);
    assert_eq!(v["error"]["code"], "bundle.signature.invalid");

    // Verification in the past, before the anchors' window.
    let early = bkv(&["bundle", "verify", r, "--trust", t, "--now", "1"]);
    assert_eq!(early.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&early.stderr).contains("[bundle.signer.expired]"));
}

#[test]
fn rollback_and_log_state_are_kept_across_runs() {
    let dir = tempdir("state");
    demo(&dir);
    let (r, t) = (dir.join("released-bundle.cbor"), dir.join("trust.cbor"));
    let state = dir.join("state.json");
    let run = |s: &Path| {
        let v = [
            "bundle",
            "verify",
            r.to_str().unwrap(),
            "--trust",
            t.to_str().unwrap(),
            "--state",
            s.to_str().unwrap(),
        ];
        bkv(&v)
    };
    assert!(run(&state).status.success());
    let st: serde_json::Value = serde_json::from_slice(&std::fs::read(&state).unwrap()).unwrap();
    assert_eq!(st["epoch"], 1);
    assert!(st["log"]["size"].as_u64().unwrap() > 0, "the largest checkpoint is kept: {st}");
    // Run again with that state: the same bundle and checkpoint are accepted.
    assert!(run(&state).status.success());
    // A held checkpoint of the same size with another root is a fork (spec/audit-log.md §7.3).
    let mut forked = st.clone();
    forked["log"]["root"] = serde_json::json!("11".repeat(32));
    std::fs::write(&state, serde_json::to_vec(&forked).unwrap()).unwrap();
    let out = run(&state);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("[log.fork]"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // A state that claims a higher epoch makes the same bundle a rollback.
    std::fs::write(&state, br#"{"epoch": 2, "bundle_sha256": "0000000000000000000000000000000000000000000000000000000000000000"}"#).unwrap();
    let out = run(&state);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("[bundle.epoch.rollback]"));
}

#[test]
fn inspect_prints_the_keyset_and_rejects_garbage() {
    let dir = tempdir("inspect");
    demo(&dir);
    let out = bkv(&["bundle", "inspect", dir.join("bundle.cbor").to_str().unwrap()]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("quorum           2 of 3 nodes"), "{text}");
    assert!(text.contains("not verified"), "{text}");

    let junk = dir.join("junk.cbor");
    std::fs::write(&junk, [0xa2, 0x02, 0x00, 0x01, 0x00]).unwrap();
    let out = bkv(&["bundle", "inspect", junk.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cbor.map.unsorted"));
}

/// F7: `bundle inspect` takes the released (logged) bundle clients and auditors receive.
/// F9, F28: with `--json` a failure is one envelope on stdout, and it names the file and
/// what the file should be.
#[test]
fn f7_f9_f28_inspect_takes_the_released_bundle_and_names_a_bad_file() {
    let dir = tempdir("inspect-released");
    demo(&dir);
    let released = dir.join("released-bundle.cbor");
    let out = bkv(&["--json", "bundle", "inspect", released.to_str().unwrap()]);
    assert!(out.status.success(), "F7: {}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["ok"], true);
    assert!(v["result"]["released"]["tree_size"].as_u64().is_some(), "F7: {v}");
    let text =
        String::from_utf8_lossy(&bkv(&["bundle", "inspect", released.to_str().unwrap()]).stdout).into_owned();
    assert!(text.contains("released with") && text.contains("quorum"), "F7: {text}");

    let junk = dir.join("junk.cbor");
    std::fs::write(&junk, [0xa2, 0x02, 0x00, 0x01, 0x00]).unwrap();
    let out = bkv(&["--json", "bundle", "inspect", junk.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("F9: one envelope on stdout");
    assert_eq!(v["error"]["code"], "cbor.map.unsorted", "{v}");
    assert_eq!(v["error"]["file"], junk.to_str().unwrap(), "F28: {v}");
    assert!(v["error"]["message"].as_str().unwrap().contains("not a validation bundle"), "F28: {v}");
    // F29: the code once on stderr.
    assert_eq!(String::from_utf8_lossy(&out.stderr).matches("cbor.map.unsorted").count(), 1);
}

/// F4: the audit command the tools print measures a binary (`--measure`), never passes the
/// evidence's own claimed value back to AU9.
#[test]
fn f4_printed_audit_commands_measure_a_binary() {
    let text = std::fs::read_to_string(demo_dir().join("demo-output.txt")).unwrap();
    assert!(text.contains("bkv audit") && text.contains("--measure "), "F4: {text}");
    assert!(!text.contains("--measurement"), "F4: {text}");
}

/// F33: the README's commands for looking at what the demo wrote name one directory (no
/// glob that breaks once two demos have run), and they run as written against the demo's.
#[test]
fn f33_the_readme_demo_file_commands_run_as_written() {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md")).unwrap();
    let block =
        readme.split("<!-- readme:demo-files -->\n```sh\n").nth(1).unwrap().split("\n```").next().unwrap();
    assert!(!block.contains('*'), "F33: a glob in {block}");
    let prefix = "cargo run -p bkv-fleet --bin bkv -- ";
    let dir = demo_dir().to_str().unwrap().to_owned();
    for line in block.lines() {
        let command = line.strip_prefix(prefix).unwrap_or_else(|| panic!("not a bkv command: {line}"));
        let args: Vec<String> =
            command.split_whitespace().map(|a| a.replace("/tmp/bkv-demo", &dir)).collect();
        if args[0] == "demo" {
            assert_eq!(args[1..], ["--dir".to_owned(), dir.clone()], "the block's demo writes its directory");
            continue;
        }
        let out = bkv(&args.iter().map(String::as_str).collect::<Vec<_>>());
        assert!(out.status.success(), "{line}: {}", String::from_utf8_lossy(&out.stderr));
    }
}
