//! The seeded fault run on real processes in network namespaces (spec/fleet-replication.md
//! §8; the lab is [`bkv_tests::netns`]).
//!
//! Five `bkv-node run` processes, each in its own namespace on the lab's bridge; each
//! node's connections to its peers go through a `bkv-link-proxy` in its namespace (delay
//! and loss, which this kernel's missing `netem` cannot give). The clients
//! (`bkv-fault-client`) run in a sixth namespace: owners register, recover with the right
//! code and guess wrong; attackers guess wrong against every acknowledged record. Meanwhile
//! a seeded schedule SIGKILLs nodes (at most two down at once) and restarts them from the
//! same data directory, restores a node's database directory from an older copy (never its
//! HSM state file; one node at a time while the others are up, the model of
//! spec/fleet-replication.md §8 under which the fleet must stay available; in the subset
//! run, `netns_rollback_subsets`, live copies of all five disks restored on seeded subsets,
//! spec/hsm.md §10), partitions a minority with `nft` drop rules both ways, cuts single
//! links one way, delays links through the proxies, and heals. Afterwards every fault is
//! healed, every acknowledged registration is restored, and the history checker
//! ([`bkv_tests::history`]) judges the recorded history alone.
//!
//! The short run has a background load of four busy threads per core (liveness, §7), and
//! so does `liveness_demo_under_load`, the demo beside the same load.
//!
//! These tests need root, iproute2 and nftables, and run only with `BKV_NETNS_TESTS=1`
//! (`.ci/run` sets it, and counts the tests that really ran through `BKV_NETNS_RAN`);
//! elsewhere they print a loud SKIPPED line and pass. The long run:
//! `BKV_NETNS_TESTS=1 cargo test -p bkv-tests --test integration -- --ignored netns_fault_long`
//! (`BKV_FAULT_SEED`, `BKV_NETNS_SECS`; recorded in `tests/FAULT-RUNS.md`).

use crate::replication_common::{copy_dir, seed_from_env};
use bkv_tests::history::{self, Answer, Entry, History};
use bkv_tests::netns::Lab;
use rand_chacha::ChaCha8Rng;
use rand_core::{RngCore, SeedableRng};
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write as _};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::mpsc;
use std::time::{Duration, Instant};

const NODES: usize = 5;
/// Subset mode: how long after a restore the fleet may take to answer before the episode
/// counts as failed closed.
const EPISODE_MS: u64 = 12_000;
/// The clients' host in the lab.
const CLIENTS: usize = NODES;
const CLIENT_PORT: u16 = 7100;
const PEER_PORT: u16 = 7200;
/// Node i reaches peer j at `127.0.0.1:(PROXY_PORT + j)`, its proxy's listener.
const PROXY_PORT: u16 = 7300;

/// Whether the namespace tests run here; prints why not.
fn enabled(test: &str) -> bool {
    if std::env::var("BKV_NETNS_TESTS").as_deref() != Ok("1") {
        eprintln!(
            "\n*** SKIPPED {test}: set BKV_NETNS_TESTS=1 to run it (needs root, iproute2 and nftables; .ci/run does) ***\n"
        );
        return false;
    }
    if let Err(why) = Lab::available() {
        panic!("BKV_NETNS_TESTS=1 but {why}");
    }
    true
}

/// Record that `test` really ran, for `.ci/run`'s expected count.
fn ran(test: &str) {
    if let Ok(path) = std::env::var("BKV_NETNS_RAN") {
        let mut f = std::fs::OpenOptions::new().create(true).append(true).open(path).expect("BKV_NETNS_RAN");
        writeln!(f, "{test}").expect("BKV_NETNS_RAN");
    }
}

/// A binary of this build beside the test's directory: `bkv` (`cargo test --workspace`
/// builds it), `bkv-link-proxy` and `bkv-fault-client` (this package's). Found relative to
/// the test binary, so a copy of the four runs on while the tree is rebuilt.
pub(crate) fn binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test binary");
    let bin = exe.parent().and_then(Path::parent).expect("target/debug").join(name);
    assert!(bin.exists(), "{} is missing: run `cargo build -p bkv-fleet --bin bkv` first", bin.display());
    bin
}

