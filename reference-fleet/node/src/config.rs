//! `node.toml`: the configuration of one fleet node process (`bkv-node run --config`),
//! specified in `reference-fleet/README.md` ("Node configuration").
//!
//! [`NodeConfig::load`] reads and checks the whole file before anything is opened: the
//! TOML (unknown fields refused), then every path and address, then the released bundle
//! against the trust anchors (spec/validation-bundle.md §5.1, with log inclusion,
//! spec/audit-log.md §7.2), then that the node and every peer are nodes of the verified
//! FleetKeySet (a peer is identified by its id and authenticated by its `signing` key from
//! that FleetKeySet, never by its address). A failure is one [`ConfigError`] naming the
//! file, the field and what is wrong; no database, listener or key has been touched then.

use bkv_client::Trust;
use bkv_protocol::audit_log::{LogState, LoggedBundle, verify_logged_bundle};
use bkv_protocol::validation_bundle::{ClientState, FleetKeySet, verify_bundle};
use serde::Deserialize;
use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// A configuration that cannot be used: which file, which field, what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}: {field}: {detail}")]
pub struct ConfigError {
    /// The configuration file.
    pub file: PathBuf,
    /// The field (a TOML key path such as `listen.client` or `peers[1].id`), or `-` for
    /// the file as a whole.
    pub field: String,
    /// What is wrong.
    pub detail: String,
}

impl ConfigError {
    /// Stable code (spec/conventions.md §8).
    pub fn code(&self) -> &'static str {
        "node.config.invalid"
    }
}

/// `node.toml` as written.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeFile {
    /// This node's id in the FleetKeySet.
    pub id: String,
    /// Where the node keeps its replicated log and state (created if missing).
    pub data_dir: PathBuf,
    /// The released bundle (`LoggedBundle`, spec/audit-log.md §6.1) the node serves.
    pub released_bundle: PathBuf,
    /// The anchors the node checks its own bundle against (`trust.cbor`).
    pub trust: PathBuf,
    /// Listen addresses.
    pub listen: Listen,
    /// The node's HSM.
    pub hsm: Hsm,
    /// Every other node of the fleet.
    #[serde(default)]
    pub peers: Vec<Peer>,
    /// The audit log whose consistency proofs the node relays (spec/node-api.md §1).
    #[serde(default)]
    pub audit_log: Option<AuditLog>,
    /// Consensus timing; defaults when absent.
    #[serde(default)]
    pub timing: Option<TimingFile>,
    /// Limits of the client listener; defaults when absent.
    #[serde(default)]
    pub limits: Option<LimitsFile>,
    /// TLS on both listeners, and the roots for peers and the audit log; plain HTTP when
    /// absent.
    #[serde(default)]
    pub tls: Option<TlsFile>,
}

/// `[tls]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsFile {
    /// The certificate chain of both listeners (PEM, leaf first); its names must cover the
    /// addresses clients and peers use.
    pub cert: PathBuf,
    /// Its private key (PEM). Not the node's signing key, which stays in the HSM.
    pub key: PathBuf,
    /// The CA certificates (PEM) trusted for `https://` peers and the audit log.
    #[serde(default)]
    pub ca: Option<PathBuf>,
}

fn default_body_timeout_ms() -> u64 {
    10_000
}

fn default_idle_timeout_ms() -> u64 {
    60_000
}

/// `[limits]` of the client listener.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsFile {
    /// Open connections at most (default 4096).
    pub max_connections: usize,
    /// Open connections from one client address at most (default 64).
    pub max_connections_per_client: usize,
    /// Milliseconds a client may take to send a request's head (default 5000).
    pub header_timeout_ms: u64,
    /// Milliseconds a client may take to send a request's body (default 10000).
    #[serde(default = "default_body_timeout_ms")]
    pub body_timeout_ms: u64,
    /// Milliseconds a connection may stay without moving a byte (default 60000).
    #[serde(default = "default_idle_timeout_ms")]
    pub idle_timeout_ms: u64,
    /// Recovery attempts per record id this node takes at once (default 10;
    /// spec/node-api.md §6).
    #[serde(default = "default_record_burst")]
    pub attempts_per_record_burst: u32,
    /// Recovery attempts per record id this node takes per minute after the burst
    /// (default 10; 0 turns the limit off).
    #[serde(default = "default_record_per_minute")]
    pub attempts_per_record_per_minute: u32,
    /// Recovery attempts this node takes at once, every record id alike (default 500;
    /// spec/node-api.md §6 point 3).
    #[serde(default = "default_node_burst")]
    pub attempts_per_node_burst: u32,
    /// Recovery attempts this node takes per second after the burst, every id alike
    /// (default 100; 0 turns the limit off).
    #[serde(default = "default_node_per_second")]
    pub attempts_per_node_per_second: u32,
    /// Requests per client address at once (default 200).
    #[serde(default = "default_client_burst")]
    pub requests_per_client_burst: u32,
    /// Requests per client address per second after the burst (default 100; 0 turns the
    /// limit off).
    #[serde(default = "default_client_per_second")]
    pub requests_per_client_per_second: u32,
}

