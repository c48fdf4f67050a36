//! A local replicated fleet on loopback: `bkv fleet up`, `bkv demo` and the tests.
//!
//! Creating a fleet runs, in order: one software HSM per node ([`crate::hsm`]), the
//! FleetKeySet built from the HSMs' public keys (spec/validation-bundle.md §3), the
//! third party's signature, the operator's countersignature, logging and witnessing
//! (spec/audit-log.md §8.2, [`release`]), then the nodes: each a Raft member over redb
//! (spec/fleet-replication.md) running the vault state machine, with its client endpoint
//! ([`crate::node`]).
//!
//! Layout of the fleet directory (everything a restart needs; nothing acknowledged is
//! lost across `bkv fleet up` restarts):
//! - `fleet.json`: fleet id, epoch, guess limit and each node's id, datacenter and ports;
//! - `kek.hex`: the HSMs' key-encryption key, unless `BKV_HSM_KEK` is set (a KEK file
//!   next to the sealed keys is for local development only, and `fleet up` says so);
//! - `node-N/hsm.sealed`, `node-N/raft/`: a node's sealed HSM and its Raft storage;
//! - `released-bundle.cbor` (bundle + log proof, what nodes serve), `bundle.cbor`,
//!   `trust.cbor` (the anchors an app pins: both organisations and the log);
//! - `audit-log/`: the third party's log and witnesses (first start only).

use crate::audit_log::local::LocalLog;
use crate::audit_log::server::{self, Running};
use crate::audit_log::signer::release;
use crate::client::Trust;
use crate::error::{Error, Result, read_file, write_file};
use crate::hsm::{Kek, SoftHsm};
use crate::node::{NodeInfo, NodeService};
use crate::replication::raft::{AllUp, FleetMembers, NodeOptions, RaftNode, Timing};
use bkv_protocol::audit_log::LoggedBundle;
use bkv_protocol::crypto::{Ed25519Signer, Esp256Signer, Signer};
use bkv_protocol::validation_bundle::{Anchor, Claims, FleetKeySet, TrustAnchors, countersign, sign};
use bkv_protocol::vault::{VaultServerSetup, VaultStateMachine};
use rand_core::OsRng;
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Datacenter labels, assigned round-robin.
pub const DATACENTERS: [&str; 3] = ["dc-east", "dc-west", "dc-north"];
/// The third party's name in the claims and anchors.
pub const THIRD_PARTY: &str = "third-party.example";
/// The operator's name in the anchors.
pub const OPERATOR: &str = "operator.example";

/// What fleet to create.
#[derive(Debug, Clone)]
pub struct FleetConfig {
    /// Fleet id.
    pub fleet_id: String,
    /// Epoch.
    pub epoch: u64,
    /// Number of nodes.
    pub nodes: usize,
    /// Guess limit (spec/vault.md §5.2).
    pub guess_limit: u32,
    /// Witnesses of the local log, and how many must cosign.
    pub witnesses: usize,
    /// K (spec/audit-log.md §7.2).
    pub witness_threshold: u64,
    /// Raft timing.
    pub timing: Timing,
}

impl FleetConfig {
    /// A fleet of `nodes` nodes with the default guess limit and 3 witnesses, K = 2.
    pub fn new(fleet_id: &str, nodes: usize) -> Self {
        Self {
            fleet_id: fleet_id.to_owned(),
            epoch: 1,
            nodes,
            guess_limit: bkv_protocol::validation_bundle::keyset::DEFAULT_GUESS_LIMIT,
            witnesses: 3,
            witness_threshold: 2,
            timing: Timing::default(),
        }
    }
}

/// The two organisations whose keys make a bundle (spec/validation-bundle.md §2). Their
/// keys live with them, never in the fleet directory.
pub struct Organisations {
    /// The third-party signer (Ed25519).
    pub third_party: Ed25519Signer,
    /// The operator (ESP256).
    pub operator: Esp256Signer,
}

impl Organisations {
    /// Fresh keys for both.
    pub fn generate() -> Self {
        Self {
            third_party: Ed25519Signer::generate(&mut OsRng),
            operator: Esp256Signer::generate(&mut OsRng),
        }
    }
}

/// `fleet.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Layout {
    fleet_id: String,
    epoch: u64,
    guess_limit: u32,
    nodes: Vec<NodeLayout>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct NodeLayout {
    id: String,
    datacenter: String,
    raft: SocketAddr,
    http: SocketAddr,
}

