//! spec/fleet-replication.md §6.3 and §8.5: a node restarted from an older copy of its disk
//! must not let the fleet lose a committed command.
//!
//! The scenario is the one the vote gate exists for. Entry `e` (a granted attempt) is
//! committed by the leader `L` with the acknowledgements of `A` and `B` while `C` and `D`
//! are cut off. Then `L` dies, `A` comes back from a disk copied before `e`, and `B` is cut
//! off. `A`, `C` and `D` form a majority and none of them holds `e`: without the gate they
//! would elect a leader and forget the acknowledged attempt. With the gate `A` cannot vote
//! until it has heard from `n - q + 1 = 3` other nodes, so the fleet answers
//! `fleet.unavailable` (or the truth), never an answer without `e`; once `B` is back, `e`
//! survives. When `B` answers `A`'s poll, `A`'s log still lacks `e`, so `A` may vote only for
//! a candidate holding `e` and may not be a candidate itself (§6.3 step 3). Before the second
//! rule, `C` and `D` sometimes elected `A` at that point (under load, in this test), the new
//! leader overwrote `e`, and openraft's debug assertion in `has_log_id`
//! (`log_state_reader.rs`) fired on `B` and `L`, which had `e` committed at that index; the
//! last test below forces that situation.

use std::time::{Duration, Instant};

use crate::replication_common::{Cluster, state};
use bkv_node::replication::CommandLog;
use bkv_node::replication::raft::Timing;
use bkv_node::replication::raft::guess_counter::{GuessCommand, GuessOutput, GuessQuery};
use bkv_protocol::cbor;
use std::path::PathBuf;

/// The tests of this file run one at a time: each is a five-node fleet with 200 ms election
/// timeouts, and three of them at once on a loaded two-core machine miss those timeouts.
static ONE_FLEET_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// The attempt `e` of the rollback tests.
const E_ID: u64 = 0xe;

/// The common start of the rollback tests: a five-node fleet with leader `L` and nodes `A`,
/// `B`, `C`, `D` (returned in that order); `A`'s disk is copied, then `e` is committed with
/// the acknowledgements of `L`, `A` and `B` only (`C` and `D` cut off, still partitioned on
/// return). Returns the fleet, the roles, the copy of `A`'s disk from before `e`, and the
/// acknowledged output of `e`.
async fn commit_e_while_a_is_behind(name: &str) -> (Cluster, [usize; 5], PathBuf, GuessOutput) {
    let mut c = Cluster::start(name, 5, 3, Timing::fast()).await;
    c.wait_converged(Duration::from_secs(30)).await.unwrap();
    let l = c.wait_leader(Duration::from_secs(30)).await.unwrap() as usize;
    let [a, b, cc, d] = [(l + 1) % 5, (l + 2) % 5, (l + 3) % 5, (l + 4) % 5];

    // A's disk before e.
    c.kill(a).await;
    let old = c.copy_disk(a, "before-e");
    c.restart(a).await;
    c.wait_converged(Duration::from_secs(30)).await.unwrap();

    // Commit e with the acknowledgements of L, A and B only.
    c.faults.partition(&[cc as u64, d as u64], 5);
    let deadline = Instant::now() + Duration::from_secs(30);
    let acked = loop {
        match c.log(l).unwrap().propose(GuessCommand::attempt("victim", E_ID)).await {
            Ok(out) => break GuessOutput::decode(&out).unwrap(),
            Err(e) if Instant::now() >= deadline => panic!("e not committed: {e}"),
            Err(_) => {}
        }
    };
    assert_eq!(acked.result, "granted");
    (c, [l, a, b, cc, d], old, acked)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_from_older_disk_does_not_lose_an_acknowledged_attempt() {
    let _one = ONE_FLEET_AT_A_TIME.lock().await;
    let (mut c, [l, a, b, cc, d], old, acked) = commit_e_while_a_is_behind("rollback").await;

    // L dies, A comes back from the old disk, B is cut off: {A, C, D} is a majority.
    c.kill(l).await;
    c.kill(a).await;
    c.restart_from(a, &old).await;
    c.faults.heal();
    c.faults.partition(&[b as u64], 5);

    // For several election timeouts, every answer through A, C or D is either
    // fleet.unavailable or reflects e; never an answer without e.
    let q = cbor::to_vec(&GuessQuery::Applied(E_ID));
    let until = Instant::now() + Duration::from_secs(4);
    while Instant::now() < until {
        for via in [a, cc, d] {
            if let Ok(ans) = c.log(via).unwrap().read(q.clone()).await {
                let seen: Option<GuessOutput> = cbor::from_slice(&ans).unwrap();
                assert_eq!(
                    seen.as_ref(),
                    Some(&acked),
                    "node {via} answered without the acknowledged attempt"
                );
            }
        }
    }

    // Heal: the fleet recovers and e is in the converged state.
    c.faults.heal();
    c.restart(l).await;
    let (_, bytes) = c.wait_converged(Duration::from_secs(60)).await.unwrap();
    assert_eq!(state(&bytes).applied(E_ID), Some(&acked));
    c.shutdown().await;
}

/// §6.3 step 0: a restarted leader does not resume its leadership; leading again takes an
/// election in a higher term (a leader restored from an older disk would otherwise reuse
/// (term, index) pairs it had given to other entries).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restarted_leader_does_not_resume_its_term() {
    let _one = ONE_FLEET_AT_A_TIME.lock().await;
    let mut c = Cluster::start("rollback-leader", 5, 3, Timing::fast()).await;
    c.wait_converged(Duration::from_secs(30)).await.unwrap();
    let l = c.wait_leader(Duration::from_secs(30)).await.unwrap() as usize;
    let term = c.nodes[l].as_ref().unwrap().raft().metrics().borrow().current_term;
    c.kill(l).await;
    let old = c.copy_disk(l, "leader");
    c.restart_from(l, &old).await;
    let again = c.wait_leader(Duration::from_secs(30)).await.unwrap() as usize;
    let new_term = c.nodes[again].as_ref().unwrap().raft().metrics().borrow().current_term;
    assert!(new_term > term, "leader {again} leads in term {new_term}, not above the old leader's {term}");
    c.shutdown().await;
}

