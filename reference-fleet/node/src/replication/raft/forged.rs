//! `bkv bench forged`: what guesses against record ids that were never registered cost a
//! fleet (spec/vault.md §5.3, §5.5; BENCHMARKS.md "Forged guesses"). Every such guess is
//! counted, so it leaves an unregistered entry that is never dropped; this measures that
//! entry's memory and disk per node.
//!
//! For `guesses` forged guesses, each against its own random 32-byte id (the worst case:
//! every guess creates an entry), on an in-process loopback fleet of vault state machines:
//!
//! - all but `live` of them are applied **directly through the state machine** (the state
//!   a fleet has after those guesses), which every node starts from, so that 10^6 guesses
//!   take seconds; their request times advance at `rate` guesses a second, the fleet's
//!   admitted rate (spec/node-api.md §6 point 3), which is what bounds the request ids the
//!   state machine remembers (spec/vault.md §8.2 step A4);
//! - the last `live` go through the replicated log as `attempt_start` commands from
//!   concurrent clients (consensus, group commit, snapshots every 500 entries, log purge);
//! - then every node takes a snapshot and purges its log, and the bench reports resident
//!   memory per node, the snapshot's size and each node's files on disk, and checks on
//!   every node that a seeded and a live id are unregistered with one guess spent.
//!
//! The nodes run without HSM (spec/hsm.md): the mark writes do not depend on the entries.

use std::time::{Duration, Instant};

use bkv_protocol::cbor;
use bkv_protocol::vault::state::{
    RecordState, RecordStatus, VaultCommand, VaultOutput, VaultQuery, VaultStateMachine,
};

use super::Timing;
use super::bench::{BenchFleet, summarize_clients};
use super::scale::{next, resident_bytes};
use crate::replication::CommandLog;

/// The guess limit of the measured fleet.
const LIMIT: u32 = 10;

/// What one count of forged guesses measured.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ForgedRow {
    /// Forged guesses in all (seeded and live), each on its own id.
    pub guesses: u64,
    /// Of which went through the replicated log.
    pub live: u64,
    /// Nodes in the fleet.
    pub nodes: usize,
    /// Request times advance at this many guesses a second (the admitted rate).
    pub rate: u64,
    /// Resident memory per node, MiB: the process's growth from before seeding to the end
    /// of the live guesses, divided by the nodes.
    pub rss_mib_per_node: f64,
    /// That memory per forged guess, bytes.
    pub rss_bytes_per_guess: f64,
    /// The same growth once every node has also built and stored a snapshot (the
    /// snapshot's buffers and the database's cache of its pages), MiB per node.
    pub rss_after_snapshot_mib_per_node: f64,
    /// Size of one node's snapshot of the state, bytes.
    pub snapshot_bytes: u64,
    /// Snapshot bytes per forged guess.
    pub snapshot_bytes_per_guess: f64,
    /// The largest node's files (log, vote, snapshot) after snapshot and purge, bytes.
    pub disk_bytes_per_node: u64,
    /// Those bytes per forged guess.
    pub disk_bytes_per_guess: f64,
    /// Live forged guesses committed per second.
    pub live_per_sec: f64,
    /// Live guesses that failed.
    pub errors: u64,
}

/// The id of forged guess `n`: 32 pseudo-random bytes (distinct for distinct `n`).
fn forged_id(n: u64) -> Vec<u8> {
    let mut s = n;
    let mut id = Vec::with_capacity(32);
    for _ in 0..4 {
        id.extend_from_slice(&next(&mut s).to_be_bytes());
    }
    // The first word is a bijection of `n` (splitmix64's output function), so ids differ.
    id
}

/// Forged guess `n` as the command a node commits for it, at `rate` guesses a second.
fn forged_guess(n: u64, rate: u64) -> VaultCommand {
    let mut request_id = [0u8; 16];
    request_id[8..].copy_from_slice(&n.to_be_bytes());
    VaultCommand::AttemptStart {
        request_id: request_id.to_vec(),
        time: n / rate.max(1),
        record: forged_id(n),
    }
}

/// A vault state machine after forged guesses `0..count` at `rate` a second.
pub fn forged(count: u64, rate: u64) -> VaultStateMachine {
    let mut sm = VaultStateMachine::new(LIMIT);
    for n in 0..count {
        sm.apply_command(&forged_guess(n, rate)).expect("a forged guess applies");
    }
    sm
}

/// The disk space the files under `dir` take (allocated blocks, as `du`), bytes.
fn dir_bytes(dir: &std::path::Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    let Ok(entries) = std::fs::read_dir(dir) else { return 0 };
    entries
        .flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => dir_bytes(&e.path()),
            Ok(m) => m.blocks() * 512,
            Err(_) => 0,
        })
        .sum()
}

async fn status<L: CommandLog>(log: &L, record: Vec<u8>) -> Result<RecordStatus, String> {
    let out = log.read(cbor::to_vec(&VaultQuery::Record { record })).await.map_err(|e| e.to_string())?;
    cbor::from_slice(&out).map_err(|e| e.to_string())
}

