//! A local replicated fleet on loopback: `bkv fleet up`, `bkv demo` and the tests.
//!
//! Creating a fleet runs, in order: one software HSM per node ([`bkv_node::hsm`]), the
//! FleetKeySet built from the HSMs' public keys (spec/validation-bundle.md §3), the
//! third party's signature, the operator's countersignature, logging and witnessing
//! (spec/audit-log.md §8.2, [`release`]), then the nodes: each a Raft member over redb
//! (spec/fleet-replication.md) running the vault state machine, with its client endpoint
//! ([`bkv_node::service`]).
//!
//! Layout of the fleet directory (everything a restart needs; nothing acknowledged is
//! lost across `bkv fleet up` restarts):
//! - `fleet.json`: fleet id, epoch, guess limit and each node's id, datacenter and ports;
//! - `kek.hex`: the HSMs' key-encryption key, unless `BKV_HSM_KEK` is set (a KEK file
//!   next to the sealed keys is for local development only, and `fleet up` says so);
//! - `node-N/hsm.sealed`, `node-N/raft/`: a node's sealed HSM and its Raft storage;
//! - `released-bundle.cbor` (bundle + log proof, what nodes serve), `bundle.cbor`,
//!   `trust.cbor` (the anchors an app pins: both organisations and the log);
//! - `audit-log/`: the third party's log and witnesses (a rotated fleet names its
//!   predecessor's log in `fleet.json`);
//! - `orgs/`: both organisations' signing keys. A single-machine development fleet keeps them
//!   here so that `bkv fleet rotate` can sign a successor; in a deployment each organisation
//!   holds its own key and nothing here would exist;
//! - `RETIRED`: written when the fleet is decommissioned after a rotation
//!   (spec/rotation.md §6); such a directory no longer starts.

use crate::error::{Error, Result, read_file, write_file};
use crate::third_party::ThirdParty;
use bkv_client::Trust;
use bkv_node::hsm::{Kek, SoftHsm};
use bkv_node::replication::CommandLog;
use bkv_node::replication::raft::bench::{LogRef, UnreplicatedLog};
use bkv_node::replication::raft::{AllUp, FleetMembers, NodeOptions, RaftNode, Timing};
use bkv_node::service::{NodeInfo, NodeService};
use bkv_protocol::audit_log::LoggedBundle;
use bkv_protocol::crypto::sha256;
use bkv_protocol::crypto::{Ed25519Signer, Esp256Signer, Signer};
use bkv_protocol::hsm::{AppliedOutput, Boundary, BoundaryConfig, HsmMachine, LogEntry, RpcSigner};
use bkv_protocol::validation_bundle::{Anchor, FleetKeySet, TrustAnchors};
use bkv_protocol::vault::{VaultCommand, VaultOutput, VaultServerSetup};
use bkv_third_party::local::LocalLog;
use bkv_third_party::log_server::{self as server, Running};
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
/// The ceremony observer's name.
pub const OBSERVER: &str = "observer.example";
/// The simulated HSM vendor root's name.
pub const VENDOR: &str = "bkv soft-hsm vendor";
/// The software HSM's "firmware" measurement (what a vendor would publish).
pub const SOFT_HSM_FIRMWARE: [u8; 32] = [
    0x6b, 0x76, 0x2d, 0x73, 0x6f, 0x66, 0x74, 0x2d, 0x68, 0x73, 0x6d, 0x2d, 0x66, 0x69, 0x72, 0x6d, 0x77,
    0x61, 0x72, 0x65, 0x2d, 0x76, 0x31, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01,
];

/// spec/evidence.md §2 `Software`: the measurement of the node software (SHA-256 of the
/// `bkv-node` executable, spec/audit.md §1.2) and the recipe that rebuilds it. Fails, never
/// falls back, when the executable cannot be read.
pub fn software_measurement() -> Result<bkv_protocol::evidence::Software> {
    static MEASUREMENT: std::sync::OnceLock<std::result::Result<[u8; 32], String>> =
        std::sync::OnceLock::new();
    let measurement = MEASUREMENT
        .get_or_init(|| {
            let exe = crate::third_party::node_binary().map_err(|e| e.to_string())?;
            std::fs::read(&exe).map(|b| sha256(&b)).map_err(|e| format!("{}: {e}", exe.display()))
        })
        .clone()
        .map_err(|e| Error::Usage(format!("cannot measure the node software: {e}")))?;
    Ok(bkv_protocol::evidence::Software { measurement, recipe: recipe() })
}

/// The build recipe of spec/audit.md §1.2 for this build.
pub fn recipe() -> String {
    format!(
        "git checkout {} (or its source archive); cargo build --release --locked -p bkv-fleet --bin bkv-node \
         with {}; the measurement is SHA-256 of target/release/bkv-node (bkv-fleet {}; spec/audit.md §1.2)",
        env!("BKV_SOURCE_REV"),
        env!("BKV_RUSTC_VERSION"),
        env!("CARGO_PKG_VERSION")
    )
}

/// The folder of what the organisations publish for auditors (spec/audit.md §1.1).
pub const PUBLISHED: &str = "published";

/// Write `DIR/published/`: everything an auditor needs besides the log's URL and a rebuilt
/// node binary, in the published forms of spec/audit.md §1.1: the evidence and the released
/// bundle, each organisation's PEM public key, the log's and witnesses' verifier keys, the
/// simulated vendor's self-signed root certificate, and a trust spec naming them
/// (`bkv trust build published/trust.toml`).
pub fn publish(
    dir: &Path,
    trust: &Trust,
    vendor: &Ed25519Signer,
    evidence: &[u8],
    released: &[u8],
) -> Result<()> {
    let out = dir.join(PUBLISHED);
    std::fs::create_dir_all(&out).map_err(|source| Error::Write { path: out.clone(), source })?;
    write_file(&out.join("evidence.cbor"), evidence)?;
    write_file(&out.join("released-bundle.cbor"), released)?;
    // Each organisation key as PEM, named as the trust spec names it.
    let key_file = |role: &str, i: usize| {
        format!("{}{}.pem", role.replace('_', "-"), if i == 0 { String::new() } else { format!("-{i}") })
    };
    for (role, list) in [("third_party", &trust.anchors.third_party), ("operator", &trust.anchors.operator)] {
        for (i, a) in list.iter().enumerate() {
            let pem = bkv_client::published::public_key_to_pem(&a.key);
            write_file(&out.join(key_file(role, i)), pem.as_bytes())?;
        }
    }
    let log = &trust.log;
    write_file(&out.join("log.vkey"), format!("{}\n", log.log_key.encode()).as_bytes())?;
    let witnesses: String = log.witnesses.iter().map(|w| format!("{}\n", w.encode())).collect();
    write_file(&out.join("witnesses.vkey"), witnesses.as_bytes())?;
    let spec = bkv_client::published::trust_spec(trust, &key_file);
    write_file(&out.join("trust.toml"), spec.as_bytes())?;
    write_file(&out.join("vendor-root.pem"), crate::cli::tls::self_signed_root(VENDOR, vendor)?.as_bytes())?;
    Ok(())
}

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