/// §6.3 step 3 applies to the restarted node's own candidacy too (a candidate votes for
/// itself). Same start as the first test: `e` is committed by `L` with the acknowledgements
/// of `A` and `B`, `L` dies and `A` comes back from a disk copied before `e`. `A` polls `B`,
/// `C` and `D`, so its vote gate opens with `L` = `B`'s last log id, which holds `e`; then `B`
/// is cut off, and `C` and `D` reach only `A`. `A`'s log lacks `e`; if `A` could be a
/// candidate, `C` and `D` (whose logs are no longer than `A`'s) would elect it, and the fleet
/// would answer without `e` and commit over it. (Cut links and dead nodes cost availability,
/// never safety: only the rollback endangers `e`.) `A` must not be a candidate before its own
/// log reaches `L`, so the fleet answers `fleet.unavailable` until `B` is back, and then keeps
/// `e`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restarted_node_is_no_candidate_before_it_holds_what_its_poll_saw() {
    let _one = ONE_FLEET_AT_A_TIME.lock().await;
    let (mut c, [l, a, b, cc, d], old, acked) = commit_e_while_a_is_behind("rollback-candidacy").await;

    // L dies, A comes back from the old disk and reaches B, C and D, which reach only A.
    c.kill(l).await;
    c.kill(a).await;
    c.restart_from(a, &old).await;
    c.faults.heal();
    for (x, y) in [(b, cc), (b, d), (cc, d)] {
        c.faults.cut(x as u64, y as u64);
    }
    // A's gate opens (B's answer among those it polled) while A's log still lacks e.
    let deadline = Instant::now() + Duration::from_secs(30);
    while !c.nodes[a].as_ref().unwrap().status().gate_open {
        assert!(Instant::now() < deadline, "node {a}'s vote gate did not open");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // B is cut off too: A cannot learn from B's answers to a vote request that a longer log
    // exists (openraft would then stop campaigning by itself).
    c.faults.cut(a as u64, b as u64);

    let q = cbor::to_vec(&GuessQuery::Applied(E_ID));
    let until = Instant::now() + Duration::from_secs(6);
    while Instant::now() < until {
        for via in [a, cc, d] {
            if let Ok(ans) = c.log(via).unwrap().read(q.clone()).await {
                let seen: Option<GuessOutput> = cbor::from_slice(&ans).unwrap();
                assert_eq!(
                    seen.as_ref(),
                    Some(&acked),
                    "node {via} answered without the acknowledged attempt"
                );
            }
        }
    }

    c.faults.heal();
    c.restart(l).await;
    let (_, bytes) = c.wait_converged(Duration::from_secs(60)).await.unwrap();
    assert_eq!(state(&bytes).applied(E_ID), Some(&acked));
    c.shutdown().await;
}

