//! The authenticated node-to-node transport over HTTP and the vote gate.
//!
//! spec/fleet-replication.md §4 (SignedRpc over `POST /bkv/fleet/v1/rpc`) and §6.3 (the
//! vote gate every node runs after it starts).

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use bkv_protocol::crypto::Signer;
use openraft::error::{
    InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, Unreachable as RaftUnreachable,
};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use openraft::{BasicNode, LogId};
use rand_core::{OsRng, RngCore};
use serde::{Deserialize, Serialize};

use super::auth::{self, RpcKind, RpcMessage};
use super::{FleetMembers, Link, LinkFilter, NodeId, Timing, TypeConfig};

/// The HTTP path of node-to-node RPCs.
pub const RPC_PATH: &str = "/bkv/fleet/v1/rpc";
/// The HTTP path of the read-only operator status (§9), JSON.
pub const STATUS_PATH: &str = "/bkv/fleet/v1/status";

pub(crate) fn enc<T: Serialize>(v: &T) -> Vec<u8> {
    let mut out = Vec::new();
    ciborium::into_writer(v, &mut out).expect("CBOR encoding into a Vec cannot fail");
    out
}

pub(crate) fn dec<T: serde::de::DeserializeOwned>(b: &[u8]) -> Result<T, String> {
    ciborium::from_reader(b).map_err(|e| format!("undecodable RPC body: {e}"))
}

/// Reply body of a Raft RPC: the receiver's openraft result, or a refusal by the vote
/// gate (§6.3) or by a node that is shutting down.
#[derive(Serialize, Deserialize)]
#[serde(bound = "T: Serialize + serde::de::DeserializeOwned, E: Serialize + serde::de::DeserializeOwned")]
pub(crate) enum RaftReply<T, E> {
    Ok(T),
    Err(E),
    Refused(String),
}

/// spec/fleet-replication.md §4 item 4: openraft's `InstallSnapshotRequest` with its chunk
/// as a CBOR byte string (serde would write a `Vec<u8>` as an array of integers: up to twice
/// the bytes, and slow to encode and decode).
#[derive(Serialize, Deserialize)]
pub(crate) struct SnapshotChunk {
    vote: openraft::Vote<NodeId>,
    meta: openraft::SnapshotMeta<NodeId, BasicNode>,
    offset: u64,
    #[serde(with = "serde_bytes")]
    data: Vec<u8>,
    done: bool,
}

impl From<InstallSnapshotRequest<TypeConfig>> for SnapshotChunk {
    fn from(r: InstallSnapshotRequest<TypeConfig>) -> Self {
        Self { vote: r.vote, meta: r.meta, offset: r.offset, data: r.data, done: r.done }
    }
}

impl From<SnapshotChunk> for InstallSnapshotRequest<TypeConfig> {
    fn from(c: SnapshotChunk) -> Self {
        Self { vote: c.vote, meta: c.meta, offset: c.offset, data: c.data, done: c.done }
    }
}

/// spec/fleet-replication.md §4 `ForwardReply`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum ForwardReply {
    Ok(#[serde(with = "serde_bytes")] Vec<u8>),
    NotLeader(Option<NodeId>),
    Unavailable(String),
}

/// Reply body of `status` (§6.3), also used by `bkv fleet status`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct NodeStatus {
    /// The node's id.
    pub id: NodeId,
    /// Its current term.
    pub term: u64,
    /// Its last log id (term, index).
    pub last_log_id: Option<LogId<NodeId>>,
    /// The highest log index it knows to be committed (stored on a majority), as last
    /// persisted; may trail the leader's by one round.
    pub committed: Option<u64>,
    /// The last applied log index.
    pub last_applied: Option<u64>,
    /// The leader it knows.
    pub leader: Option<NodeId>,
    /// Whether its vote gate is open (§6.3 step 2 done).
    pub gate_open: bool,
    /// `leader`, `follower`, `candidate`, `learner` or `shutdown`.
    pub state: String,
    /// Datacenter label.
    pub datacenter: String,
    /// On the leader: the last log index each node is known to have stored.
    pub matched: BTreeMap<NodeId, Option<u64>>,
    /// The node's HSM (spec/hsm.md §4.1), if it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hsm: Option<HsmReport>,
}

/// What `status` reports about a node's HSM (spec/fleet-replication.md §9, spec/hsm.md §4.1).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct HsmReport {
    /// Entries the HSM has applied.
    pub position: u64,
    /// The position of its mark (HSM state).
    pub mark: u64,
    /// `current`, `behind`, `diverged` or `unverified`.
    pub status: String,
    /// Whether the node's disk (what the HSM was fed) is behind the mark.
    pub disk_behind_mark: bool,
    /// HSM-state writes since the HSM started.
    pub writes: u64,
    /// Whether the HSM recorded its fleet's retirement.
    pub retired: bool,
}

