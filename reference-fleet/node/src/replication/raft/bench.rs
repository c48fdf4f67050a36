//! Load generator for `bkv bench replication`: the same attempt workload against an
//! `n`-node loopback fleet and against a single node without replication, in one run.
//!
//! Baseline ("single node, no replication"): one process applies each command to the
//! guess-counter model after committing it to a redb table with `Durability::Immediate`
//! (one fsync per command, serialized) — what a node does without consensus.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bkv_protocol::crypto::{Ed25519Signer, Signer};
use bkv_protocol::state_machine::StateMachine;
use redb::{Database, Durability, TableDefinition};

use super::guess_counter::{GuessCommand, GuessCounter, GuessOutput};
use super::stages::{Breakdown, Stages};
use super::{AllUp, FleetMembers, FleetNode, NodeId, NodeOptions, RaftNode, Timing};
use crate::replication::{CommandLog, Unavailable};

/// One measured configuration.
#[derive(Debug, Clone, serde::Serialize)]
pub struct BenchResult {
    /// What was measured.
    pub label: String,
    /// Acknowledged attempts.
    pub ops: u64,
    /// `fleet.unavailable` answers.
    pub errors: u64,
    /// Wall time of the measurement.
    pub secs: f64,
    /// Attempts per second.
    pub ops_per_sec: f64,
    /// Median latency, milliseconds.
    pub p50_ms: f64,
    /// 99th percentile latency, milliseconds.
    pub p99_ms: f64,
    /// Where the commit path's time went (Raft configurations only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub breakdown: Option<Breakdown>,
}

const TABLE: TableDefinition<u64, &[u8]> = TableDefinition::new("commands");

/// The baseline: a durable single-node command log with no replication. Each command is
/// written to a redb table with `Durability::Immediate` (one fsync per command,
/// serialized), then applied to `S`.
pub struct UnreplicatedLog<S> {
    inner: Mutex<(Database, u64, S)>,
}

impl<S: StateMachine> UnreplicatedLog<S> {
    /// Create the log in `dir`, applying commands to `state`.
    pub fn open(dir: &Path, state: S) -> Result<Self, String> {
        std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
        let db = Database::create(dir.join("local.redb")).map_err(|e| e.to_string())?;
        Ok(Self { inner: Mutex::new((db, 0, state)) })
    }

    fn commit(&self, command: &[u8]) -> Result<Vec<u8>, String> {
        let mut g = self.inner.lock().map_err(|_| "poisoned".to_string())?;
        let (db, next, sm) = &mut *g;
        let mut txn = db.begin_write().map_err(|e| e.to_string())?;
        txn.set_durability(Durability::Immediate).map_err(|e| e.to_string())?;
        {
            let mut t = txn.open_table(TABLE).map_err(|e| e.to_string())?;
            t.insert(*next, command).map_err(|e| e.to_string())?;
        }
        txn.commit().map_err(|e| e.to_string())?;
        *next += 1;
        Ok(sm.apply(command))
    }
}

impl<S: StateMachine> CommandLog for UnreplicatedLog<S> {
    fn propose(&self, command: Vec<u8>) -> impl Future<Output = Result<Vec<u8>, Unavailable>> + Send {
        let r = self.commit(&command).map_err(Unavailable);
        async move { r }
    }

    fn read(&self, query: Vec<u8>) -> impl Future<Output = Result<Vec<u8>, Unavailable>> + Send {
        let r = self.inner.lock().map(|g| g.2.query(&query)).map_err(|_| Unavailable("poisoned".into()));
        async move { r }
    }

    /// No other nodes: nothing to acknowledge besides the node's own HSM.
    async fn acks(&self, _position: u64) -> Result<Vec<Vec<u8>>, Unavailable> {
        Ok(Vec::new())
    }
}