/// The rollback scenario of the first test, judged by the history checker
/// ([`bkv_tests::history`]) instead of by hand: `e`'s grant and every attempt made through
/// `A`, `C` and `D` while `B` is cut off. `without_gate` starts `A` from the old disk with the
/// vote gate switched off (the `fault-injection` build of `bkv-node`).
async fn rollback_history(name: &str, without_gate: bool) -> (bkv_tests::history::Summary, Vec<String>) {
    use bkv_tests::history::{Answer, Entry, History, Kind, check};
    let (mut c, [l, a, b, cc, d], old, acked) = commit_e_while_a_is_behind(name).await;
    let start = Instant::now();
    let mut h = History { limit: 3, entries: Vec::new() };
    let answer = |out: &Result<Vec<u8>, String>| match out {
        Ok(bytes) => {
            let g = GuessOutput::decode(bytes).unwrap();
            if g.result == "granted" { Answer::WrongCode(g.remaining as u32) } else { Answer::Locked }
        }
        Err(e) => Answer::Failed(e.split(':').next().unwrap_or_default().to_owned()),
    };
    h.push(Entry {
        client: 0,
        node: format!("node-{l}"),
        record: "victim".into(),
        kind: Kind::Guess,
        request: Some(format!("{E_ID:#x}")),
        start_ms: 0,
        end_ms: 0,
        answer: answer(&Ok(cbor::to_vec(&acked))),
    });
    c.kill(l).await;
    c.kill(a).await;
    if without_gate {
        bkv_node::fault_injection::disable_vote_gate(&c.dirs[a]);
    }
    c.restart_from(a, &old).await;
    c.faults.heal();
    c.faults.partition(&[b as u64], 5);
    let until = Instant::now() + Duration::from_secs(6);
    let mut id = 0x100u64;
    while Instant::now() < until {
        for via in [a, cc, d] {
            id += 1;
            let sent = start.elapsed().as_millis() as u64 + 1;
            let out = c
                .log(via)
                .unwrap()
                .propose(GuessCommand::attempt("victim", id))
                .await
                .map_err(|e| e.to_string());
            h.push(Entry {
                client: 1,
                node: format!("node-{via}"),
                record: "victim".into(),
                kind: Kind::Guess,
                request: Some(format!("{id:#x}")),
                start_ms: sent,
                end_ms: start.elapsed().as_millis() as u64 + 1,
                answer: answer(&out),
            });
        }
    }
    c.shutdown().await;
    let (summary, violations) = check(&h);
    (summary, violations.iter().map(|v| v.to_string()).collect())
}

/// spec/fleet-replication.md §8: the checker fails a deliberately broken build. With the
/// vote gate, the history of the rollback scenario passes; without it on the node restored
/// from the old disk, the fleet grants `e`'s remaining count a second time and the checker
/// says so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_history_checker_fails_a_build_without_the_vote_gate() {
    let _one = ONE_FLEET_AT_A_TIME.lock().await;
    let (_, violations) = rollback_history("checker-gate", false).await;
    assert_eq!(violations, Vec::<String>::new(), "the real build");
    let (summary, violations) = rollback_history("checker-no-gate", true).await;
    assert!(summary.acknowledged[1] > 1, "the broken fleet granted nothing after the rollback: {summary:?}");
    assert!(
        violations.iter().any(|v| v.contains("remaining count 2 reported twice")),
        "the checker missed the lost grant: {violations:?}"
    );
}