/// The node-to-node addresses of the fleet stored in `dir` (for `bkv fleet status`).
pub fn raft_addrs(dir: &Path) -> Result<Vec<String>> {
    let layout: Layout = serde_json::from_slice(&read_file(&dir.join("fleet.json"))?)
        .map_err(|e| Error::Usage(format!("fleet.json: {e}")))?;
    Ok(layout.nodes.iter().map(|n| n.raft.to_string()).collect())
}

/// One running node.
pub struct RunningNode {
    /// Node id in the FleetKeySet.
    pub id: String,
    /// Datacenter label.
    pub datacenter: String,
    /// Client endpoint.
    pub url: String,
    /// Node-to-node (Raft) address.
    pub raft_addr: SocketAddr,
    raft: Option<RaftNode<VaultStateMachine>>,
    http: Option<Running>,
}

impl RunningNode {
    /// The Raft node, if running.
    pub fn raft(&self) -> Option<&RaftNode<VaultStateMachine>> {
        self.raft.as_ref()
    }
}

/// A local fleet and what a client needs to use it.
pub struct LocalFleet {
    /// The fleet directory.
    pub dir: PathBuf,
    /// The FleetKeySet.
    pub keyset: FleetKeySet,
    /// The released bundle with its log proof.
    pub released: LoggedBundle,
    /// What an app pins.
    pub trust: Trust,
    /// The nodes.
    pub nodes: Vec<RunningNode>,
    /// The audit log and witnesses (running only when this process created the fleet).
    pub log: Option<LocalLog>,
    members: Arc<FleetMembers>,
    timing: Timing,
    kek: Kek,
    guess_limit: u32,
}

fn free_addr() -> Result<SocketAddr> {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_err(|e| Error::Usage(format!("no free loopback port: {e}")))
}

fn json_write(path: &Path, v: &impl Serialize) -> Result<()> {
    write_file(path, &serde_json::to_vec_pretty(v).expect("serializable"))
}

/// The KEK: `BKV_HSM_KEK`, else `dir/kek.hex` (created when `create` is true).
fn load_kek(dir: &Path, create: bool) -> Result<Kek> {
    if let Some(k) = Kek::from_env() {
        return k.map_err(|e| Error::Usage(e.to_string()));
    }
    let path = dir.join("kek.hex");
    if create && !path.exists() {
        let kek = Kek::generate(&mut OsRng);
        kek.write_file(&path).map_err(|e| Error::Usage(e.to_string()))?;
        return Ok(kek);
    }
    Kek::from_file(&path).map_err(|e| Error::Usage(e.to_string()))
}

impl LocalFleet {
    /// Start the fleet in `dir`: create it if `dir` holds none, else restart it from its
    /// stored state. `progress` receives one line per step.
    pub async fn up(dir: &Path, config: &FleetConfig, progress: impl FnMut(&str)) -> Result<Self> {
        if dir.join("fleet.json").exists() {
            Self::open(dir, config.timing, progress).await
        } else {
            Self::create(dir, config, progress).await
        }
    }

    /// Create a new fleet in `dir` (which must not hold one) and start it, with fresh keys
    /// for both organisations.
    pub async fn create(dir: &Path, config: &FleetConfig, progress: impl FnMut(&str)) -> Result<Self> {
        Self::create_with(dir, config, &Organisations::generate(), progress).await
    }

