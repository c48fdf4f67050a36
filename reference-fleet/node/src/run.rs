//! One fleet node as its own process: `bkv-node run --config node.toml`.
//!
//! [`start`] takes a checked [`NodeConfig`] and, in this order: binds both listeners (a
//! port in use fails here, naming its field), loads the KEK, opens the HSM and checks that
//! it holds this node's keys of the FleetKeySet; only then does it open the node's storage
//! and start consensus. So a configuration that cannot work touches no data.

use crate::Error;
use crate::config::NodeConfig;
use crate::hsm::{Kek, SoftHsm};
use crate::replication::raft::{AllUp, FleetMembers, NodeOptions, RaftNode, Timing};
use crate::service::{NodeInfo, NodeService, Readiness};
use bkv_client::LogClient;
use bkv_client::clock::SharedClock;
use bkv_protocol::hsm::{BoundaryConfig, HsmMachine, RpcSigner};
use std::net::SocketAddr;
use std::sync::Arc;

/// A running node process's services; dropping it does not stop them: call [`Running::shutdown`].
pub struct Running {
    /// The client listener's address (the port is real when the config asked for port 0).
    pub client_addr: SocketAddr,
    /// The node-to-node listener's address.
    pub peer_addr: SocketAddr,
    /// `https` with `[tls]`, else `http`.
    pub scheme: &'static str,
    raft: RaftNode<HsmMachine>,
    server: tokio::task::JoinHandle<()>,
}

impl Running {
    /// Stop serving and shut consensus down cleanly.
    pub async fn shutdown(self) {
        self.server.abort();
        self.raft.shutdown().await;
    }
}

fn bind(config: &NodeConfig, field: &str, addr: SocketAddr) -> Result<std::net::TcpListener, Error> {
    std::net::TcpListener::bind(addr)
        .map_err(|e| config.error(field, format!("cannot listen on {addr}: {e}")).into())
}

/// The KEK the config names: `hsm.kek_file`, else `BKV_HSM_KEK`.
fn kek(config: &NodeConfig) -> Result<Kek, Error> {
    match &config.raw.hsm.kek_file {
        Some(path) => Ok(Kek::from_file(path)?),
        None => match Kek::from_env() {
            Some(k) => Ok(k?),
            None => Err(config
                .error("hsm.kek_file", format!("no KEK: set hsm.kek_file or {}", crate::hsm::KEK_ENV))
                .into()),
        },
    }
}

/// Both listeners of a node, bound and not yet serving (the first half of [`start`]).
///
/// A supervisor's first start of a new fleet gives every node port 0 (so no port is picked
/// by one process and bound by another): each node binds, reports [`Bound::client_addr`]
/// and [`Bound::peer_addr`], and is then told its peers' real addresses
/// ([`Bound::start`] with `peers`).
pub struct Bound {
    /// The client listener's address (the port is real when the config asked for port 0).
    pub client_addr: SocketAddr,
    /// The node-to-node listener's address.
    pub peer_addr: SocketAddr,
    client: std::net::TcpListener,
    peer: std::net::TcpListener,
}

/// Bind both listeners of `config` (a port in use fails here, naming its field).
pub fn bind_listeners(config: &NodeConfig) -> Result<Bound, Error> {
    let peer = bind(config, "listen.peer", config.peer_addrs[config.index])?;
    let client = bind(config, "listen.client", config.client_addr)?;
    Ok(Bound {
        peer_addr: peer.local_addr().map_err(|e| config.error("listen.peer", e.to_string()))?,
        client_addr: client.local_addr().map_err(|e| config.error("listen.client", e.to_string()))?,
        client,
        peer,
    })
}

/// Start the node of `config`, reading time from `clock`.
pub async fn start(config: &NodeConfig, clock: SharedClock) -> Result<Running, Error> {
    bind_listeners(config)?.start(config, None, clock).await
}

impl Bound {
    /// Start the node of `config` on these listeners. `peers`, when given, replaces the
    /// config's peer addresses (by node id; every peer whose config address has port 0 must
    /// be in it); without it no peer address may have port 0.
    pub async fn start(
        self,
        config: &NodeConfig,
        peers: Option<&std::collections::BTreeMap<String, SocketAddr>>,
        clock: SharedClock,
    ) -> Result<Running, Error> {
        start_bound(config, self, peers, clock).await
    }
}

/// The node-to-node addresses of every node, in FleetKeySet order: the config's, with
/// `peers` applied; a peer left at port 0 is an error naming it.
fn peer_addrs(
    config: &NodeConfig,
    own: SocketAddr,
    peers: Option<&std::collections::BTreeMap<String, SocketAddr>>,
) -> Result<Vec<SocketAddr>, Error> {
    let mut addrs = config.peer_addrs.clone();
    addrs[config.index] = own;
    for (i, node) in config.keyset.nodes.iter().enumerate() {
        if i == config.index {
            continue;
        }
        if let Some(a) = peers.and_then(|p| p.get(&node.id)) {
            addrs[i] = *a;
        }
        if addrs[i].port() == 0 {
            return Err(config
                .error(
                    "peers",
                    format!(
                        "the address of {} has port 0, which only a supervisor's first start may leave open",
                        node.id
                    ),
                )
                .into());
        }
    }
    Ok(addrs)
}