/// Why a call failed.
#[derive(Debug)]
pub(crate) enum CallError {
    /// The request certainly did not reach the receiver.
    NotSent(String),
    /// The request may or may not have been processed.
    Unknown(String),
}

impl std::fmt::Display for CallError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CallError::NotSent(s) => write!(f, "not sent: {s}"),
            CallError::Unknown(s) => write!(f, "outcome unknown: {s}"),
        }
    }
}

/// What the transport needs, independent of the state machine type.
pub(crate) struct NetCtx {
    pub(crate) id: NodeId,
    pub(crate) members: Arc<FleetMembers>,
    pub(crate) signer: Arc<dyn Signer + Send + Sync>,
    pub(crate) timing: Timing,
    pub(crate) links: Arc<dyn LinkFilter>,
    pub(crate) clock: bkv_client::clock::SharedClock,
    pub(crate) http: reqwest::Client,
    /// `https` when the node-to-node listeners use TLS.
    pub(crate) scheme: &'static str,
    pub(crate) gate: Gate,
    /// Commit-path counters of this node.
    pub(crate) stages: Arc<super::stages::Stages>,
}

impl NetCtx {
    async fn apply_link(&self, from: NodeId, to: NodeId) -> bool {
        match self.links.link(from, to) {
            Link::Up => true,
            Link::Down => false,
            Link::Delay(d) => {
                tokio::time::sleep(d).await;
                true
            }
        }
    }

    /// Send one signed RPC to `to` and return the verified reply body (§4.2).
    pub(crate) async fn call(
        &self,
        to: NodeId,
        kind: RpcKind,
        body: Vec<u8>,
        timeout: Duration,
    ) -> Result<Vec<u8>, CallError> {
        let node =
            self.members.node(to).ok_or_else(|| CallError::NotSent(format!("node {to} is not listed")))?;
        if !self.apply_link(self.id, to).await {
            return Err(CallError::NotSent(format!("link {}->{to} is down", self.id)));
        }
        let mut nonce = vec![0u8; 16];
        OsRng.fill_bytes(&mut nonce);
        let msg = RpcMessage {
            v: 1,
            purpose: auth::PURPOSE.into(),
            fleet: self.members.fleet_id.clone(),
            epoch: self.members.epoch,
            from: self.id,
            to,
            kind,
            nonce,
            time_ms: self.clock.now_ms(),
            body,
        };
        let sealed = auth::seal(&msg, self.signer.as_ref());
        let url = format!("{}://{}{RPC_PATH}", self.scheme, node.addr);
        let resp = self
            .http
            .post(url)
            .header("content-type", "application/cbor")
            .body(sealed)
            .timeout(timeout)
            .send()
            .await
            .map_err(|e| {
                if e.is_connect() {
                    CallError::NotSent(e.to_string())
                } else {
                    CallError::Unknown(e.to_string())
                }
            })?;
        let status = resp.status();
        let bytes = resp.bytes().await.map_err(|e| CallError::Unknown(e.to_string()))?;
        if !status.is_success() {
            return Err(CallError::Unknown(format!("{status}: {}", String::from_utf8_lossy(&bytes))));
        }
        if !self.apply_link(to, self.id).await {
            return Err(CallError::Unknown(format!("reply link {to}->{} is down", self.id)));
        }
        let reply =
            auth::open(&bytes, self.members.as_ref(), self.id, self.clock.now_ms(), self.timing.window_ms)
                .map_err(|e| CallError::Unknown(e.code().to_owned()))?;
        auth::check_reply(&msg, &reply).map_err(|e| CallError::Unknown(e.code().to_owned()))?;
        Ok(reply.body)
    }
}

/// spec/fleet-replication.md §6.3: the vote gate. `None` until `T` and `L` are known.
#[derive(Default)]
pub(crate) struct Gate {
    state: RwLock<Option<(u64, Option<LogId<NodeId>>)>>,
    /// §6.3 step 5: the node has applied an entry of a term greater than `T`.
    pub(crate) lifted: std::sync::atomic::AtomicBool,
}

impl Gate {
    /// §6.3 step 3: may this node announce its candidacy `req`? A candidate votes for
    /// itself, so its own candidacy passes the same test as a vote it grants: term above `T`
    /// and last log id at least `L`. Without the second condition a node restored from an
    /// older disk, whose log lacks an entry it had acknowledged, could be elected by nodes
    /// whose logs lack it too, and the fleet would overwrite a committed entry.
    pub(crate) fn allow_outgoing_vote(&self, req: &VoteRequest<NodeId>) -> bool {
        self.allows(req)
    }

