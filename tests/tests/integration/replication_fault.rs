//! The replication fault test (spec/fleet-replication.md §8).
//!
//! A 5-node loopback fleet runs the guess-counter model. Concurrent clients attack a few
//! keys through random nodes (the same key through different nodes at once) while a seeded
//! scheduler kills and restarts nodes, restarts nodes from an older copy of their disk,
//! partitions the network and delays links. Afterwards it checks exactly the consequences of
//! the safety argument:
//! - per key, the history checker ([`bkv_tests::history`], shared with the vault and the
//!   multi-process runs): acknowledged granted attempts never exceed the limit, each shows a
//!   distinct remaining count (no grant was lost and handed out again), consistent with one
//!   committed order;
//! - every acknowledged command is reflected in the final state with the acknowledged output;
//! - all nodes converge to the same state bytes after healing;
//! - with 2 of 5 nodes down the fleet serves, with 3 down it answers `fleet.unavailable`.
//!
//! On failure it prints the seed and the history. Reproduce with `BKV_FAULT_SEED=<seed>`.
//! The long run: `cargo test -p bkv-tests --test integration -- --ignored replication_fault::`
//! (`BKV_FAULT_RUNS`, `BKV_FAULT_SECS`).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use crate::replication_common::{ChaosStats, Cluster, chaos, long_runs, seed_from_env, state};
use bkv_node::replication::CommandLog;
use bkv_node::replication::raft::guess_counter::{GuessCommand, GuessCounter, GuessOutput};
use bkv_node::replication::raft::{RaftCommandLog, Timing};
use bkv_protocol::Error;
use bkv_tests::history::{self, Answer, Entry, Kind};
use rand_chacha::ChaCha8Rng;
use rand_core::{RngCore, SeedableRng};

const NODES: usize = 5;
const LIMIT: u64 = 6;
/// Keys under attack at any time; the set moves on every `KEY_WINDOW_MS`, so grants keep
/// happening while faults are injected.
const KEYS: u64 = 3;
const KEY_WINDOW_MS: u128 = 1500;
const CLIENTS: usize = 8;

/// One client request and what the client saw.
#[derive(Debug, Clone)]
struct Op {
    sent_ms: u128,
    at_ms: u128,
    client: usize,
    node: usize,
    key: String,
    request_id: u64,
    outcome: Result<GuessOutput, String>,
}

#[derive(Default)]
struct History {
    events: Mutex<Vec<String>>,
    ops: Mutex<Vec<Op>>,
}

impl History {
    fn event(&self, start: Instant, s: String) {
        self.events.lock().unwrap().push(format!("{:>7}ms {s}", start.elapsed().as_millis()));
    }

    fn render(&self) -> String {
        let mut out = String::new();
        for e in self.events.lock().unwrap().iter() {
            writeln!(out, "event {e}").unwrap();
        }
        for o in self.ops.lock().unwrap().iter() {
            writeln!(
                out,
                "op {:>7}ms client {} via node {} key {} req {:#x}: {:?}",
                o.at_ms, o.client, o.node, o.key, o.request_id, o.outcome
            )
            .unwrap();
        }
        out
    }
}

type Directory = Arc<RwLock<Vec<Option<RaftCommandLog<GuessCounter>>>>>;

fn publish(c: &Cluster, dir: &Directory) {
    *dir.write().unwrap() = (0..c.n()).map(|i| c.log(i)).collect();
}

async fn client(
    id: usize,
    seed: u64,
    dir: Directory,
    stop: Arc<AtomicBool>,
    h: Arc<History>,
    start: Instant,
) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ (0xc11e47 + id as u64));
    let mut seq = 0u64;
    while !stop.load(Ordering::SeqCst) {
        seq += 1;
        let request_id = ((id as u64) << 32) | seq;
        let window = start.elapsed().as_millis() / KEY_WINDOW_MS;
        let key = format!("w{window}k{}", rng.next_u64() % KEYS);
        // Try through a random node; after an unavailable answer, retry the same request id
        // once through another node (spec §3.4).
        for _try in 0..2 {
            let node = (rng.next_u64() % NODES as u64) as usize;
            let Some(log) = dir.read().unwrap()[node].clone() else {
                continue;
            };
            let sent_ms = start.elapsed().as_millis();
            let outcome = log
                .propose(GuessCommand::attempt(&key, request_id))
                .await
                .map(|b| GuessOutput::decode(&b).expect("output decodes"))
                .map_err(|e| e.to_string());
            let ok = outcome.is_ok();
            h.ops.lock().unwrap().push(Op {
                sent_ms,
                at_ms: start.elapsed().as_millis(),
                client: id,
                node,
                key: key.clone(),
                request_id,
                outcome,
            });
            if ok || rng.next_u64() % 2 == 0 {
                break;
            }
        }
    }
}

struct Stats {
    ops: usize,
    granted: usize,
    unavailable: usize,
    rollbacks: usize,
    kills: usize,
    partitions: usize,
}

