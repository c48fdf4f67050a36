//! `GET /metrics` of a node (Prometheus text format, `prometheus-client`): commits and
//! their latency, the consensus state, how requests ended as the host sees them, the vault
//! outcomes the host sees in committed outputs, and HTTP statuses.
//!
//! A node's host cannot read sealed answers (spec/session.md §4), so request outcomes are
//! counted by what the host did: answered without a commit, committed, or unavailable.

use bkv_protocol::vault::VaultOutput;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use std::sync::atomic::AtomicU64;

/// Label of a counter by one name.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Kind {
    /// The kind.
    pub kind: String,
}

/// Label of a peer (its position in the FleetKeySet).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Peer {
    /// The peer.
    pub peer: String,
}

/// Label of an HTTP response.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Status {
    /// The status code.
    pub status: String,
}

/// Every metric of one node.
#[derive(Debug)]
pub struct NodeMetrics {
    registry: Registry,
    /// Commands committed through this node.
    pub commits: Counter,
    /// Time from proposing a command to its committed output.
    pub commit_seconds: Histogram,
    /// Session requests by what the host did (`replied`, `committed`, `unavailable`).
    pub requests: Family<Kind, Counter>,
    /// Committed vault outputs by kind (`registered`, `attempt`, `released`, `rekeyed`,
    /// `deleted`, `locked`, `error`, …).
    pub vault: Family<Kind, Counter>,
    /// HTTP responses of the client listener by status.
    pub http: Family<Status, Counter>,
    /// Connections of the client listener, `accepted` or `refused` (over a cap).
    pub connections: Family<Kind, Counter>,
    /// The current Raft term.
    pub term: Gauge<u64, AtomicU64>,
    /// The last applied log index.
    pub applied: Gauge<u64, AtomicU64>,
    /// 1 when the vote gate of spec/fleet-replication.md §6.3 is open.
    pub gate_open: Gauge<u64, AtomicU64>,
    /// 1 when a leader is known.
    pub leader_known: Gauge<u64, AtomicU64>,
    /// Leader changes this node has seen.
    pub leader_changes: Counter,
    /// On the leader: entries each other node is behind.
    pub peer_lag: Family<Peer, Gauge<u64, AtomicU64>>,
    /// spec/hsm.md §4.1: entries the HSM has applied.
    pub hsm_position: Gauge<u64, AtomicU64>,
    /// spec/hsm.md §2: the position of the HSM's mark.
    pub hsm_mark: Gauge<u64, AtomicU64>,
    /// spec/hsm.md §4.1: 1 for the HSM's status (`current`, `behind`, `diverged`, `unverified`).
    pub hsm_status: Family<Kind, Gauge<u64, AtomicU64>>,
    /// spec/hsm.md §4.4: HSM-state writes since the HSM started.
    pub hsm_state_writes: Gauge<u64, AtomicU64>,
}

impl Default for NodeMetrics {
    fn default() -> Self {
        Self::new()
    }
}

impl NodeMetrics {
    /// A fresh registry with every metric registered.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("bkv");
        let m = NodeMetrics {
            commits: Counter::default(),
            commit_seconds: Histogram::new(exponential_buckets(0.0005, 2.0, 16)),
            requests: Family::default(),
            vault: Family::default(),
            http: Family::default(),
            connections: Family::default(),
            term: Gauge::default(),
            applied: Gauge::default(),
            gate_open: Gauge::default(),
            leader_known: Gauge::default(),
            leader_changes: Counter::default(),
            peer_lag: Family::default(),
            hsm_position: Gauge::default(),
            hsm_mark: Gauge::default(),
            hsm_status: Family::default(),
            hsm_state_writes: Gauge::default(),
            registry: Registry::default(),
        };
        registry.register("commits", "Commands committed through this node", m.commits.clone());
        registry.register(
            "commit_seconds",
            "Time from proposal to committed output",
            m.commit_seconds.clone(),
        );
        registry.register("session_requests", "Session requests by what the host did", m.requests.clone());
        registry.register("vault_outputs", "Committed vault outputs by kind", m.vault.clone());
        registry.register(
            "http_responses",
            "HTTP responses of the client listener by status",
            m.http.clone(),
        );
        registry.register(
            "connections",
            "Client connections, accepted or refused over a cap",
            m.connections.clone(),
        );
        registry.register("raft_term", "The current Raft term", m.term.clone());
        registry.register("raft_applied_index", "The last applied log index", m.applied.clone());
        registry.register("vote_gate_open", "1 when the vote gate is open", m.gate_open.clone());
        registry.register("leader_known", "1 when a leader is known", m.leader_known.clone());
        registry.register("leader_changes", "Leader changes seen by this node", m.leader_changes.clone());
        registry.register(
            "peer_lag_entries",
            "On the leader: entries each other node is behind",
            m.peer_lag.clone(),
        );
        registry.register("hsm_position", "Entries the HSM has applied", m.hsm_position.clone());
        registry.register("hsm_mark", "Position of the HSM's mark (its HSM state)", m.hsm_mark.clone());
        registry.register("hsm_status", "1 for the HSM's status", m.hsm_status.clone());
        registry.register(
            "hsm_state_writes",
            "HSM-state (NVRAM) writes since the HSM started",
            m.hsm_state_writes.clone(),
        );
        NodeMetrics { registry, ..m }
    }

    /// Export the HSM's position, mark, status and state writes (spec/hsm.md §4).
    pub fn hsm(&self, s: &bkv_protocol::hsm::HsmStatus) {
        self.hsm_position.set(s.position);
        self.hsm_mark.set(s.mark.position);
        self.hsm_state_writes.set(s.writes);
        for status in ["current", "behind", "diverged", "unverified"] {
            self.hsm_status
                .get_or_create(&Kind { kind: status.into() })
                .set(u64::from(s.status.as_str() == status));
        }
    }

    /// Count a session request by what the host did.
    pub fn request(&self, kind: &str) {
        self.requests.get_or_create(&Kind { kind: kind.into() }).inc();
    }

    /// Count a committed vault output.
    pub fn vault_output(&self, output: &[u8]) {
        let kind = match VaultOutput::decode(output) {
            Ok(VaultOutput::Registered { .. }) => "registered",
            Ok(VaultOutput::Attempt { .. }) => "attempt",
            Ok(VaultOutput::Released { .. }) => "released",
            Ok(VaultOutput::Rekeyed { .. }) => "rekeyed",
            Ok(VaultOutput::Deleted) => "deleted",
            Ok(_) => "other",
            Err(bkv_protocol::Error::VaultRecordLocked) => "locked",
            Err(_) => "error",
        };
        self.vault.get_or_create(&Kind { kind: kind.into() }).inc();
    }

    /// The text exposition.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry).expect("writing to a String");
        out
    }
}
