//! The client library: verify a fleet, then register and recover over sealed sessions.
//!
//! A [`FleetClient`] exists only for a fleet whose keys passed spec/validation-bundle.md
//! §5 (steps 1–11, [`verify_bundle`]) **and** step 12, log inclusion
//! (spec/audit-log.md §7.2, [`verify_logged_bundle`]). Every request is sealed to the
//! `session` key of that verified FleetKeySet (spec/session.md §3), so a node that is not
//! in the bundle cannot read it. The HTTP transport is reqwest; all protocol steps are in
//! `bkv-protocol`.

use crate::clock::{SharedClock, SystemClock};
use crate::error::{Error as ClientError, Result};
use crate::http;
use bkv_protocol::audit_log::merkle::Hash;
use bkv_protocol::audit_log::{
    LogAnchors, LogProof, LogState, LogVerified, LoggedBundle, verify_logged_bundle,
};
use bkv_protocol::node_api::{CBOR, ConsistencyPath, NodeInfo};
use bkv_protocol::session::{self, SessionTarget};
use bkv_protocol::validation_bundle::{ClientState, FleetKeySet, KeyRole, TrustAnchors, verify_bundle};
use bkv_protocol::vault::{
    BackupKey, ClientAction, KsfParams, RecoveryClient, RegistrationClient, VaultContext,
};
use bkv_protocol::{Error as ProtocolError, cbor};
use rand_core::OsRng;
use serde::{Deserialize, Serialize};

/// What the app pins: the two organisations' anchors and the audit log's.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Trust {
    /// spec/validation-bundle.md §4.4.
    pub anchors: TrustAnchors,
    /// spec/audit-log.md §7.1.
    pub log: LogAnchors,
}

/// What a client persists between runs (rollback and fork protection).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Persisted {
    /// spec/validation-bundle.md §5.1 steps 10–11.
    pub bundle: ClientState,
    /// spec/audit-log.md §7.2 steps 8–9.
    pub log: LogState,
}

/// The result of a recovery attempt.
#[derive(Debug)]
pub enum Recovery {
    /// The right code: the backup key, and the guesses the record allows now.
    Recovered {
        /// The unwrapped backup key.
        backup_key: BackupKey,
        /// The reset counter (0 if this was the last guess and the record is gone).
        remaining: u32,
    },
    /// The wrong code: the attempt is counted; `remaining` guesses are left.
    WrongCode {
        /// Guesses left.
        remaining: u32,
    },
}

/// A client of one node of a verified fleet.
#[derive(Debug, Clone)]
pub struct FleetClient {
    http: reqwest::Client,
    url: String,
    target: SessionTarget,
    ctx: VaultContext,
    keyset: FleetKeySet,
    pinned: bool,
    clock: SharedClock,
}

async fn get(http: &reqwest::Client, url: &str, cap: usize) -> Result<Vec<u8>> {
    http::get_capped(http, url, cap).await.map_err(|e| ClientError::Transport(e.0))
}