/// Drive `clients` concurrent clients for `duration`; client `c` uses `logs[c % logs.len()]`.
/// Every attempt is on a fresh key, so every acknowledged attempt is granted.
pub async fn drive<L: CommandLog + Clone>(
    label: &str,
    logs: Vec<L>,
    clients: usize,
    duration: Duration,
) -> BenchResult {
    let start = Instant::now();
    let deadline = start + duration;
    let mut tasks = Vec::new();
    for c in 0..clients {
        let log = logs[c % logs.len()].clone();
        tasks.push(tokio::spawn(async move {
            let (mut lat, mut errors, mut seq) = (Vec::new(), 0u64, 0u64);
            while Instant::now() < deadline {
                seq += 1;
                let id = ((c as u64) << 32) | seq;
                let t = Instant::now();
                match log.propose(GuessCommand::attempt(&format!("c{c}-{seq}"), id)).await {
                    Ok(out) if GuessOutput::decode(&out).is_ok_and(|o| o.result == "granted") => {
                        lat.push(t.elapsed())
                    }
                    _ => errors += 1,
                }
            }
            (lat, errors)
        }));
    }
    let (mut lat, mut errors) = (Vec::new(), 0);
    for t in tasks {
        if let Ok((l, e)) = t.await {
            lat.extend(l);
            errors += e;
        }
    }
    summarize(label, lat, errors, start.elapsed())
}

/// What one client task of a bench gives back: its latencies, its errors and its wall time.
pub type ClientRun = (Vec<Duration>, u64, Duration);

/// Join the client tasks of a bench and [`summarize`] them together.
pub async fn summarize_clients(
    label: &str,
    tasks: Vec<tokio::task::JoinHandle<ClientRun>>,
) -> Result<BenchResult, String> {
    let (mut lat, mut errors, mut elapsed) = (Vec::new(), 0, Duration::ZERO);
    for t in tasks {
        let (l, e, d) = t.await.map_err(|e| e.to_string())?;
        lat.extend(l);
        errors += e;
        elapsed = elapsed.max(d);
    }
    Ok(summarize(label, lat, errors, elapsed))
}

/// The figures of one measurement from the latencies of its acknowledged operations.
pub fn summarize(label: &str, mut lat: Vec<Duration>, errors: u64, elapsed: Duration) -> BenchResult {
    let secs = elapsed.as_secs_f64();
    lat.sort();
    let pct = |p: f64| -> f64 {
        if lat.is_empty() {
            return 0.0;
        }
        let i = ((lat.len() as f64 - 1.0) * p).round() as usize;
        lat[i].as_secs_f64() * 1000.0
    };
    BenchResult {
        label: label.into(),
        ops: lat.len() as u64,
        errors,
        secs,
        ops_per_sec: lat.len() as f64 / secs,
        p50_ms: pct(0.50),
        p99_ms: pct(0.99),
        breakdown: None,
    }
}

/// `results` as JSON, each with its ratio to the first (the baseline).
pub fn results_json(results: &[BenchResult]) -> serde_json::Value {
    let base = results.first().map(|r| r.ops_per_sec).unwrap_or(0.0);
    let rows: Vec<_> = results
        .iter()
        .map(|r| {
            let mut v = serde_json::to_value(r).expect("a bench result serializes");
            v["ratio_to_baseline"] = serde_json::json!(ratio(r, base));
            v
        })
        .collect();
    serde_json::json!({ "baseline": results.first().map(|r| r.label.clone()), "results": rows })
}

fn ratio(r: &BenchResult, base: f64) -> f64 {
    if base > 0.0 { r.ops_per_sec / base } else { 0.0 }
}

/// `results` as a table, each with its ratio to the first (the baseline).
pub fn results_table(results: &[BenchResult]) -> String {
    let base = results.first().map(|r| r.ops_per_sec).unwrap_or(0.0);
    let mut s = format!(
        "{:<34} {:>8} {:>7} {:>10} {:>9} {:>9} {:>7}\n",
        "configuration", "ops", "errors", "ops/s", "p50 ms", "p99 ms", "ratio"
    );
    for r in results {
        s.push_str(&format!(
            "{:<34} {:>8} {:>7} {:>10.1} {:>9.2} {:>9.2} {:>7.3}\n",
            r.label,
            r.ops,
            r.errors,
            r.ops_per_sec,
            r.p50_ms,
            r.p99_ms,
            ratio(r, base)
        ));
    }
    for r in results {
        let Some(b) = &r.breakdown else { continue };
        s.push_str(&format!(
            "\n{}: where the time went ({:.1} commands per entry; means over every node's events)\n",
            r.label, b.commands_per_entry
        ));
        for m in &b.stages {
            s.push_str(&format!("  {:<44} {:>8} {:>9.3} ms\n", m.stage, m.count, m.mean_ms));
        }
    }
    s
}