/// The operator's side of a local fleet: the operator's countersigning key, and the HSM
/// vendor's root and the ceremony observer that a development fleet simulates. The third
/// party's key is never here: it lives in its own directory and process
/// ([`crate::third_party`]), so no process of a local fleet holds both organisations' keys.
pub struct OperatorKeys {
    /// The operator (ESP256).
    pub operator: Esp256Signer,
    /// The HSM vendor's root (simulated; spec/evidence.md §3).
    pub vendor: Ed25519Signer,
    /// An independent observer of the key ceremony (spec/evidence.md §4).
    pub observer: Ed25519Signer,
}

impl OperatorKeys {
    /// Fresh keys.
    pub fn generate() -> Self {
        Self {
            operator: Esp256Signer::generate(&mut OsRng),
            vendor: Ed25519Signer::generate(&mut OsRng),
            observer: Ed25519Signer::generate(&mut OsRng),
        }
    }

    /// Keep the keys in `dir/orgs/` (development fleets only; see the module docs).
    pub fn store(&self, dir: &Path) -> Result<()> {
        let orgs = dir.join("orgs");
        std::fs::create_dir_all(&orgs).map_err(|source| Error::Write { path: orgs.clone(), source })?;
        let write = |name: &str, secret: &[u8]| {
            Kek::from_hex(&hex::encode(secret))
                .and_then(|k| k.write_file(&orgs.join(name)))
                .map_err(Error::Hsm)
        };
        write("operator.scalar", &self.operator.scalar()[..])?;
        write("vendor.seed", &self.vendor.seed()[..])?;
        write("observer.seed", &self.observer.seed()[..])
    }

    /// The operator's countersigning key, for the signing protocol (`bkv_operator`).
    pub fn countersigning_key(&self) -> Result<bkv_operator::OperatorKey> {
        let key = Esp256Signer::from_scalar(&self.operator.scalar())?;
        Ok(bkv_operator::OperatorKey::new(Box::new(key)))
    }

    /// Load the keys [`OperatorKeys::store`] kept.
    pub fn load(dir: &Path) -> Result<Self> {
        let read = |name: &str| -> Result<zeroize::Zeroizing<[u8; 32]>> {
            let path = dir.join("orgs").join(name);
            let kek = Kek::from_file(&path).map_err(Error::Hsm)?;
            Ok(kek.expose())
        };
        Ok(Self {
            operator: Esp256Signer::from_scalar(&*read("operator.scalar")?)?,
            vendor: Ed25519Signer::from_seed(&*read("vendor.seed")?),
            observer: Ed25519Signer::from_seed(&*read("observer.seed")?),
        })
    }
}

/// `fleet.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Layout {
    fleet_id: String,
    epoch: u64,
    guess_limit: u32,
    nodes: Vec<NodeLayout>,
    log: LogLayout,
    /// The third party's directory (its key and signer state); `DIR/third-party` when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    third_party: Option<PathBuf>,
}

/// Where the fleet's audit log lives and how it is witnessed.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct LogLayout {
    dir: PathBuf,
    origin: String,
    witnesses: usize,
    threshold: u64,
}

/// The log origin of local fleets.
pub const LOG_ORIGIN: &str = "log.third-party.example/bkv";

#[derive(Debug, Clone, Serialize, Deserialize)]
struct NodeLayout {
    id: String,
    datacenter: String,
    raft: SocketAddr,
    http: SocketAddr,
}

/// Write `node-N/node.toml` for every node of the fleet stored in `dir`
/// (`reference-fleet/README.md`, "Node configuration"), so that each node can run as its
/// own process with `bkv-node run --config`. The addresses are the fleet's stored ones;
/// `audit_log` is the log URL the nodes relay, if any. Returns the files written.
pub fn write_node_configs(dir: &Path, audit_log: Option<&str>) -> Result<Vec<PathBuf>> {
    write_configs(dir, &read_layout(dir)?, audit_log, false)
}

/// Write every node's `node.toml` for a supervisor's first start of a new fleet: every
/// listen and peer address has port 0 (the nodes bind, report their ports and are told
/// their peers', `bkv-node run --announce`); [`store_node_addrs`] then stores the real ones.
pub fn write_first_start_configs(dir: &Path, audit_log: Option<&str>) -> Result<Vec<PathBuf>> {
    write_configs(dir, &read_layout(dir)?, audit_log, true)
}

/// Store the addresses the nodes of the fleet in `dir` bound on their first start (id,
/// client, peer) in `fleet.json` and in every `node.toml`, so that restarts bind them again.
pub fn store_node_addrs(
    dir: &Path,
    audit_log: Option<&str>,
    bound: &[(String, SocketAddr, SocketAddr)],
) -> Result<()> {
    let mut layout = read_layout(dir)?;
    for n in &mut layout.nodes {
        let (_, http, raft) = bound
            .iter()
            .find(|(id, _, _)| *id == n.id)
            .ok_or_else(|| Error::Runtime(format!("{} reported no address", n.id)))?;
        (n.http, n.raft) = (*http, *raft);
    }
    json_write(&dir.join("fleet.json"), &layout)?;
    write_configs(dir, &layout, audit_log, false)?;
    Ok(())
}

fn read_layout(dir: &Path) -> Result<Layout> {
    serde_json::from_slice(&read_file(&dir.join("fleet.json"))?)
        .map_err(|e| Error::BadInput { path: dir.join("fleet.json"), detail: e.to_string() })
}

fn write_configs(dir: &Path, layout: &Layout, audit_log: Option<&str>, port0: bool) -> Result<Vec<PathBuf>> {
    let open = |a: SocketAddr| if port0 { SocketAddr::new(a.ip(), 0) } else { a };
    // The KEK comes from BKV_HSM_KEK when it is set (as for `LocalFleet`), else the file.
    let kek_file = if std::env::var_os(bkv_node::hsm::KEK_ENV).is_none() && dir.join("kek.hex").exists() {
        "kek_file = \"../kek.hex\"\n"
    } else {
        ""
    };
    let mut written = Vec::new();
    for n in &layout.nodes {
        let mut text = format!(
            "# bkv node {id} of fleet {fleet} epoch {epoch} (written by `bkv fleet configs`)\n\
             id = \"{id}\"\n\
             data_dir = \".\"\n\
             released_bundle = \"../released-bundle.cbor\"\n\
             trust = \"../trust.cbor\"\n\n\
             [listen]\n\
             client = \"{http}\"\n\
             peer = \"{raft}\"\n\n\
             [hsm]\n\
             sealed = \"hsm.sealed\"\n\
             {kek_file}",
            id = n.id,
            fleet = layout.fleet_id,
            epoch = layout.epoch,
            http = open(n.http),
            raft = open(n.raft),
        );
        for p in layout.nodes.iter().filter(|p| p.id != n.id) {
            text.push_str(&format!("\n[[peers]]\nid = \"{}\"\naddress = \"{}\"\n", p.id, open(p.raft)));
        }
        if let Some(url) = audit_log {
            text.push_str(&format!("\n[audit_log]\nurl = \"{url}\"\n"));
        }
        let path = dir.join(&n.id).join("node.toml");
        write_file(&path, text.as_bytes())?;
        written.push(path);
    }
    Ok(written)
}