/// The seconds of a 429 answer's body (`rate limited: retry in N s`), else 1.
fn retry_after(body: &[u8]) -> u64 {
    let text = String::from_utf8_lossy(body);
    text.split("retry in ")
        .nth(1)
        .and_then(|t| t.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(1)
}

/// spec/validation-bundle.md §5.1 step 12 (spec/audit-log.md §7.2) for a verified `bundle`
/// of `ks`: inclusion under a sufficiently witnessed checkpoint, and consistency with the
/// held checkpoint. When the client needs a consistency proof (§7.3 step 3), it is fetched
/// with `fetch(size1, size2)` and the check runs again.
pub async fn verify_step_12<E>(
    bundle: &[u8],
    ks: &FleetKeySet,
    proof: &LogProof,
    anchors: &LogAnchors,
    held: &LogState,
    fetch: impl AsyncFnOnce(u64, u64) -> Result<Vec<Hash>, E>,
) -> Result<LogVerified, E>
where
    E: From<ProtocolError>,
{
    let check =
        |c: Option<&[Hash]>| verify_logged_bundle(bundle, &ks.fleet_id, ks.epoch, proof, anchors, held, c);
    match check(None) {
        Err(ProtocolError::LogConsistencyMissing) => {
            let old = held.largest.as_ref().map(|h| h.size).unwrap_or(0);
            let new = proof.inclusion.tree_size;
            let path = fetch(old.min(new), old.max(new)).await?;
            Ok(check(Some(&path))?)
        }
        other => Ok(other?),
    }
}

impl FleetClient {
    /// Fetch the fleet's released bundle from `url`, verify it with every step of
    /// spec/validation-bundle.md §5.1 including log inclusion, and return a client bound
    /// to the node at `url`, with the state to persist. `ksf` is the KSF profile
    /// (spec/vault.md §2.1: production everywhere but tests).
    pub async fn connect(
        url: &str,
        trust: &Trust,
        held: &Persisted,
        ksf: KsfParams,
        now: u64,
    ) -> Result<(Self, Persisted)> {
        let url = url.trim_end_matches('/').to_owned();
        let http = http::client();
        let released =
            LoggedBundle::from_cbor(&get(&http, &format!("{url}/v1/bundle"), http::MAX_BUNDLE).await?)?;
        let verified = verify_bundle(&released.bundle, &trust.anchors, &held.bundle, now)?;
        let ks = verified.keyset().clone();
        let logged = verify_step_12::<ClientError>(
            &released.bundle,
            &ks,
            &released.proof,
            &trust.log,
            &held.log,
            async |a, b| {
                let raw = get(&http, &format!("{url}/v1/log/consistency/{a}/{b}"), http::MAX_SMALL).await?;
                Ok(ConsistencyPath::decode(&raw)?)
            },
        )
        .await?;
        let persisted = Persisted { bundle: verified.next_state(), log: logged.state };
        let client = Self::bind(http, url, ks, ksf, false).await?;
        Ok((client, persisted))
    }

    /// A pinned-mode client (spec/validation-bundle.md §6): the app ships the digest of the
    /// FleetKeySet in `trust.anchors.pinned`; the FleetKeySet bytes are taken from the
    /// fleet's bundle and checked against the pin alone. When the fleet answers that it is
    /// retired, the client reports `pinned.fleet.retired`: the app must be updated.
    pub async fn connect_pinned(url: &str, trust: &Trust, ksf: KsfParams, now: u64) -> Result<Self> {
        let url = url.trim_end_matches('/').to_owned();
        let http = http::client();
        let released =
            LoggedBundle::from_cbor(&get(&http, &format!("{url}/v1/bundle"), http::MAX_BUNDLE).await?)?;
        let payload = bkv_protocol::validation_bundle::Parsed::parse(&released.bundle)?.payload;
        let verified = bkv_protocol::validation_bundle::verify_pinned(&payload, &trust.anchors, now)?;
        Self::bind(http, url, verified.keyset().clone(), ksf, true).await
    }

    async fn bind(
        http: reqwest::Client,
        url: String,
        ks: FleetKeySet,
        ksf: KsfParams,
        pinned: bool,
    ) -> Result<Self> {
        let info: NodeInfo =
            cbor::from_slice(&get(&http, &format!("{url}/v1/node"), http::MAX_SMALL).await?)?;
        // The node's claim only selects a key of the verified set: a node that lies about
        // its id cannot open a request sealed to another node's key.
        let node = ks.node(&info.node_id).ok_or(ProtocolError::SessionNodeMismatch)?;
        let key = |role| node.key(role).map(|k| k.key.clone()).ok_or(ProtocolError::BundleKeySetInvalid);
        let session_key: [u8; 32] =
            key(KeyRole::Session)?.try_into().map_err(|_| ProtocolError::BundleKeySetInvalid)?;
        let opaque_server_key: [u8; 32] =
            key(KeyRole::Opaque)?.try_into().map_err(|_| ProtocolError::BundleKeySetInvalid)?;
        let target = SessionTarget {
            fleet_id: ks.fleet_id.clone(),
            epoch: ks.epoch,
            node_id: node.id.clone(),
            session_key,
        };
        let ctx = VaultContext { fleet_id: ks.fleet_id.clone(), opaque_server_key, ksf };
        Ok(Self { http, url, target, ctx, keyset: ks, pinned, clock: SystemClock::shared() })
    }

    /// Read the time of sealed requests from `clock` (spec/session.md §3.1 `time`).
    pub fn with_clock(mut self, clock: SharedClock) -> Self {
        self.clock = clock;
        self
    }

    /// The verified FleetKeySet.
    pub fn keyset(&self) -> &FleetKeySet {
        &self.keyset
    }

    /// The node this client talks to.
    pub fn node_id(&self) -> &str {
        &self.target.node_id
    }

    /// Seal `body`, send it, open the answer (spec/session.md §3.3, §4.3).
    pub async fn call(&self, body: &[u8]) -> Result<Vec<u8>> {
        let (sealed, awaiting) = session::seal_request(&mut OsRng, &self.target, self.clock.now(), body)?;
        let raw = self.post(sealed).await?;
        match awaiting.open(&raw) {
            // spec/rotation.md §3 RT3: a pinned app cannot follow the fleet; it must be updated.
            Err(ProtocolError::RotationFleetRetired) if self.pinned => {
                Err(ProtocolError::PinnedFleetRetired.into())
            }
            other => Ok(other?),
        }
    }

    /// POST raw bytes to the session endpoint (tests use it to replay requests).
    pub async fn post(&self, sealed: Vec<u8>) -> Result<Vec<u8>> {
        let url = format!("{}/v1/session", self.url);
        let (status, body) = http::request_capped(
            &self.http,
            reqwest::Method::POST,
            &url,
            Some((sealed, CBOR)),
            http::MAX_SMALL,
        )
        .await
        .map_err(|e| ClientError::Transport(e.0))?;
        match status {
            200 => Ok(body),
            // spec/node-api.md §6 point 1: the body says when (Retry-After is also sent).
            429 => Err(ClientError::RateLimited { url, retry_after_secs: retry_after(&body) }),
            _ => Err(ClientError::Transport(format!(
                "POST {url}: {status} {}",
                String::from_utf8_lossy(&body)
            ))),
        }
    }

    /// The session target (tests seal their own requests with it).
    pub fn target(&self) -> &SessionTarget {
        &self.target
    }

    /// spec/vault.md §6.3: register `record` under `code`, storing `backup_key` wrapped
    /// under the OPAQUE export key. Returns the guesses the record allows.
    pub async fn register(&self, record: &[u8], code: &[u8], backup_key: &BackupKey) -> Result<u32> {
        let (start, client) = RegistrationClient::start(&mut OsRng, record, code)?;
        let response = self.call(&start).await?;
        let new = client.finish(&mut OsRng, &self.ctx, backup_key, &response)?;
        let (finish, awaiting) = new.into_request();
        Ok(awaiting.finish(&self.call(&finish).await?)?)
    }

    /// spec/vault.md §6.4: one recovery attempt. A wrong code is not an error: it is
    /// [`Recovery::WrongCode`] with the guesses left (the attempt was counted before the
    /// fleet answered). A locked or destroyed record fails with `vault.record.locked`.
    pub async fn recover(&self, record: &[u8], code: &[u8]) -> Result<Recovery> {
        let (start, client) = RecoveryClient::start(&mut OsRng, record, code)?;
        let ke2 = client.receive(&self.call(&start).await?)?;
        let remaining = ke2.remaining();
        let (finish, awaiting) = match ke2.finish(&mut OsRng, &self.ctx, ClientAction::Recover) {
            Ok(x) => x,
            // The KE2 did not open under this code: the guess is spent, nothing to send.
            Err(ProtocolError::VaultCodeInvalid) => return Ok(Recovery::WrongCode { remaining }),
            Err(e) => return Err(e.into()),
        };
        let (backup_key, remaining) = awaiting.finish_recovered(&self.call(&finish).await?)?;
        Ok(Recovery::Recovered { backup_key, remaining })
    }
}
