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
//! survives.

mod replication_common;

use std::time::{Duration, Instant};

use bkv_fleet::replication::CommandLog;
use bkv_fleet::replication::raft::Timing;
use bkv_fleet::replication::raft::guess_counter::{GuessCommand, GuessOutput, GuessQuery};
use bkv_protocol::cbor;
use replication_common::{Cluster, state};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_from_older_disk_does_not_lose_an_acknowledged_attempt() {
    let mut c = Cluster::start("rollback", 5, 3, Timing::fast()).await;
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
    let e_id = 0xe;
    let deadline = Instant::now() + Duration::from_secs(30);
    let acked = loop {
        match c.log(l).unwrap().propose(GuessCommand::attempt("victim", e_id)).await {
            Ok(out) => break GuessOutput::decode(&out).unwrap(),
            Err(e) if Instant::now() >= deadline => panic!("e not committed: {e}"),
            Err(_) => {}
        }
    };
    assert_eq!(acked.result, "granted");

    // L dies, A comes back from the old disk, B is cut off: {A, C, D} is a majority.
    c.kill(l).await;
    c.kill(a).await;
    c.restart_from(a, &old).await;
    c.faults.heal();
    c.faults.partition(&[b as u64], 5);

    // For several election timeouts, every answer through A, C or D is either
    // fleet.unavailable or reflects e; never an answer without e.
    let q = cbor::to_vec(&GuessQuery::Applied(e_id));
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
    assert_eq!(state(&bytes).applied(e_id), Some(&acked));
    c.shutdown().await;
}

/// §6.3 step 0: a restarted leader does not resume its leadership; leading again takes an
/// election in a higher term (a leader restored from an older disk would otherwise reuse
/// (term, index) pairs it had given to other entries).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restarted_leader_does_not_resume_its_term() {
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
