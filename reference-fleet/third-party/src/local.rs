//! An in-process log with witnesses on localhost, for `bkv demo`, `bkv fleet up` and tests
//! (spec/audit-log.md §8): a redb log and `witnesses` redb witnesses under `dir`, served
//! over HTTP on 127.0.0.1, with anchors that require `threshold` cosignatures. Keys are
//! kept as seed files in `dir`, so starting it again on the same `dir` resumes the same log.

use crate::log_server::{self as server, AdminToken, LogService, Running};
use crate::witness::{self, Witness};
use crate::{Error, Result};
use bkv_client::LogClient;
use bkv_protocol::audit_log::LogAnchors;
use bkv_protocol::audit_log::note::{SIG_TYPE_ED25519, verifier_key};
use bkv_protocol::crypto::Ed25519Signer;
use std::path::Path;
use std::sync::Arc;

/// The key whose seed is in `path`, or a new one whose seed is written there (owner-only),
/// so that a restarted local log keeps its identity and its clients' anchors stay valid.
fn persistent_key(
    path: &Path,
    rng: &mut (impl rand_core::CryptoRng + rand_core::RngCore),
) -> Result<Ed25519Signer> {
    if path.exists() {
        return Ok(Ed25519Signer::from_seed(&crate::read_seed(path)?));
    }
    let key = Ed25519Signer::generate(rng);
    let text = zeroize::Zeroizing::new(hex::encode(&key.seed()[..]));
    crate::write_secret_file(path, text.as_bytes())?;
    Ok(key)
}

/// `DIR/ports.json`: where the log and its witnesses listen.
#[derive(serde::Serialize, serde::Deserialize)]
struct Ports {
    log: String,
    admin: String,
    witnesses: Vec<String>,
}

/// A running local log; dropping it stops the servers.
pub struct LocalLog {
    /// Client of the log server.
    pub client: LogClient,
    /// Anchors a client pins for this log.
    pub anchors: LogAnchors,
    _servers: Vec<Running>,
}

impl LocalLog {
    /// Start (or resume) the log in `dir` with origin `origin`; new keys come from `rng`.
    pub async fn start(
        dir: &Path,
        origin: &str,
        witnesses: usize,
        threshold: u64,
        rng: &mut (impl rand_core::CryptoRng + rand_core::RngCore),
    ) -> Result<LocalLog> {
        std::fs::create_dir_all(dir).map_err(|e| Error::Storage(format!("{}: {e}", dir.display())))?;
        let log_key = persistent_key(&dir.join("log.seed"), rng)?;
        let log_vkey = verifier_key(origin, SIG_TYPE_ED25519, &log_key)?;
        // The ports of an earlier start, so that a restart serves where clients and nodes
        // were told the log is; a new log takes ports the OS picks and stores them.
        let ports_file = dir.join("ports.json");
        let stored: Option<Ports> = match std::fs::read(&ports_file) {
            Ok(b) => Some(serde_json::from_slice(&b).map_err(|e| {
                Error::Storage(format!("{}: not the log's ports: {e}", ports_file.display()))
            })?),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(Error::Storage(format!("{}: {e}", ports_file.display()))),
        };
        let listen = |at: Option<&str>| -> Result<std::net::TcpListener> {
            let addr = at.unwrap_or("127.0.0.1:0");
            std::net::TcpListener::bind(addr).map_err(|e| {
                Error::Http(format!("cannot listen on {addr} (stored in {}): {e}", ports_file.display()))
            })
        };
        let (mut urls, mut wkeys, mut servers) = (Vec::new(), Vec::new(), Vec::new());
        for i in 0..witnesses {
            let name = format!("witness{i}.{origin}");
            let w = Witness::open(
                &dir.join(format!("witness{i}.redb")),
                &name,
                persistent_key(&dir.join(format!("witness{i}.seed")), rng)?,
                log_vkey.clone(),
            )?;
            wkeys.push(w.vkey());
            let at = stored.as_ref().and_then(|p| p.witnesses.get(i)).map(String::as_str);
            let running = server::spawn_on(listen(at)?, witness::router(Arc::new(w)))?;
            urls.push(format!("http://{}", running.addr));
            servers.push(running);
        }
        let log = LogService::open(&dir.join("log.redb"), origin, log_key, urls)?;
        let log = Arc::new(log);
        let token = AdminToken::load_or_create(&dir.join("admin.token"), rng)?;
        let running =
            server::spawn_on(listen(stored.as_ref().map(|p| p.log.as_str()))?, server::router(log.clone()))?;
        let admin = server::spawn_on(
            listen(stored.as_ref().map(|p| p.admin.as_str()))?,
            server::admin_router(log, token.clone()),
        )?;
        let client = LogClient::new(&format!("http://{}", running.addr))
            .with_admin(&format!("http://{}", admin.addr), token.expose());
        let ports = Ports {
            log: running.addr.to_string(),
            admin: admin.addr.to_string(),
            witnesses: servers[..witnesses].iter().map(|r| r.addr.to_string()).collect(),
        };
        servers.push(running);
        servers.push(admin);
        if stored.is_none() {
            std::fs::write(&ports_file, serde_json::to_vec_pretty(&ports).expect("serializable"))
                .map_err(|e| Error::Storage(format!("{}: {e}", ports_file.display())))?;
        }
        let anchors =
            LogAnchors { origin: origin.to_owned(), log_key: log_vkey, witnesses: wkeys, threshold };
        anchors.validate()?;
        Ok(LocalLog { client, anchors, _servers: servers })
    }
}