    /// [`LocalFleet::create`] with the organisations' keys given.
    pub async fn create_with(
        dir: &Path,
        config: &FleetConfig,
        orgs: &Organisations,
        mut progress: impl FnMut(&str),
    ) -> Result<Self> {
        if config.nodes == 0 {
            return Err(Error::Usage("a fleet needs at least one node".into()));
        }
        if dir.join("fleet.json").exists() {
            return Err(Error::Usage(format!("{} already holds a fleet", dir.display())));
        }
        std::fs::create_dir_all(dir).map_err(|source| Error::Write { path: dir.into(), source })?;
        let kek = load_kek(dir, true)?;
        let now = crate::cli::output::now();

        // Key generation inside the HSMs; the OPAQUE setup is generated in the first and
        // transferred to the others (crate::hsm, spec/vault.md §2.3).
        let first = SoftHsm::generate(&mut OsRng, VaultServerSetup::generate(&mut OsRng));
        let mut hsms = vec![first];
        for _ in 1..config.nodes {
            let setup = hsms[0].transfer_opaque_setup();
            hsms.push(SoftHsm::generate(&mut OsRng, setup));
        }
        let mut layout = Layout {
            fleet_id: config.fleet_id.clone(),
            epoch: config.epoch,
            guess_limit: config.guess_limit,
            nodes: Vec::new(),
        };
        let mut entries = Vec::new();
        for (i, hsm) in hsms.iter().enumerate() {
            let id = format!("node-{}", i + 1);
            let datacenter = DATACENTERS[i % DATACENTERS.len()].to_owned();
            let node_dir = dir.join(&id);
            std::fs::create_dir_all(&node_dir)
                .map_err(|source| Error::Write { path: node_dir.clone(), source })?;
            hsm.seal_to_file(&mut OsRng, &kek, &node_dir.join("hsm.sealed"))
                .map_err(|e| Error::Usage(e.to_string()))?;
            entries.push(hsm.node_entry(&id, &datacenter));
            layout.nodes.push(NodeLayout { id, datacenter, raft: free_addr()?, http: free_addr()? });
        }
        progress(&format!("{} software HSMs generated their keys (sealed under the KEK)", config.nodes));

        let keyset = FleetKeySet {
            v: 1,
            fleet_id: config.fleet_id.clone(),
            epoch: config.epoch,
            not_before: now - 60,
            not_after: now + 365 * 86_400,
            guess_limit: config.guess_limit,
            quorum: (config.nodes / 2 + 1) as u32,
            nodes: entries,
            prev: None,
            evidence: None,
        };
        keyset.validate()?;

        let (third_party, operator) = (&orgs.third_party, &orgs.operator);
        let claims = Claims { iss: THIRD_PARTY.into(), sub: config.fleet_id.clone(), iat: now };
        let bundle = countersign(&sign(&keyset.to_bytes(), &claims, third_party), operator)?;
        progress(&format!(
            "FleetKeySet of {} bytes signed by the third party (COSE_Sign1) and countersigned by the operator (RFC 9338)",
            keyset.to_bytes().len()
        ));

        let log = LocalLog::start(
            &dir.join("audit-log"),
            "log.third-party.example/bkv",
            config.witnesses,
            config.witness_threshold,
            &mut OsRng,
        )
        .await?;
        let released =
            release(&log.client, &log.anchors, bundle.clone(), &config.fleet_id, config.epoch).await?;
        progress(&format!(
            "the bundle is entry #{} of the audit log, cosigned by {} witnesses",
            released.proof.inclusion.leaf_index, config.witness_threshold
        ));

        let window = |name: &str, key: &bkv_protocol::crypto::PublicKey| Anchor {
            name: name.into(),
            key: key.clone(),
            not_before: now - 86_400,
            not_after: now + 2 * 365 * 86_400,
        };
        let trust = Trust {
            anchors: TrustAnchors {
                v: 1,
                fleet_id: config.fleet_id.clone(),
                third_party: vec![window(THIRD_PARTY, third_party.public_key())],
                operator: vec![window(OPERATOR, operator.public_key())],
                pinned: vec![],
            },
            log: log.anchors.clone(),
        };
        write_file(&dir.join("bundle.cbor"), &bundle)?;
        write_file(&dir.join("released-bundle.cbor"), &released.to_cbor())?;
        write_file(&dir.join("trust.cbor"), &bkv_protocol::cbor::to_vec(&trust))?;
        json_write(&dir.join("fleet.json"), &layout)?;

        let mut fleet = Self::assemble(dir, layout, keyset, released, trust, kek, config.timing)?;
        fleet.log = Some(log);
        for (i, hsm) in hsms.iter().enumerate() {
            fleet.start_node_inner(i, true, hsm).await?;
        }
        drop(hsms);
        progress(&format!("{} nodes started; waiting for a leader", config.nodes));
        fleet.wait_ready(Duration::from_secs(30)).await?;
        Ok(fleet)
    }

    /// Restart the fleet stored in `dir`.
    pub async fn open(dir: &Path, timing: Timing, mut progress: impl FnMut(&str)) -> Result<Self> {
        let layout: Layout = serde_json::from_slice(&read_file(&dir.join("fleet.json"))?)
            .map_err(|e| Error::Usage(format!("fleet.json: {e}")))?;
        let kek = load_kek(dir, false)?;
        let released = LoggedBundle::from_cbor(&read_file(&dir.join("released-bundle.cbor"))?)?;
        let trust: Trust = bkv_protocol::cbor::from_slice(&read_file(&dir.join("trust.cbor"))?)?;
        let parsed = bkv_protocol::validation_bundle::Parsed::parse(&released.bundle)?;
        let keyset = FleetKeySet::from_bytes(&parsed.payload)?;
        let mut fleet = Self::assemble(dir, layout, keyset, released, trust, kek, timing)?;
        for i in 0..fleet.nodes.len() {
            fleet.start_node(i).await?;
        }
        progress(&format!("{} nodes restarted from their storage; waiting for a leader", fleet.nodes.len()));
        fleet.wait_ready(Duration::from_secs(30)).await?;
        Ok(fleet)
    }