pub(crate) fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

/// Lines of a child's standard output, read by a thread.
fn lines(out: impl std::io::Read + Send + 'static) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines() {
            let Ok(line) = line else { return };
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    rx
}

fn expect_line(rx: &mpsc::Receiver<String>, what: &str, within: Duration) -> String {
    let deadline = Instant::now() + within;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(l) if l.starts_with(what) || what.is_empty() => return l,
            Ok(_) => {}
            Err(e) => panic!("waiting for {what:?}: {e}"),
        }
    }
}

/// Faults injected, by kind.
#[derive(Debug, Default, Clone, Copy)]
struct Faults {
    kill: usize,
    restart: usize,
    partition: usize,
    one_way: usize,
    delay: usize,
    heal: usize,
    /// Nodes restored from an older copy of their database (spec/hsm.md §10).
    rollback: usize,
    /// Subset episodes (`run(.., subsets: true)`): disks of a subset restored at once.
    subsets: usize,
    /// Subset episodes after which the fleet did not serve and the operator restored the
    /// newest disks (spec/hsm.md §10.1 rule 1).
    failed_closed: usize,
}

/// A subset episode in progress: the disks of `mask` were restored from live copies at
/// `at` (ms); `newest` holds every node's disk from just before.
struct Episode {
    mask: u32,
    at: u64,
    newest: Vec<PathBuf>,
}

/// The lab with a five-node fleet in it.
struct World {
    lab: Lab,
    fleet: PathBuf,
    /// The node software (`bkv-node`, spec/audit.md §1.2).
    node_bin: PathBuf,
    /// The lab child of each running node.
    nodes: Vec<Option<usize>>,
    proxies: Vec<usize>,
    root: PathBuf,
    /// When a node was last restored from an older copy of its database.
    last_rollback: Option<Instant>,
    /// Subset mode: live copies of every node's disk, taken together while clients ran.
    snapshot: Option<Vec<PathBuf>>,
    /// Subset mode: the episode awaiting its verdict.
    episode: Option<Episode>,
    /// Subset mode: the seeded order of the 31 subsets, and the next one.
    masks: Vec<u32>,
    next_mask: usize,
}