impl LimitsFile {
    /// The rate limits of spec/node-api.md §6 these fields give.
    fn rate_limits(self) -> crate::rate::RateLimits {
        use crate::rate::{Rate, RateLimits};
        RateLimits {
            per_record: Rate {
                burst: self.attempts_per_record_burst as f64,
                per_second: self.attempts_per_record_per_minute as f64 / 60.0,
            },
            per_node: Rate {
                burst: self.attempts_per_node_burst as f64,
                per_second: self.attempts_per_node_per_second as f64,
            },
            per_client: Rate {
                burst: self.requests_per_client_burst as f64,
                per_second: self.requests_per_client_per_second as f64,
            },
        }
    }
}

fn default_record_burst() -> u32 {
    10
}

fn default_record_per_minute() -> u32 {
    10
}

fn default_client_burst() -> u32 {
    200
}

fn default_client_per_second() -> u32 {
    100
}

fn default_node_burst() -> u32 {
    500
}

fn default_node_per_second() -> u32 {
    100
}

/// `[listen]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Listen {
    /// The client API (spec/node-api.md), plus `/healthz`, `/readyz` and `/metrics`.
    pub client: String,
    /// Node-to-node traffic (spec/fleet-replication.md §4).
    pub peer: String,
}

/// `[hsm]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Hsm {
    /// The software HSM's sealed state.
    pub sealed: PathBuf,
    /// A file holding the KEK as hex; without it the KEK is read from `BKV_HSM_KEK`.
    #[serde(default)]
    pub kek_file: Option<PathBuf>,
}

/// `[[peers]]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Peer {
    /// The peer's id in the FleetKeySet.
    pub id: String,
    /// Its node-to-node address.
    pub address: String,
}

/// `[audit_log]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditLog {
    /// The log's base URL.
    pub url: String,
}

/// `[timing]` (milliseconds).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TimingFile {
    /// Heartbeat interval.
    pub heartbeat_ms: u64,
    /// Lower bound of the election timeout.
    pub election_min_ms: u64,
    /// Upper bound of the election timeout.
    pub election_max_ms: u64,
}

/// A checked configuration: everything the node needs, nothing opened yet.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    /// The file it came from.
    pub file: PathBuf,
    /// As written.
    pub raw: NodeFile,
    /// The released bundle.
    pub released: LoggedBundle,
    /// Its verified FleetKeySet.
    pub keyset: FleetKeySet,
    /// This node's position in the FleetKeySet (its Raft node id).
    pub index: usize,
    /// Every node's node-to-node address, in FleetKeySet order.
    pub peer_addrs: Vec<SocketAddr>,
    /// The client listen address.
    pub client_addr: SocketAddr,
}

fn resolve(base: &Path, p: &Path) -> PathBuf {
    if p.is_absolute() { p.to_owned() } else { base.join(p) }
}

impl NodeConfig {
    /// Read and check `file` at time `now` (relative paths are relative to the file).
    pub fn load(file: &Path, now: u64) -> Result<Self, ConfigError> {
        let err =
            |field: &str, detail: String| ConfigError { file: file.to_owned(), field: field.into(), detail };
        let text = std::fs::read_to_string(file).map_err(|e| err("-", format!("cannot read: {e}")))?;
        Self::parse(file, &text, now)
    }

