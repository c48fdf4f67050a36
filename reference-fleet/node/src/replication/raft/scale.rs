//! `bkv bench scale`: how a fleet's costs grow with the number of records it holds
//! (BENCHMARKS.md "Scale"). For each size, an in-process loopback fleet of vault state
//! machines (spec/vault.md §8) is measured for:
//!
//! - recoveries per second and their p50/p99, a recovery being the two commits of a
//!   successful attempt (`attempt_start`, then `attempt_success` with its generation) on a
//!   record picked at random among those held; the OPAQUE and HPKE work of a real recovery
//!   does not depend on the number of records and is left out (`bkv bench recovery`
//!   measures it);
//! - resident memory per node (the process's growth divided by the nodes);
//! - the snapshot of spec/fleet-replication.md §6.2: its size and the time the leader takes
//!   to build and store it;
//! - start-up: a stopped follower started again, until it has applied what it had;
//! - catch-up: a follower whose storage was deleted, until it has applied the leader's
//!   index (the leader's log is purged first, so this is the snapshot transfer and install).
//!
//! The records are seeded **directly through the state machine**, not through the client
//! API: `register` commands with registration and wrapped-key bytes of the right lengths
//! are applied to one state machine in memory, which every node then starts from (the
//! state a fleet has after importing them, spec/rotation.md §5). This is what lets a
//! 1,000,000-record measurement take minutes. The nodes run without HSM
//! (spec/hsm.md): the mark writes and acknowledgements do not depend on the record count.

use std::time::{Duration, Instant};

use bkv_protocol::vault::state::{VaultCommand, VaultOutput, VaultStateMachine};
use bkv_protocol::vault::{STORED_REGISTRATION_LEN, WRAPPED_KEY_LEN};

use super::Timing;
use super::bench::{BenchFleet, summarize_clients, until_reached};
use crate::replication::CommandLog;

/// The guess limit of the measured fleet.
const LIMIT: u32 = 10;

/// What one size measured.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ScaleRow {
    /// Records held (seeded).
    pub records: u64,
    /// Nodes in the fleet.
    pub nodes: usize,
    /// Building the seeded state in memory (not a cost of the fleet).
    pub seed_secs: f64,
    /// Resident memory per node, MiB: the process's growth from before seeding to the
    /// running fleet, divided by the nodes.
    pub rss_mib_per_node: f64,
    /// Recoveries (two commits each) per second.
    pub recoveries_per_sec: f64,
    /// Median recovery latency, milliseconds.
    pub p50_ms: f64,
    /// 99th percentile recovery latency, milliseconds.
    pub p99_ms: f64,
    /// Recoveries that failed.
    pub errors: u64,
    /// Size of one snapshot, bytes.
    pub snapshot_bytes: u64,
    /// The leader building and storing one snapshot, seconds.
    pub snapshot_secs: f64,
    /// A stopped follower started again, until it applied what it had, seconds.
    pub startup_secs: f64,
    /// A wiped follower, until it applied the leader's index, seconds.
    pub catch_up_secs: f64,
    /// Leader changes any node saw from the start of the recoveries to the end (a snapshot
    /// that stalls a node longer than the election timeout shows here).
    pub leader_changes: u64,
}

/// Record id `i`: 32 bytes (spec/vault.md §4 allows 16 to 64).
pub fn record_id(i: u64) -> Vec<u8> {
    format!("{i:032}").into_bytes()
}

/// Request id `n` with its top bit set or not (seeding and measuring never collide).
fn request_id(n: u64, measuring: bool) -> Vec<u8> {
    let mut id = [0u8; 16];
    id[0] = u8::from(measuring) << 7;
    id[8..].copy_from_slice(&n.to_be_bytes());
    id.to_vec()
}

/// A vault state machine holding `records` registered records, built by applying
/// `register` commands (one second of request time apart, so the remembered request ids
/// stay within their retention, spec/vault.md §8.2).
pub fn seeded(records: u64) -> VaultStateMachine {
    let mut sm = VaultStateMachine::new(LIMIT);
    for i in 0..records {
        let fill = (i % 251) as u8;
        let command = VaultCommand::Register {
            request_id: request_id(i, false),
            time: i,
            record: record_id(i),
            registration: vec![fill; STORED_REGISTRATION_LEN],
            wrapped_key: vec![fill; WRAPPED_KEY_LEN],
        };
        sm.apply_command(&command).expect("a seeded registration applies");
    }
    sm
}

/// The process's resident memory, bytes (Linux `/proc/self/status`; 0 elsewhere).
pub fn resident_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|kb| kb.parse::<u64>().ok()))
        })
        .map(|kb| kb * 1024)
        .unwrap_or(0)
}

