//! spec/fleet-replication.md: commit through any node, linearizable reads, catch-up from a
//! snapshot, `fleet.unavailable` without a majority, and node RPC authentication.

use std::time::{Duration, Instant};

use crate::replication_common::{Cluster, state};
use bkv_node::replication::CommandLog;
use bkv_node::replication::raft::auth::{self, RpcMessage};
use bkv_node::replication::raft::guess_counter::{
    GuessCommand, GuessOutput, GuessQuery, GuessResult, KeyState,
};
use bkv_node::replication::raft::{Timing, net};
use bkv_protocol::crypto::Ed25519Signer;
use bkv_protocol::{Error, cbor};

async fn propose_until_ok(c: &Cluster, via: usize, cmd: Vec<u8>, within: Duration) -> GuessOutput {
    let deadline = Instant::now() + within;
    loop {
        match c.log(via).unwrap().propose(cmd.clone()).await {
            Ok(out) => return GuessOutput::decode(&out).unwrap(),
            Err(e) if Instant::now() >= deadline => panic!("node {via} did not serve: {e}"),
            Err(_) => {}
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commands_through_any_node_converge_and_reads_are_linearizable() {
    let c = Cluster::start("basic-converge", 5, 3, Timing::fast()).await;
    // Attempts through every node on one key: exactly `limit` are granted, in commit order.
    let mut results = Vec::new();
    for i in 0..5 {
        let out =
            propose_until_ok(&c, i, GuessCommand::attempt("k", i as u64), Duration::from_secs(20)).await;
        results.push(out.result);
    }
    assert_eq!(results, ["granted", "granted", "granted", "denied", "denied"]);
    // A duplicate request id through another node returns the first output, applied once.
    let dup = propose_until_ok(&c, 4, GuessCommand::attempt("k", 0), Duration::from_secs(20)).await;
    assert_eq!(dup, GuessOutput { result: GuessResult::Granted, remaining: 2 });
    // A read through each node sees every command committed before it (read index).
    // A read may find no majority within its bound while a busy machine delays heartbeats
    // (it is then `Unavailable`, never stale): retry it, bounded, like the proposals.
    for i in 0..5 {
        let q = cbor::to_vec(&GuessQuery::Key("k".into()));
        let deadline = Instant::now() + Duration::from_secs(20);
        let ans = loop {
            match c.log(i).unwrap().read(q.clone()).await {
                Ok(ans) => break ans,
                Err(e) if Instant::now() >= deadline => panic!("read via node {i}: {e:?}"),
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        };
        let st: KeyState = cbor::from_slice(&ans).unwrap();
        assert_eq!(st, KeyState { remaining: 0, granted: 3 }, "read via node {i}");
    }
    let (_, bytes) = c.wait_converged(Duration::from_secs(20)).await.unwrap();
    assert_eq!(state(&bytes).key("k"), KeyState { remaining: 0, granted: 3 });
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_that_was_down_catches_up_from_a_snapshot() {
    let timing = Timing { snapshot_every: 20, ..Timing::fast() };
    let mut c = Cluster::start("basic-snapshot", 5, 1000, timing).await;
    let leader = c.wait_leader(Duration::from_secs(20)).await.unwrap() as usize;
    let lagging = (leader + 1) % 5;
    let via = (leader + 2) % 5;
    c.kill(lagging).await;
    for r in 0..100u64 {
        propose_until_ok(&c, via, GuessCommand::attempt(&format!("k{}", r % 7), r), Duration::from_secs(20))
            .await;
    }
    // The leader has compacted its log past everything the stopped node holds, so the
    // node can only catch up by installing a snapshot (§6.1).
    let leader = c.wait_leader(Duration::from_secs(20)).await.unwrap() as usize;
    let purged = c.nodes[leader].as_ref().unwrap().raft().metrics().borrow().purged.map(|p| p.index);
    assert!(purged.is_some_and(|p| p > 10), "leader purged {purged:?}");
    c.restart(lagging).await;
    let (applied, bytes) = c.wait_converged(Duration::from_secs(30)).await.unwrap();
    assert!(applied >= 100);
    let snap = c.nodes[lagging].as_ref().unwrap().raft().metrics().borrow().snapshot;
    assert!(snap.is_some(), "the restarted node holds a snapshot");
    let s = state(&bytes);
    assert_eq!(s.keys().values().map(|k| k.granted).sum::<u64>(), 100);
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_of_five_down_serves_three_down_is_fleet_unavailable() {
    let mut c = Cluster::start("basic-quorum", 5, 10, Timing::fast()).await;
    c.wait_converged(Duration::from_secs(20)).await.unwrap();
    c.kill(0).await;
    c.kill(1).await;
    let out = propose_until_ok(&c, 2, GuessCommand::attempt("q", 1), Duration::from_secs(20)).await;
    assert_eq!(out.result, "granted");
    c.kill(2).await;
    let err = c.log(3).unwrap().propose(GuessCommand::attempt("q", 2)).await.unwrap_err();
    assert!(err.to_string().starts_with(Error::FleetUnavailable.code()), "{err}");
    let err = c.log(4).unwrap().read(cbor::to_vec(&GuessQuery::Key("q".into()))).await.unwrap_err();
    assert!(err.to_string().starts_with(Error::FleetUnavailable.code()), "{err}");
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_rpc_from_outside_the_key_set_is_rejected() {
    let c = Cluster::start("basic-auth", 3, 10, Timing::fast()).await;
    let target = &c.members.nodes[0];
    let url = format!("http://{}{}", target.addr, net::RPC_PATH);
    let msg = |from| RpcMessage {
        v: 1,
        purpose: auth::PURPOSE.into(),
        fleet: c.members.fleet_id.clone(),
        epoch: c.members.epoch,
        from,
        to: 0,
        kind: auth::RpcKind::Status,
        nonce: vec![1; 16],
        time_ms: bkv_client::clock::Clock::now_ms(&bkv_client::clock::SystemClock),
        body: Vec::new(),
    };
    let outsider = Ed25519Signer::from_seed(&[99; 32]);
    let http = bkv_client::http::client();
    for (from, want) in [(7, Error::FleetRpcSenderUnknown), (1, Error::FleetRpcSignatureInvalid)] {
        let resp = http.post(&url).body(auth::seal(&msg(from), &outsider)).send().await.unwrap();
        assert_eq!(resp.status(), 403);
        assert_eq!(resp.text().await.unwrap(), want.code());
    }
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fleet_status_reports_leader_term_and_lag() {
    let mut c = Cluster::start("basic-status", 5, 10, Timing::fast()).await;
    c.wait_converged(Duration::from_secs(20)).await.unwrap();
    let leader = c.wait_leader(Duration::from_secs(20)).await.unwrap();
    let down = ((leader + 1) % 5) as usize;
    c.kill(down).await;
    for r in 0..5 {
        propose_until_ok(&c, leader as usize, GuessCommand::attempt("s", r), Duration::from_secs(20)).await;
    }
    let addrs: Vec<String> = c.members.nodes.iter().map(|n| n.addr.to_string()).collect();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let st = bkv_fleet::cli::fleet_status::collect(&addrs).await;
        assert_eq!(st.leader, Some(leader));
        assert!(st.nodes[down].status.is_none() && st.nodes[down].error.is_some());
        let term = c.nodes[leader as usize].as_ref().unwrap().raft().metrics().borrow().current_term;
        assert_eq!(st.term, term);
        let lags: Vec<_> = (0..5).filter(|&i| i != down).map(|i| st.nodes[i].lag).collect();
        // The commit index covers the five acknowledged proposals, and no node reports one
        // beyond what it has stored.
        let committed: Vec<_> =
            (0..5).filter(|&i| i != down).map(|i| st.nodes[i].status.as_ref().unwrap().committed).collect();
        for i in (0..5).filter(|&i| i != down) {
            let s = st.nodes[i].status.as_ref().unwrap();
            assert!(s.committed <= s.last_log_id.map(|l| l.index), "{s:?}");
        }
        if lags.iter().all(|l| *l == Some(0)) && committed.iter().all(|c| c.is_some_and(|c| c >= 5)) {
            assert!(st.leader_last_log_index.is_some_and(|i| i >= 5));
            break;
        }
        assert!(Instant::now() < deadline, "followers did not catch up: {lags:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    c.shutdown().await;
}

/// spec/fleet-replication.md §1 item 4: commands that arrive while an entry commits are
/// grouped into the next entry; each gets its own output, in the one sequence every node
/// applies. 96 concurrent attempts on 8 keys (limit 10 each) through every node: each key
/// grants exactly 10 and denies 2, every output names its own key's count, and the log
/// holds far fewer entries than commands.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_commands_share_entries_and_each_gets_its_own_output() {
    let c = Cluster::start("basic-group", 3, 10, Timing::fast()).await;
    // A first commit through each node: a leader is known everywhere.
    for i in 0..3 {
        propose_until_ok(&c, i, GuessCommand::attempt("warm-up", i as u64), Duration::from_secs(20)).await;
    }
    let before = c.nodes[0].as_ref().unwrap().status().last_log_id.map(|l| l.index).unwrap_or(0);
    let mut tasks = Vec::new();
    for n in 0..96u64 {
        let log = c.log((n % 3) as usize).unwrap();
        let key = format!("k{}", n % 8);
        tasks.push(tokio::spawn(async move {
            // A busy machine may time a commit out: the retry carries the same request id,
            // so it is the same attempt (bounded, like `propose_until_ok`).
            let cmd = GuessCommand::attempt(&key, 1000 + n);
            let deadline = Instant::now() + Duration::from_secs(30);
            let out = loop {
                match log.propose(cmd.clone()).await {
                    Ok(out) => break Ok(GuessOutput::decode(&out).unwrap()),
                    Err(e) if Instant::now() >= deadline => break Err(e),
                    Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
                }
            };
            (key, out)
        }));
    }
    let mut per_key: std::collections::BTreeMap<String, Vec<GuessOutput>> = Default::default();
    for t in tasks {
        let (key, out) = t.await.unwrap();
        per_key.entry(key).or_default().push(out.expect("every command commits"));
    }
    for (key, outs) in &per_key {
        let granted: Vec<u64> =
            outs.iter().filter(|o| o.result == GuessResult::Granted).map(|o| o.remaining).collect();
        assert_eq!(granted.len(), 10, "{key}: {outs:?}");
        let mut left = granted.clone();
        left.sort();
        assert_eq!(left, (0..10).collect::<Vec<_>>(), "{key}: each grant saw its own count");
        assert_eq!(outs.iter().filter(|o| o.result == GuessResult::Denied).count(), 2, "{key}");
    }
    let after = c.nodes[0].as_ref().unwrap().status().last_log_id.map(|l| l.index).unwrap_or(0);
    assert!(after - before < 96, "96 commands in {} entries: none were grouped", after - before);
    let (_, bytes) = c.wait_converged(Duration::from_secs(20)).await.unwrap();
    assert_eq!(state(&bytes).key("k0"), KeyState { remaining: 0, granted: 10 });
    c.shutdown().await;
}

/// spec/fleet-replication.md §4 item 4 and §6.1: a node whose storage was wiped catches up
/// from the leader's snapshot of 20,000 records (about 7 MB, several chunks), and ends with
/// the leader's state. Before chunks were byte strings of at most 1 MiB and the endpoint set
/// its own body limit, every 3 MiB chunk (written as an array of integers) was refused with
/// 413 by the framework's 2 MiB default, and a wiped node never caught up. Also a start-up
/// from the node's own stored snapshot, and recoveries against the seeded records
/// (`bkv bench scale` at one small size).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wiped_node_catches_up_from_a_snapshot_larger_than_one_default_body() {
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("basic-big-snapshot-{}", std::process::id()));
    let row = bkv_node::replication::raft::scale::measure(20_000, 3, 2, 1, &dir, &|_| {})
        .await
        .expect("the measurement completes: the wiped node caught up");
    assert!(row.snapshot_bytes > 4 << 20, "the snapshot is several default bodies: {row:?}");
    assert!(row.recoveries_per_sec > 0.0 && row.errors == 0, "{row:?}");
    assert!(row.catch_up_secs > 0.0 && row.startup_secs > 0.0, "{row:?}");
    let _ = std::fs::remove_dir_all(&dir);
}