/// Drive `clients` clients over `nodes` (as [`drive`]) and add the commit path's
/// [`Breakdown`] over the nodes, counted from the start of the measurement.
pub async fn drive_fleet<S: StateMachine>(
    label: &str,
    nodes: &[RaftNode<S>],
    clients: usize,
    duration: Duration,
) -> BenchResult {
    for n in nodes {
        n.stages().reset();
    }
    let logs = nodes.iter().map(|n| n.command_log()).collect();
    let mut r = drive(label, logs, clients, duration).await;
    r.breakdown = Some(Stages::breakdown(nodes.iter().map(|n| n.stages())));
    r
}

impl<L> Clone for LogRef<L> {
    fn clone(&self) -> Self {
        Self(self.0.clone())
    }
}

/// A shareable handle to a [`CommandLog`].
pub struct LogRef<L>(pub Arc<L>);

impl<L: CommandLog> CommandLog for LogRef<L> {
    fn propose(&self, command: Vec<u8>) -> impl Future<Output = Result<Vec<u8>, Unavailable>> + Send {
        self.0.propose(command)
    }
    fn read(&self, query: Vec<u8>) -> impl Future<Output = Result<Vec<u8>, Unavailable>> + Send {
        self.0.read(query)
    }
    fn acks(&self, position: u64) -> impl Future<Output = Result<Vec<Vec<u8>>, Unavailable>> + Send {
        self.0.acks(position)
    }
}

/// Start an `n`-node loopback fleet in `dir` and wait until every node knows the leader.
pub async fn start_fleet(n: usize, dir: &Path, limit: u64) -> Result<Vec<RaftNode<GuessCounter>>, String> {
    Ok(BenchFleet::start(n, dir, Timing::default(), |_| GuessCounter::new(limit)).await?.nodes)
}

/// An in-process loopback fleet whose nodes can be stopped and started again.
pub struct BenchFleet<S> {
    /// The running nodes, by id.
    pub nodes: Vec<RaftNode<S>>,
    members: Arc<FleetMembers>,
    signers: Vec<Arc<Ed25519Signer>>,
    dir: PathBuf,
    timing: Timing,
}

impl<S: StateMachine> BenchFleet<S> {
    /// Start `n` nodes in `dir` with `timing`, node `i` with `initial(i)` as its state when
    /// its storage holds no snapshot, and wait until every node knows one leader.
    pub async fn start(
        n: usize,
        dir: &Path,
        timing: Timing,
        initial: impl Fn(usize) -> S,
    ) -> Result<Self, String> {
        let signers: Vec<Arc<Ed25519Signer>> =
            (0..n).map(|i| Arc::new(Ed25519Signer::from_seed(&[i as u8 + 1; 32]))).collect();
        let (mut nodes, mut listeners) = (Vec::new(), Vec::new());
        for (i, s) in signers.iter().enumerate() {
            // Bound once here and handed to the node: no pick-then-bind race.
            let listener = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
            let addr = listener.local_addr().map_err(|e| e.to_string())?;
            listeners.push(listener);
            nodes.push(FleetNode {
                id: i as NodeId,
                addr,
                key: s.public_key().clone(),
                datacenter: format!("dc{}", i % 3 + 1),
            });
        }
        let members = Arc::new(FleetMembers { fleet_id: "bench".into(), epoch: 1, nodes });
        let mut fleet = BenchFleet { nodes: Vec::new(), members, signers, dir: dir.to_path_buf(), timing };
        for (i, listener) in listeners.into_iter().enumerate() {
            let node = fleet.start_node(i, Some(listener), initial(i)).await?;
            fleet.nodes.push(node);
        }
        fleet.settle().await?;
        Ok(fleet)
    }