    /// Check `text`, the contents of `file`, at time `now`.
    pub fn parse(file: &Path, text: &str, now: u64) -> Result<Self, ConfigError> {
        let err =
            |field: &str, detail: String| ConfigError { file: file.to_owned(), field: field.into(), detail };
        let mut raw: NodeFile = toml::from_str(text).map_err(|e| {
            let message = e.message().trim().to_owned();
            let at = e.span().map_or(0, |s| s.start);
            let field = match message.strip_prefix("missing field `").and_then(|m| m.split('`').next()) {
                // The span of a missing field is its table: name the field in that table.
                Some(name) => match table_at(text, at) {
                    t if t.is_empty() => name.to_owned(),
                    t => format!("{t}.{name}"),
                },
                None => key_at(text, at),
            };
            err(&field, message)
        })?;
        let base = file.parent().unwrap_or(Path::new("."));
        raw.data_dir = resolve(base, &raw.data_dir);
        raw.released_bundle = resolve(base, &raw.released_bundle);
        raw.trust = resolve(base, &raw.trust);
        raw.hsm.sealed = resolve(base, &raw.hsm.sealed);
        raw.hsm.kek_file = raw.hsm.kek_file.as_deref().map(|p| resolve(base, p));
        if let Some(t) = &mut raw.tls {
            t.cert = resolve(base, &t.cert);
            t.key = resolve(base, &t.key);
            t.ca = t.ca.as_deref().map(|p| resolve(base, p));
        }
        let addr = |field: &str, s: &str| -> Result<SocketAddr, ConfigError> {
            s.parse().map_err(|e| err(field, format!("{s:?} is not an IP address and port: {e}")))
        };
        let client_addr = addr("listen.client", &raw.listen.client)?;
        let peer_addr = addr("listen.peer", &raw.listen.peer)?;
        if client_addr == peer_addr && client_addr.port() != 0 {
            return Err(err("listen.peer", "the same address as listen.client".into()));
        }
        if let Some(t) = raw.timing
            && !(t.heartbeat_ms > 0
                && t.heartbeat_ms < t.election_min_ms
                && t.election_min_ms < t.election_max_ms)
        {
            return Err(err("timing", "needs 0 < heartbeat_ms < election_min_ms < election_max_ms".into()));
        }
        if let Some(l) = raw.limits
            && (l.max_connections == 0
                || l.max_connections_per_client == 0
                || l.header_timeout_ms == 0
                || l.body_timeout_ms == 0
                || l.idle_timeout_ms == 0)
        {
            return Err(err("limits", "every limit must be above 0".into()));
        }
        if let Some(l) = raw.limits {
            if l.attempts_per_record_per_minute > 0 && l.attempts_per_record_burst == 0 {
                return Err(err("limits.attempts_per_record_burst", "0 would refuse every attempt".into()));
            }
            if l.attempts_per_node_per_second > 0 && l.attempts_per_node_burst == 0 {
                return Err(err("limits.attempts_per_node_burst", "0 would refuse every attempt".into()));
            }
            if l.requests_per_client_per_second > 0 && l.requests_per_client_burst == 0 {
                return Err(err("limits.requests_per_client_burst", "0 would refuse every request".into()));
            }
        }
        if let Some(log) = &raw.audit_log
            && !(log.url.starts_with("http://") || log.url.starts_with("https://"))
        {
            return Err(err("audit_log.url", format!("{:?} is not an http:// or https:// URL", log.url)));
        }
        if let Some(t) = &raw.tls {
            bkv_serve::tls::server_config(&t.cert, &t.key).map_err(|e| {
                let field = if e.path == t.key { "tls.key" } else { "tls.cert" };
                err(field, e.to_string())
            })?;
            if let Some(ca) = &t.ca {
                bkv_client::tls::certificates(ca).map_err(|e| err("tls.ca", e.to_string()))?;
            }
        }
        if !raw.hsm.sealed.is_file() {
            return Err(err("hsm.sealed", format!("{} is not a file", raw.hsm.sealed.display())));
        }
        if let Some(k) = &raw.hsm.kek_file
            && !k.is_file()
        {
            return Err(err("hsm.kek_file", format!("{} is not a file", k.display())));
        }
        let read = |field: &str, p: &Path| {
            std::fs::read(p).map_err(|e| err(field, format!("cannot read {}: {e}", p.display())))
        };
        let released = LoggedBundle::from_cbor(&read("released_bundle", &raw.released_bundle)?)
            .map_err(|e| err("released_bundle", format!("not a released bundle [{}]: {e}", e.code())))?;
        let trust: Trust = bkv_protocol::cbor::from_slice(&read("trust", &raw.trust)?)
            .map_err(|e| err("trust", format!("not trust anchors [{}]: {e}", e.code())))?;
        let verified = verify_bundle(&released.bundle, &trust.anchors, &ClientState::default(), now)
            .map_err(|e| {
                err("released_bundle", format!("does not verify against trust [{}]: {e}", e.code()))
            })?;
        let keyset = verified.keyset().clone();
        verify_logged_bundle(
            &released.bundle,
            &keyset.fleet_id,
            keyset.epoch,
            &released.proof,
            &trust.log,
            &LogState::default(),
            None,
        )
        .map_err(|e| err("released_bundle", format!("its log proof does not verify [{}]: {e}", e.code())))?;
        let index = keyset.nodes.iter().position(|n| n.id == raw.id).ok_or_else(|| {
            err(
                "id",
                format!("{:?} is not a node of fleet {} epoch {}", raw.id, keyset.fleet_id, keyset.epoch),
            )
        })?;
        let mut peer_addrs: Vec<Option<SocketAddr>> = vec![None; keyset.nodes.len()];
        peer_addrs[index] = Some(peer_addr);
        let mut seen = BTreeSet::new();
        for (i, p) in raw.peers.iter().enumerate() {
            let field = |f: &str| format!("peers[{i}].{f}");
            let at =
                keyset.nodes.iter().position(|n| n.id == p.id).ok_or_else(|| {
                    err(&field("id"), format!("{:?} is not a node of the FleetKeySet", p.id))
                })?;
            if at == index {
                return Err(err(&field("id"), format!("{:?} is this node itself", p.id)));
            }
            if !seen.insert(at) {
                return Err(err(&field("id"), format!("{:?} is listed twice", p.id)));
            }
            peer_addrs[at] = Some(addr(&field("address"), &p.address)?);
        }
        let missing: Vec<&str> = keyset
            .nodes
            .iter()
            .zip(&peer_addrs)
            .filter(|(_, a)| a.is_none())
            .map(|(n, _)| n.id.as_str())
            .collect();
        if !missing.is_empty() {
            return Err(err("peers", format!("no address for {}", missing.join(", "))));
        }
        let peer_addrs = peer_addrs.into_iter().map(|a| a.expect("checked")).collect();
        Ok(NodeConfig { file: file.to_owned(), raw, released, keyset, index, peer_addrs, client_addr })
    }