    fn assemble(
        dir: &Path,
        layout: Layout,
        keyset: FleetKeySet,
        released: LoggedBundle,
        trust: Trust,
        kek: Kek,
        timing: Timing,
    ) -> Result<Self> {
        let addrs: Vec<SocketAddr> = layout.nodes.iter().map(|n| n.raft).collect();
        let members = Arc::new(FleetMembers::from_key_set(&keyset, &addrs)?);
        let nodes = layout
            .nodes
            .iter()
            .map(|n| RunningNode {
                id: n.id.clone(),
                datacenter: n.datacenter.clone(),
                url: format!("http://{}", n.http),
                raft_addr: n.raft,
                raft: None,
                http: None,
            })
            .collect();
        Ok(Self {
            dir: dir.to_owned(),
            keyset,
            released,
            trust,
            nodes,
            log: None,
            members,
            timing,
            kek,
            guess_limit: layout.guess_limit,
        })
    }

    /// (Re)start node `i` from its sealed HSM and its storage.
    pub async fn start_node(&mut self, i: usize) -> Result<()> {
        let path = self.dir.join(&self.nodes[i].id).join("hsm.sealed");
        let hsm = SoftHsm::unseal_file(&path, &self.kek).map_err(|e| Error::Usage(e.to_string()))?;
        let fresh = !self.dir.join(&self.nodes[i].id).join("raft").exists();
        self.start_node_inner(i, fresh, &hsm).await
    }

    async fn start_node_inner(&mut self, i: usize, bootstrap: bool, hsm: &SoftHsm) -> Result<()> {
        let node = &self.nodes[i];
        let opts = NodeOptions {
            id: i as u64,
            dir: self.dir.join(&node.id).join("raft"),
            signer: hsm.node_signer(),
            bootstrap,
            timing: self.timing,
            links: Arc::new(AllUp),
        };
        let raft = RaftNode::start(self.members.clone(), opts, VaultStateMachine::new(self.guess_limit))
            .await
            .map_err(|e| Error::Usage(format!("{}: {e}", node.id)))?;
        let info = NodeInfo {
            v: 1,
            fleet_id: self.keyset.fleet_id.clone(),
            epoch: self.keyset.epoch,
            node_id: node.id.clone(),
            datacenter: node.datacenter.clone(),
        };
        let svc = Arc::new(NodeService::new(
            hsm.session_server(&self.keyset.fleet_id, self.keyset.epoch, &node.id),
            hsm.vault_server(&self.keyset.fleet_id),
            raft.command_log(),
            info,
            self.released.to_cbor(),
        ));
        let addr = node.url.trim_start_matches("http://").to_owned();
        let http = server::spawn(&addr, svc.router()).await?;
        let node = &mut self.nodes[i];
        node.raft = Some(raft);
        node.http = Some(http);
        Ok(())
    }

    /// Stop node `i` (its storage stays; [`LocalFleet::start_node`] restarts it).
    pub async fn stop_node(&mut self, i: usize) {
        self.nodes[i].http.take();
        if let Some(r) = self.nodes[i].raft.take() {
            r.shutdown().await;
        }
    }

    /// Wait until the running nodes agree on a leader and it can commit.
    pub async fn wait_ready(&self, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            let running: Vec<_> = self.nodes.iter().filter_map(|n| n.raft.as_ref()).collect();
            let leaders: std::collections::BTreeSet<_> =
                running.iter().map(|r| r.raft().metrics().borrow().current_leader).collect();
            if leaders.len() == 1 && leaders.first().is_some_and(|l| l.is_some()) {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(Error::Usage(format!("fleet.unavailable: no leader within {timeout:?}")));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The client endpoint of every node.
    pub fn urls(&self) -> Vec<String> {
        self.nodes.iter().map(|n| n.url.clone()).collect()
    }

    /// Stop every node and the log.
    pub async fn shutdown(mut self) {
        for i in 0..self.nodes.len() {
            self.stop_node(i).await;
        }
        self.log.take();
    }
}
