//! Majority-consensus replication of a [`StateMachine`] with openraft.
//!
//! spec/fleet-replication.md. Each fleet node runs one [`RaftNode`]: a redb-backed Raft log
//! and state-machine store ([`store`]), an authenticated HTTP transport and the vote gate
//! ([`net`], [`auth`]), and a [`RaftCommandLog`] that implements
//! [`CommandLog`](super::CommandLog): `propose` commits on a majority (forwarding to the
//! leader), `read` is a read-index linearizable query, and both answer
//! [`Unavailable`](super::Unavailable) (`fleet.unavailable`) when no majority is reachable
//! in time.
//!
//! The vault plugs in by implementing `bkv_protocol::state_machine::StateMachine` and
//! passing its initial value to [`RaftNode::start`].

pub mod auth;
pub mod bench;
pub mod forged;
pub mod guess_counter;
pub mod net;
pub mod scale;
pub mod stages;
mod store;

use std::collections::BTreeMap;
use std::io::Cursor;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use bkv_protocol::crypto::{PublicKey, Signer};
use bkv_protocol::state_machine::StateMachine;
use openraft::error::{ClientWriteError, RaftError};
use openraft::{BasicNode, Config, Raft, SnapshotPolicy};
use serde::{Deserialize, Serialize};

use super::{CommandLog, Unavailable};
use bkv_client::clock::SharedClock;
use net::{CallError, ForwardReply, NetCtx, NodeStatus, RaftReply, dec, enc};
use stages::{Stage, Stages};
use store::{Applied, LogStore, SmStore};

/// Raft node id: the node's 0-based position in the FleetKeySet (§2.1).
pub type NodeId = u64;

/// spec/fleet-replication.md §1 item 4: the state-machine commands a Raft log entry
/// carries, applied in order (the leader groups the commands that arrive while its previous
/// entry commits).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Command(pub Vec<serde_bytes::ByteBuf>);

/// The outputs of applying a [`Command`], one per command, in order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Output(pub Vec<serde_bytes::ByteBuf>);

/// The most commands the leader puts into one log entry.
const MAX_GROUP: usize = 256;

/// One command waiting for the next group, and where its output goes.
type Waiting = (Vec<u8>, tokio::sync::oneshot::Sender<ForwardReply>);

/// spec/fleet-replication.md §1 item 4 and §3: the leader's group commit. Commands queue
/// here while an entry is being committed; the next entry carries all of them (at most
/// [`MAX_GROUP`]), and each waiting caller gets its own command's output. One entry is in
/// flight at a time: openraft appends one entry per call and waits for its flush, so more
/// in flight only made the groups smaller (BENCHMARKS.md). Ends when the node's [`Shared`]
/// is gone.
async fn group_commit(
    raft: Raft<TypeConfig>,
    mut rx: tokio::sync::mpsc::UnboundedReceiver<Waiting>,
    timeout: Duration,
    stages: Arc<Stages>,
) {
    while let Some(first) = rx.recv().await {
        let mut group = vec![first];
        while group.len() < MAX_GROUP {
            match rx.try_recv() {
                Ok(w) => group.push(w),
                Err(_) => break,
            }
        }
        commit_group(&raft, group, timeout, &stages).await;
    }
}

/// Commit one group as one entry and answer each of its callers.
async fn commit_group(raft: &Raft<TypeConfig>, group: Vec<Waiting>, timeout: Duration, stages: &Stages) {
    let (commands, waiting): (Vec<_>, Vec<_>) =
        group.into_iter().map(|(c, tx)| (serde_bytes::ByteBuf::from(c), tx)).unzip();
    let n = commands.len();
    stages.group(n);
    let started = Instant::now();
    let result = tokio::time::timeout(timeout, raft.client_write(Command(commands))).await;
    stages.record(Stage::Commit, started);
    let replies: Vec<ForwardReply> = match result {
        Err(_) => vec![ForwardReply::Unavailable("commit timed out".into()); n],
        Ok(Ok(r)) if r.data.0.len() == n => {
            r.data.0.into_iter().map(|o| ForwardReply::Ok(o.into_vec())).collect()
        }
        Ok(Ok(_)) => {
            vec![ForwardReply::Unavailable("an entry's outputs do not match its commands".into()); n]
        }
        Ok(Err(RaftError::APIError(ClientWriteError::ForwardToLeader(f)))) => {
            vec![ForwardReply::NotLeader(f.leader_id); n]
        }
        Ok(Err(e)) => vec![ForwardReply::Unavailable(e.to_string()); n],
    };
    for (tx, reply) in waiting.into_iter().zip(replies) {
        let _ = tx.send(reply);
    }
}

openraft::declare_raft_types!(
    /// openraft type configuration of a bkv fleet.
    pub TypeConfig:
        D = Command,
        R = Output,
        NodeId = NodeId,
        Node = BasicNode,
        SnapshotData = Cursor<Vec<u8>>,
);