impl World {
    fn new(tag: &str) -> World {
        let bkv = binary("bkv");
        let root =
            PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("netns-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(&root).unwrap();
        let fleet = root.join("fleet");
        let out = std::process::Command::new(&bkv)
            .args(["fleet", "ceremony", "--nodes", "5", "--out"])
            .arg(&fleet)
            .output()
            .unwrap();
        assert!(out.status.success(), "ceremony: {}", String::from_utf8_lossy(&out.stderr));
        for i in 0..NODES {
            std::fs::write(fleet.join(format!("node-{}/node.toml", i + 1)), node_toml(i)).unwrap();
        }
        let mut lab = Lab::create(tag, NODES + 1).unwrap_or_else(|e| panic!("the lab: {e}"));
        let mut proxies = Vec::new();
        for i in 0..NODES {
            let args: Vec<String> = (0..NODES)
                .filter(|j| *j != i)
                .flat_map(|j| {
                    [
                        "--link".to_owned(),
                        format!("127.0.0.1:{}={}:{PEER_PORT}", PROXY_PORT + j as u16, addr(j)),
                    ]
                })
                .collect();
            let k = lab.spawn(i, &binary("bkv-link-proxy"), &args, Stdio::piped()).unwrap();
            let rx = lines(lab.child(k).stdout.take().unwrap());
            expect_line(&rx, "ready", Duration::from_secs(20));
            proxies.push(k);
        }
        let mut w = World {
            lab,
            fleet,
            node_bin: binary("bkv-node"),
            nodes: vec![None; NODES],
            proxies,
            root,
            last_rollback: None,
            snapshot: None,
            episode: None,
            masks: Vec::new(),
            next_mask: 0,
        };
        for i in 0..NODES {
            w.start(i);
        }
        w
    }

    /// Start node `i` from its data directory and wait for its readiness line.
    fn start(&mut self, i: usize) {
        let args = vec![
            "run".to_owned(),
            "--json".into(),
            "--config".into(),
            self.fleet.join(format!("node-{}/node.toml", i + 1)).to_string_lossy().into_owned(),
        ];
        let k = self.lab.spawn(i, &self.node_bin, &args, Stdio::piped()).unwrap();
        let rx = lines(self.lab.child(k).stdout.take().unwrap());
        let line = expect_line(&rx, "", Duration::from_secs(60));
        assert!(
            line.contains("\"ok\": true") || line.contains("\"ok\":true"),
            "node-{} did not start: {line}",
            i + 1
        );
        // Keep draining its output.
        std::thread::spawn(move || while rx.recv().is_ok() {});
        self.nodes[i] = Some(k);
    }

    /// SIGKILL node `i`.
    fn kill(&mut self, i: usize) {
        if let Some(k) = self.nodes[i].take() {
            let c = self.lab.child(k);
            c.kill().unwrap();
            c.wait().unwrap();
        }
    }

    fn proxy(&mut self, i: usize, command: &str) {
        let k = self.proxies[i];
        let stdin = self.lab.child(k).stdin.as_mut().unwrap();
        writeln!(stdin, "{command}").unwrap();
        stdin.flush().unwrap();
    }

    fn heal(&mut self) {
        self.lab.heal().unwrap();
        for i in 0..NODES {
            self.proxy(i, "clear");
        }
    }

    fn down(&self) -> Vec<usize> {
        (0..NODES).filter(|i| self.nodes[*i].is_none()).collect()
    }

    fn raft(&self, i: usize) -> PathBuf {
        self.fleet.join(format!("node-{}/raft", i + 1))
    }

    /// Copy every node's database directory under `tag`; a running node is frozen
    /// (SIGSTOP) for its copy and thawed (SIGCONT), so the fleet keeps serving the clients
    /// and each copy is what a crash at that instant would leave.
    fn copy_every_disk(&mut self, tag: &str) -> Vec<PathBuf> {
        (0..NODES)
            .map(|i| {
                let to = self.root.join(tag).join(format!("node-{}", i + 1));
                let _ = std::fs::remove_dir_all(&to);
                let pid = self.nodes[i].map(|k| self.lab.child(k).id().to_string());
                // A node that has exited by itself cannot be signalled; its disk is copied as is.
                let signal = |sig: &str, pid: &str| {
                    std::process::Command::new("kill").args([sig, pid]).status().is_ok_and(|s| s.success())
                };
                let frozen = pid.as_deref().is_some_and(|p| signal("-STOP", p));
                copy_dir(&self.raft(i), &to);
                if frozen {
                    signal("-CONT", pid.as_deref().expect("frozen"));
                }
                to
            })
            .collect()
    }

    /// SIGKILL every node, restore node `i` from `copies[i]` where `mask` has bit `i`
    /// (never the HSM state file beside the database), and start every node.
    fn restore_and_restart(&mut self, mask: u32, copies: &[PathBuf]) {
        for i in 0..NODES {
            self.kill(i);
        }
        for (i, copy) in copies.iter().enumerate().filter(|(i, _)| mask & (1 << i) != 0) {
            let raft = self.raft(i);
            std::fs::remove_dir_all(&raft).unwrap();
            copy_dir(copy, &raft);
            assert!(self.fleet.join(format!("node-{}/hsm.state", i + 1)).exists(), "the HSM state stays");
        }
        for i in 0..NODES {
            self.start(i);
        }
    }

    /// Subset mode, the verdict on the episode in progress (spec/hsm.md §10, §10.1): once
    /// a client got an answer that is not indeterminate after the restore, the fleet
    /// serves and the episode ends. If none came within `within` (or `now` is set), every
    /// node is SIGKILLed and the answers still on their way are drained (`drain`): if one
    /// of them was served, the nodes restart from their own disks; otherwise the fleet
    /// failed closed, and the operator restores every node's newest disk, which loses
    /// nothing acknowledged.
    fn settle(
        &mut self,
        entries: &mut Vec<Entry>,
        drain: &mut dyn FnMut(&mut Vec<Entry>),
        faults: &mut Faults,
        log: &mut Vec<(u64, String)>,
        within: u64,
        now: bool,
    ) {
        let Some(ep) = &self.episode else { return };
        let (at, mask) = (ep.at, ep.mask);
        let served = |entries: &[Entry]| {
            entries.iter().any(|e| {
                e.start_ms >= at
                    && !matches!(&e.answer, Answer::Failed(c) if history::INDETERMINATE.contains(&c.as_str())
                        || history::REFUSED.contains(&c.as_str()))
            })
        };
        let line = if served(entries) {
            self.episode = None;
            format!("disks {mask:05b} rolled back: served again after {} ms", now_ms() - at)
        } else if now || now_ms() >= at + within {
            let ep = self.episode.take().expect("an episode");
            for i in 0..NODES {
                self.kill(i);
            }
            std::thread::sleep(Duration::from_secs(2));
            drain(entries);
            if served(entries) {
                for i in 0..NODES {
                    self.start(i);
                }
                format!("disks {mask:05b} rolled back: served (an answer arrived late); every node restarted")
            } else {
                self.restore_and_restart(0b11111, &ep.newest);
                faults.failed_closed += 1;
                format!(
                    "disks {mask:05b} rolled back: failed closed (no answer for {} ms); every node restored from its newest disk",
                    now_ms() - at
                )
            }
        } else {
            return;
        };
        eprintln!("{line}");
        log.push((now_ms(), line));
    }
}

impl Drop for World {
    fn drop(&mut self) {
        // The lab (dropped after this) kills every process and removes its namespaces.
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

fn addr(i: usize) -> String {
    format!("10.77.0.{}", 11 + i)
}

/// Node `i`'s configuration: listeners on its lab address, peers through its proxies.
fn node_toml(i: usize) -> String {
    let mut t = format!(
        "id = \"node-{n}\"\ndata_dir = \".\"\nreleased_bundle = \"../released-bundle.cbor\"\ntrust = \"../trust.cbor\"\n\n\
         [listen]\nclient = \"{a}:{CLIENT_PORT}\"\npeer = \"{a}:{PEER_PORT}\"\n\n\
         [hsm]\nsealed = \"hsm.sealed\"\nkek_file = \"../kek.hex\"\n",
        n = i + 1,
        a = addr(i)
    );
    for j in (0..NODES).filter(|j| *j != i) {
        t.push_str(&format!(
            "\n[[peers]]\nid = \"node-{}\"\naddress = \"127.0.0.1:{}\"\n",
            j + 1,
            PROXY_PORT + j as u16
        ));
    }
    t
}

/// The index of node `j`'s link in node `i`'s proxy.
fn link(i: usize, j: usize) -> usize {
    if j < i { j } else { j - 1 }
}

/// One seeded fault; `at` is when it was injected.
fn inject(w: &mut World, rng: &mut ChaCha8Rng, faults: &mut Faults, log: &mut Vec<(u64, String)>) {
    let pick = |rng: &mut ChaCha8Rng, n: usize| (rng.next_u64() % n as u64) as usize;
    let at = now_ms();
    let what = match pick(rng, 7) {
        0 if w.down().len() < 2 => {
            let up: Vec<usize> = (0..NODES).filter(|i| w.nodes[*i].is_some()).collect();
            let i = up[pick(rng, up.len())];
            w.kill(i);
            faults.kill += 1;
            format!("SIGKILL node-{}", i + 1)
        }
        0 | 1 => {
            let down = w.down();
            if down.is_empty() {
                return;
            }
            let i = down[pick(rng, down.len())];
            w.start(i);
            faults.restart += 1;
            format!("restart node-{}", i + 1)
        }
        2 => {
            w.lab.heal().unwrap();
            let a = pick(rng, NODES);
            let mut side = vec![a];
            if rng.next_u64().is_multiple_of(2) {
                side.push((a + 1 + pick(rng, NODES - 1)) % NODES);
            }
            for x in &side {
                for y in (0..NODES).filter(|y| !side.contains(y)) {
                    w.lab.block(*x, y).unwrap();
                    w.lab.block(y, *x).unwrap();
                }
            }
            faults.partition += 1;
            format!("partition {:?} from the rest", side.iter().map(|i| i + 1).collect::<Vec<_>>())
        }
        3 => {
            let a = pick(rng, NODES);
            let b = (a + 1 + pick(rng, NODES - 1)) % NODES;
            w.lab.block(a, b).unwrap();
            faults.one_way += 1;
            format!("drop node-{} -> node-{}", a + 1, b + 1)
        }
        4 => {
            let a = pick(rng, NODES);
            let b = (a + 1 + pick(rng, NODES - 1)) % NODES;
            let ms = 20 + rng.next_u64() % 300;
            let loss = if rng.next_u64().is_multiple_of(4) { 20 } else { 0 };
            w.proxy(a, &format!("delay {} {ms}", link(a, b)));
            w.proxy(a, &format!("loss {} {loss}", link(a, b)));
            faults.delay += 1;
            format!("delay node-{} -> node-{} by {ms} ms, loss {loss}‰", a + 1, b + 1)
        }
        5 if !w.masks.is_empty() => {
            // Subset mode (spec/hsm.md §10): first live copies of every disk while the
            // clients run; at a later turn the seeded next subset of disks is restored from
            // them (every node SIGKILLed and restarted); the main loop then waits for the
            // verdict (`World::settle`).
            if w.episode.is_some() {
                return;
            }
            match w.snapshot.take() {
                None => {
                    w.snapshot = Some(w.copy_every_disk("live"));
                    "live copies of every node's database (SIGSTOP, copy, SIGCONT)".to_owned()
                }
                Some(old) => {
                    let mask = w.masks[w.next_mask % w.masks.len()];
                    w.next_mask += 1;
                    let newest = w.copy_every_disk("newest");
                    w.restore_and_restart(mask, &old);
                    w.episode = Some(Episode { mask, at: now_ms(), newest });
                    faults.subsets += 1;
                    faults.rollback += mask.count_ones() as usize;
                    format!(
                        "SIGKILL every node, restore disks {mask:05b} from the live copies, restart every node"
                    )
                }
            }
        }
        5 if w.down().is_empty() && w.last_rollback.is_none_or(|t| t.elapsed() > Duration::from_secs(5)) => {
            // spec/hsm.md §10 within spec/fleet-replication.md §8's model (one rolled-back
            // node at a time, the others up): one node SIGKILLed; it either saves a copy of
            // its database directory or, holding one, is restored from it (its HSM state
            // file, beside the database, is never copied). Then it restarts.
            let i = pick(rng, NODES);
            w.kill(i);
            let raft = w.fleet.join(format!("node-{}/raft", i + 1));
            let copy = w.root.join(format!("copy-node-{}", i + 1));
            let what = if copy.exists() {
                std::fs::remove_dir_all(&raft).unwrap();
                std::fs::rename(&copy, &raft).unwrap();
                faults.rollback += 1;
                w.last_rollback = Some(Instant::now());
                format!("SIGKILL node-{0}, restore its older database copy, restart node-{0}", i + 1)
            } else {
                copy_dir(&raft, &copy);
                format!("SIGKILL node-{0}, copy its database, restart node-{0}", i + 1)
            };
            w.start(i);
            what
        }
        _ => {
            w.heal();
            faults.heal += 1;
            "heal links".to_owned()
        }
    };
    log.push((at, what));
}

/// What a run produced.
struct Outcome {
    seed: u64,
    faults: Faults,
    summary: history::Summary,
    violations: Vec<String>,
    /// Per fault, the milliseconds until the next acknowledged answer.
    gaps: Vec<u64>,
    secs: f64,
}

/// Subset mode: fault 5 restores seeded subsets of disks from live copies, in episodes.
const SUBSETS: bool = true;

fn run(tag: &str, seed: u64, chaos: Duration, max_faults: usize, subsets: bool) -> Outcome {
    let began = Instant::now();
    let mut w = World::new(tag);
    if subsets {
        w.masks = crate::vault_fault::seeded_subsets(seed);
    }
    let mut args: Vec<String> = vec!["--dir".into(), w.fleet.to_string_lossy().into_owned()];
    for i in 0..NODES {
        args.extend(["--node".into(), format!("http://{}:{CLIENT_PORT}", addr(i))]);
    }
    args.extend(["--secs".into(), chaos.as_secs().to_string(), "--seed".into(), seed.to_string()]);
    let driver = w.lab.spawn(CLIENTS, &binary("bkv-fault-client"), &args, Stdio::piped()).unwrap();
    let rx = lines(w.lab.child(driver).stdout.take().unwrap());
    expect_line(&rx, "ready", Duration::from_secs(120));

    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut faults = Faults::default();
    let mut log = Vec::new();
    let mut entries: Vec<Entry> = Vec::new();
    // Every entry is also appended to a file as it arrives, so that a run that fails late
    // keeps its history.
    let saved = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("netns-{tag}-{seed:x}.jsonl"));
    let mut file = std::io::BufWriter::new(std::fs::File::create(&saved).unwrap());
    let mut keep = move |json: &str, entries: &mut Vec<Entry>| {
        entries.push(serde_json::from_str(json).expect("an entry"));
        let _ = writeln!(file, "{json}");
        let _ = file.flush();
    };
    // A control line (`done`) that arrives while entries are collected is kept for
    // `control` below, never dropped.
    let mut early: Vec<String> = Vec::new();
    let mut collect = |rx: &mpsc::Receiver<String>, entries: &mut Vec<Entry>, early: &mut Vec<String>| {
        while let Ok(l) = rx.try_recv() {
            match l.strip_prefix("entry ") {
                Some(json) => keep(json, entries),
                None => early.push(l),
            }
        }
    };
    let until = Instant::now() + chaos;
    let mut injected = 0;
    while Instant::now() < until && injected < max_faults {
        std::thread::sleep(Duration::from_millis(600 + rng.next_u64() % 1400));
        inject(&mut w, &mut rng, &mut faults, &mut log);
        injected += 1;
        collect(&rx, &mut entries, &mut early);
        let mut drain = |e: &mut Vec<Entry>| collect(&rx, e, &mut early);
        w.settle(&mut entries, &mut drain, &mut faults, &mut log, EPISODE_MS, false);
    }
    collect(&rx, &mut entries, &mut early);
    let mut drain = |e: &mut Vec<Entry>| collect(&rx, e, &mut early);
    w.settle(&mut entries, &mut drain, &mut faults, &mut log, EPISODE_MS, true);
    // Heal everything and bring every node back.
    w.heal();
    log.push((now_ms(), "healed; all nodes up".into()));
    for i in w.down() {
        w.start(i);
    }
    // The clients' next control line, keeping the entries before it. The restore phase
    // may take a while after a long run: it is bounded by an hour.
    let mut control =
        |rx: &mpsc::Receiver<String>, entries: &mut Vec<Entry>, what: &str, within: Duration| {
            let deadline = Instant::now() + within;
            if let Some(l) = early.first() {
                assert_eq!(l, what, "unexpected line from the clients: {l}");
                early.remove(0);
                return;
            }
            loop {
                match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
                    Ok(l) if l == what => return,
                    Ok(l) => match l.strip_prefix("entry ") {
                        Some(json) => keep(json, entries),
                        None => panic!("unexpected line from the clients: {l}"),
                    },
                    Err(e) => panic!(
                        "the clients did not say {what:?}: {e} (history so far in {})",
                        saved.display()
                    ),
                }
            }
        };
    control(&rx, &mut entries, "done", Duration::from_secs(120));
    let stdin = w.lab.child(driver).stdin.as_mut().unwrap();
    writeln!(stdin, "restore").unwrap();
    stdin.flush().unwrap();
    control(&rx, &mut entries, "finished", Duration::from_secs(3600));