    /// §6.3 step 3: may this node consider granting `req`?
    pub(crate) fn allow_incoming_vote(&self, req: &VoteRequest<NodeId>) -> bool {
        self.allows(req)
    }

    fn allows(&self, req: &VoteRequest<NodeId>) -> bool {
        if self.lifted.load(std::sync::atomic::Ordering::SeqCst) {
            return true;
        }
        match *self.state.read().expect("gate lock") {
            Some((t, l)) => req.vote.leader_id.term > t && req.last_log_id >= l,
            None => false,
        }
    }

    pub(crate) fn is_open(&self) -> bool {
        self.state.read().expect("gate lock").is_some()
    }

    pub(crate) fn open(&self, t: u64, l: Option<LogId<NodeId>>) {
        *self.state.write().expect("gate lock") = Some((t, l));
    }
}

/// §6.3 steps 1-2: wait W, then poll `n - q + 1` other nodes for their status; steps 3 and
/// 5: no candidacy before this node's own log (`own_last_log_id`, what it has stored) reaches
/// `L`, and no restriction once it has applied an entry of a term greater than `T`.
pub(crate) async fn run_gate(
    ctx: Arc<NetCtx>,
    raft: openraft::Raft<TypeConfig>,
    own_last_log_id: impl Fn() -> Option<LogId<NodeId>>,
) {
    tokio::time::sleep(Duration::from_millis(ctx.timing.window_ms)).await;
    let n = ctx.members.nodes.len();
    // A lone node has nobody to ask (and nothing to protect against).
    let need = (n - ctx.members.quorum() + 1).min(n - 1);
    let mut answers: BTreeMap<NodeId, NodeStatus> = BTreeMap::new();
    loop {
        let mut set = tokio::task::JoinSet::new();
        for node in &ctx.members.nodes {
            if node.id == ctx.id || answers.contains_key(&node.id) {
                continue;
            }
            let (ctx, id) = (ctx.clone(), node.id);
            set.spawn(async move {
                let r = ctx.call(id, RpcKind::Status, Vec::new(), Duration::from_millis(500)).await;
                (id, r)
            });
        }
        while let Some(Ok((id, r))) = set.join_next().await {
            if let Ok(body) = r
                && let Ok(st) = dec::<NodeStatus>(&body)
            {
                answers.insert(id, st);
            }
        }
        if answers.len() >= need {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let t = answers.values().map(|s| s.term).max().unwrap_or(0);
    let l = answers.values().map(|s| s.last_log_id).max().flatten();
    tracing::info!(node = ctx.id, term = t, last_log_id = ?l, "vote gate open");
    ctx.gate.open(t, l);
    let mut m = raft.metrics();
    let mut candidacy = false;
    loop {
        // §6.3 step 5: once an entry of a term > T is applied, a leader elected without this
        // node's vote has committed in its term, so every entry committed with an
        // acknowledgement this node may have forgotten is stored on a majority that remembers it.
        let lifted = m.borrow().last_applied.is_some_and(|a| a.leader_id.term > t);
        if lifted {
            ctx.gate.lifted.store(true, std::sync::atomic::Ordering::SeqCst);
            raft.runtime_config().elect(true);
            tracing::info!(node = ctx.id, "vote gate lifted");
            return;
        }
        // §6.3 step 3: a candidacy is a vote for itself, so it waits until this node's own log
        // is at least L, as a vote for another candidate would. (Starting elections that the
        // transport then refuses to announce would only raise this node's term.)
        if !candidacy && own_last_log_id() >= l {
            candidacy = true;
            raft.runtime_config().elect(true);
            tracing::info!(node = ctx.id, "candidacy allowed");
        }
        if m.changed().await.is_err() {
            return;
        }
    }
}

/// Creates one [`Conn`] per peer for openraft.
pub(crate) struct NetFactory {
    pub(crate) ctx: Arc<NetCtx>,
}

/// openraft's view of the link to one peer.
pub(crate) struct Conn {
    ctx: Arc<NetCtx>,
    target: NodeId,
}

impl RaftNetworkFactory<TypeConfig> for NetFactory {
    type Network = Conn;

    async fn new_client(&mut self, target: NodeId, _node: &BasicNode) -> Conn {
        Conn { ctx: self.ctx.clone(), target }
    }
}

fn io_err(s: impl Into<String>) -> std::io::Error {
    std::io::Error::other(s.into())
}

impl Conn {
    async fn rpc<Req, Resp, E>(
        &self,
        kind: RpcKind,
        req: &Req,
        option: &RPCOption,
    ) -> Result<Resp, RPCError<NodeId, BasicNode, E>>
    where
        Req: Serialize,
        Resp: serde::de::DeserializeOwned + Serialize,
        E: std::error::Error + serde::de::DeserializeOwned + Serialize,
    {
        // openraft's TTL is one heartbeat interval; a slow (debug-build, loaded) peer would
        // then never answer in time. Messages older than W are rejected anyway (§4.2 step 6).
        let ttl = option.hard_ttl().max(Duration::from_millis(self.ctx.timing.window_ms));
        let body = self.ctx.call(self.target, kind, enc(req), ttl).await.map_err(|e| match e {
            CallError::NotSent(s) => RPCError::Unreachable(RaftUnreachable::new(&io_err(s))),
            CallError::Unknown(s) => RPCError::Network(NetworkError::new(&io_err(s))),
        })?;
        match dec::<RaftReply<Resp, E>>(&body) {
            Ok(RaftReply::Ok(r)) => Ok(r),
            Ok(RaftReply::Err(e)) => Err(RPCError::RemoteError(RemoteError::new(self.target, e))),
            Ok(RaftReply::Refused(s)) => Err(RPCError::Network(NetworkError::new(&io_err(s)))),
            Err(s) => Err(RPCError::Network(NetworkError::new(&io_err(s)))),
        }
    }
}

impl RaftNetwork<TypeConfig> for Conn {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<NodeId>, RPCError<NodeId, BasicNode, RaftError<NodeId>>> {
        let started = std::time::Instant::now();
        let r = self.rpc(RpcKind::Append, &rpc, &option).await;
        self.ctx.stages.record(super::stages::Stage::AppendRpc, started);
        r
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<
        InstallSnapshotResponse<NodeId>,
        RPCError<NodeId, BasicNode, RaftError<NodeId, InstallSnapshotError>>,
    > {
        self.rpc(RpcKind::Snapshot, &SnapshotChunk::from(rpc), &option).await
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<NodeId>,
        option: RPCOption,
    ) -> Result<VoteResponse<NodeId>, RPCError<NodeId, BasicNode, RaftError<NodeId>>> {
        // §6.3 step 3: none before the gate is open, no vote request for a term <= T, and
        // none while this node's own log is behind L.
        if !self.ctx.gate.allow_outgoing_vote(&rpc) {
            return Err(RPCError::Unreachable(RaftUnreachable::new(&io_err(
                "vote gate closed for this candidacy",
            ))));
        }
        tracing::debug!(
            node = self.ctx.id,
            to = self.target,
            term = rpc.vote.leader_id.term,
            "election: vote requested"
        );
        self.rpc(RpcKind::Vote, &rpc, &option).await
    }
}

#[cfg(test)]
mod tests {
    use openraft::{CommittedLeaderId, Vote};

    use super::*;

    fn log_id(term: u64, index: u64) -> Option<LogId<NodeId>> {
        Some(LogId::new(CommittedLeaderId::new(term, 0), index))
    }

    fn candidacy(term: u64, last_log_id: Option<LogId<NodeId>>) -> VoteRequest<NodeId> {
        VoteRequest::new(Vote::new(term, 1), last_log_id)
    }

    /// §6.3 step 3: a candidacy (this node's own, or one it is asked to vote for) needs a term
    /// above `T` and a last log id of at least `L`, until the gate is lifted (step 5).
    #[test]
    fn own_candidacy_meets_the_same_condition_as_a_granted_vote() {
        let gate = Gate::default();
        let ok = candidacy(8, log_id(4, 3));
        assert!(!gate.allow_outgoing_vote(&ok) && !gate.allow_incoming_vote(&ok), "closed before the poll");
        gate.open(7, log_id(4, 3));
        for (req, allowed) in [
            (ok, true),
            (candidacy(7, log_id(4, 3)), false),
            // The log of a node restored from an older disk: it lacks (4, 3).
            (candidacy(9, log_id(4, 2)), false),
            (candidacy(9, log_id(5, 2)), true),
        ] {
            assert_eq!(gate.allow_outgoing_vote(&req), allowed, "own {req:?}");
            assert_eq!(gate.allow_incoming_vote(&req), allowed, "granted {req:?}");
        }
        gate.lifted.store(true, std::sync::atomic::Ordering::SeqCst);
        assert!(gate.allow_outgoing_vote(&candidacy(1, None)));
    }
}