    /// The client listener's limits.
    pub fn limits(&self) -> bkv_serve::Limits {
        let ms = std::time::Duration::from_millis;
        match self.raw.limits {
            Some(l) => bkv_serve::Limits {
                max_connections: l.max_connections,
                max_per_client: l.max_connections_per_client,
                header_timeout: ms(l.header_timeout_ms),
                body_timeout: ms(l.body_timeout_ms),
                idle_timeout: ms(l.idle_timeout_ms),
                max_body: bkv_protocol::node_api::MAX_REQUEST,
            },
            None => bkv_serve::Limits {
                max_body: bkv_protocol::node_api::MAX_REQUEST,
                ..bkv_serve::Limits::default()
            },
        }
    }

    /// The rate limits of spec/node-api.md §6 (`[limits]`).
    pub fn rate_limits(&self) -> crate::rate::RateLimits {
        self.raw.limits.map_or_else(Default::default, LimitsFile::rate_limits)
    }

    /// The listeners' TLS configuration (`[tls]`), checked when the file was loaded.
    pub fn tls(&self) -> Result<Option<std::sync::Arc<rustls::ServerConfig>>, ConfigError> {
        match &self.raw.tls {
            None => Ok(None),
            Some(t) => bkv_serve::tls::server_config(&t.cert, &t.key)
                .map(Some)
                .map_err(|e| self.error("tls.cert", e.to_string())),
        }
    }

    /// A [`ConfigError`] about `field` of this file.
    pub fn error(&self, field: &str, detail: String) -> ConfigError {
        ConfigError { file: self.file.clone(), field: field.into(), detail }
    }
}

/// The table header in force at byte `at` (`""` for the top level) and the key of the last
/// `key = value` line up to the line holding `at` (`""` when none since the header).
fn position(text: &str, at: usize) -> (String, String) {
    let (mut table, mut key) = (String::new(), String::new());
    let mut pos = 0;
    for line in text.split_inclusive('\n') {
        if pos > at {
            break;
        }
        let t = line.trim();
        if t.starts_with('[') {
            table = t.trim_matches(|c| c == '[' || c == ']').trim().to_owned();
            key.clear();
        } else if let Some((k, _)) = t.split_once('=') {
            key = k.trim().to_owned();
        }
        pos += line.len();
    }
    (table, key)
}