/// One node of the FleetKeySet (§2.1).
#[derive(Debug, Clone)]
pub struct FleetNode {
    /// Raft node id (position in the FleetKeySet).
    pub id: NodeId,
    /// Where its node-to-node endpoint listens.
    pub addr: SocketAddr,
    /// Its Ed25519 node signing key.
    pub key: PublicKey,
    /// Datacenter label (informational).
    pub datacenter: String,
}

/// The voters of one fleet epoch: exactly the FleetKeySet nodes (§2).
#[derive(Debug, Clone)]
pub struct FleetMembers {
    /// Fleet id.
    pub fleet_id: String,
    /// Epoch.
    pub epoch: u64,
    /// The nodes, ids `0..n`.
    pub nodes: Vec<FleetNode>,
}

impl FleetMembers {
    /// `floor(n / 2) + 1` (§2.3).
    pub fn quorum(&self) -> usize {
        self.nodes.len() / 2 + 1
    }

    /// The voters of a FleetKeySet (§2.1): node `i` of `ks.nodes` gets id `i`, its signing
    /// key and datacenter; `addrs[i]` is where it listens (deployment configuration, not
    /// part of the bundle).
    pub fn from_key_set(
        ks: &bkv_protocol::validation_bundle::FleetKeySet,
        addrs: &[SocketAddr],
    ) -> Result<Self, bkv_protocol::Error> {
        if addrs.len() != ks.nodes.len() {
            return Err(bkv_protocol::Error::BundleKeySetInvalid);
        }
        let nodes = ks
            .nodes
            .iter()
            .zip(addrs)
            .enumerate()
            .map(|(i, (n, addr))| {
                Ok(FleetNode {
                    id: i as NodeId,
                    addr: *addr,
                    key: n.signing_key().ok_or(bkv_protocol::Error::BundleKeySetInvalid)?,
                    datacenter: n.datacenter.clone(),
                })
            })
            .collect::<Result<_, bkv_protocol::Error>>()?;
        Ok(Self { fleet_id: ks.fleet_id.clone(), epoch: ks.epoch, nodes })
    }

    /// The node with this id.
    pub fn node(&self, id: NodeId) -> Option<&FleetNode> {
        self.nodes.iter().find(|n| n.id == id)
    }
}

impl auth::KeyDirectory for FleetMembers {
    fn fleet_id(&self) -> &str {
        &self.fleet_id
    }
    fn epoch(&self) -> u64 {
        self.epoch
    }
    fn node_key(&self, node: NodeId) -> Option<&PublicKey> {
        self.node(node).map(|n| &n.key)
    }
}

/// Timing parameters.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    /// Leader heartbeat interval.
    pub heartbeat_ms: u64,
    /// Election timeout range.
    pub election_min_ms: u64,
    /// Election timeout range.
    pub election_max_ms: u64,
    /// Freshness window W of node RPCs (§4.2 step 6) and the wait before the gate poll (§6.3).
    pub window_ms: u64,
    /// Bound after which a client gets `fleet.unavailable` (§7.1).
    pub op_timeout: Duration,
    /// Build a snapshot every this many applied entries (§6.2).
    pub snapshot_every: u64,
}

impl Default for Timing {
    fn default() -> Self {
        Self {
            heartbeat_ms: 100,
            election_min_ms: 500,
            election_max_ms: 1000,
            window_ms: 2000,
            op_timeout: Duration::from_secs(5),
            snapshot_every: 500,
        }
    }
}

impl Timing {
    /// Short timeouts for loopback tests.
    pub fn fast() -> Self {
        Self {
            heartbeat_ms: 50,
            election_min_ms: 200,
            election_max_ms: 400,
            window_ms: 1000,
            op_timeout: Duration::from_secs(3),
            snapshot_every: 40,
        }
    }
}

/// What the network does to messages from one node to another (fault injection).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Link {
    /// Delivered.
    Up,
    /// Dropped.
    Down,
    /// Delivered after a delay.
    Delay(Duration),
}

/// Decides the fate of each message between two nodes. Production uses [`AllUp`].
pub trait LinkFilter: Send + Sync + 'static {
    /// The link from `from` to `to`, consulted for every request and every reply.
    fn link(&self, from: NodeId, to: NodeId) -> Link;
}

/// Every link is up.
pub struct AllUp;

impl LinkFilter for AllUp {
    fn link(&self, _: NodeId, _: NodeId) -> Link {
        Link::Up
    }
}