/// The node-to-node addresses of the fleet stored in `dir` (for `bkv fleet status`).
pub fn raft_addrs(dir: &Path) -> Result<Vec<String>> {
    let layout = read_layout(dir)?;
    Ok(layout.nodes.iter().map(|n| n.raft.to_string()).collect())
}

/// A failed check of the setup transfer is a verification failure (its spec code, exit 1);
/// the HSM's own failures keep their `hsm.*` codes.
fn transfer_error(e: bkv_node::HsmError) -> Error {
    match e {
        bkv_node::HsmError::Transfer(p) => Error::Protocol(p),
        e => Error::Hsm(e),
    }
}

/// Where a new fleet's OPAQUE setup comes from.
enum OpaqueOrigin {
    /// A first fleet: generated at its ceremony.
    Ceremony(Box<VaultServerSetup>),
    /// A successor: its HSMs await the predecessor's setup, whose public key this is, and
    /// receive it after the predecessor verified the successor (spec/rotation.md §4.1).
    Predecessor([u8; 32]),
}

/// What a new fleet starts from: fresh for a first fleet, the predecessor's OPAQUE key,
/// chain and log for a successor.
struct Genesis {
    opaque: OpaqueOrigin,
    epoch: u64,
    prev: Option<[u8; 32]>,
    log: Arc<LocalLog>,
    log_layout: LogLayout,
    trust: Trust,
    third_party: ThirdParty,
}

/// What a rotation moved (spec/rotation.md).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RotationReport {
    /// The retired epoch.
    pub from_epoch: u64,
    /// The successor's epoch.
    pub to_epoch: u64,
    /// Records moved with a registration.
    pub registered: usize,
    /// Ids moved with only a counter.
    pub unregistered: usize,
    /// Locked ids moved (they stay locked).
    pub locked: usize,
    /// SHA-256 of the successor's bundle, hex.
    pub successor: String,
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
    raft: Option<RaftNode<HsmMachine>>,
    hsm: Option<Arc<Boundary>>,
    http: Option<Running>,
}

impl RunningNode {
    /// The Raft node, if running.
    pub fn raft(&self) -> Option<&RaftNode<HsmMachine>> {
        self.raft.as_ref()
    }

    /// The node's HSM, if running (spec/hsm.md).
    pub fn hsm(&self) -> Option<&Arc<Boundary>> {
        self.hsm.as_ref()
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
    /// The audit log and witnesses, shared with the fleet's successor.
    pub log: Option<Arc<LocalLog>>,
    members: Arc<FleetMembers>,
    timing: Timing,
    kek: Kek,
    guess_limit: u32,
    log_layout: LogLayout,
    /// The third party's directory (its key and its signer's state).
    third_party: PathBuf,
    /// Listeners bound when the fleet was created, taken by each node's first start.
    bound: Vec<Option<Bound>>,
    /// The nodes' rate limits (spec/node-api.md §6): none in a fleet served in this
    /// process (the demo, tests, benchmarks); `bkv-node run` applies its `[limits]`.
    pub rate_limits: bkv_node::rate::RateLimits,
    /// Keep every HSM's state in memory instead of its sealed file: NOT durable, so a
    /// restart forgets the mark (spec/hsm.md §2). Only `bkv bench recovery
    /// --volatile-hsm-state` sets it, to measure what the HSM-state writes cost.
    pub volatile_hsm_state: bool,
}

/// A loopback listener on a port the OS chose: bound once, and handed to the node that
/// serves on it (no pick-then-bind race with other processes).
fn bind_loopback() -> Result<(std::net::TcpListener, SocketAddr)> {
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr().map(|a| (l, a))).map_err(|e| {
        Error::NodeStart(bkv_node::StartError::Bind("127.0.0.1:0".parse().expect("an address"), e))
    })
}

/// Node `i`'s listeners of a fleet's first start: node-to-node, then client API.
type Bound = (std::net::TcpListener, std::net::TcpListener);

fn json_write(path: &Path, v: &impl Serialize) -> Result<()> {
    write_file(path, &serde_json::to_vec_pretty(v).expect("serializable"))
}