/// splitmix64: the measuring clients' record picks (deterministic per client).
pub fn next(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// One recovery's two commits on `record`; whether both gave the expected output.
async fn recover<L: CommandLog>(log: &L, record: Vec<u8>, id: u64, time: u64) -> bool {
    let start =
        VaultCommand::AttemptStart { request_id: request_id(2 * id, true), time, record: record.clone() };
    let Ok(out) = log.propose(bkv_protocol::cbor::to_vec(&start)).await else { return false };
    let Ok(VaultOutput::Attempt { generation, registration: Some(_), .. }) = VaultOutput::decode(&out) else {
        return false;
    };
    let success =
        VaultCommand::AttemptSuccess { request_id: request_id(2 * id + 1, true), time, record, generation };
    let Ok(out) = log.propose(bkv_protocol::cbor::to_vec(&success)).await else { return false };
    matches!(VaultOutput::decode(&out), Ok(VaultOutput::Released { remaining: LIMIT }))
}

/// Measure one size: `records` seeded records on `nodes` nodes in `dir`, `clients`
/// recovering for `secs`. `step` hears what is being done.
pub async fn measure(
    records: u64,
    nodes: usize,
    clients: usize,
    secs: u64,
    dir: &std::path::Path,
    step: &dyn Fn(&str),
) -> Result<ScaleRow, String> {
    if nodes < 3 {
        // One follower is restarted and another wiped; with 2 nodes they would be the same
        // node, and the other node alone is no majority.
        return Err("the scale bench needs at least 3 nodes (one follower restarted, another wiped)".into());
    }
    let within = Duration::from_secs(180);
    let rss_before = resident_bytes();
    step(&format!("{records} records: seeding through the state machine..."));
    let started = Instant::now();
    let template = seeded(records);
    let seed_secs = started.elapsed().as_secs_f64();
    step(&format!("{records} records: starting {nodes} nodes..."));
    let mut fleet = BenchFleet::start(nodes, dir, Timing::default(), |_| template.clone()).await?;
    drop(template);
    let rss_mib_per_node =
        resident_bytes().saturating_sub(rss_before) as f64 / nodes as f64 / (1024.0 * 1024.0);

    let changes_before: Vec<u64> = fleet.nodes.iter().map(|n| n.command_log().leader_changes()).collect();
    step(&format!("{records} records: {clients} clients recovering for {secs} s..."));
    let deadline = Instant::now() + Duration::from_secs(secs);
    let mut tasks = Vec::new();
    for c in 0..clients {
        let log = fleet.nodes[c % nodes].command_log();
        tasks.push(tokio::spawn(async move {
            let (mut lat, mut errors, mut rng, mut seq) = (Vec::new(), 0u64, c as u64, 0u64);
            let started = Instant::now();
            while Instant::now() < deadline {
                seq += 1;
                let id = ((c as u64) << 40) | seq;
                let t = Instant::now();
                if recover(&log, record_id(next(&mut rng) % records.max(1)), id, records).await {
                    lat.push(t.elapsed());
                } else {
                    errors += 1;
                }
            }
            (lat, errors, started.elapsed())
        }));
    }
    let recoveries = summarize_clients("recoveries", tasks).await?;

    let leader = fleet.leader().await?;
    // The size of the state's snapshot bytes (not kept: at 1 M records they are 370 MB).
    let (applied, snapshot_bytes) = {
        let (applied, state) = fleet.nodes[leader].local_state();
        (applied.unwrap_or(0), state.len() as u64)
    };
    step(&format!("{records} records: the leader builds a snapshot..."));
    let started = Instant::now();
    fleet.nodes[leader].raft().trigger().snapshot().await.map_err(|e| e.to_string())?;
    let snapshot_of =
        |n: &super::RaftNode<VaultStateMachine>| n.raft().metrics().borrow().snapshot.map(|l| l.index);
    until_reached(|| snapshot_of(&fleet.nodes[leader]), applied, within).await?;
    let snapshot_secs = started.elapsed().as_secs_f64();
    // No node keeps an entry a wiped node could replay: whichever node leads, a wiped node
    // must take a snapshot.
    step(&format!("{records} records: every node snapshots and purges its log..."));
    fleet.snapshot_and_purge(applied, within).await?;

    let followers: Vec<usize> = (0..nodes).filter(|i| *i != leader).collect();
    let (restarted, wiped) = (followers[0], followers[followers.len() - 1]);
    step(&format!("{records} records: stopping and starting node {restarted}..."));
    let node = fleet.nodes.remove(restarted);
    let had = node.status().last_applied.unwrap_or(0);
    node.shutdown().await;
    let started = Instant::now();
    let node = fleet.start_node(restarted, None, VaultStateMachine::new(LIMIT)).await?;
    until_reached(|| node.status().last_applied, had, within).await?;
    let startup_secs = started.elapsed().as_secs_f64();
    fleet.nodes.insert(restarted, node);

    step(&format!("{records} records: wiping node {wiped}; it catches up from a snapshot..."));
    let node = fleet.nodes.remove(wiped);
    node.shutdown().await;
    std::fs::remove_dir_all(fleet.node_dir(wiped)).map_err(|e| e.to_string())?;
    // The leader's place in `fleet.nodes` while the wiped node is out of it.
    let other = &fleet.nodes[if leader > wiped { leader - 1 } else { leader }];
    let target = other.status().last_applied.unwrap_or(0);
    // A fresh node starts from the fleet's first state, which here is the seeded one (the
    // seeded records are in no log entry); the snapshot then replaces it.
    let genesis = seeded(records);
    let started = Instant::now();
    let node = fleet.start_node(wiped, None, genesis).await?;
    until_reached(|| node.status().last_applied, target, within).await?;
    let catch_up_secs = started.elapsed().as_secs_f64();
    // Nothing was proposed since: once both have applied the same index, the caught-up
    // state is the other node's, seeded records included.
    let deadline = Instant::now() + within;
    loop {
        let (mine, theirs) = (node.local_state(), other.local_state());
        if mine.0 == theirs.0 {
            if mine.1 != theirs.1 {
                return Err(format!("node {wiped} caught up with a state that differs from the leader's"));
            }
            break;
        }
        if Instant::now() > deadline {
            return Err(format!("node {wiped} and the leader never applied the same index"));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    if snapshot_of(&node).unwrap_or(0) < applied {
        return Err(format!("node {wiped} caught up without installing a snapshot"));
    }
    fleet.nodes.insert(wiped, node);
    // The restarted and the wiped node count from their start again: only the others count.
    let leader_changes = fleet
        .nodes
        .iter()
        .zip(&changes_before)
        .enumerate()
        .filter(|(i, _)| *i != restarted && *i != wiped)
        .map(|(_, (n, before))| n.command_log().leader_changes().saturating_sub(*before))
        .max()
        .unwrap_or(0);
    fleet.shutdown().await;

    Ok(ScaleRow {
        records,
        nodes,
        seed_secs,
        rss_mib_per_node,
        recoveries_per_sec: recoveries.ops_per_sec,
        p50_ms: recoveries.p50_ms,
        p99_ms: recoveries.p99_ms,
        errors: recoveries.errors,
        snapshot_bytes,
        snapshot_secs,
        startup_secs,
        catch_up_secs,
        leader_changes,
    })
}

/// `rows` as a table.
pub fn table(rows: &[ScaleRow]) -> String {
    let mut s = format!(
        "{:>9} {:>9} {:>10} {:>8} {:>8} {:>7} {:>11} {:>9} {:>9} {:>10} {:>8}\n",
        "records",
        "MiB/node",
        "recov/s",
        "p50 ms",
        "p99 ms",
        "errors",
        "snapshot MB",
        "snap s",
        "start s",
        "catch-up s",
        "leaders"
    );
    for r in rows {
        s.push_str(&format!(
            "{:>9} {:>9.1} {:>10.1} {:>8.2} {:>8.2} {:>7} {:>11.1} {:>9.2} {:>9.2} {:>10.2} {:>8}\n",
            r.records,
            r.rss_mib_per_node,
            r.recoveries_per_sec,
            r.p50_ms,
            r.p99_ms,
            r.errors,
            r.snapshot_bytes as f64 / 1e6,
            r.snapshot_secs,
            r.startup_secs,
            r.catch_up_secs,
            r.leader_changes
        ));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use bkv_protocol::vault::state::RecordState;

    #[test]
    fn seeded_records_are_registered_with_a_full_counter_and_ids_do_not_collide() {
        let sm = seeded(1000);
        for i in [0, 499, 999] {
            let s = sm.status(&record_id(i));
            assert_eq!((s.state, s.remaining), (RecordState::Registered, LIMIT));
        }
        assert_eq!(sm.status(&record_id(1000)).state, RecordState::Absent);
        assert_ne!(request_id(5, false), request_id(5, true));
        // The measuring clients' request time is accepted after the seeding.
        let mut sm = sm;
        let c =
            VaultCommand::AttemptStart { request_id: request_id(1, true), time: 1000, record: record_id(7) };
        assert!(matches!(sm.apply_command(&c), Ok(VaultOutput::Attempt { remaining: 9, .. })));
    }
}