/// How to start one node.
pub struct NodeOptions {
    /// This node's id.
    pub id: NodeId,
    /// Directory of its redb database.
    pub dir: PathBuf,
    /// Its node signing key (the HSM boundary).
    pub signer: Arc<dyn Signer + Send + Sync>,
    /// Initialize the voter set: only at the first start of a fresh fleet (§2.4).
    pub bootstrap: bool,
    /// Timing.
    pub timing: Timing,
    /// Fault injection; [`AllUp`] in production.
    pub links: Arc<dyn LinkFilter>,
    /// The clock of the RPC window (spec/fleet-replication.md §4).
    pub clock: SharedClock,
    /// The node-to-node listener, already bound to this node's address (the first start
    /// of a fleet, whose addresses were chosen by binding them); `None`: bind the address.
    pub listener: Option<std::net::TcpListener>,
    /// TLS on the node-to-node listener, and `https://` to every peer; `None`: plain HTTP.
    /// Confidentiality only: peers are authenticated by the signed envelope (§4).
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// The node's HSM, which answers `ack` RPCs (spec/hsm.md §4.3); `None` for a state
    /// machine without one (the guess-counter model).
    pub hsm: Option<Arc<dyn HsmPeer>>,
}

/// What the transport asks of a node's HSM (spec/hsm.md §4.3, §6 rule 4).
pub trait HsmPeer: Send + Sync {
    /// Entries applied.
    fn position(&self) -> u64;
    /// A `SignedAck` of `position`, or the HSM's refusal code.
    fn ack(&self, position: u64) -> Result<Vec<u8>, &'static str>;
    /// The position to have acknowledged by others when the HSM is unverified.
    fn unverified(&self) -> Option<u64>;
    /// Offer acknowledgements to an unverified HSM.
    fn verify(&self, acks: &[Vec<u8>]) -> Result<(), &'static str>;
    /// What `status` reports (spec/fleet-replication.md §9).
    fn report(&self) -> net::HsmReport;
}

impl HsmPeer for bkv_protocol::hsm::Boundary {
    fn position(&self) -> u64 {
        bkv_protocol::hsm::Boundary::position(self)
    }
    fn ack(&self, position: u64) -> Result<Vec<u8>, &'static str> {
        bkv_protocol::hsm::Boundary::ack(self, position).map_err(|e| e.code())
    }
    fn unverified(&self) -> Option<u64> {
        match self.status().status {
            bkv_protocol::hsm::Status::Unverified { .. } => Some(self.position()),
            _ => None,
        }
    }
    fn verify(&self, acks: &[Vec<u8>]) -> Result<(), &'static str> {
        bkv_protocol::hsm::Boundary::verify(self, acks).map_err(|e| e.code())
    }
    fn report(&self) -> net::HsmReport {
        let s = self.status();
        net::HsmReport {
            position: s.position,
            mark: s.mark.position,
            status: s.status.as_str().into(),
            disk_behind_mark: s.position < s.mark.position,
            writes: s.writes,
            retired: s.retired,
        }
    }
}

/// One `leader elected` event per leader change seen by node `id` (with the term), until
/// the node shuts down and its metrics channel closes.
async fn log_leader_changes(
    id: NodeId,
    mut metrics: tokio::sync::watch::Receiver<openraft::RaftMetrics<NodeId, BasicNode>>,
    count: Arc<std::sync::atomic::AtomicU64>,
) {
    let mut last: Option<(NodeId, u64)> = None;
    loop {
        let now = {
            let m = metrics.borrow_and_update();
            m.current_leader.map(|leader| (leader, m.current_term))
        };
        if let Some((leader, term)) = now
            && last.is_none_or(|(l, t)| l != leader || t != term)
        {
            tracing::info!(node = id, leader, term, "leader elected");
            count.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            last = now;
        }
        if metrics.changed().await.is_err() {
            return;
        }
    }
}

/// Errors starting a node.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// Storage could not be opened or restored.
    #[error("storage: {0}")]
    Storage(String),
    /// The listen address could not be bound.
    #[error("bind {0}: {1}")]
    Bind(SocketAddr, std::io::Error),
    /// openraft refused the configuration or failed.
    #[error("raft: {0}")]
    Raft(String),
    /// The node id is not in the member list.
    #[error("node {0} is not a member of the fleet")]
    NotAMember(NodeId),
}

impl StartError {
    /// Stable code (spec/conventions.md §8).
    pub fn code(&self) -> &'static str {
        match self {
            StartError::Storage(_) => "node.start.storage",
            StartError::Bind(..) => "node.start.bind",
            StartError::Raft(_) => "node.start.raft",
            StartError::NotAMember(_) => "node.start.member",
        }
    }
}

struct Shared<S> {
    net: Arc<NetCtx>,
    raft: Raft<TypeConfig>,
    /// Commands for the next group-committed entry ([`group_commit`]).
    group: tokio::sync::mpsc::UnboundedSender<Waiting>,
    applied: Arc<Mutex<Applied<S>>>,
    log: Mutex<Option<LogStore>>,
    hsm: Option<Arc<dyn HsmPeer>>,
    alive: std::sync::atomic::AtomicBool,
    /// Leader changes (a new leader or a new term) this node has seen.
    leader_changes: Arc<std::sync::atomic::AtomicU64>,
}

