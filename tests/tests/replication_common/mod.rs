//! A loopback fleet of Raft nodes running the guess-counter model, with fault injection.
//! spec/fleet-replication.md. Shared by the `replication_*` tests.
#![allow(dead_code, unreachable_pub)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bkv_fleet::replication::raft::guess_counter::GuessCounter;
use bkv_fleet::replication::raft::{
    FleetMembers, FleetNode, Link, LinkFilter, NodeId, NodeOptions, RaftCommandLog, RaftNode, Timing,
};
use bkv_protocol::crypto::{Ed25519Signer, Signer};
use bkv_protocol::state_machine::StateMachine;

/// Cut and delayed links, consulted for every request and reply.
#[derive(Default)]
pub struct Faults {
    cut: Mutex<BTreeSet<(NodeId, NodeId)>>,
    delay: Mutex<BTreeMap<(NodeId, NodeId), Duration>>,
}

impl Faults {
    /// Cut every link between `side` and the other nodes, both ways.
    pub fn partition(&self, side: &[NodeId], n: usize) {
        let mut cut = self.cut.lock().unwrap();
        for &a in side {
            for b in 0..n as NodeId {
                if !side.contains(&b) {
                    cut.insert((a, b));
                    cut.insert((b, a));
                }
            }
        }
    }
    pub fn delay(&self, from: NodeId, to: NodeId, d: Duration) {
        self.delay.lock().unwrap().insert((from, to), d);
    }
    pub fn heal(&self) {
        self.cut.lock().unwrap().clear();
        self.delay.lock().unwrap().clear();
    }
}

impl LinkFilter for Faults {
    fn link(&self, from: NodeId, to: NodeId) -> Link {
        if self.cut.lock().unwrap().contains(&(from, to)) {
            return Link::Down;
        }
        match self.delay.lock().unwrap().get(&(from, to)) {
            Some(d) => Link::Delay(*d),
            None => Link::Up,
        }
    }
}

/// A fleet of `n` nodes on loopback, each with its own redb directory.
pub struct Cluster {
    pub members: Arc<FleetMembers>,
    pub dirs: Vec<PathBuf>,
    signers: Vec<Arc<Ed25519Signer>>,
    pub nodes: Vec<Option<RaftNode<GuessCounter>>>,
    pub faults: Arc<Faults>,
    pub timing: Timing,
    pub limit: u64,
    root: PathBuf,
}

fn free_addr() -> std::net::SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap()
}

impl Cluster {
    /// Start a fresh fleet and wait until it has a leader.
    pub async fn start(name: &str, n: usize, limit: u64, timing: Timing) -> Cluster {
        let root = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let signers: Vec<_> =
            (0..n).map(|i| Arc::new(Ed25519Signer::from_seed(&[i as u8 + 1; 32]))).collect();
        let nodes = (0..n)
            .map(|i| FleetNode {
                id: i as NodeId,
                addr: free_addr(),
                key: signers[i].public_key().clone(),
                datacenter: format!("dc{}", i % 3),
            })
            .collect();
        let members = Arc::new(FleetMembers { fleet_id: "test-fleet".into(), epoch: 1, nodes });
        let dirs = (0..n).map(|i| root.join(format!("node{i}"))).collect();
        let mut c = Cluster {
            members,
            dirs,
            signers,
            nodes: (0..n).map(|_| None).collect(),
            faults: Arc::new(Faults::default()),
            timing,
            limit,
            root,
        };
        for i in 0..n {
            c.boot(i, true).await;
        }
        c.wait_leader(Duration::from_secs(30)).await.expect("initial leader");
        c
    }

    async fn boot(&mut self, i: usize, bootstrap: bool) {
        let opts = NodeOptions {
            id: i as NodeId,
            dir: self.dirs[i].clone(),
            signer: self.signers[i].clone(),
            bootstrap,
            timing: self.timing,
            links: self.faults.clone(),
        };
        let node = RaftNode::start(self.members.clone(), opts, GuessCounter::new(self.limit))
            .await
            .unwrap_or_else(|e| panic!("node {i} failed to start: {e}"));
        self.nodes[i] = Some(node);
    }