    let limit = 10;
    let h = History { limit, entries };
    let (summary, violations) = history::check(&h);
    let violations: Vec<String> = violations.iter().map(|v| v.to_string()).collect();
    let acked: Vec<u64> = {
        let mut t: Vec<u64> = h
            .entries
            .iter()
            .filter(|e| {
                matches!(e.answer, Answer::Registered(_) | Answer::WrongCode(_) | Answer::Recovered(_))
            })
            .map(|e| e.end_ms)
            .collect();
        t.sort_unstable();
        t
    };
    let gaps = log.iter().filter_map(|(at, _)| acked.iter().find(|t| **t >= *at).map(|t| t - at)).collect();
    if !violations.is_empty() {
        let mut report = format!("seed {seed:#x}: {} violations\n", violations.len());
        for v in violations.iter().take(20) {
            report.push_str(&format!("  {v}\n"));
        }
        report.push_str("--- faults ---\n");
        for (at, what) in &log {
            report.push_str(&format!("{at} {what}\n"));
        }
        let path = saved.with_extension("history");
        let _ = std::fs::write(&path, h.render());
        report.push_str(&format!(
            "--- history in {} (JSON lines: {}) ---\n",
            path.display(),
            saved.display()
        ));
        eprintln!("{report}");
    }
    let by_code: BTreeMap<String, usize> = h.entries.iter().fold(BTreeMap::new(), |mut m, e| {
        let k = match &e.answer {
            Answer::Failed(c) => c.clone(),
            other => format!("{other:?}").split('(').next().unwrap_or_default().to_owned(),
        };
        *m.entry(k).or_default() += 1;
        m
    });
    eprintln!("answers by kind: {by_code:?}");
    Outcome { seed, faults, summary, violations, gaps, secs: began.elapsed().as_secs_f64() }
}

fn report(o: &Outcome) {
    let mut gaps = o.gaps.clone();
    gaps.sort_unstable();
    let q = |p: f64| gaps.get(((gaps.len() as f64 - 1.0) * p) as usize).copied().unwrap_or(0);
    eprintln!(
        "seed {:#x} in {:.0} s: acknowledged {} (register {}, wrong guess {}, recover {}, restore {}), {} indeterminate, {} locked, {} records; \
         faults {:?}; unavailable after a fault: p50 {} ms, p90 {} ms, max {} ms; violations: {}",
        o.seed,
        o.secs,
        o.summary.acknowledged_total(),
        o.summary.acknowledged[0],
        o.summary.acknowledged[1],
        o.summary.acknowledged[2],
        o.summary.acknowledged[3],
        o.summary.indeterminate,
        o.summary.locked,
        o.summary.records,
        o.faults,
        q(0.5),
        q(0.9),
        q(1.0),
        o.violations.len()
    );
}

/// About a minute of faults on five real node processes, with a background load of four
/// busy threads per core on the same machine (spec/fleet-replication.md §7: the default
/// timings survive it); `.ci/run` runs it.
#[test]
fn netns_fault_short() {
    if !enabled("netns_fault_short") {
        return;
    }
    let load = bkv_tests::load::BusyLoad::four_per_core(Duration::from_secs(600));
    eprintln!("background load: {} busy threads", load.threads());
    let o = run("short", seed_from_env(0x5eed_0e75), Duration::from_secs(45), 40, !SUBSETS);
    drop(load);
    report(&o);
    assert_eq!(o.violations, Vec::<String>::new(), "seed {:#x}", o.seed);
    assert!(o.faults.kill > 0 && o.faults.partition + o.faults.one_way > 0, "too few faults: {:?}", o.faults);
    // Progress under the load, not speed: on CI's two cores beside eight busy threads the
    // clients once got 16 registrations and 56 wrong guesses acknowledged in 45 s.
    assert!(
        o.summary.acknowledged[0] >= 5 && o.summary.acknowledged[1] >= 10,
        "too little progress: {:?}",
        o.summary
    );
    assert!(o.summary.acknowledged[3] > 0, "nothing restored at the end: {:?}", o.summary);
    ran("netns_fault_short");
}

/// The long run, time-boxed at two hours: at least 200 faults of each kind and 10,000
/// acknowledged operations (recorded in `tests/FAULT-RUNS.md`).
#[test]
#[ignore = "long run: up to two hours (BKV_NETNS_SECS)"]
fn netns_fault_long() {
    if !enabled("netns_fault_long") {
        return;
    }
    let secs = std::env::var("BKV_NETNS_SECS").ok().and_then(|s| s.parse().ok()).unwrap_or(7200u64).min(7200);
    let o = run("long", seed_from_env(0x5eed_1075), Duration::from_secs(secs), usize::MAX, !SUBSETS);
    report(&o);
    assert_eq!(o.violations, Vec::<String>::new(), "seed {:#x}", o.seed);
    ran("netns_fault_long");
}

/// spec/hsm.md §10 in the lab: with the clients and every other fault running, fault 5
/// takes live copies of all five disks and, at a later turn, restores the next subset of
/// the seeded order of all 31 from them (every node SIGKILLed and restarted); a subset
/// whose fleet does not answer within 12 s counts as failed closed and the operator
/// restores every newest disk. The history checker judges the whole run.
/// `BKV_NETNS_SECS` bounds it (default 900 s; recorded in `tests/FAULT-RUNS.md`).
#[test]
#[ignore = "long run: rollback of seeded subsets of disks among the other faults"]
fn netns_rollback_subsets() {
    if !enabled("netns_rollback_subsets") {
        return;
    }
    let secs = std::env::var("BKV_NETNS_SECS").ok().and_then(|s| s.parse().ok()).unwrap_or(900u64).min(7200);
    let o = run("subsets", seed_from_env(0x5eed_5b75), Duration::from_secs(secs), usize::MAX, SUBSETS);
    report(&o);
    assert_eq!(o.violations, Vec::<String>::new(), "seed {:#x}", o.seed);
    assert!(o.faults.subsets > 0, "no subset was rolled back: {:?}", o.faults);
    ran("netns_rollback_subsets");
}

/// The lab removes every namespace it made, also when the test using it panics.
#[test]
fn netns_lab_cleans_up_after_a_panic() {
    if !enabled("netns_lab_cleans_up_after_a_panic") {
        return;
    }
    let names = std::sync::Mutex::new(Vec::new());
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let mut lab = Lab::create("panic", 2).unwrap();
        *names.lock().unwrap() = lab.namespaces();
        lab.block(0, 1).unwrap();
        let k = lab.spawn(0, Path::new("/bin/sleep"), &["60".into()], Stdio::null()).unwrap();
        assert!(lab.child(k).try_wait().unwrap().is_none());
        panic!("a test failing with a lab");
    }));
    assert!(result.is_err());
    let names = names.into_inner().unwrap();
    assert_eq!(names.len(), 3, "bridge and two hosts");
    for n in &names {
        assert!(!Lab::exists(n), "{n} is left behind");
    }
    ran("netns_lab_cleans_up_after_a_panic");
}

/// spec/fleet-replication.md §7, liveness under load: the demo (in-process fleet, default
/// timings) completes while four busy threads per core run beside it. Heavy and serial, it
/// runs in `.ci/run`'s namespace step with the tests above.
#[test]
fn liveness_demo_under_load() {
    if !enabled("liveness_demo_under_load") {
        return;
    }
    let load = bkv_tests::load::BusyLoad::four_per_core(Duration::from_secs(900));
    let dir =
        PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("demo-under-load-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let started = Instant::now();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let code = rt
        .block_on(bkv_fleet::demo::run(bkv_fleet::demo::DemoArgs {
            dir: Some(dir.clone()),
            nodes: 3,
            insecure_test_ksf: true,
            json: false,
        }))
        .unwrap_or_else(|e| panic!("the demo failed under {} busy threads: {e}", load.threads()));
    assert_eq!(code, std::process::ExitCode::SUCCESS);
    eprintln!(
        "the demo took {:.0} s beside {} busy threads",
        started.elapsed().as_secs_f64(),
        load.threads()
    );
    drop(load);
    let _ = std::fs::remove_dir_all(&dir);
    ran("liveness_demo_under_load");
}