/// A running fleet node.
pub struct RaftNode<S> {
    shared: Arc<Shared<S>>,
    server: tokio::task::JoinHandle<()>,
    stop_server: Option<tokio::sync::oneshot::Sender<()>>,
    gate: tokio::task::JoinHandle<()>,
    /// The node's database, to see when every handle on it is gone.
    db: std::sync::Weak<redb::Database>,
}

async fn retry_until<T, E: std::fmt::Display>(
    deadline: Instant,
    mut f: impl FnMut() -> Result<T, E>,
) -> Result<T, String> {
    loop {
        match f() {
            Ok(v) => return Ok(v),
            Err(e) if Instant::now() >= deadline => return Err(e.to_string()),
            Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
}

impl<S: StateMachine> RaftNode<S> {
    /// Open the node's storage in `opts.dir`, start Raft, the HTTP endpoint on the node's
    /// address, and the vote gate (§6.3). `initial` is the state machine used when the
    /// storage holds no snapshot.
    pub async fn start(
        members: Arc<FleetMembers>,
        opts: NodeOptions,
        initial: S,
    ) -> Result<Self, StartError> {
        let me = members.node(opts.id).ok_or(StartError::NotAMember(opts.id))?.clone();
        std::fs::create_dir_all(&opts.dir).map_err(|e| StartError::Storage(e.to_string()))?;
        // A previous incarnation in this process may still be letting go of the file.
        let deadline = Instant::now() + Duration::from_secs(10);
        let path = opts.dir.join("raft.redb");
        let db = retry_until(deadline, || store::open_db(&path)).await.map_err(StartError::Storage)?;
        let stages = Arc::new(Stages::default());
        let log = LogStore::new(db.clone(), opts.id, stages.clone());
        let db_handle = Arc::downgrade(&db);
        let sm = SmStore::open(db, initial).map_err(StartError::Storage)?;
        let applied = sm.applied.clone();
        let t = opts.timing;
        let config = Config {
            cluster_name: format!("{}-{}", members.fleet_id, members.epoch),
            heartbeat_interval: t.heartbeat_ms,
            election_timeout_min: t.election_min_ms,
            election_timeout_max: t.election_max_ms,
            snapshot_policy: SnapshotPolicy::LogsSinceLast(t.snapshot_every),
            max_in_snapshot_log_to_keep: t.snapshot_every / 2,
            install_snapshot_timeout: 1000,
            // One chunk must travel within `install_snapshot_timeout` on a loaded node.
            snapshot_max_chunk_size: 1 << 20,
            // §6.3: no candidacy before the vote gate has polled and this node's log has
            // reached what the poll saw (enabled by `run_gate`).
            enable_elect: false,
            ..Default::default()
        }
        .validate()
        .map_err(|e| StartError::Raft(e.to_string()))?;
        let net = Arc::new(NetCtx {
            id: opts.id,
            members: members.clone(),
            signer: opts.signer,
            timing: t,
            links: opts.links,
            clock: opts.clock,
            scheme: if opts.tls.is_some() { "https" } else { "http" },
            http: bkv_client::http::builder()
                .tcp_nodelay(true)
                .pool_idle_timeout(Duration::from_secs(2))
                .build()
                .map_err(|e| StartError::Raft(e.to_string()))?,
            gate: net::Gate::default(),
            stages: stages.clone(),
        });
        let raft =
            Raft::new(opts.id, Arc::new(config), net::NetFactory { ctx: net.clone() }, log.clone(), sm)
                .await
                .map_err(|e| StartError::Raft(e.to_string()))?;
        if opts.bootstrap && !raft.is_initialized().await.map_err(|e| StartError::Raft(e.to_string()))? {
            let voters: BTreeMap<NodeId, BasicNode> =
                members.nodes.iter().map(|n| (n.id, BasicNode::new(n.addr.to_string()))).collect();
            raft.initialize(voters).await.map_err(|e| StartError::Raft(e.to_string()))?;
        }
        let (group, group_rx) = tokio::sync::mpsc::unbounded_channel();
        tokio::spawn(group_commit(raft.clone(), group_rx, t.op_timeout, stages));
        let shared = Arc::new(Shared {
            net: net.clone(),
            raft,
            group,
            applied,
            log: Mutex::new(Some(log.clone())),
            hsm: opts.hsm.clone(),
            alive: true.into(),
            leader_changes: Arc::default(),
        });
        let bound = match opts.listener.map(|l| {
            l.set_nonblocking(true)?;
            tokio::net::TcpListener::from_std(l)
        }) {
            Some(Err(e)) => {
                let _ = shared.raft.shutdown().await;
                return Err(StartError::Bind(me.addr, e));
            }
            Some(Ok(l)) => Some(l),
            None => None,
        };
        let listener = if let Some(l) = bound {
            l
        } else {
            let deadline = Instant::now() + Duration::from_secs(10);
            loop {
                match tokio::net::TcpListener::bind(me.addr).await {
                    Ok(l) => break l,
                    Err(e) if Instant::now() >= deadline => {
                        let _ = shared.raft.shutdown().await;
                        return Err(StartError::Bind(me.addr, e));
                    }
                    Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
                }
            }
        };
        // Peers are few and authenticated per RPC; the caps only bound what a stranger on
        // the node-to-node port can hold.
        let limits =
            bkv_serve::Limits { max_per_client: 256, max_body: 64 << 20, ..bkv_serve::Limits::default() };
        // axum's own body limit (2 MiB unless set) would refuse snapshot chunks and large
        // append batches with 413, and a lagging node would never catch up: the node-to-node
        // body limit is `limits.max_body`.
        let app = axum::Router::new()
            .route(net::RPC_PATH, axum::routing::post(rpc_handler::<S>))
            .route(net::STATUS_PATH, axum::routing::get(status_handler::<S>))
            .layer(axum::extract::DefaultBodyLimit::max(limits.max_body))
            .with_state(shared.clone());
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let server =
            tokio::spawn(bkv_serve::serve(listener, app, limits, opts.tls, Arc::new(|_| {}), async move {
                let _ = rx.await;
            }));
        tokio::spawn(log_leader_changes(opts.id, shared.raft.metrics(), shared.leader_changes.clone()));
        #[cfg(feature = "fault-injection")]
        if crate::fault_injection::vote_gate_disabled(&opts.dir) {
            tracing::warn!(node = opts.id, "fault injection: no vote gate");
            net.gate.open(0, None);
            net.gate.lifted.store(true, std::sync::atomic::Ordering::SeqCst);
            shared.raft.runtime_config().elect(true);
        }
        if shared.hsm.is_some() {
            tokio::spawn(verify_hsm(Arc::downgrade(&shared)));
        }
        let gate =
            tokio::spawn(net::run_gate(net, shared.raft.clone(), move || log.last_log_id().ok().flatten()));
        Ok(Self { shared, server, stop_server: Some(tx), gate, db: db_handle })
    }

    /// The [`CommandLog`] clients of this node use.
    pub fn command_log(&self) -> RaftCommandLog<S> {
        RaftCommandLog { shared: self.shared.clone() }
    }

    /// This node's commit-path counters ([`stages`]).
    pub fn stages(&self) -> &Stages {
        &self.shared.net.stages
    }

    /// The openraft handle (metrics, leader, etc.).
    pub fn raft(&self) -> &Raft<TypeConfig> {
        &self.shared.raft
    }

    /// This node's status (§6.3 `status`, `bkv fleet status`).
    pub fn status(&self) -> NodeStatus {
        self.shared.status()
    }

    /// `StateMachine::snapshot()` of the locally applied state and the last applied index
    /// (for convergence checks).
    pub fn local_state(&self) -> (Option<u64>, Vec<u8>) {
        let a = self.shared.applied.lock().expect("state machine lock");
        (a.last_applied.map(|l| l.index), a.sm.digest())
    }

    /// Stop the node: Raft, the endpoint and the gate. The storage is closed when this returns:
    /// nothing of this incarnation writes the node's disk any more, so a copy of it is a state
    /// a crash could leave (the restart-from-an-older-disk tests copy it). If a handle on the
    /// database is still held after 10 s, that is logged and this returns anyway.
    pub async fn shutdown(mut self) {
        self.shared.alive.store(false, std::sync::atomic::Ordering::SeqCst);
        let _ = self.shared.raft.shutdown().await;
        self.shared.log.lock().expect("log lock").take();
        self.gate.abort();
        if let Some(tx) = self.stop_server.take() {
            let _ = tx.send(());
        }
        if tokio::time::timeout(Duration::from_secs(3), &mut self.server).await.is_err() {
            self.server.abort();
        }
        // openraft does not wait for its state-machine worker or a snapshot build, which hold
        // the database (and may be writing a snapshot) after `Raft::shutdown` returns.
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.db.strong_count() > 0 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        if self.db.strong_count() > 0 {
            tracing::warn!(node = self.shared.net.id, "storage still in use 10 s after shutdown");
        }
    }
}

/// spec/hsm.md §6 rule 4: while the node's HSM is unverified, ask the other nodes to
/// acknowledge its position (every 200 ms, until the node stops).
async fn verify_hsm<S: StateMachine>(shared: std::sync::Weak<Shared<S>>) {
    let mut last = String::from("current");
    loop {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let Some(sh) = shared.upgrade() else { return };
        if !sh.alive.load(std::sync::atomic::Ordering::SeqCst) {
            return;
        }
        let Some(hsm) = sh.hsm.clone() else { return };
        // spec/hsm.md §4.1: a rollback is an error with both positions, once per change.
        let r = hsm.report();
        if r.status != last {
            match r.status.as_str() {
                "current" => {
                    tracing::info!(node = sh.net.id, position = r.position, mark = r.mark, "HSM current")
                }
                "behind" => tracing::error!(
                    node = sh.net.id,
                    disk = r.position,
                    mark = r.mark,
                    "hsm.state.behind: the node's disk is behind its HSM mark (rolled back or lagging); \
                     it answers nothing until it has re-applied the entries up to the mark"
                ),
                "diverged" => tracing::error!(
                    node = sh.net.id,
                    disk = r.position,
                    mark = r.mark,
                    "hsm.state.diverged: the entries on the node's disk differ from those its HSM \
                     acknowledged at the mark (a rolled-back or edited disk)"
                ),
                other => {
                    tracing::warn!(node = sh.net.id, position = r.position, mark = r.mark, "HSM {other}")
                }
            }
            last = r.status.clone();
        }
        if let Some(position) = hsm.unverified() {
            let acks = sh.collect_acks(position, usize::MAX, Duration::from_secs(1)).await;
            match hsm.verify(&acks) {
                Ok(()) => tracing::info!(node = sh.net.id, position, "HSM verified its snapshot by a quorum"),
                Err(code) => tracing::debug!(node = sh.net.id, position, code, "HSM still unverified"),
            }
        }
    }
}

impl<S: StateMachine> Shared<S> {
    /// spec/hsm.md §4.3: `SignedAck`s of `position` from the other nodes, until `want` of
    /// them answered or `within` passed.
    async fn collect_acks(&self, position: u64, want: usize, within: Duration) -> Vec<Vec<u8>> {
        let mut calls = tokio::task::JoinSet::new();
        for n in &self.net.members.nodes {
            if n.id == self.net.id {
                continue;
            }
            let (net, to) = (self.net.clone(), n.id);
            calls.spawn(async move { net.call(to, auth::RpcKind::Ack, enc(&position), within).await });
        }
        let mut acks = Vec::new();
        let deadline = tokio::time::Instant::now() + within;
        while acks.len() < want {
            match tokio::time::timeout_at(deadline, calls.join_next()).await {
                Ok(Some(Ok(Ok(body)))) => {
                    if let Ok(ForwardReply::Ok(ack)) = dec::<ForwardReply>(&body) {
                        acks.push(ack);
                    }
                }
                Ok(Some(_)) => {}
                Ok(None) | Err(_) => break,
            }
        }
        acks
    }

    /// The `ack` RPC (spec/fleet-replication.md §4 rule 6): wait until the HSM applied
    /// `position`, then ask it.
    async fn ack_local(&self, body: &[u8], remaining: Duration) -> ForwardReply {
        let Some(hsm) = self.hsm.clone() else {
            return ForwardReply::Unavailable("no HSM".into());
        };
        let Ok(position) = dec::<u64>(body) else {
            return ForwardReply::Unavailable("cbor.schema".into());
        };
        if !self.wait_applied(hsm.as_ref(), position, remaining).await {
            return ForwardReply::Unavailable("hsm.state.behind".into());
        }
        match hsm.ack(position) {
            Ok(ack) => ForwardReply::Ok(ack),
            Err(code) => ForwardReply::Unavailable(code.into()),
        }
    }

    /// Wait until `hsm` has applied `position`, for at most `within` and while this node
    /// runs; whether it has.
    async fn wait_applied(&self, hsm: &dyn HsmPeer, position: u64, within: Duration) -> bool {
        let deadline = Instant::now() + within;
        while hsm.position() < position {
            if Instant::now() >= deadline || !self.alive.load(std::sync::atomic::Ordering::SeqCst) {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        true
    }

    fn status(&self) -> NodeStatus {
        let m = self.raft.metrics().borrow().clone();
        let (last_log_id, committed) = {
            let log = self.log.lock().expect("log lock");
            let log = log.as_ref();
            (
                log.and_then(|l| l.last_log_id().ok()).flatten(),
                log.and_then(|l| l.committed_log_id().ok()).flatten().map(|c| c.index),
            )
        };
        NodeStatus {
            id: self.net.id,
            term: m.current_term,
            last_log_id,
            committed,
            last_applied: m.last_applied.map(|l| l.index),
            leader: m.current_leader,
            gate_open: self.net.gate.is_open(),
            state: format!("{:?}", m.state).to_lowercase(),
            datacenter: self.net.members.node(self.net.id).map(|n| n.datacenter.clone()).unwrap_or_default(),
            matched: m
                .replication
                .as_ref()
                .map(|r| r.iter().map(|(k, v)| (*k, v.map(|l| l.index))).collect())
                .unwrap_or_default(),
            hsm: self.hsm.as_ref().map(|h| h.report()),
        }
    }

    fn unavailable(&self, what: &str) -> Unavailable {
        Unavailable(format!("{what}: no majority within {:?}", self.net.timing.op_timeout))
    }

    /// Commit on the leader, from this node (§3.2-3.3), in the next group ([`group_commit`]).
    async fn write_local(&self, cmd: Vec<u8>, remaining: Duration) -> ForwardReply {
        let (tx, rx) = tokio::sync::oneshot::channel();
        if self.group.send((cmd, tx)).is_err() {
            return ForwardReply::Unavailable("the node is stopping".into());
        }
        match tokio::time::timeout(remaining, rx).await {
            Err(_) => ForwardReply::Unavailable("commit timed out".into()),
            Ok(Err(_)) => ForwardReply::Unavailable("the node is stopping".into()),
            Ok(Ok(reply)) => reply,
        }
    }

    /// Read-index query on the leader (§5).
    async fn read_local(&self, query: &[u8], remaining: Duration) -> ForwardReply {
        match tokio::time::timeout(remaining, self.raft.ensure_linearizable()).await {
            Err(_) => ForwardReply::Unavailable("read index not confirmed in time".into()),
            Ok(Ok(_)) => {
                let a = self.applied.lock().expect("state machine lock");
                ForwardReply::Ok(a.sm.query(query))
            }
            Ok(Err(RaftError::APIError(openraft::error::CheckIsLeaderError::ForwardToLeader(f)))) => {
                ForwardReply::NotLeader(f.leader_id)
            }
            Ok(Err(e)) => ForwardReply::Unavailable(e.to_string()),
        }
    }

    /// Send `kind` to the leader `l` (counted as [`Stage::Forward`] for proposals).
    async fn forward(
        &self,
        l: NodeId,
        kind: auth::RpcKind,
        payload: Vec<u8>,
        remaining: Duration,
    ) -> Result<Vec<u8>, CallError> {
        let started = Instant::now();
        let r = self.net.call(l, kind, payload, remaining).await;
        if kind == auth::RpcKind::Propose {
            self.net.stages.record(Stage::Forward, started);
        }
        r
    }

    /// Run `kind` (`propose` or `read`) on the leader, forwarding if needed, until the
    /// deadline (§3.3, §5, §7).
    async fn submit(&self, kind: auth::RpcKind, payload: Vec<u8>) -> Result<Vec<u8>, Unavailable> {
        let deadline = Instant::now() + self.net.timing.op_timeout;
        let backoff = Duration::from_millis(self.net.timing.heartbeat_ms.max(10));
        loop {
            let remaining = deadline.saturating_duration_since(Instant::now());
            if remaining.is_zero() || !self.alive.load(std::sync::atomic::Ordering::SeqCst) {
                return Err(self.unavailable(kind.as_str()));
            }
            let leader = self.raft.metrics().borrow().current_leader;
            let reply = match leader {
                None => None,
                Some(l) if l == self.net.id => Some(if kind == auth::RpcKind::Propose {
                    self.write_local(payload.clone(), remaining).await
                } else {
                    self.read_local(&payload, remaining).await
                }),
                Some(l) => match self.forward(l, kind, payload.clone(), remaining).await {
                    Ok(body) => dec::<ForwardReply>(&body).ok(),
                    // A retry is safe even if the first try was committed: commands carry
                    // request ids and the state machine applies each id once (§1.2, §3.4).
                    Err(CallError::NotSent(_) | CallError::Unknown(_)) => None,
                },
            };
            match reply {
                Some(ForwardReply::Ok(out)) => return Ok(out),
                Some(ForwardReply::Unavailable(why)) if Instant::now() >= deadline => {
                    return Err(Unavailable(why));
                }
                _ => {}
            }
            tokio::time::sleep(backoff.min(deadline.saturating_duration_since(Instant::now()))).await;
        }
    }
}

/// §9: read-only operator status, JSON.
async fn status_handler<S: StateMachine>(State(sh): State<Arc<Shared<S>>>) -> Response {
    if !sh.alive.load(std::sync::atomic::Ordering::SeqCst) {
        return (StatusCode::SERVICE_UNAVAILABLE, [(header::CONNECTION, "close")], "node stopped")
            .into_response();
    }
    axum::Json(sh.status()).into_response()
}

async fn rpc_handler<S: StateMachine>(State(sh): State<Arc<Shared<S>>>, body: Bytes) -> Response {
    if !sh.alive.load(std::sync::atomic::Ordering::SeqCst) {
        return (StatusCode::SERVICE_UNAVAILABLE, [(header::CONNECTION, "close")], "node stopped")
            .into_response();
    }
    let started = Instant::now();
    let net = &sh.net;
    let msg = match auth::open(&body, net.members.as_ref(), net.id, net.clock.now_ms(), net.timing.window_ms)
    {
        Ok(m) => m,
        Err(e) => {
            tracing::warn!(node = net.id, code = e.code(), "rejected node RPC");
            return (StatusCode::FORBIDDEN, [(header::CONNECTION, "close")], e.code()).into_response();
        }
    };
    let reply_body = match msg.kind {
        auth::RpcKind::Append => match dec(&msg.body) {
            Ok(req) => enc(&match sh.raft.append_entries(req).await {
                Ok(r) => RaftReply::Ok(r),
                Err(e) => RaftReply::Err(e),
            }),
            Err(e) => enc(&RaftReply::<(), ()>::Refused(e)),
        },
        auth::RpcKind::Snapshot => match dec::<net::SnapshotChunk>(&msg.body) {
            Ok(req) => enc(&match sh.raft.install_snapshot(req.into()).await {
                Ok(r) => RaftReply::Ok(r),
                Err(e) => RaftReply::Err(e),
            }),
            Err(e) => enc(&RaftReply::<(), ()>::Refused(e)),
        },
        auth::RpcKind::Vote => match dec::<openraft::raft::VoteRequest<NodeId>>(&msg.body) {
            // §6.3 step 3: the vote gate.
            Ok(req) if !net.gate.allow_incoming_vote(&req) => {
                enc(&RaftReply::<(), ()>::Refused("vote gate".into()))
            }
            Ok(req) => enc(&match sh.raft.vote(req).await {
                Ok(r) => RaftReply::Ok(r),
                Err(e) => RaftReply::Err(e),
            }),
            Err(e) => enc(&RaftReply::<(), ()>::Refused(e)),
        },
        auth::RpcKind::Propose => enc(&sh.write_local(msg.body.clone(), net.timing.op_timeout).await),
        auth::RpcKind::Read => enc(&sh.read_local(&msg.body, net.timing.op_timeout).await),
        auth::RpcKind::Status => enc(&sh.status()),
        auth::RpcKind::Ack => enc(&sh.ack_local(&msg.body, net.timing.op_timeout / 2).await),
        // A reply kind is no request.
        _ => return (StatusCode::BAD_REQUEST, "not a request kind").into_response(),
    };
    let reply = auth::RpcMessage {
        v: 1,
        purpose: auth::PURPOSE.into(),
        fleet: net.members.fleet_id.clone(),
        epoch: net.members.epoch,
        from: net.id,
        to: msg.from,
        kind: msg.kind.reply().expect("a request kind has a reply kind"),
        nonce: msg.nonce,
        time_ms: net.clock.now_ms(),
        body: reply_body,
    };
    let sealed = auth::seal(&reply, net.signer.as_ref());
    if msg.kind == auth::RpcKind::Append {
        net.stages.record(Stage::AppendHandler, started);
    }
    (StatusCode::OK, [(header::CONTENT_TYPE, "application/cbor")], sealed).into_response()
}

/// spec/fleet-replication.md: the replicated [`CommandLog`] of one node.
pub struct RaftCommandLog<S> {
    shared: Arc<Shared<S>>,
}

impl<S> Clone for RaftCommandLog<S> {
    fn clone(&self) -> Self {
        Self { shared: self.shared.clone() }
    }
}

impl<S: StateMachine> RaftCommandLog<S> {
    /// The status of the node this log commits through (`/readyz`, `/metrics`).
    pub fn status(&self) -> NodeStatus {
        self.shared.status()
    }

    /// Wait (up to the time bound of §7) until this node's HSM has applied `position`.
    pub async fn applied(&self, position: u64) -> Result<(), Unavailable> {
        let Some(hsm) = self.shared.hsm.clone() else { return Ok(()) };
        if self.shared.wait_applied(hsm.as_ref(), position, self.shared.net.timing.op_timeout).await {
            Ok(())
        } else {
            Err(self.shared.unavailable("apply"))
        }
    }

    /// Leader changes (a new leader or a new term) the node has seen: the events it logs
    /// as "leader elected".
    pub fn leader_changes(&self) -> u64 {
        self.shared.leader_changes.load(std::sync::atomic::Ordering::Relaxed)
    }
}

impl<S: StateMachine> CommandLog for RaftCommandLog<S> {
    /// §3: committed on a majority (through the leader) and applied; `fleet.unavailable`
    /// after [`Timing::op_timeout`].
    fn propose(&self, command: Vec<u8>) -> impl Future<Output = Result<Vec<u8>, Unavailable>> + Send {
        let shared = self.shared.clone();
        async move { shared.submit(auth::RpcKind::Propose, command).await }
    }

    /// §5: read-index on the leader.
    fn read(&self, query: Vec<u8>) -> impl Future<Output = Result<Vec<u8>, Unavailable>> + Send {
        let shared = self.shared.clone();
        async move { shared.submit(auth::RpcKind::Read, query).await }
    }

    /// spec/hsm.md §5: this node's HSM has applied `position`; then the other nodes'
    /// acknowledgements of it (as many as a quorum needs besides this node).
    fn acks(&self, position: u64) -> impl Future<Output = Result<Vec<Vec<u8>>, Unavailable>> + Send {
        let log = self.clone();
        async move {
            log.applied(position).await?;
            let want = log.shared.net.members.quorum().saturating_sub(1);
            Ok(log.shared.collect_acks(position, want, log.shared.net.timing.op_timeout).await)
        }
    }
}