/// The KEK: `BKV_HSM_KEK`, else `dir/kek.hex` (created when `create` is true).
fn load_kek(dir: &Path, create: bool) -> Result<Kek> {
    if let Some(k) = Kek::from_env() {
        return k.map_err(Error::Hsm);
    }
    let path = dir.join("kek.hex");
    if create && !path.exists() {
        let kek = Kek::generate(&mut OsRng);
        kek.write_file(&path).map_err(Error::Hsm)?;
        return Ok(kek);
    }
    Kek::from_file(&path).map_err(Error::Hsm)
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
        Self::create_with(dir, config, &OperatorKeys::generate(), progress).await
    }

    /// [`LocalFleet::create`] with the organisations' keys given.
    pub async fn create_with(
        dir: &Path,
        config: &FleetConfig,
        orgs: &OperatorKeys,
        progress: impl FnMut(&str),
    ) -> Result<Self> {
        Self::first_epoch(dir, config, orgs, true, progress).await
    }

    /// The key ceremony of a new fleet (spec/evidence.md) without starting its nodes:
    /// `bkv fleet ceremony`. The fleet starts later with [`LocalFleet::open`].
    pub async fn ceremony(
        dir: &Path,
        config: &FleetConfig,
        orgs: &OperatorKeys,
        progress: impl FnMut(&str),
    ) -> Result<Self> {
        Self::first_epoch(dir, config, orgs, false, progress).await
    }

    async fn first_epoch(
        dir: &Path,
        config: &FleetConfig,
        orgs: &OperatorKeys,
        start: bool,
        progress: impl FnMut(&str),
    ) -> Result<Self> {
        if config.nodes == 0 {
            return Err(Error::Usage("a fleet needs at least one node".into()));
        }
        if dir.join("fleet.json").exists() {
            return Err(Error::Usage(format!("{} already holds a fleet", dir.display())));
        }
        std::fs::create_dir_all(dir).map_err(|source| Error::Write { path: dir.into(), source })?;
        let log_layout = LogLayout {
            dir: std::path::absolute(dir.join("audit-log"))
                .map_err(|source| Error::Write { path: dir.into(), source })?,
            origin: LOG_ORIGIN.into(),
            witnesses: config.witnesses,
            threshold: config.witness_threshold,
        };
        let log = Arc::new(
            LocalLog::spawn(
                &crate::third_party::bkv_binary()?,
                &log_layout.dir,
                LOG_ORIGIN,
                config.witnesses,
                config.witness_threshold,
            )
            .await?,
        );
        let now = bkv_client::clock::system_now();
        let window = |name: &str, key: &bkv_protocol::crypto::PublicKey| Anchor {
            name: name.into(),
            key: key.clone(),
            not_before: now - 86_400,
            not_after: now + 2 * 365 * 86_400,
        };
        // The third party's key is made by its own process, in its own directory.
        let third_party = ThirdParty::open_or_create(&dir.join("third-party")).await?;
        let trust = Trust {
            anchors: TrustAnchors {
                v: 1,
                fleet_id: config.fleet_id.clone(),
                third_party: vec![window(THIRD_PARTY, &third_party.public)],
                operator: vec![window(OPERATOR, orgs.operator.public_key())],
                pinned: vec![],
            },
            log: log.anchors.clone(),
        };
        let genesis = Genesis {
            opaque: OpaqueOrigin::Ceremony(Box::new(VaultServerSetup::generate(&mut OsRng))),
            epoch: config.epoch,
            prev: None,
            log,
            log_layout,
            trust,
            third_party,
        };
        Self::deploy(dir, config, orgs, genesis, start, progress).await
    }

    /// Deploy a fleet by its key ceremony (spec/evidence.md): HSMs generate keys, the vendor
    /// certifies the devices, each HSM attests its node keys, the transcript is signed step by
    /// step, the operator signs the evidence, the third party logs it, signs the FleetKeySet,
    /// the operator countersigns, the bundle is logged and released; then the deployment is
    /// audited (spec/audit.md) and, when `start`, the nodes are started.
    async fn deploy(
        dir: &Path,
        config: &FleetConfig,
        orgs: &OperatorKeys,
        genesis: Genesis,
        start: bool,
        mut progress: impl FnMut(&str),
    ) -> Result<Self> {
        use bkv_protocol::evidence::{
            Attestation, AttestationStatement, Evidence, Issuer, Participant, Policy, Transcript,
        };
        std::fs::create_dir_all(dir).map_err(|source| Error::Write { path: dir.into(), source })?;
        let kek = load_kek(dir, true)?;
        orgs.store(dir)?;
        let now = bkv_client::clock::system_now();
        let participants = vec![
            Participant { name: OPERATOR.into(), key: orgs.operator.public_key().clone() },
            Participant { name: OBSERVER.into(), key: orgs.observer.public_key().clone() },
        ];
        let mut transcript = Transcript::new(participants);
        transcript.step(&orgs.operator, now, "open", &format!("{} epoch {}", config.fleet_id, genesis.epoch));

        // Key generation inside the HSMs; the OPAQUE setup comes from the ceremony and is
        // transferred to each (bkv_node::hsm, spec/vault.md §2.3), or, for a successor, the
        // HSMs await the predecessor's (spec/rotation.md §4.1) and the fleet cannot start yet.
        let mut hsms = Vec::new();
        for _ in 0..config.nodes {
            hsms.push(match &genesis.opaque {
                OpaqueOrigin::Ceremony(setup) => SoftHsm::generate(
                    &mut OsRng,
                    VaultServerSetup::from_bytes(&setup.to_bytes()).expect("own setup re-decodes"),
                ),
                OpaqueOrigin::Predecessor(key) => SoftHsm::generate_awaiting(&mut OsRng, *key),
            });
        }
        let start = start && matches!(genesis.opaque, OpaqueOrigin::Ceremony(_));
        let mut layout = Layout {
            fleet_id: config.fleet_id.clone(),
            epoch: genesis.epoch,
            guess_limit: config.guess_limit,
            nodes: Vec::new(),
            log: genesis.log_layout.clone(),
            third_party: None,
        };
        let mut entries = Vec::new();
        let mut bound = Vec::new();
        for (i, hsm) in hsms.iter().enumerate() {
            let id = format!("node-{}", i + 1);
            let datacenter = DATACENTERS[i % DATACENTERS.len()].to_owned();
            let node_dir = dir.join(&id);
            std::fs::create_dir_all(&node_dir)
                .map_err(|source| Error::Write { path: node_dir.clone(), source })?;
            hsm.seal_to_file(&mut OsRng, &kek, &node_dir.join("hsm.sealed")).map_err(Error::Hsm)?;
            transcript.step(&orgs.operator, now, "keygen", &id);
            entries.push(hsm.node_entry(&id, &datacenter));
            let ((raft_l, raft), (http_l, http)) = (bind_loopback()?, bind_loopback()?);
            layout.nodes.push(NodeLayout { id, datacenter, raft, http });
            bound.push(Some((raft_l, http_l)));
        }
        progress(&format!("{} software HSMs generated their keys (sealed under the KEK)", config.nodes));

        let mut keyset = FleetKeySet {
            v: 1,
            fleet_id: config.fleet_id.clone(),
            epoch: genesis.epoch,
            not_before: now - 60,
            not_after: now + 365 * 86_400,
            guess_limit: config.guess_limit,
            quorum: (config.nodes / 2 + 1) as u32,
            nodes: entries,
            prev: genesis.prev,
            evidence: None,
        };
        keyset.validate()?;
        let core = bkv_protocol::evidence::keyset_core(&keyset);

        // Attestations: the vendor certified each device; each HSM attests its node keys.
        let software = software_measurement()?;
        let vendor = Issuer { name: VENDOR, signer: &orgs.vendor };
        let mut attestations = Vec::new();
        for (hsm, node) in hsms.iter().zip(&keyset.nodes) {
            let device = format!("softhsm-{}", hex::encode(&hsm.device_key().kid()[..6]));
            let cert = vendor.certify(&device, hsm.device_key(), SOFT_HSM_FIRMWARE, false);
            let statement = AttestationStatement {
                v: 1,
                device,
                fleet_id: keyset.fleet_id.clone(),
                epoch: keyset.epoch,
                node_id: node.id.clone(),
                keys: node.keys.clone(),
                firmware: SOFT_HSM_FIRMWARE,
                software: software.measurement,
            };
            attestations.push(Attestation {
                node_id: node.id.clone(),
                chain: vec![serde_bytes::ByteBuf::from(cert)],
                statement: hsm.attest(&statement),
            });
            transcript.step(&orgs.observer, now, "attest", &node.id);
        }
        transcript.step(&orgs.observer, now, "keyset", &hex::encode(core));
        transcript.step(&orgs.operator, now, "close", "");
        let evidence = Evidence {
            v: 1,
            fleet_id: keyset.fleet_id.clone(),
            epoch: keyset.epoch,
            keyset_core: core,
            policy: Policy {
                guess_limit: keyset.guess_limit,
                quorum: keyset.quorum,
                datacenters: keyset.nodes.iter().map(|n| n.datacenter.clone()).collect(),
            },
            software,
            attestations,
            ceremony: transcript.finish(),
        };
        let evidence_bytes = bkv_protocol::evidence::sign_evidence(&evidence, &orgs.operator);
        keyset.evidence = Some(sha256(&evidence_bytes));
        write_file(&dir.join("evidence.cbor"), &evidence_bytes)?;
        let vendor_roots = vec![bkv_protocol::audit::VendorRoot {
            name: VENDOR.into(),
            key: orgs.vendor.public_key().clone(),
        }];
        write_file(&dir.join("vendor-roots.cbor"), &bkv_protocol::cbor::to_vec(&vendor_roots))?;
        progress(&format!(
            "deployment evidence: {} attestations, {} ceremony steps, signed by the operator",
            keyset.nodes.len(),
            evidence.ceremony.steps.len()
        ));

        // The third party signs in its own process, with its own key (spec/signer-api.md):
        // it logs the evidence, checks it (spec/audit.md §3) and signs; this process, the
        // operator, checks what it signed, countersigns, and checks the release.
        let log = genesis.log;
        write_file(&dir.join("trust.cbor"), &bkv_protocol::cbor::to_vec(&genesis.trust))?;
        let signer = genesis
            .third_party
            .start_signer(
                &dir.join("trust.cbor"),
                &dir.join("vendor-roots.cbor"),
                evidence.software.measurement,
                SOFT_HSM_FIRMWARE,
                &log,
                &genesis.log_layout.dir.join("admin.token"),
            )
            .await?;
        let released = bkv_operator::countersign_release(
            &signer.url,
            &orgs.countersigning_key()?,
            &genesis.trust,
            &keyset.to_bytes(),
            &evidence_bytes,
            now,
        )
        .await?;
        let signer_pid = signer.pid;
        drop(signer);
        let bundle = released.bundle.clone();
        progress(&format!(
            "the third party's signer (pid {signer_pid}: its own process and key) logged the evidence, checked it (spec/audit.md §3) and signed the FleetKeySet of {} bytes (epoch {}); the operator checked it and countersigned (RFC 9338)",
            keyset.to_bytes().len(),
            keyset.epoch
        ));
        progress(&format!(
            "the bundle is entry #{} of the audit log, cosigned by {} witnesses",
            released.proof.inclusion.leaf_index, log.anchors.threshold
        ));
        write_file(&dir.join("bundle.cbor"), &bundle)?;
        write_file(&dir.join("released-bundle.cbor"), &released.to_cbor())?;
        publish(dir, &genesis.trust, &orgs.vendor, &evidence_bytes, &released.to_cbor())?;
        layout.third_party = Some(genesis.third_party.dir.clone());
        json_write(&dir.join("fleet.json"), &layout)?;

        let mut fleet = Self::assemble(dir, layout, keyset, released, genesis.trust, kek, config.timing)?;
        fleet.bound = bound;
        fleet.log = Some(log);
        let report = fleet.audit().await?;
        if let Some((step, code)) = &report.failure {
            return Err(Error::Usage(format!("the new deployment does not audit: {step} [{code}]")));
        }
        progress(&format!("audited: {} steps of spec/audit.md passed", report.passed.len()));
        drop(hsms);
        if start {
            fleet.start_new(&mut progress).await?;
        }
        Ok(fleet)
    }

    /// Start every node of a fleet just deployed (its first start).
    async fn start_new(&mut self, mut progress: impl FnMut(&str)) -> Result<()> {
        for i in 0..self.nodes.len() {
            let hsm = self.open_hsm(i, true)?;
            self.start_node_inner(i, true, hsm).await?;
        }
        self.wait_ready(Duration::from_secs(30)).await?;
        progress(&format!("{} nodes started and elected a leader", self.nodes.len()));
        Ok(())
    }

    /// spec/rotation.md §4.1: an HSM of this (verified) fleet seals the OPAQUE setup to
    /// every node of `successor`'s logged bundle, after checking that bundle itself; each
    /// successor HSM opens its envelope and is sealed again holding the setup.
    fn transfer_setup(&self, successor: &LocalFleet, now: u64) -> Result<usize> {
        let old_hsm = SoftHsm::unseal_file(&self.dir.join(&self.nodes[0].id).join("hsm.sealed"), &self.kek)
            .map_err(Error::Hsm)?;
        let sealed = old_hsm
            .seal_setup_for_successor(
                &mut OsRng,
                &self.keyset,
                &self.released.bundle,
                &successor.released,
                &self.trust.anchors,
                &self.trust.log,
                now,
            )
            .map_err(transfer_error)?;
        drop(old_hsm);
        let digest = sha256(&successor.released.bundle);
        for (node_id, envelope) in &sealed {
            let path = successor.dir.join(node_id).join("hsm.sealed");
            let mut hsm = SoftHsm::unseal_file(&path, &successor.kek).map_err(Error::Hsm)?;
            hsm.receive_setup(envelope, &successor.keyset.fleet_id, successor.keyset.epoch, node_id, digest)
                .map_err(transfer_error)?;
            hsm.seal_to_file(&mut OsRng, &successor.kek, &path).map_err(Error::Hsm)?;
        }
        Ok(sealed.len())
    }

    /// Start this fleet's third-party signer (`bkv signer serve`: its own process, with the
    /// third party's key), checking evidence against this fleet's vendor roots and the
    /// software measurement in its evidence.
    pub async fn start_signer(&self) -> Result<crate::third_party::SignerProcess> {
        let log =
            self.log.clone().ok_or_else(|| Error::Usage("the fleet's audit log is not running".into()))?;
        let evidence = read_file(&self.dir.join("evidence.cbor"))?;
        let ev = bkv_protocol::evidence::Sign1::parse(&evidence, bkv_protocol::evidence::CT_EVIDENCE)?;
        let doc: bkv_protocol::evidence::Evidence = ev.decode()?;
        ThirdParty::open_or_create(&self.third_party)
            .await?
            .start_signer(
                &self.dir.join("trust.cbor"),
                &self.dir.join("vendor-roots.cbor"),
                doc.software.measurement,
                SOFT_HSM_FIRMWARE,
                &log,
                &self.log_layout.dir.join("admin.token"),
            )
            .await
    }

    /// Run the Audit procedure (spec/audit.md) on this fleet's deployment, against its log,
    /// the simulated vendor root and this build's software measurement.
    pub async fn audit(&self) -> Result<bkv_protocol::audit::AuditReport> {
        let log =
            self.log.clone().ok_or_else(|| Error::Usage("the fleet's audit log is not running".into()))?;
        let evidence = read_file(&self.dir.join("evidence.cbor"))?;
        let roots: Vec<bkv_protocol::audit::VendorRoot> =
            bkv_protocol::cbor::from_slice(&read_file(&self.dir.join("vendor-roots.cbor"))?)?;
        let fetched = crate::cli::audit::fetch_log(&log.client).await?;
        Ok(bkv_protocol::audit::audit(&bkv_protocol::audit::AuditInputs {
            evidence: &evidence,
            released: &self.released,
            anchors: &self.trust.anchors,
            log_anchors: &self.trust.log,
            checkpoint: &fetched.checkpoint,
            entries: &fetched.entries,
            vendor_roots: &roots,
            software: software_measurement()?.measurement,
            firmware: Some(SOFT_HSM_FIRMWARE),
            now: bkv_client::clock::system_now(),
        }))
    }

    /// Restart the fleet stored in `dir`.
    pub async fn open(dir: &Path, timing: Timing, mut progress: impl FnMut(&str)) -> Result<Self> {
        let mut fleet = Self::open_stopped(dir, timing).await?;
        for i in 0..fleet.nodes.len() {
            fleet.start_node(i).await?;
        }
        progress(&format!("{} nodes restarted from their storage; waiting for a leader", fleet.nodes.len()));
        fleet.wait_ready(Duration::from_secs(30)).await?;
        Ok(fleet)
    }

    /// The fleet stored in `dir` with its audit log serving and no node started in this
    /// process (the supervisor of `bkv fleet up` runs each node as a child).
    pub async fn open_stopped(dir: &Path, timing: Timing) -> Result<Self> {
        if dir.join("RETIRED").exists() {
            return Err(Error::Protocol(bkv_protocol::Error::RotationFleetRetired));
        }
        let layout = read_layout(dir)?;
        // A previous incarnation in this process may still be letting go of the log's files
        // (its server tasks end asynchronously): retry for a while.
        let deadline = Instant::now() + Duration::from_secs(10);
        let bkv = crate::third_party::bkv_binary()?;
        let log = loop {
            let l = &layout.log;
            match LocalLog::spawn(&bkv, &l.dir, &l.origin, l.witnesses, l.threshold).await {
                Ok(log) => break log,
                Err(e) if Instant::now() < deadline => {
                    tracing::debug!("audit log not yet free: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(e) => return Err(e.into()),
            }
        };
        let kek = load_kek(dir, false)?;
        let released = LoggedBundle::from_cbor(&read_file(&dir.join("released-bundle.cbor"))?)?;
        let trust: Trust = bkv_protocol::cbor::from_slice(&read_file(&dir.join("trust.cbor"))?)?;
        let parsed = bkv_protocol::validation_bundle::Parsed::parse(&released.bundle)?;
        let keyset = FleetKeySet::from_bytes(&parsed.payload)?;
        // Every node's HSM opens under this KEK, or nothing starts (`hsm.unseal.failed`).
        for n in &layout.nodes {
            SoftHsm::unseal_file(&dir.join(&n.id).join("hsm.sealed"), &kek).map_err(Error::Hsm)?;
        }
        let mut fleet = Self::assemble(dir, layout, keyset, released, trust, kek, timing)?;
        fleet.log = Some(Arc::new(log));
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
                hsm: None,
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
            third_party: layout.third_party.unwrap_or_else(|| dir.join("third-party")),
            log_layout: layout.log,
            bound: Vec::new(),
            rate_limits: bkv_node::rate::RateLimits::OFF,
            volatile_hsm_state: false,
        })
    }

    /// Let go of the listeners bound when the fleet was created (for nodes that run in
    /// other processes and bind the stored addresses themselves).
    pub fn release_listeners(&mut self) {
        self.bound.clear();
    }

    /// (Re)start node `i` from its sealed HSM, its HSM state and its storage.
    pub async fn start_node(&mut self, i: usize) -> Result<()> {
        let fresh = !self.dir.join(&self.nodes[i].id).join("raft").exists();
        let hsm = self.open_hsm(i, fresh)?;
        self.start_node_inner(i, fresh, hsm).await
    }

    /// spec/hsm.md: node `i`'s HSM, started from its sealed keys and its HSM state
    /// (`node-N/hsm.state`); `fresh` when the node has no storage yet.
    fn open_hsm(&self, i: usize, fresh: bool) -> Result<Arc<Boundary>> {
        let path = self.dir.join(&self.nodes[i].id).join("hsm.sealed");
        let hsm = SoftHsm::unseal_file(&path, &self.kek).map_err(Error::Hsm)?;
        let cfg = BoundaryConfig::from_keyset(&self.keyset, i as u64)?;
        if self.volatile_hsm_state {
            return hsm.boundary_in_memory(cfg, &self.nodes[i].id).map_err(Error::Hsm);
        }
        hsm.open_boundary(cfg, &self.nodes[i].id, &bkv_node::hsm::state_path(&path), &self.kek, fresh)
            .map_err(Error::Hsm)
    }

    async fn start_node_inner(&mut self, i: usize, bootstrap: bool, hsm: Arc<Boundary>) -> Result<()> {
        let (raft_listener, http_listener) = match self.bound.get_mut(i).and_then(Option::take) {
            Some((r, h)) => (Some(r), Some(h)),
            None => (None, None),
        };
        let node = &self.nodes[i];
        let opts = NodeOptions {
            clock: bkv_client::clock::SystemClock::shared(),
            listener: raft_listener,
            id: i as u64,
            dir: self.dir.join(&node.id).join("raft"),
            signer: Arc::new(RpcSigner(hsm.clone())),
            hsm: Some(hsm.clone()),
            bootstrap,
            timing: self.timing,
            links: Arc::new(AllUp),
            tls: None,
        };
        let raft = RaftNode::start(self.members.clone(), opts, HsmMachine(hsm.clone()))
            .await
            .map_err(Error::NodeStart)?;
        let http = self.serve_node(i, hsm.clone(), raft.command_log(), http_listener).await?;
        let node = &mut self.nodes[i];
        node.raft = Some(raft);
        node.hsm = Some(hsm);
        node.http = Some(http);
        Ok(())
    }

    /// Serve node `i`'s HTTP API (spec/node-api.md) with its HSM's engines, committing
    /// through `log`.
    async fn serve_node<L: CommandLog>(
        &self,
        i: usize,
        hsm: Arc<Boundary>,
        log: L,
        listener: Option<std::net::TcpListener>,
    ) -> Result<Running> {
        let node = &self.nodes[i];
        let info = NodeInfo {
            v: 1,
            fleet_id: self.keyset.fleet_id.clone(),
            epoch: self.keyset.epoch,
            node_id: node.id.clone(),
            datacenter: node.datacenter.clone(),
        };
        let svc =
            NodeService::new(hsm, log, info, self.released.to_cbor()).with_rate_limits(self.rate_limits);
        let svc = match &self.log {
            Some(log) => svc.with_audit_log(log.client.clone()),
            None => svc,
        };
        let router = Arc::new(svc).router();
        match listener {
            Some(l) => Ok(server::spawn_on(l, router)?),
            None => Ok(server::spawn(node.url.trim_start_matches("http://"), router).await?),
        }
    }

    /// The baseline of `bkv bench recovery`: start node `i` with the same HSM, session,
    /// vault and HTTP path as [`LocalFleet::start_node`], but committing each command to a
    /// local durable log (one fsync per command) with no consensus and no replication.
    /// Only for measuring what replication costs: such a node is not a fleet
    /// (spec/fleet-replication.md), since losing its one disk loses every record.
    pub async fn start_node_unreplicated(&mut self, i: usize) -> Result<()> {
        let dir = self.dir.join(&self.nodes[i].id);
        let sealed = SoftHsm::unseal_file(&dir.join("hsm.sealed"), &self.kek).map_err(Error::Hsm)?;
        // A one-node HSM (quorum 1) with its own HSM state, beside the fleet's.
        let mut cfg = BoundaryConfig::from_keyset(&self.keyset, i as u64)?;
        cfg.quorum = 1;
        let hsm = sealed
            .open_boundary(cfg, &self.nodes[i].id, &dir.join("unreplicated.state"), &self.kek, true)
            .map_err(Error::Hsm)?;
        let log = UnreplicatedLog::open(&dir.join("unreplicated"), HsmMachine(hsm.clone()))
            .map_err(Error::Usage)?;
        // The client listener bound at creation, if this node never started (no Raft here).
        let listener = self.bound.get_mut(i).and_then(Option::take).map(|(_, http)| http);
        let http = self.serve_node(i, hsm, LogRef(Arc::new(log)), listener).await?;
        self.nodes[i].http = Some(http);
        Ok(())
    }

    /// Commit `command` through the first running node and return the decoded output.
    async fn propose(&self, command: &VaultCommand) -> Result<VaultOutput> {
        let (i, node) = self
            .nodes
            .iter()
            .enumerate()
            .find_map(|(i, n)| n.raft.as_ref().map(|r| (i, r)))
            .ok_or(bkv_protocol::Error::FleetUnavailable)?;
        let entry = LogEntry::encode(i as u64, &bkv_protocol::cbor::to_vec(command));
        let out =
            node.command_log().propose(entry).await.map_err(|_| bkv_protocol::Error::FleetUnavailable)?;
        Ok(VaultOutput::decode(&AppliedOutput::decode(&out)?.output)?)
    }

    /// spec/rotation.md §2: verify `successor` as this fleet's successor, as a client holding
    /// this fleet's bundle would (every step of spec/validation-bundle.md §5.1, including the
    /// chain and log inclusion), then RS1–RS3, then the Audit procedure (spec/audit.md) on
    /// the successor's deployment `evidence` with this fleet's pinned vendor roots and this
    /// build's measurement. Nothing changes on failure.
    pub async fn verify_successor(&self, successor: &LoggedBundle, evidence: &[u8], now: u64) -> Result<()> {
        bkv_protocol::rotation::verify_successor(
            &self.keyset,
            &self.released.bundle,
            successor,
            &self.trust.anchors,
            &self.trust.log,
            now,
        )?;
        let log =
            self.log.clone().ok_or_else(|| Error::Usage("the fleet's audit log is not running".into()))?;
        let roots: Vec<bkv_protocol::audit::VendorRoot> =
            bkv_protocol::cbor::from_slice(&read_file(&self.dir.join("vendor-roots.cbor"))?)?;
        let fetched = crate::cli::audit::fetch_log(&log.client).await?;
        let report = bkv_protocol::audit::audit(&bkv_protocol::audit::AuditInputs {
            evidence,
            released: successor,
            anchors: &self.trust.anchors,
            log_anchors: &self.trust.log,
            checkpoint: &fetched.checkpoint,
            entries: &fetched.entries,
            vendor_roots: &roots,
            software: software_measurement()?.measurement,
            firmware: Some(SOFT_HSM_FIRMWARE),
            now,
        });
        match report.error() {
            Some(e) => Err(e.into()),
            None => Ok(()),
        }
    }

    /// spec/rotation.md: deploy a successor fleet (epoch + 1) in `new_dir` with the
    /// organisations' keys, verify it from this fleet as a client would, retire this fleet,
    /// move every record with its counter, and drop this fleet's records. This fleet keeps
    /// answering `rotation.fleet.retired` until [`LocalFleet::decommission`].
    pub async fn rotate(
        &mut self,
        new_dir: &Path,
        orgs: &OperatorKeys,
        mut progress: impl FnMut(&str),
    ) -> Result<(LocalFleet, RotationReport)> {
        use bkv_protocol::rotation::{ExportedState, Importer, RecordExport, seal_export};
        let log =
            self.log.clone().ok_or_else(|| Error::Usage("the fleet's audit log is not running".into()))?;
        let now = bkv_client::clock::system_now();
        let old_bundle = self.released.bundle.clone();
        let (fleet_id, epoch) = (self.keyset.fleet_id.clone(), self.keyset.epoch);

        // The new HSMs await the OPAQUE setup of this fleet (spec/rotation.md §1, §4.1).
        let opaque: [u8; 32] = self.keyset.nodes[0]
            .key(bkv_protocol::validation_bundle::KeyRole::Opaque)
            .and_then(|k| k.key.clone().try_into().ok())
            .ok_or(bkv_protocol::Error::BundleKeySetInvalid)?;
        let genesis = Genesis {
            opaque: OpaqueOrigin::Predecessor(opaque),
            epoch: epoch + 1,
            prev: Some(sha256(&old_bundle)),
            log: log.clone(),
            log_layout: self.log_layout.clone(),
            trust: self.trust.clone(),
            third_party: ThirdParty::open_or_create(&self.third_party).await?,
        };
        let config = FleetConfig {
            fleet_id: fleet_id.clone(),
            epoch: epoch + 1,
            nodes: self.nodes.len(),
            guess_limit: self.guess_limit,
            witnesses: self.log_layout.witnesses,
            witness_threshold: self.log_layout.threshold,
            timing: self.timing,
        };
        let mut new = Self::deploy(new_dir, &config, orgs, genesis, false, &mut progress).await?;

        // §2: this fleet verifies its successor itself, as a client holding its own bundle.
        let successor = new.released.clone();
        let successor = &successor;
        self.verify_successor(successor, &read_file(&new.dir.join("evidence.cbor"))?, now).await?;
        progress(&format!(
            "the epoch {epoch} fleet verified its successor: both signatures, chained to its own bundle, logged, same OPAQUE key and guess limit, deployment audited"
        ));
        let n = self.transfer_setup(&new, now)?;
        progress(&format!(
            "an epoch {epoch} HSM checked the successor's logged bundle itself and sealed the OPAQUE setup to its {n} attested HSMs, which opened it"
        ));
        new.start_new(&mut progress).await?;

        // §3: retire; the output is the export.
        let successor_digest = sha256(&successor.bundle);
        let retire =
            VaultCommand::Retire { request_id: random_id(), time: now, successor: successor_digest.to_vec() };
        let VaultOutput::Retired { records } = self.propose(&retire).await? else {
            return Err(bkv_protocol::Error::CborSchema.into());
        };
        let count = |st: ExportedState| records.iter().filter(|r| r.state == st).count();
        let report = RotationReport {
            from_epoch: epoch,
            to_epoch: epoch + 1,
            registered: count(ExportedState::Registered),
            unregistered: count(ExportedState::Unregistered),
            locked: count(ExportedState::Locked),
            successor: hex::encode(successor_digest),
        };
        let export = RecordExport {
            v: 1,
            fleet_id: fleet_id.clone(),
            from_epoch: epoch,
            to_epoch: epoch + 1,
            successor: successor_digest.to_vec(),
            guess_limit: self.guess_limit,
            records,
        };
        // §4: sealed to the successor's first node, opened inside its HSM.
        let node = &new.keyset.nodes[0];
        let target = new.keyset.session_target(&node.id).ok_or(bkv_protocol::Error::BundleKeySetInvalid)?;
        let sealed = seal_export(&mut OsRng, &export, &target)?;
        drop(export);
        progress(&format!(
            "epoch {epoch} retired: {} registered, {} unregistered and {} locked ids exported, sealed to {} of epoch {}",
            report.registered,
            report.unregistered,
            report.locked,
            node.id,
            epoch + 1
        ));
        let new_hsm =
            SoftHsm::unseal_file(&new.dir.join(&node.id).join("hsm.sealed"), &new.kek).map_err(Error::Hsm)?;
        let me = Importer {
            fleet_id: &fleet_id,
            epoch: epoch + 1,
            node_id: &node.id,
            bundle_digest: successor_digest,
            guess_limit: self.guess_limit,
        };
        let opened = new_hsm.open_export(&sealed, &me)?;
        drop(new_hsm);
        // §5: one import, before anything else on the new fleet.
        let import = VaultCommand::Import {
            request_id: random_id(),
            time: now,
            from_epoch: epoch,
            records: opened.records.clone(),
        };
        let VaultOutput::Imported { records } = new.propose(&import).await? else {
            return Err(bkv_protocol::Error::CborSchema.into());
        };
        progress(&format!("epoch {} imported {records} ids with their counters", epoch + 1));
        // §6: drop the records here (the keys go at decommission).
        self.propose(&VaultCommand::Destroy { request_id: random_id(), time: now }).await?;
        progress(&format!("epoch {epoch} dropped its records; it answers rotation.fleet.retired"));
        Ok((new, report))
    }

    /// spec/rotation.md §6: stop this retired fleet, destroy its HSMs' keys and sealed
    /// state, and log its retirement for the successor bundle `successor`.
    pub async fn decommission(mut self, successor: &[u8], orgs: &OperatorKeys) -> Result<()> {
        // The retirement entry is logged by the third party's signer, the log's only writer,
        // on the operator's signed request (spec/signer-api.md §3.1).
        let signer = self.start_signer().await?;
        let (fleet_id, epoch) = (self.keyset.fleet_id.clone(), self.keyset.epoch);
        let key = orgs.countersigning_key()?;
        bkv_operator::retire(&signer.url, &key, &fleet_id, epoch, successor, bkv_client::clock::system_now())
            .await?;
        drop(signer);
        for i in 0..self.nodes.len() {
            self.stop_node(i).await;
            let path = self.dir.join(&self.nodes[i].id).join("hsm.sealed");
            if let Ok(hsm) = SoftHsm::unseal_file(&path, &self.kek) {
                hsm.destroy();
            }
            std::fs::remove_file(&path).map_err(|source| Error::Write { path: path.clone(), source })?;
            // The HSM state (which recorded the retirement, spec/hsm.md §8) goes with the keys.
            let state = bkv_node::hsm::state_path(&path);
            if state.exists() {
                std::fs::remove_file(&state)
                    .map_err(|source| Error::Write { path: state.clone(), source })?;
            }
        }
        write_file(
            &self.dir.join("RETIRED"),
            format!("successor {}\n", hex::encode(sha256(successor))).as_bytes(),
        )?;
        Ok(())
    }

    /// After a rotation, with both fleets stopped: the successor in `new_dir` takes over the
    /// audit log's and the third party's directories that live in the retired `old_dir`
    /// (the log spans every epoch; a retired fleet never starts again), so that the retired
    /// folder can be archived or removed. Returns what moved.
    pub fn adopt_services(old_dir: &Path, new_dir: &Path) -> Result<Vec<PathBuf>> {
        let mut layout = read_layout(new_dir)?;
        let old =
            std::path::absolute(old_dir).map_err(|source| Error::Read { path: old_dir.into(), source })?;
        let new =
            std::path::absolute(new_dir).map_err(|source| Error::Read { path: new_dir.into(), source })?;
        let mut moved = Vec::new();
        let mut adopt = |from: &Path, name: &str| -> Result<Option<PathBuf>> {
            let from =
                std::path::absolute(from).map_err(|source| Error::Read { path: from.into(), source })?;
            if !from.starts_with(&old) || !from.exists() {
                return Ok(None);
            }
            let to = new.join(name);
            std::fs::rename(&from, &to).map_err(|source| Error::Write { path: to.clone(), source })?;
            moved.push(to.clone());
            Ok(Some(to))
        };
        if let Some(to) = adopt(&layout.log.dir, "audit-log")? {
            layout.log.dir = to;
        }
        let third_party = layout.third_party.clone().unwrap_or_else(|| old.join("third-party"));
        if let Some(to) = adopt(&third_party, "third-party")? {
            layout.third_party = Some(to);
        }
        json_write(&new.join("fleet.json"), &layout)?;
        Ok(moved)
    }

    /// Stop node `i` (its storage stays; [`LocalFleet::start_node`] restarts it).
    pub async fn stop_node(&mut self, i: usize) {
        self.nodes[i].http.take();
        self.nodes[i].hsm.take();
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
                tracing::warn!("no leader within {timeout:?}");
                return Err(Error::Protocol(bkv_protocol::Error::FleetUnavailable));
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

fn random_id() -> Vec<u8> {
    use rand_core::RngCore;
    let mut id = vec![0u8; 16];
    OsRng.fill_bytes(&mut id);
    id
}
