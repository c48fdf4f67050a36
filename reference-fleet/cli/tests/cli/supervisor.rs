//! `bkv fleet up --processes`: the supervisor runs one `bkv-node run` process per node.
//! Five nodes show five PIDs; SIGKILL of two (by `bkv fleet kill`) leaves the fleet serving;
//! of three, requests get `fleet.unavailable`; `bkv fleet start` brings them back with every
//! acknowledged record; no node outlives its supervisor, killed or stopped.

use crate::support::{Running, bkv, fleet_up_with, phone, tempdir};
use bkv_client::Recovery;
use bkv_protocol::vault::BackupKey;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

fn up(dir: &Path, nodes: usize) -> (Running, serde_json::Value) {
    let mut cmd = bkv();
    cmd.args(["fleet", "up", "--processes", "--json", "--nodes", &nodes.to_string(), "--dir"])
        .arg(dir)
        .stderr(Stdio::null());
    fleet_up_with(cmd)
}

/// `bkv fleet ACTION --dir DIR [--node NODE]`; its standard output.
fn fleet(dir: &Path, action: &str, node: Option<&str>) -> String {
    let mut cmd = bkv();
    cmd.args(["fleet", action, "--dir"]).arg(dir);
    if let Some(n) = node {
        cmd.args(["--node", n]);
    }
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "fleet {action} {node:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The pid in `bkv fleet start`'s answer (`node-1 started: pid N, URL`).
fn started_pid(answer: &str) -> u64 {
    answer.split("pid ").nth(1).and_then(|r| r.split(',').next()).and_then(|p| p.parse().ok()).expect(answer)
}

fn alive(pid: u64) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .is_ok_and(|s| !s.rsplit(')').next().unwrap_or("").trim_start().starts_with('Z'))
}

fn wait_gone(pids: &[u64]) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while pids.iter().any(|p| alive(*p)) {
        assert!(Instant::now() < deadline, "node processes outlived their supervisor: {pids:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The processes whose parent is `pid` (from /proc).
fn children_of(pid: u32) -> Vec<u64> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(child) = entry.file_name().to_string_lossy().parse::<u64>() else { continue };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{child}/stat")) else { continue };
        // Fields after the command name: state, then the parent's pid.
        let ppid =
            stat.rsplit(')').next().and_then(|r| r.split_whitespace().nth(1)).and_then(|p| p.parse().ok());
        if ppid == Some(pid) {
            out.push(child);
        }
    }
    out
}

fn pids(report: &serde_json::Value) -> Vec<u64> {
    report["nodes"].as_array().unwrap().iter().map(|n| n["pid"].as_u64().expect("a pid")).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_processes_fail_over_by_hand_and_die_with_their_supervisor() {
    let _serial = crate::support::serial();
    let dir = tempdir("supervisor");
    let (supervisor, report) = up(&dir, 5);
    let pids = pids(&report);
    let distinct: std::collections::BTreeSet<_> = pids.iter().collect();
    assert_eq!(distinct.len(), 5, "{report}");
    assert!(!pids.contains(&u64::from(supervisor.0.id())) && pids.iter().all(|p| alive(*p)));
    let url = |i: usize| report["nodes"][i]["url"].as_str().unwrap().to_owned();
    let (record, key) = ([0x51u8; 32], BackupKey::from_bytes([9; 32]));
    phone(&dir, &url(0)).await.register(&record, b"482916", &key).await.unwrap();
    let last = phone(&dir, &url(4)).await;

    fleet(&dir, "kill", Some("node-1"));
    fleet(&dir, "kill", Some("node-2"));
    assert!(!alive(pids[0]) && !alive(pids[1]), "killed");
    match last.recover(&record, b"000000").await.unwrap() {
        Recovery::WrongCode { remaining } => assert_eq!(remaining, 9),
        Recovery::Recovered { .. } => panic!("a wrong code recovered"),
    }
    fleet(&dir, "kill", Some("node-3"));
    let e = last.recover(&record, b"482916").await.unwrap_err();
    assert_eq!(e.code(), "fleet.unavailable", "{e}");

    let mut running: Vec<u64> = pids[3..].to_vec();
    for n in ["node-1", "node-2", "node-3"] {
        running.push(started_pid(&fleet(&dir, "start", Some(n))));
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        match last.recover(&record, b"482916").await {
            Ok(Recovery::Recovered { backup_key, .. }) => {
                assert_eq!(backup_key.as_bytes(), key.as_bytes());
                break;
            }
            Ok(Recovery::WrongCode { .. }) => panic!("the right code was refused"),
            Err(e) => {
                assert_eq!(e.code(), "fleet.unavailable", "{e}");
                assert!(Instant::now() < deadline, "no service within 60 s of the restarts");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
    }
    // SIGKILL of the supervisor: every node process stops with it, and so do the audit
    // log's and the witnesses' processes (each its own `bkv log serve|witness`).
    assert!(running.iter().all(|p| alive(*p)), "{running:?}");
    let children = children_of(supervisor.0.id());
    assert!(children.len() >= 5 + 1 + 3, "nodes, log and witnesses: {children:?}");
    drop(supervisor);
    wait_gone(&running);
    wait_gone(&children);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn fleet_stop_stops_every_node_and_the_supervisor() {
    let _serial = crate::support::serial();
    let dir = tempdir("supervisor-stop");
    let (mut supervisor, report) = up(&dir, 3);
    let pids = pids(&report);
    fleet(&dir, "stop", None);
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(s) = supervisor.0.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "the supervisor did not exit");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(status.success(), "{status}");
    wait_gone(&pids);
    assert!(!dir.join("supervisor.json").exists());

    // The first start gave every node port 0 and stored the ports the nodes bound: each
    // node.toml names them, and a restart binds every one again, the log's included.
    let addrs = |r: &serde_json::Value| -> Vec<(String, String)> {
        let nodes = r["nodes"].as_array().unwrap();
        nodes
            .iter()
            .map(|n| (n["url"].as_str().unwrap().into(), n["raft"].as_str().unwrap().into()))
            .collect()
    };
    for (i, (url, raft)) in addrs(&report).iter().enumerate() {
        let toml = std::fs::read_to_string(dir.join(format!("node-{}/node.toml", i + 1))).unwrap();
        assert!(!toml.contains(":0\""), "a port 0 was left in node-{}: {toml}", i + 1);
        assert!(toml.contains(&format!("client = \"{}\"", url.trim_start_matches("http://"))), "{toml}");
        assert!(toml.contains(&format!("peer = \"{raft}\"")), "{toml}");
    }
    let (mut again, second) = up(&dir, 3);
    assert_eq!(addrs(&second), addrs(&report));
    assert_eq!(second["log"], report["log"]);
    fleet(&dir, "stop", None);
    let deadline = Instant::now() + Duration::from_secs(30);
    while again.0.try_wait().unwrap().is_none() {
        assert!(Instant::now() < deadline, "the restarted supervisor did not exit");
        std::thread::sleep(Duration::from_millis(100));
    }
    wait_gone(&self::pids(&second));
    let _ = std::fs::remove_dir_all(&dir);
}
