//! An in-process log with witnesses on localhost, for `bkv demo`, `bkv fleet up` and tests
//! (spec/audit-log.md §8): a redb log and `witnesses` redb witnesses under `dir`, served
//! over HTTP on 127.0.0.1, with anchors that require `threshold` cosignatures. Keys are
//! kept as seed files in `dir`, so starting it again on the same `dir` resumes the same log.

use crate::log_server::{self as server, LogService, Running};
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
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    use std::io::Write;
    opts.open(path)
        .and_then(|mut f| f.write_all(text.as_bytes()).and_then(|_| f.sync_all()))
        .map_err(|e| Error::Storage(format!("{}: {e}", path.display())))?;
    Ok(key)
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
            let running = server::spawn("127.0.0.1:0", witness::router(Arc::new(w))).await?;
            urls.push(format!("http://{}", running.addr));
            servers.push(running);
        }
        let log = LogService::open(&dir.join("log.redb"), origin, log_key, urls)?;
        let running = server::spawn("127.0.0.1:0", server::router(Arc::new(log))).await?;
        let client = LogClient::new(&format!("http://{}", running.addr));
        servers.push(running);
        let anchors =
            LogAnchors { origin: origin.to_owned(), log_key: log_vkey, witnesses: wkeys, threshold };
        anchors.validate()?;
        Ok(LocalLog { client, anchors, _servers: servers })
    }
}