/// The table header in force at byte `at` (`""` for the top level).
fn table_at(text: &str, at: usize) -> String {
    position(text, at).0
}

/// The dotted key of the TOML line holding byte `at` (for a parse error's field).
fn key_at(text: &str, at: usize) -> String {
    match position(text, at) {
        (t, k) if t.is_empty() && k.is_empty() => "-".into(),
        (t, k) if t.is_empty() => k,
        (t, k) if k.is_empty() => t,
        (t, k) => format!("{t}.{k}"),
    }
}

/// The property of the `node_config` fuzz target (`fuzz/fuzz_targets/node_config.rs`):
/// checking any text never panics, and a refusal names a field and says what is wrong.
pub fn fuzz_check(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Err(e) = NodeConfig::parse(Path::new("fuzz/node.toml"), text, 0) {
        assert!(!e.field.is_empty() && !e.detail.is_empty(), "an error without field or detail: {e:?}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example configurations of `reference-fleet/deploy/` are valid node files, and
    /// list every other node of their five-node fleet once.
    #[test]
    fn the_deployment_examples_are_valid_node_files() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy");
        for i in 1..=5 {
            let path = dir.join(format!("node-{i}.toml"));
            let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            let f: NodeFile = toml::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            assert_eq!(f.id, format!("node-{i}"));
            let peers: BTreeSet<&str> = f.peers.iter().map(|p| p.id.as_str()).collect();
            assert_eq!(peers.len(), 4, "{}", path.display());
            assert!(!peers.contains(f.id.as_str()));
            assert!(
                f.listen.peer.parse::<SocketAddr>().is_ok() && f.listen.client.parse::<SocketAddr>().is_ok()
            );
            assert!(f.tls.as_ref().is_some_and(|t| t.ca.is_some()), "{}: serves TLS", path.display());
        }
    }

    /// Every input the `node_config` fuzz target keeps replays under `cargo test`.
    #[test]
    fn the_fuzz_corpus_replays() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus/node_config");
        let mut n = 0;
        for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
            let path = entry.unwrap().path();
            let data = std::fs::read(&path).unwrap();
            assert!(std::panic::catch_unwind(|| fuzz_check(&data)).is_ok(), "fails on {}", path.display());
            n += 1;
        }
        assert!(n > 0, "empty corpus");
    }

    #[test]
    fn a_toml_error_names_the_field() {
        let e = NodeConfig::parse(Path::new("n.toml"), "id = \"a\"\n[listen]\nclient = 5\n", 0).unwrap_err();
        assert_eq!(e.field, "listen.client");
        let e = NodeConfig::parse(Path::new("n.toml"), "id = \"a\"\nsurprise = 1\n", 0).unwrap_err();
        assert!(e.detail.contains("surprise"), "{e}");
    }

    #[test]
    fn a_missing_field_is_named() {
        let e = NodeConfig::parse(Path::new("n.toml"), "id = \"a\"\n", 0).unwrap_err();
        assert_eq!(e.field, "data_dir", "{e}");
        assert_eq!(e.code(), "node.config.invalid");
    }

    /// spec/node-api.md §6: a burst of 0 under a rate would refuse everything, so it is
    /// refused by name; the node's limit of point 3 reaches the service.
    #[test]
    fn a_zero_burst_is_named_and_the_node_limit_is_read() {
        let base =
            std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/node-1.toml"))
                .unwrap();
        let fields = "max_connections = 10\nmax_connections_per_client = 2\nheader_timeout_ms = 5000\n";
        for field in ["attempts_per_record_burst", "attempts_per_node_burst", "requests_per_client_burst"] {
            let text = format!("{base}\n[limits]\n{fields}{field} = 0\n");
            let e = NodeConfig::parse(Path::new("n.toml"), &text, 0).unwrap_err();
            assert_eq!(e.field, format!("limits.{field}"), "{e}");
        }
        let text = format!("{fields}attempts_per_node_burst = 7\nattempts_per_node_per_second = 3\n");
        let file: LimitsFile = toml::from_str(&text).unwrap();
        assert_eq!(file.rate_limits().per_node, crate::rate::Rate { burst: 7.0, per_second: 3.0 });
        let file: LimitsFile = toml::from_str(fields).unwrap();
        assert_eq!(
            file.rate_limits(),
            crate::rate::RateLimits::default(),
            "the defaults of a [limits] without rates"
        );
    }
}
