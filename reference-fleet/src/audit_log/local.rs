//! An in-process log with witnesses on localhost, for `bkv demo` and tests
//! (spec/audit-log.md §8): a redb log and `witnesses` redb witnesses under `dir`, served
//! over HTTP on 127.0.0.1, with anchors that require `threshold` cosignatures.

use super::server::{self, LogService, Running};
use super::signer::LogClient;
use super::witness::{self, Witness};
use super::{Error, Result};
use bkv_protocol::audit_log::LogAnchors;
use bkv_protocol::audit_log::note::{SIG_TYPE_ED25519, verifier_key};
use bkv_protocol::crypto::Ed25519Signer;
use std::path::Path;
use std::sync::Arc;

/// A running local log; dropping it stops the servers.
pub struct LocalLog {
    /// Client of the log server.
    pub client: LogClient,
    /// Anchors a client pins for this log.
    pub anchors: LogAnchors,
    _servers: Vec<Running>,
}

impl LocalLog {
    /// Start a log with origin `origin` and fresh keys from `rng`.
    pub async fn start(
        dir: &Path,
        origin: &str,
        witnesses: usize,
        threshold: u64,
        rng: &mut (impl rand_core::CryptoRng + rand_core::RngCore),
    ) -> Result<LocalLog> {
        std::fs::create_dir_all(dir).map_err(|e| Error::Storage(format!("{}: {e}", dir.display())))?;
        let log_key = Ed25519Signer::generate(rng);
        let log_vkey = verifier_key(origin, SIG_TYPE_ED25519, &log_key)?;
        let (mut urls, mut wkeys, mut servers) = (Vec::new(), Vec::new(), Vec::new());
        for i in 0..witnesses {
            let name = format!("witness{i}.{origin}");
            let w = Witness::open(
                &dir.join(format!("witness{i}.redb")),
                &name,
                Ed25519Signer::generate(rng),
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