async fn start_bound(
    config: &NodeConfig,
    bound: Bound,
    peers: Option<&std::collections::BTreeMap<String, SocketAddr>>,
    clock: SharedClock,
) -> Result<Running, Error> {
    let id = &config.raw.id;
    let me = &config.keyset.nodes[config.index];
    let Bound { client_addr, peer_addr, client: client_listener, peer: peer_listener } = bound;
    let addrs = peer_addrs(config, peer_addr, peers)?;
    let tls = config.tls()?;
    if let Some(ca) = config.raw.tls.as_ref().and_then(|t| t.ca.as_ref()) {
        bkv_client::tls::trust_roots(ca).map_err(|e| config.error("tls.ca", e.to_string()))?;
    }
    match bkv_serve::raise_fd_limit() {
        Ok(n) => tracing::info!(node = %id, "open-file limit {n}"),
        Err(e) => tracing::warn!(node = %id, "cannot raise the open-file limit: {e}"),
    }
    let kek = kek(config)?;
    let hsm = SoftHsm::unseal_file(&config.raw.hsm.sealed, &kek)?;
    if hsm.node_entry(id, &me.datacenter) != *me {
        return Err(config
            .error("hsm.sealed", format!("holds other keys than node {id} of the FleetKeySet"))
            .into());
    }
    let members = Arc::new(FleetMembers::from_key_set(&config.keyset, &addrs)?);
    let timing = match config.raw.timing {
        Some(t) => Timing {
            heartbeat_ms: t.heartbeat_ms,
            election_min_ms: t.election_min_ms,
            election_max_ms: t.election_max_ms,
            ..Timing::default()
        },
        None => Timing::default(),
    };
    let dir = config.raw.data_dir.join("raft");
    let bootstrap = !dir.exists();
    std::fs::create_dir_all(&config.raw.data_dir).map_err(|e| {
        config.error("data_dir", format!("cannot create {}: {e}", config.raw.data_dir.display()))
    })?;
    // spec/hsm.md: the HSM holds the vault and its mark; the host's log only feeds it.
    let boundary = hsm.open_boundary(
        BoundaryConfig::from_keyset(&config.keyset, config.index as u64)?,
        id,
        &crate::hsm::state_path(&config.raw.hsm.sealed),
        &kek,
        bootstrap,
    )?;
    let opts = NodeOptions {
        id: config.index as u64,
        dir,
        signer: Arc::new(RpcSigner(boundary.clone())),
        hsm: Some(boundary.clone()),
        bootstrap,
        timing,
        links: Arc::new(AllUp),
        clock: clock.clone(),
        listener: Some(peer_listener),
        tls: tls.clone(),
    };
    let raft = RaftNode::start(members, opts, HsmMachine(boundary.clone())).await?;
    let info = NodeInfo {
        v: 1,
        fleet_id: config.keyset.fleet_id.clone(),
        epoch: config.keyset.epoch,
        node_id: id.clone(),
        datacenter: me.datacenter.clone(),
    };
    let log = raft.command_log();
    let status = log.clone();
    let svc = NodeService::new(boundary, log, info, config.released.to_cbor())
        .with_clock(clock)
        .with_rate_limits(config.rate_limits())
        .with_health(move || {
            let s = status.status();
            let last = s.last_log_id.map_or(0, |l| l.index);
            let lag = s
                .matched
                .iter()
                .filter(|(peer, _)| **peer != s.id)
                .map(|(peer, stored)| (*peer, last.saturating_sub(stored.unwrap_or(0))))
                .collect();
            Readiness {
                gate_open: s.gate_open,
                leader_known: s.leader.is_some(),
                term: s.term,
                applied: s.last_applied.unwrap_or(0),
                lag,
                leader_changes: status.leader_changes(),
            }
        });
    let svc = match &config.raw.audit_log {
        Some(l) => svc.with_audit_log(LogClient::new(&l.url)),
        None => svc,
    };
    client_listener.set_nonblocking(true).map_err(|e| config.error("listen.client", e.to_string()))?;
    let listener = tokio::net::TcpListener::from_std(client_listener)
        .map_err(|e| config.error("listen.client", e.to_string()))?;
    let metrics = svc.metrics().clone();
    let router = Arc::new(svc).router();
    let observe: bkv_serve::Observer = Arc::new(move |e: bkv_serve::ConnectionEvent| {
        metrics.connections.get_or_create(&crate::metrics::Kind { kind: e.label().into() }).inc();
    });
    let scheme = if tls.is_some() { "https" } else { "http" };
    let server = tokio::spawn(bkv_serve::serve(
        listener,
        router,
        config.limits(),
        tls,
        observe,
        std::future::pending(),
    ));
    tracing::info!(node = %id, client = %client_addr, peer = %peer_addr, scheme, "node serving");
    Ok(Running { client_addr, peer_addr, scheme, raft, server })
}
