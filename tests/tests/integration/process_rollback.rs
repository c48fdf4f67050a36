//! spec/hsm.md §10 on real processes: five `bkv-node run` processes on loopback (the
//! fleet of `bkv fleet ceremony` and `bkv fleet configs`), whose database directories are
//! restored from older copies (never their HSM state files, `node-N/hsm.state`), judged by
//! the history checker ([`bkv_tests::history`]) from the requests and answers alone.
//!
//! Each round: register two records and spend a guess; while three more guesses are in
//! flight, copy every node's database directory at a seeded point (SIGSTOP, copy, SIGCONT:
//! a live snapshot, the nodes' copies taken at different log positions); register a third
//! record (acknowledged after every copy), spend two guesses and recover; SIGKILL every node, restart the nodes of the round's
//! subset from the old copies and the others from their own disks; for six seconds guess
//! and recover through every node. A rollback of at most two disks must keep the fleet
//! serving, of all five must fail closed; after a round that failed closed the operator
//! restores the newest disks (spec/hsm.md §10.1 rule 1). Every acknowledged registration
//! is restored at the end. The short run is the full set; the long run every subset:
//! `cargo test -p bkv-tests --test integration -- --ignored process_rollback`.

use crate::netns_fault::{binary, now_ms};
use crate::replication_common::copy_dir;
use crate::vault_fault::{run_rounds, seeded_subsets};
use bkv_client::{FleetClient, Persisted, Trust};
use bkv_protocol::vault::{BackupKey, KsfParams};
use bkv_tests::history::{self, Answer, Entry, History, Kind};
use rand_chacha::ChaCha8Rng;
use rand_core::{OsRng, RngCore, SeedableRng};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const NODES: usize = 5;
const LIMIT: u32 = 10;

/// Five node processes of one fleet directory.
struct Procs {
    dir: PathBuf,
    children: Vec<Option<Child>>,
    urls: Vec<String>,
    trust: Trust,
}

impl Procs {
    fn ceremony(tag: &str) -> Procs {
        let dir =
            PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("procs-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let bkv = binary("bkv");
        let out = Command::new(&bkv)
            .args(["fleet", "ceremony", "--nodes", "5", "--out"])
            .arg(&dir)
            .output()
            .unwrap();
        assert!(out.status.success(), "ceremony: {}", String::from_utf8_lossy(&out.stderr));
        let out = Command::new(&bkv).args(["fleet", "configs", "--dir"]).arg(&dir).output().unwrap();
        assert!(out.status.success(), "configs: {}", String::from_utf8_lossy(&out.stderr));
        let trust = bkv_protocol::cbor::from_slice(&std::fs::read(dir.join("trust.cbor")).unwrap()).unwrap();
        let mut p = Procs {
            dir,
            children: (0..NODES).map(|_| None).collect(),
            urls: vec![String::new(); NODES],
            trust,
        };
        for i in 0..NODES {
            p.start(i);
        }
        p
    }

    fn node_dir(&self, i: usize) -> PathBuf {
        self.dir.join(format!("node-{}", i + 1))
    }

    /// Start node `i` from its data directory; its readiness line gives its URL.
    fn start(&mut self, i: usize) {
        let mut child = Command::new(binary("bkv-node"))
            .args(["run", "--json", "--config"])
            .arg(self.node_dir(i).join("node.toml"))
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let line = lines.next().expect("a readiness line").expect("readable");
        let v: serde_json::Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}"));
        assert_eq!(v["ok"], true, "node-{} did not start: {v}", i + 1);
        self.urls[i] = v["result"]["client"].as_str().unwrap().to_owned();
        std::thread::spawn(move || for _ in lines {});
        self.children[i] = Some(child);
    }