/// Measure `guesses` forged guesses, the last `live` through the log from `clients`
/// clients, on `nodes` nodes in `dir`. `step` hears what is being done.
pub async fn measure(
    guesses: u64,
    live: u64,
    rate: u64,
    nodes: usize,
    clients: usize,
    dir: &std::path::Path,
    step: &dyn Fn(&str),
) -> Result<ForgedRow, String> {
    if live > guesses || nodes == 0 || clients == 0 || rate == 0 {
        return Err("needs live <= guesses and at least one node, client and guess a second".into());
    }
    let within = Duration::from_secs(180);
    let seeded = guesses - live;
    let rss_before = resident_bytes();
    step(&format!(
        "{guesses} forged guesses: {seeded} through the state machine of each of {nodes} nodes..."
    ));
    // Each node builds its own state (no template copy left behind in the process's memory).
    let fleet = BenchFleet::start(nodes, dir, Timing::default(), |_| forged(seeded, rate)).await?;

    step(&format!("{guesses} forged guesses: {live} through the replicated log from {clients} clients..."));
    let next_guess = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(seeded));
    let mut tasks = Vec::new();
    for c in 0..clients {
        let log = fleet.nodes[c % nodes].command_log();
        let next_guess = next_guess.clone();
        tasks.push(tokio::spawn(async move {
            let (mut lat, mut errors) = (Vec::new(), 0u64);
            let started = Instant::now();
            loop {
                let n = next_guess.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if n >= guesses {
                    break;
                }
                let t = Instant::now();
                let ok = match log.propose(cbor::to_vec(&forged_guess(n, rate))).await {
                    Ok(out) => matches!(
                        VaultOutput::decode(&out),
                        Ok(VaultOutput::Attempt { registration: None, .. })
                    ),
                    Err(_) => false,
                };
                if ok {
                    lat.push(t.elapsed());
                } else {
                    errors += 1;
                }
            }
            (lat, errors, started.elapsed())
        }));
    }
    let committed = summarize_clients("forged guesses", tasks).await?;
    let mib_per_node = |rss: u64| rss.saturating_sub(rss_before) as f64 / nodes as f64 / (1024.0 * 1024.0);
    let rss_mib_per_node = mib_per_node(resident_bytes());

    step(&format!("{guesses} forged guesses: every node snapshots and purges its log..."));
    let leader = fleet.leader().await?;
    let applied = fleet.nodes[leader].status().last_applied.unwrap_or(0);
    fleet.snapshot_and_purge(applied, within).await?;
    let snapshot_bytes = fleet.nodes[leader].local_state().1.len() as u64;
    let disk_bytes_per_node = (0..nodes).map(|i| dir_bytes(&fleet.node_dir(i))).max().unwrap_or(0);
    let rss_after_snapshot_mib_per_node = mib_per_node(resident_bytes());

    // Every node holds the guesses: a seeded and a live id are unregistered, one guess spent.
    let expected = RecordStatus { state: RecordState::Unregistered, remaining: LIMIT - 1 };
    let samples = [seeded.checked_sub(1), (live > 0).then_some(guesses - 1)];
    for (i, n) in fleet.nodes.iter().enumerate() {
        for g in samples.into_iter().flatten() {
            let got = status(&n.command_log(), forged_id(g)).await?;
            if got != expected {
                return Err(format!("node {i}: forged guess {g}'s id is {got:?}, not {expected:?}"));
            }
        }
    }
    fleet.shutdown().await;

    let per = |bytes: f64| if guesses == 0 { 0.0 } else { bytes / guesses as f64 };
    Ok(ForgedRow {
        guesses,
        live,
        nodes,
        rate,
        rss_mib_per_node,
        rss_bytes_per_guess: per(rss_mib_per_node * 1024.0 * 1024.0),
        rss_after_snapshot_mib_per_node,
        snapshot_bytes,
        snapshot_bytes_per_guess: per(snapshot_bytes as f64),
        disk_bytes_per_node,
        disk_bytes_per_guess: per(disk_bytes_per_node as f64),
        live_per_sec: committed.ops_per_sec,
        errors: committed.errors,
    })
}

/// `rows` as a table.
pub fn table(rows: &[ForgedRow]) -> String {
    let mut s = format!(
        "{:>9} {:>7} {:>9} {:>7} {:>10} {:>11} {:>7} {:>9} {:>7} {:>9} {:>7}\n",
        "guesses",
        "live",
        "MiB/node",
        "B/guess",
        "+snapshot",
        "snapshot MB",
        "B/guess",
        "disk MB",
        "B/guess",
        "live/s",
        "errors"
    );
    for r in rows {
        s.push_str(&format!(
            "{:>9} {:>7} {:>9.1} {:>7.0} {:>10.1} {:>11.1} {:>7.0} {:>9.1} {:>7.0} {:>9.1} {:>7}\n",
            r.guesses,
            r.live,
            r.rss_mib_per_node,
            r.rss_bytes_per_guess,
            r.rss_after_snapshot_mib_per_node,
            r.snapshot_bytes as f64 / 1e6,
            r.snapshot_bytes_per_guess,
            r.disk_bytes_per_node as f64 / 1e6,
            r.disk_bytes_per_guess,
            r.live_per_sec,
            r.errors
        ));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forged_ids_are_distinct_and_each_guess_creates_an_unregistered_entry() {
        let ids: std::collections::BTreeSet<Vec<u8>> = (0..10_000).map(forged_id).collect();
        assert_eq!(ids.len(), 10_000);
        let sm = forged(1000, 300);
        for n in [0, 999] {
            assert_eq!(
                sm.status(&forged_id(n)),
                RecordStatus { state: RecordState::Unregistered, remaining: LIMIT - 1 }
            );
        }
        assert_eq!(sm.status(&forged_id(1000)).state, RecordState::Absent);
        // The live guesses that follow are accepted (not stale, not replayed).
        let mut sm = sm;
        assert!(matches!(
            sm.apply_command(&forged_guess(1000, 300)),
            Ok(VaultOutput::Attempt { remaining: 9, .. })
        ));
    }
}