    /// Start node `i` (its storage is `dir/node<i>`) with `initial`.
    pub async fn start_node(
        &self,
        i: usize,
        listener: Option<std::net::TcpListener>,
        initial: S,
    ) -> Result<RaftNode<S>, String> {
        let opts = NodeOptions {
            clock: bkv_client::clock::SystemClock::shared(),
            listener,
            id: i as NodeId,
            dir: self.node_dir(i),
            signer: self.signers[i].clone(),
            bootstrap: true,
            timing: self.timing,
            links: Arc::new(AllUp),
            tls: None,
            hsm: None,
        };
        RaftNode::start(self.members.clone(), opts, initial).await.map_err(|e| e.to_string())
    }

    /// Node `i`'s storage directory.
    pub fn node_dir(&self, i: usize) -> PathBuf {
        self.dir.join(format!("node{i}"))
    }

    /// Wait (at most 30 s) until every node knows the same leader and its vote gate is open.
    pub async fn settle(&self) -> Result<(), String> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let leaders: std::collections::BTreeSet<_> =
                self.nodes.iter().map(|n| n.raft().metrics().borrow().current_leader).collect();
            if leaders.len() == 1 && leaders.first().is_some_and(|l| l.is_some()) {
                // The vote gates open after W; wait so that the measurement starts on a settled fleet.
                if self.nodes.iter().all(|n| n.status().gate_open) {
                    return Ok(());
                }
            }
            if Instant::now() >= deadline {
                return Err("the fleet elected no leader within 30 s".into());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The leader's id, which is its place in [`Self::nodes`] while all run, once the fleet
    /// has settled on one (see [`Self::settle`]; a node stalled by a snapshot may have
    /// started an election).
    pub async fn leader(&self) -> Result<usize, String> {
        self.settle().await?;
        Ok(self.nodes[0].raft().metrics().borrow().current_leader.ok_or("no leader")? as usize)
    }

    /// Every node applies `applied`, then builds a snapshot at least that far (unless it
    /// has one) and purges its log up to it; each wait at most `within`. A node is asked for
    /// its snapshot only once it has applied `applied`, so that the snapshot reaches it.
    pub async fn snapshot_and_purge(&self, applied: u64, within: Duration) -> Result<(), String> {
        for n in &self.nodes {
            let snapshot = || n.raft().metrics().borrow().snapshot.map(|l| l.index);
            until_reached(|| n.status().last_applied, applied, within).await?;
            if snapshot().unwrap_or(0) < applied {
                n.raft().trigger().snapshot().await.map_err(|e| e.to_string())?;
                until_reached(snapshot, applied, within).await?;
            }
            n.raft().trigger().purge_log(applied).await.map_err(|e| e.to_string())?;
            until_reached(|| n.raft().metrics().borrow().purged.map(|p| p.index), applied, within).await?;
        }
        Ok(())
    }

    /// Stop every node.
    pub async fn shutdown(self) {
        for n in self.nodes {
            n.shutdown().await;
        }
    }
}

/// Wait until `position()` (an applied, snapshot or purged index) reaches `index` (at
/// most `within`); the time it took.
pub async fn until_reached(
    position: impl Fn() -> Option<u64>,
    index: u64,
    within: Duration,
) -> Result<Duration, String> {
    let started = Instant::now();
    while position().unwrap_or(0) < index {
        if started.elapsed() > within {
            return Err(format!("index {index} not applied within {within:?}"));
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    Ok(started.elapsed())
}

/// A scratch directory that is removed on drop.
pub struct Scratch(pub PathBuf);

impl Scratch {
    /// `dir`, or a fresh `<prefix>-<pid>` under the system temp dir.
    pub fn given_or_temp(dir: Option<&Path>, prefix: &str) -> Self {
        Scratch(
            dir.map(Path::to_path_buf)
                .unwrap_or_else(|| std::env::temp_dir().join(format!("{prefix}-{}", std::process::id()))),
        )
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
