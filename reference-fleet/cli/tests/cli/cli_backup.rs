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

    let wrong = run(args(&["backup", "restore"], 2, &[p(&backup), p(&restored)]), "000000");
    assert_eq!(wrong.status.code(), Some(1), "{}", String::from_utf8_lossy(&wrong.stdout));
    let text =
        format!("{}{}", String::from_utf8_lossy(&wrong.stdout), String::from_utf8_lossy(&wrong.stderr));
    assert!(text.contains("vault.code.invalid"), "{text}");
    assert!(!restored.exists(), "nothing is written on failure");

    let out = run(args(&["backup", "restore"], 2, &[p(&backup), p(&restored)]), "482913");
    assert!(out.status.success(), "restore: {}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(std::fs::read(&restored).unwrap(), chat);
    let _ = std::fs::remove_dir_all(&dir);
}
