//! The `bkv` binary end to end: `fleet up` starts a replicated fleet, `backup create`
//! backs a file up through one node (code on standard input, client state kept in a file),
//! `backup restore` restores it through another node, and a wrong code is refused with its
//! spec code while the counter goes down.

use crate::support::{Running as Fleet, bkv_with_code, fleet_up as fleet_up_n};
use std::path::Path;

/// Start `bkv fleet up --json` with 3 nodes and read its description.
fn fleet_up(dir: &Path) -> (Fleet, serde_json::Value) {
    fleet_up_n(dir, 3)
}

#[test]
fn backup_create_and_restore_through_the_cli() {
    let _serial = crate::support::serial();
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("bkv-cli-backup-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let (_fleet, up) = fleet_up(&dir.join("fleet"));
    assert_eq!(up["nodes"].as_array().unwrap().len(), 3);
    let url = |i: usize| up["nodes"][i]["url"].as_str().unwrap().to_owned();
    let trust = up["trust"].as_str().unwrap().to_owned();

    let chat: Vec<u8> = (0..200_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let (input, backup, restored, state) =
        (dir.join("chat.db"), dir.join("chat.bkv"), dir.join("restored.db"), dir.join("state.json"));
    std::fs::write(&input, &chat).unwrap();
    let p = |x: &Path| x.to_str().unwrap().to_owned();
    let common = |node: usize| {
        vec!["--fleet".to_string(), url(node), "--trust".into(), trust.clone(), "--state".into(), p(&state)]
            .into_iter()
            .chain(["--code-stdin", "--insecure-test-ksf", "--json"].map(String::from))
            .collect::<Vec<_>>()
    };
    let args = |head: &[&str], node: usize, tail: &[String]| {
        head.iter().map(|s| s.to_string()).chain(common(node)).chain(tail.iter().cloned()).collect::<Vec<_>>()
    };
    let run =
        |a: Vec<String>, code: &str| bkv_with_code(&a.iter().map(String::as_str).collect::<Vec<_>>(), code);

    let out = run(args(&["backup", "create"], 0, &[p(&input), p(&backup)]), "482913");
    assert!(out.status.success(), "create: {}", String::from_utf8_lossy(&out.stderr));
    assert_ne!(std::fs::read(&backup).unwrap(), chat, "the backup is encrypted");
    let st: serde_json::Value = serde_json::from_slice(&std::fs::read(&state).unwrap()).unwrap();
    assert_eq!(st["epoch"], 1, "the verified bundle is remembered: {st}");
    assert!(st["log"]["size"].as_u64().unwrap() > 0, "and the largest checkpoint: {st}");

    let wrong = run(args(&["backup", "restore"], 2, &[p(&backup), p(&restored)]), "482914");
    assert_eq!(wrong.status.code(), Some(1), "{}", String::from_utf8_lossy(&wrong.stdout));
    let text =
        format!("{}{}", String::from_utf8_lossy(&wrong.stdout), String::from_utf8_lossy(&wrong.stderr));
    assert!(text.contains("vault.code.invalid"), "{text}");
    assert!(!restored.exists(), "nothing is written on failure");

    // The same code typed in groups and with full-width digits: the same normal form
    // (spec/vault.md §2.4).
    let out = run(args(&["backup", "restore"], 2, &[p(&backup), p(&restored)]), "４８２９-13");
    assert!(out.status.success(), "restore: {}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(std::fs::read(&restored).unwrap(), chat);
    let _ = std::fs::remove_dir_all(&dir);
}

/// spec/vault.md §2.4: the CLI refuses a weak or malformed recovery code with its code and
/// a clear message before it reads the trust file or sends anything.
#[test]
fn weak_and_malformed_codes_are_refused_before_anything_is_sent() {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("bkv-cli-code-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let input = dir.join("chat.db");
    std::fs::write(&input, b"chat").unwrap();
    let p = |x: &Path| x.to_str().unwrap().to_owned();
    // No fleet listens there and no trust file exists: a code check that came later would
    // fail with another code.
    let args = [
        "--json",
        "backup",
        "create",
        "--fleet",
        "http://127.0.0.1:9",
        "--trust",
        &p(&dir.join("absent.cbor")),
        "--state",
        &p(&dir.join("state.json")),
        "--code-stdin",
        "--insecure-test-ksf",
        &p(&input),
        &p(&dir.join("out.bkv")),
    ];
    for (code, want, words) in [
        ("123456", "vault.code.weak", "at least 6 digits"),
        ("4829", "vault.code.weak", "at least 6 digits"),
        ("482 91a", "vault.code.malformed", "not a digit"),
    ] {
        let out = bkv_with_code(&args, code);
        assert_eq!(out.status.code(), Some(1), "{code}");
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(v["error"]["code"], want, "{code}: {v}");
        assert!(v["error"]["message"].as_str().unwrap().contains(words), "{code}: {v}");
        assert!(!dir.join("out.bkv").exists() && !dir.join("state.json").exists());
    }
    let _ = std::fs::remove_dir_all(&dir);
}