async fn run(seed: u64, chaos_for: Duration) -> Result<Stats, String> {
    let start = Instant::now();
    let h = Arc::new(History::default());
    let mut c = Cluster::start(&format!("fault-{seed:x}"), NODES, LIMIT, Timing::fast()).await;
    let dir: Directory = Arc::new(RwLock::new(Vec::new()));
    publish(&c, &dir);
    let stop = Arc::new(AtomicBool::new(false));
    let clients: Vec<_> = (0..CLIENTS)
        .map(|i| tokio::spawn(client(i, seed, dir.clone(), stop.clone(), h.clone(), start)))
        .collect();

    let ChaosStats { rollbacks, kills, partitions } =
        chaos(&mut c, seed, chaos_for, |e| h.event(start, e), |c| publish(c, &dir)).await;
    stop.store(true, Ordering::SeqCst);
    for t in clients {
        t.await.map_err(|e| format!("client panicked: {e}"))?;
    }

    // Heal everything and let the fleet converge.
    c.faults.heal();
    for i in 0..NODES {
        if !c.is_up(i) {
            c.restart(i).await;
        }
    }
    h.event(start, "healed; all nodes up".into());
    let result = check(&mut c, &h).await;
    let ops = h.ops.lock().unwrap().clone();
    let stats = Stats {
        ops: ops.len(),
        granted: ops.iter().filter(|o| matches!(&o.outcome, Ok(g) if g.result == "granted")).count(),
        unavailable: ops.iter().filter(|o| o.outcome.is_err()).count(),
        rollbacks,
        kills,
        partitions,
    };
    c.shutdown().await;
    match result {
        Ok(()) => Ok(stats),
        Err(e) => Err(format!("seed {seed:#x}: {e}\n--- history (seed {seed:#x}) ---\n{}", h.render())),
    }
}

async fn check(c: &mut Cluster, h: &History) -> Result<(), String> {
    c.wait_leader(Duration::from_secs(60)).await?;
    let (_, bytes) = c.wait_converged(Duration::from_secs(60)).await?;
    let fin = state(&bytes);
    let ops = h.ops.lock().unwrap().clone();

    // Acknowledged outputs per request id: a retried request got the same output.
    let mut acked: BTreeMap<u64, (&str, GuessOutput)> = BTreeMap::new();
    for o in &ops {
        if let Ok(out) = &o.outcome
            && let Some((_, first)) = acked.insert(o.request_id, (&o.key, out.clone()))
            && first != *out
        {
            return Err(format!("request {:#x} acknowledged twice with {first:?} and {out:?}", o.request_id));
        }
    }
    // Per key, the history checker: grants within the limit, distinct remaining counts,
    // consistent with one committed order; a retried request id is one attempt.
    let history = history::History {
        limit: LIMIT as u32,
        entries: ops
            .iter()
            .map(|o| Entry {
                client: o.client as u32,
                node: format!("node-{}", o.node),
                record: o.key.clone(),
                kind: Kind::Guess,
                request: Some(format!("{:#x}", o.request_id)),
                start_ms: o.sent_ms as u64,
                end_ms: o.at_ms as u64,
                answer: match &o.outcome {
                    Ok(g) if g.result == "granted" => Answer::WrongCode(g.remaining as u32),
                    Ok(_) => Answer::Locked,
                    Err(e) => Answer::Failed(e.split(':').next().unwrap_or_default().to_owned()),
                },
            })
            .collect(),
    };
    let (_, violations) = history::check(&history);
    if let Some(v) = violations.first() {
        return Err(format!("{} violations, the first: {v}", violations.len()));
    }
    // Every acknowledged command is in the final state with the acknowledged output.
    for (id, (key, out)) in &acked {
        if fin.applied(*id) != Some(out) {
            return Err(format!(
                "acknowledged request {id:#x} on {key} ({out:?}) is {:?} in the final state",
                fin.applied(*id)
            ));
        }
    }
    for (key, st) in fin.keys() {
        if st.granted > LIMIT || st.granted + st.remaining != LIMIT {
            return Err(format!("key {key}: final state {st:?} breaks the limit {LIMIT}"));
        }
    }

    // Availability: 2 of 5 down serves, 3 down is fleet.unavailable.
    c.kill(0).await;
    c.kill(1).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match c.log(2).unwrap().propose(GuessCommand::attempt("avail", u64::MAX)).await {
            Ok(_) => break,
            Err(e) if Instant::now() >= deadline => return Err(format!("2 of 5 down does not serve: {e}")),
            Err(_) => {}
        }
    }
    c.kill(2).await;
    match c.log(3).unwrap().propose(GuessCommand::attempt("avail", u64::MAX - 1)).await {
        Err(e) if e.to_string().starts_with(Error::FleetUnavailable.code()) => Ok(()),
        other => Err(format!("3 of 5 down answered {other:?}, not fleet.unavailable")),
    }
}

fn report(seed: u64, s: &Stats) {
    eprintln!(
        "seed {seed:#x}: {} ops, {} granted, {} unavailable; {} kills, {} rollbacks, {} partitions",
        s.ops, s.granted, s.unavailable, s.kills, s.rollbacks, s.partitions
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_short() {
    let seed = seed_from_env(0x5eed_0004);
    match run(seed, Duration::from_secs(12)).await {
        Ok(s) => report(seed, &s),
        Err(e) => panic!("{e}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "long run: several seeds, a minute of faults each"]
async fn fault_long() {
    for (seed, duration) in long_runs() {
        match run(seed, duration).await {
            Ok(s) => report(seed, &s),
            Err(e) => panic!("{e}"),
        }
    }
}