    pub fn n(&self) -> usize {
        self.nodes.len()
    }

    pub fn is_up(&self, i: usize) -> bool {
        self.nodes[i].is_some()
    }

    pub fn up(&self) -> Vec<usize> {
        (0..self.n()).filter(|&i| self.is_up(i)).collect()
    }

    pub fn log(&self, i: usize) -> Option<RaftCommandLog<GuessCounter>> {
        self.nodes[i].as_ref().map(|n| n.command_log())
    }

    /// Stop node `i` (its disk stays).
    pub async fn kill(&mut self, i: usize) {
        if let Some(n) = self.nodes[i].take() {
            n.shutdown().await;
        }
    }

    /// Restart node `i` from its disk.
    pub async fn restart(&mut self, i: usize) {
        assert!(self.nodes[i].is_none());
        self.boot(i, false).await;
    }

    /// Copy the disk of a stopped node; returns the copy's directory.
    pub fn copy_disk(&self, i: usize, tag: &str) -> PathBuf {
        assert!(self.nodes[i].is_none(), "copy only a stopped node's disk");
        let dst = self.root.join(format!("copy-{i}-{tag}"));
        let _ = std::fs::remove_dir_all(&dst);
        copy_dir(&self.dirs[i], &dst);
        dst
    }

    /// Replace a stopped node's disk with an older copy and restart it.
    pub async fn restart_from(&mut self, i: usize, copy: &Path) {
        assert!(self.nodes[i].is_none());
        let _ = std::fs::remove_dir_all(&self.dirs[i]);
        copy_dir(copy, &self.dirs[i]);
        self.boot(i, false).await;
    }

    /// Poll metrics until the running nodes agree on a leader that is running.
    pub async fn wait_leader(&self, within: Duration) -> Result<NodeId, String> {
        let deadline = Instant::now() + within;
        loop {
            let mut leaders = BTreeSet::new();
            for n in self.nodes.iter().flatten() {
                leaders.insert(n.raft().metrics().borrow().current_leader);
            }
            if leaders.len() == 1
                && let Some(Some(l)) = leaders.first()
                && self.is_up(*l as usize)
            {
                return Ok(*l);
            }
            if Instant::now() >= deadline {
                return Err(format!("no agreed leader within {within:?}: {leaders:?}"));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Poll until every running node has applied the same index and holds the same state
    /// bytes, and every vote gate is open.
    pub async fn wait_converged(&self, within: Duration) -> Result<(u64, Vec<u8>), String> {
        let deadline = Instant::now() + within;
        loop {
            let states: Vec<_> = self.nodes.iter().flatten().map(|n| (n.local_state(), n.status())).collect();
            let first = &states[0].0;
            let same = states.iter().all(|(s, _)| s == first);
            let gates = states.iter().all(|(_, st)| st.gate_open);
            if same
                && gates
                && let Some(applied) = first.0
            {
                return Ok((applied, first.1.clone()));
            }
            if Instant::now() >= deadline {
                let summary: Vec<_> = states
                    .iter()
                    .map(|((idx, bytes), st)| {
                        format!(
                            "node {} applied {:?} state {} bytes gate {}",
                            st.id,
                            idx,
                            bytes.len(),
                            st.gate_open
                        )
                    })
                    .collect();
                return Err(format!("not converged within {within:?}: {summary:?}"));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub async fn shutdown(mut self) {
        for i in 0..self.n() {
            self.kill(i).await;
        }
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

fn copy_dir(src: &Path, dst: &Path) {
    std::fs::create_dir_all(dst).unwrap();
    for e in std::fs::read_dir(src).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), dst.join(e.file_name())).unwrap();
    }
}

/// Decode the converged state bytes.
pub fn state(bytes: &[u8]) -> GuessCounter {
    GuessCounter::restore(bytes).expect("state restores")
}