    /// SIGKILL every node (a crash: what is on disk is what a crash leaves).
    fn kill_all(&mut self) {
        for c in self.children.iter_mut().filter_map(Option::take) {
            let mut c = c;
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Copy every node's database directory (not its HSM state file) under `tag`.
    fn copy_all(&self, tag: &str) -> Vec<PathBuf> {
        (0..NODES)
            .map(|i| {
                let to = self.dir.join("copies").join(tag).join(format!("node-{}", i + 1));
                copy_dir(&self.node_dir(i).join("raft"), &to);
                to
            })
            .collect()
    }

    /// Copy node `i`'s database directory while it runs and the fleet serves: SIGSTOP it,
    /// copy, SIGCONT (what a host-level disk snapshot of a live node gives: whatever the
    /// node had written when it was frozen, as after a crash at that instant).
    fn copy_live(&self, i: usize, tag: &str) -> PathBuf {
        let pid = self.children[i].as_ref().expect("node running").id().to_string();
        let signal = |sig: &str| {
            let st = Command::new("kill").args([sig, &pid]).status().unwrap();
            assert!(st.success(), "kill {sig} {pid}");
        };
        let to = self.dir.join("copies").join(tag).join(format!("node-{}", i + 1));
        signal("-STOP");
        copy_dir(&self.node_dir(i).join("raft"), &to);
        signal("-CONT");
        to
    }

    fn restore(&self, i: usize, copy: &Path) {
        let raft = self.node_dir(i).join("raft");
        std::fs::remove_dir_all(&raft).unwrap();
        copy_dir(copy, &raft);
        assert!(self.node_dir(i).join("hsm.state").exists(), "the HSM state stays beside the database");
    }

    async fn client(&self, i: usize) -> Result<FleetClient, String> {
        FleetClient::connect(
            &self.urls[i],
            &self.trust,
            &Persisted::default(),
            KsfParams::TEST,
            bkv_client::clock::system_now(),
        )
        .await
        .map(|(c, _)| c)
        .map_err(|e| e.code().to_owned())
    }
}

impl Drop for Procs {
    fn drop(&mut self) {
        self.kill_all();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The requests and answers of one round.
struct Recorder {
    entries: Vec<Entry>,
}

impl Recorder {
    /// One request of `kind` through node `i`, recorded.
    async fn op(
        &mut self,
        p: &Procs,
        i: usize,
        kind: Kind,
        record: &str,
        code: &[u8],
        key: &BackupKey,
    ) -> Answer {
        let start_ms = now_ms();
        let answer = match p.client(i).await {
            Ok(c) => bkv_tests::ops::op(&c, kind, record.as_bytes(), code, key).await,
            Err(code) => bkv_tests::ops::failed(&code),
        };
        self.entries.push(Entry {
            client: 0,
            node: format!("node-{}", i + 1),
            record: record.to_owned(),
            kind,
            request: None,
            start_ms,
            end_ms: now_ms(),
            answer: answer.clone(),
        });
        answer
    }

    /// The same request through node 0, 1, ... until one is not `fleet.unavailable` (or
    /// a transport failure of a node that is still starting), for at most 30 s.
    async fn settled(&mut self, p: &Procs, kind: Kind, record: &str, code: &[u8], key: &BackupKey) -> Answer {
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut i = 0;
        loop {
            let a = self.op(p, i % NODES, kind, record, code, key).await;
            let retry = matches!(&a, Answer::Failed(c) if history::INDETERMINATE.contains(&c.as_str()));
            if !retry || Instant::now() >= deadline {
                return a;
            }
            i += 1;
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

/// One round with the disks of `mask` rolled back; whether the fleet failed closed.
async fn round(tag: &str, mask: u32) -> Result<bool, String> {
    let mut p = Procs::ceremony(tag);
    let mut h = Recorder { entries: Vec::new() };
    let code = b"482916".as_slice();
    let keys: Vec<BackupKey> = (0..3).map(|_| BackupKey::generate(&mut OsRng)).collect();
    let (a, b, late) = ("process-victim-a-000", "process-victim-b-000", "process-late-record0");
    for (record, key) in [(a, &keys[0]), (b, &keys[1])] {
        h.settled(&p, Kind::Register, record, code, key).await;
    }
    h.settled(&p, Kind::Guess, a, code, &keys[0]).await;

    // With guesses in flight through every node, copy each node's disk at a seeded point.
    let mut rng = ChaCha8Rng::seed_from_u64(
        tag.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)),
    );
    let mut order: Vec<usize> = (0..NODES).collect();
    order.sort_by_key(|_| rng.next_u32());
    let pauses: Vec<u64> = (0..NODES).map(|_| rng.next_u64() % 250).collect();
    let mut flight = Recorder { entries: Vec::new() };
    let guesses = async {
        for j in 0..3 {
            flight.op(&p, (j + 1) % NODES, Kind::Guess, a, code, &keys[0]).await;
        }
    };
    let copies = async {
        let mut old = vec![PathBuf::new(); NODES];
        let mut at = Vec::new();
        for (&i, &pause) in order.iter().zip(&pauses) {
            tokio::time::sleep(Duration::from_millis(pause)).await;
            let start = now_ms();
            old[i] = p.copy_live(i, "old");
            at.push((start, now_ms()));
        }
        (old, at)
    };
    let ((), (old, at)) = tokio::join!(guesses, copies);
    let overlapped =
        at.iter().filter(|(s, e)| flight.entries.iter().any(|g| g.start_ms <= *e && *s <= g.end_ms)).count();
    eprintln!("{tag}: {overlapped} of {NODES} disk copies taken while a guess was in flight");
    h.entries.extend(flight.entries);
    h.settled(&p, Kind::Register, late, code, &keys[2]).await;
    for _ in 0..2 {
        h.settled(&p, Kind::Guess, a, code, &keys[0]).await;
    }
    h.settled(&p, Kind::Recover, b, code, &keys[1]).await;

    p.kill_all();
    let newest = p.copy_all("newest");
    for (i, copy) in old.iter().enumerate() {
        if mask & (1 << i) != 0 {
            p.restore(i, copy);
        }
        p.start(i);
    }
    let deadline = Instant::now() + Duration::from_secs(6);
    let (mut served, mut turn) = (false, 0);
    while Instant::now() < deadline && !served {
        let i = turn % NODES;
        turn += 1;
        for (kind, record, key) in [(Kind::Guess, a, &keys[0]), (Kind::Recover, late, &keys[2])] {
            let answer = h.op(&p, i, kind, record, code, key).await;
            served |= !matches!(&answer, Answer::Failed(c) if history::INDETERMINATE.contains(&c.as_str()));
        }
        if !served {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    crate::vault_fault::judge_availability(mask, served)?;
    if !served {
        p.kill_all();
        for (i, copy) in newest.iter().enumerate() {
            p.restore(i, copy);
            p.start(i);
        }
    }
    for (record, key) in [(a, &keys[0]), (b, &keys[1]), (late, &keys[2])] {
        h.settled(&p, Kind::Restore, record, code, key).await;
    }
    let history = History { limit: LIMIT, entries: h.entries };
    let (_, violations) = history::check(&history);
    if !violations.is_empty() {
        let list: Vec<String> = violations.iter().map(|v| v.to_string()).collect();
        return Err(format!("mask {mask:05b}: {}\n--- history ---\n{}", list.join("\n"), history.render()));
    }
    Ok(!served)
}

/// Every disk of five processes rolled back: no extra guess, the fleet fails closed, and
/// the newest disks bring it back with every registration.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn process_rollback_of_every_disk() {
    run_rounds(0, &[0b11111], "five processes", |tag, mask| async move { round(&tag, mask).await }).await;
}

/// All 31 non-empty subsets of the five processes' disks in a seeded order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "long run: 31 rounds of five processes"]
async fn process_rollback_of_every_subset() {
    let seed = crate::replication_common::seed_from_env(0x5eed_9b0c);
    run_rounds(
        seed,
        &seeded_subsets(seed),
        "five processes",
        |tag, mask| async move { round(&tag, mask).await },
    )
    .await;
}
