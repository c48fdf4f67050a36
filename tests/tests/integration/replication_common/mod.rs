//! A loopback fleet of Raft nodes running a state machine (the guess-counter model or the
//! vault), with fault injection and the seeded fault scheduler. spec/fleet-replication.md.
//! Shared by the `replication_*` and `vault_fault` tests.
#![allow(dead_code, unreachable_pub)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bkv_node::replication::raft::guess_counter::GuessCounter;
use bkv_node::replication::raft::{
    FleetMembers, FleetNode, HsmPeer, Link, LinkFilter, NodeId, NodeOptions, RaftCommandLog, RaftNode, Timing,
};
use bkv_protocol::crypto::{Ed25519Signer, PublicKey, Signer};
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
    /// Cut the link between `a` and `b`, both ways.
    pub fn cut(&self, a: NodeId, b: NodeId) {
        let mut cut = self.cut.lock().unwrap();
        cut.insert((a, b));
        cut.insert((b, a));
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
pub struct Cluster<S = GuessCounter> {
    pub members: Arc<FleetMembers>,
    pub dirs: Vec<PathBuf>,
    make: Boot<S>,
    pub nodes: Vec<Option<RaftNode<S>>>,
    pub faults: Arc<Faults>,
    pub timing: Timing,
    pub root: PathBuf,
}

/// What node `i` starts with: its state machine, its node key, and its HSM if it has one
/// (called at every start, so an HSM restarts with its memory lost).
pub type Boot<S> =
    Arc<dyn Fn(usize) -> (S, Arc<dyn Signer + Send + Sync>, Option<Arc<dyn HsmPeer>>) + Send + Sync>;

/// A loopback listener on a port the OS chose, bound once and handed to the node's first
/// start.
fn bind_loopback() -> (std::net::TcpListener, std::net::SocketAddr) {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let a = l.local_addr().unwrap();
    (l, a)
}

impl Cluster<GuessCounter> {
    /// Start a fresh fleet of the guess-counter model and wait until it has a leader.
    pub async fn start(name: &str, n: usize, limit: u64, timing: Timing) -> Cluster {
        Cluster::start_with(name, n, timing, GuessCounter::new(limit)).await
    }
}

impl<S: StateMachine + Clone> Cluster<S> {
    /// Start a fresh fleet whose nodes begin from `initial`, and wait until it has a leader.
    pub async fn start_with(name: &str, n: usize, timing: Timing, initial: S) -> Cluster<S> {
        let signers: Vec<_> =
            (0..n).map(|i| Arc::new(Ed25519Signer::from_seed(&[i as u8 + 1; 32]))).collect();
        let keys = signers.iter().map(|s| s.public_key().clone()).collect();
        let initial = Mutex::new(initial);
        let boot: Boot<S> = Arc::new(move |i| {
            let signer: Arc<dyn Signer + Send + Sync> = signers[i].clone();
            (initial.lock().unwrap().clone(), signer, None)
        });
        Cluster::start_booted(name, timing, keys, boot).await
    }

    /// Start a fresh fleet whose node `i` has node key `keys[i]` and starts as `boot(i)`.
    pub async fn start_booted(name: &str, timing: Timing, keys: Vec<PublicKey>, boot: Boot<S>) -> Cluster<S> {
        let n = keys.len();
        let root = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let (listeners, addrs): (Vec<_>, Vec<_>) = (0..n).map(|_| bind_loopback()).unzip();
        let nodes = (0..n)
            .map(|i| FleetNode {
                id: i as NodeId,
                addr: addrs[i],
                key: keys[i].clone(),
                datacenter: format!("dc{}", i % 3),
            })
            .collect();
        let members = Arc::new(FleetMembers { fleet_id: "test-fleet".into(), epoch: 1, nodes });
        let dirs = (0..n).map(|i| root.join(format!("node{i}"))).collect();
        let mut c = Cluster {
            members,
            dirs,
            make: boot,
            nodes: (0..n).map(|_| None).collect(),
            faults: Arc::new(Faults::default()),
            timing,
            root,
        };
        for (i, listener) in listeners.into_iter().enumerate() {
            c.boot(i, true, Some(listener)).await;
        }
        c.wait_leader(Duration::from_secs(30)).await.expect("initial leader");
        c
    }

    async fn boot(&mut self, i: usize, bootstrap: bool, listener: Option<std::net::TcpListener>) {
        let (initial, signer, hsm) = (self.make)(i);
        let opts = NodeOptions {
            clock: bkv_client::clock::SystemClock::shared(),
            listener,
            id: i as NodeId,
            dir: self.dirs[i].clone(),
            signer,
            bootstrap,
            timing: self.timing,
            links: self.faults.clone(),
            tls: None,
            hsm,
        };
        let node = RaftNode::start(self.members.clone(), opts, initial)
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

    pub fn log(&self, i: usize) -> Option<RaftCommandLog<S>> {
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
        self.boot(i, false, None).await;
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
        self.boot(i, false, None).await;
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

/// Copy the files of `src` into `dst` (a node's database directory holds files only).
pub fn copy_dir(src: &Path, dst: &Path) {
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

/// What the scheduler did.
pub struct ChaosStats {
    pub rollbacks: usize,
    pub kills: usize,
    pub partitions: usize,
}

/// The seeded fault scheduler of the fault tests, run for `duration` against `c` while
/// clients load it. It kills and restarts nodes, restarts nodes from an older copy of their
/// disk, partitions the network and delays links; `event` receives a line per fault and
/// `changed` is called whenever the set of running nodes changes.
pub async fn chaos<S: StateMachine + Clone>(
    c: &mut Cluster<S>,
    seed: u64,
    duration: Duration,
    mut event: impl FnMut(String),
    mut changed: impl FnMut(&Cluster<S>),
) -> ChaosStats {
    use rand_chacha::ChaCha8Rng;
    use rand_core::{RngCore, SeedableRng};
    let begin = Instant::now();
    let nodes = c.n();
    // The seeded scheduler. It stays inside the fault model of spec §8: at most
    // n - q = 2 nodes faulty at a time, where faulty = down, cut off by the current
    // partition, or restarted from an older disk and not yet caught up; and at most one
    // node restarted from an older disk and not yet caught up.
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    // copies[i] = (older disk of node i, the downtime it was taken in).
    let mut copies: Vec<Option<(PathBuf, u64)>> = vec![None; nodes];
    // recovering = (node, log index it must apply) after a restart from an older disk.
    let mut recovering: Option<(usize, u64)>;
    let mut side: Vec<u64> = Vec::new();
    let mut downtime = 0u64;
    let (mut rollbacks, mut kills, mut partitions) = (0, 0, 0);
    // Every run starts with one scripted restart from an older disk, under load, so that
    // even the short run covers it; the random schedule may add more.
    {
        let i = (rng.next_u64() % nodes as u64) as usize;
        c.kill(i).await;
        let old = c.copy_disk(i, "scripted");
        c.restart(i).await;
        changed(c);
        event(format!("kill node {i} (disk copied), restart"));
        tokio::time::sleep(Duration::from_millis(1500)).await;
        c.kill(i).await;
        let target = c.nodes.iter().flatten().filter_map(|n| n.status().last_log_id.map(|l| l.index)).max();
        let target = target.unwrap_or(0);
        c.restart_from(i, &old).await;
        changed(c);
        recovering = Some((i, target));
        rollbacks += 1;
        kills += 2;
        event(format!("restart node {i} from its older disk (scripted), must reach {target}"));
    }
    while begin.elapsed() < duration {
        tokio::time::sleep(Duration::from_millis(150 + rng.next_u64() % 450)).await;
        if let Some((i, target)) = recovering
            && let Some(node) = c.nodes[i].as_ref()
        {
            let st = node.status();
            if st.gate_open && st.last_applied.is_some_and(|a| a >= target) {
                event(format!("node {i} caught up after its older disk"));
                recovering = None;
            }
        }
        let down: Vec<usize> = (0..nodes).filter(|&i| !c.is_up(i)).collect();
        let faulty = |extra: &[usize], side: &[u64]| -> usize {
            let mut f: BTreeSet<usize> = down.iter().copied().chain(extra.iter().copied()).collect();
            f.extend(recovering.map(|r| r.0));
            f.extend(side.iter().map(|&n| n as usize));
            f.len()
        };
        match rng.next_u64() % 5 {
            0 | 1 => {
                let up = c.up();
                let i = up[(rng.next_u64() % up.len() as u64) as usize];
                if faulty(&[i], &side) > 2 {
                    continue;
                }
                c.kill(i).await;
                kills += 1;
                downtime += 1;
                let mut note = String::new();
                if copies[i].is_none() && rng.next_u64() % 2 == 0 {
                    copies[i] = Some((c.copy_disk(i, &downtime.to_string()), downtime));
                    note = " (disk copied)".into();
                }
                event(format!("kill node {i}{note}"));
            }
            2 if !down.is_empty() => {
                let i = down[(rng.next_u64() % down.len() as u64) as usize];
                match copies[i].clone() {
                    Some((path, taken))
                        if taken < downtime
                            && recovering.is_none_or(|r| r.0 == i)
                            && rng.next_u64() % 2 == 0 =>
                    {
                        let target = c
                            .nodes
                            .iter()
                            .flatten()
                            .filter_map(|n| n.status().last_log_id.map(|l| l.index))
                            .max()
                            .unwrap_or(0);
                        event(format!(
                            "restart node {i} from its older disk (copy {taken}), must reach {target}"
                        ));
                        c.restart_from(i, &path).await;
                        copies[i] = None;
                        recovering = Some((i, target));
                        rollbacks += 1;
                    }
                    _ => {
                        event(format!("restart node {i}"));
                        c.restart(i).await;
                    }
                }
            }
            3 => {
                c.faults.heal();
                side.clear();
                // Cut off 1 or 2 nodes, within the fault budget: nodes already faulty are free.
                let budget = 2 - faulty(&[], &[]).min(2);
                let already: Vec<u64> = (0..nodes)
                    .filter(|&i| down.contains(&i) || recovering.is_some_and(|r| r.0 == i))
                    .map(|i| i as u64)
                    .collect();
                let size = 1 + (rng.next_u64() % 2) as usize;
                let mut cut = BTreeSet::new();
                for _ in 0..20 {
                    if cut.len() >= size {
                        break;
                    }
                    let n = rng.next_u64() % nodes as u64;
                    let extra = cut.iter().filter(|x| !already.contains(x)).count();
                    if already.contains(&n) || extra < budget {
                        cut.insert(n);
                    }
                }
                let cut: Vec<u64> = cut.into_iter().collect();
                if cut.is_empty() || faulty(&[], &cut) > 2 {
                    event("heal".into());
                    continue;
                }
                c.faults.partition(&cut, nodes);
                side = cut;
                partitions += 1;
                event(format!("partition {side:?} from the rest"));
            }
            _ => {
                c.faults.heal();
                side.clear();
                for _ in 0..3 {
                    let (a, b) = (rng.next_u64() % nodes as u64, rng.next_u64() % nodes as u64);
                    let d = Duration::from_millis(rng.next_u64() % 150);
                    c.faults.delay(a, b, d);
                }
                event("heal; delay 3 random links".into());
            }
        }
        changed(c);
    }
    ChaosStats { rollbacks, kills, partitions }
}

/// The seed of a fault run: `BKV_FAULT_SEED` (hex) or `default`. Every report prints it.
pub fn seed_from_env(default: u64) -> u64 {
    std::env::var("BKV_FAULT_SEED")
        .ok()
        .and_then(|s| u64::from_str_radix(s.trim_start_matches("0x"), 16).ok())
        .unwrap_or(default)
}

/// The runs of a long fault test: `BKV_FAULT_RUNS` consecutive seeds (default 5) from
/// `BKV_FAULT_SEED` or the clock, `BKV_FAULT_SECS` seconds of faults each (default 60).
pub fn long_runs() -> Vec<(u64, Duration)> {
    let env = |k: &str, d: u64| std::env::var(k).ok().and_then(|s| s.parse().ok()).unwrap_or(d);
    let (runs, secs) = (env("BKV_FAULT_RUNS", 5), env("BKV_FAULT_SECS", 60));
    let clock = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_secs();
    let base = seed_from_env(clock);
    (0..runs).map(|r| (base.wrapping_add(r), Duration::from_secs(secs))).collect()
}
