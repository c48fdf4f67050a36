//! The third party's signer as a service (spec/signer-api.md §3): `POST /v1/sign` and
//! `POST /v1/countersign`. It holds the third party's signing key and nothing of the
//! operator's; it authenticates the operator by the key the fleet's anchors pin, logs the
//! evidence, checks it, signs, and releases a bundle only once the operator's
//! countersignature verifies and the final bundle is in the log under a witnessed
//! checkpoint. Its state (one signing per fleet and epoch) is in redb, written before
//! every answer, so a signer killed at any point and restarted logs each entry once and
//! releases exactly one bundle per fleet and epoch.

use crate::{Error, Result};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use bkv_client::LogClient;
use bkv_client::clock::SharedClock;
use bkv_protocol::audit::{EvidenceInputs, VendorRoot, check_before_signing};
use bkv_protocol::audit_log::{LogAnchors, LogEntry, LoggedBundle};
use bkv_protocol::crypto::Signer;
use bkv_protocol::signer_api::{
    CountersignRequest, RetireResponse, SignResponse, attach_and_verify, open_retire_request,
    open_sign_request,
};
use bkv_protocol::validation_bundle::{Claims, TrustAnchors, sign};
use redb::{Database, Durability, ReadableDatabase, TableDefinition};
use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;
use std::path::Path;
use std::sync::Arc;

/// `fleet_id 0x00 epoch (8 bytes, big-endian)` → [`Signing`] (CBOR).
const SIGNINGS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("signings");
/// `request_id` → the key of its signing in [`SIGNINGS`].
const REQUESTS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("requests");

/// The third party's signing key (a software key or a key in a token): the only key the
/// signer holds. The operator's key type is in `bkv-operator`, a crate this one does not
/// depend on (nor it on this one), so neither side can name the other's key.
pub struct ThirdPartyKey(Box<dyn Signer + Send + Sync>);

impl ThirdPartyKey {
    /// The third party's key `key`.
    pub fn new(key: Box<dyn Signer + Send + Sync>) -> Self {
        ThirdPartyKey(key)
    }
}

/// What the signer holds (spec/signer-api.md §3).
pub struct SignerConfig {
    /// The third party's signing key: its only key.
    pub key: ThirdPartyKey,
    /// The fleet's anchors: the signer's own key is one of `third_party`, and `operator`
    /// authenticates the operator.
    pub anchors: TrustAnchors,
    /// The log's anchors (the witnesses a released bundle needs).
    pub log_anchors: LogAnchors,
    /// The pinned HSM vendor roots (spec/audit.md §1).
    pub vendor_roots: Vec<VendorRoot>,
    /// The published node software measurement.
    pub software: [u8; 32],
    /// The vendor's published firmware measurement, if checked.
    pub firmware: Option<[u8; 32]>,
    /// A client of the log that writes through its admin listener.
    pub log: LogClient,
    /// The signer's time.
    pub clock: SharedClock,
}

/// An entry being appended: the log size before the append (spec/signer-api.md §3 C4).
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Appending {
    entry: ByteBuf,
    from: u64,
}

/// One signing of a fleet and epoch, as stored.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Signing {
    keyset: ByteBuf,
    evidence_digest: ByteBuf,
    /// The third party's intermediate, once signed (S9).
    intermediate: Option<ByteBuf>,
    /// An entry whose append may not have landed.
    appending: Option<Appending>,
    /// The final bundle, once the countersignature verified (C3).
    final_bundle: Option<ByteBuf>,
    /// The released LoggedBundle (C6).
    released: Option<ByteBuf>,
    /// The retirement of this epoch, once logged (§3.1 R3): the successor's digest and the
    /// entry's index.
    #[serde(default)]
    retired: Option<(ByteBuf, u64)>,
}

/// The signer service.
pub struct SignerService {
    config: SignerConfig,
    name: String,
    db: Database,
    lock: tokio::sync::Mutex<()>,
}

fn key_of(fleet_id: &str, epoch: u64) -> Vec<u8> {
    let mut k = fleet_id.as_bytes().to_vec();
    k.push(0);
    k.extend_from_slice(&epoch.to_be_bytes());
    k
}

impl SignerService {
    /// Open (or create) the signer's state at `db`. Fails unless its key is one of the
    /// anchors' third-party keys (its anchor's name is the `iss` of what it signs).
    pub fn open(db: &Path, config: SignerConfig) -> Result<Self> {
        let kid = config.key.0.public_key().kid();
        let name = config
            .anchors
            .third_party
            .iter()
            .find(|a| a.key.kid() == kid && a.key.alg == config.key.0.public_key().alg)
            .map(|a| a.name.clone())
            .ok_or_else(|| {
                Error::Storage(format!(
                    "the signer's key {} is no third-party anchor of fleet {}",
                    hex::encode(kid),
                    config.anchors.fleet_id
                ))
            })?;
        let db = Database::create(db)?;
        let txn = db.begin_write()?;
        txn.open_table(SIGNINGS)?;
        txn.open_table(REQUESTS)?;
        txn.commit()?;
        Ok(SignerService { config, name, db, lock: tokio::sync::Mutex::new(()) })
    }

    fn load(&self, key: &[u8]) -> Result<Option<Signing>> {
        let read = self.db.begin_read()?;
        let table = read.open_table(SIGNINGS)?;
        Ok(match table.get(key)? {
            Some(v) => {
                Some(bkv_protocol::cbor::from_slice(v.value()).map_err(|e| Error::Storage(e.to_string()))?)
            }
            None => None,
        })
    }

    /// Durably store `signing` (and map `request_id` to it).
    fn store(&self, key: &[u8], signing: &Signing, request_id: Option<&[u8]>) -> Result<()> {
        let mut txn = self.db.begin_write()?;
        txn.set_durability(Durability::Immediate)?;
        txn.open_table(SIGNINGS)?.insert(key, bkv_protocol::cbor::to_vec(signing).as_slice())?;
        if let Some(id) = request_id {
            txn.open_table(REQUESTS)?.insert(id, key)?;
        }
        txn.commit()?;
        Ok(())
    }

    fn remove(&self, key: &[u8]) -> Result<()> {
        let mut txn = self.db.begin_write()?;
        txn.set_durability(Durability::Immediate)?;
        txn.open_table(SIGNINGS)?.remove(key)?;
        txn.commit()?;
        Ok(())
    }

    fn request_key(&self, request_id: &[u8]) -> Result<Option<Vec<u8>>> {
        let read = self.db.begin_read()?;
        let table = read.open_table(REQUESTS)?;
        Ok(table.get(request_id)?.map(|v| v.value().to_vec()))
    }

    /// Append `entry` to the log exactly once (spec/signer-api.md §3 C4): record the log's
    /// size first; after a crash, find the entry from that size on before appending again.
    async fn append_once(&self, key: &[u8], signing: &mut Signing, entry: Vec<u8>) -> Result<u64> {
        if let Some(a) = &signing.appending
            && a.entry.as_slice() == entry.as_slice()
        {
            // Not `LogClient::fetch_entries`: that one keeps what it got past a failed
            // batch, and here a log that does not answer must stop the append, not let the
            // entry be logged twice.
            let mut at = a.from;
            loop {
                let batch =
                    self.config.log.entries(at, at + bkv_client::log::MAX_ENTRIES_PER_REQUEST).await?;
                if let Some(i) = batch.iter().position(|e| *e == entry) {
                    return Ok(at + i as u64);
                }
                if batch.is_empty() {
                    break;
                }
                at += batch.len() as u64;
            }
        }
        let from = match self.config.log.checkpoint_size().await {
            Ok((_, size)) => size,
            // No checkpoint yet, or the log did not answer (then the append below fails
            // too): 0 is always a correct place to start the search from.
            Err(_) => 0,
        };
        signing.appending = Some(Appending { entry: ByteBuf::from(entry.clone()), from });
        self.store(key, signing, None)?;
        Ok(self.config.log.append(&entry).await?)
    }

    /// spec/signer-api.md §3 S1–S9: answer a SignRequest with a SignResponse.
    pub async fn sign(&self, body: &[u8]) -> Result<Vec<u8>> {
        let now = self.config.clock.now();
        // S1–S5
        let opened = open_sign_request(body, &self.config.anchors, now)?;
        let (ks, request) = (&opened.keyset, &opened.request);
        let key = key_of(&ks.fleet_id, ks.epoch);
        let _guard = self.lock.lock().await;
        let evidence_digest = opened.evidence_digest();
        // S6: a retry, another keyset for this epoch, or a new signing.
        let mut signing = match self.load(&key)? {
            Some(s)
                if s.keyset.as_slice() != request.keyset.as_slice()
                    || s.evidence_digest.as_slice() != evidence_digest.as_slice() =>
            {
                return Err(bkv_protocol::Error::SignerEpochTaken.into());
            }
            Some(s) if s.intermediate.is_some() => {
                self.store(&key, &s, Some(&request.request_id))?;
                let intermediate = s.intermediate.expect("checked");
                return Ok(SignResponse { v: 1, request_id: request.request_id, intermediate }.to_cbor());
            }
            Some(s) => s,
            None => Signing {
                keyset: request.keyset.clone(),
                evidence_digest: ByteBuf::from(evidence_digest.to_vec()),
                intermediate: None,
                appending: None,
                final_bundle: None,
                released: None,
                retired: None,
            },
        };
        let entry = LogEntry::evidence(&ks.fleet_id, ks.epoch, &request.evidence).to_cbor();
        self.append_once(&key, &mut signing, entry).await?;
        // S7
        let check = check_before_signing(
            &EvidenceInputs {
                evidence: &request.evidence,
                anchors: &self.config.anchors,
                vendor_roots: &self.config.vendor_roots,
                software: self.config.software,
                firmware: self.config.firmware,
                now,
            },
            ks,
        );
        if let Some((step, code)) = &check.failure {
            tracing::info!(fleet = %ks.fleet_id, epoch = ks.epoch, %step, %code, "evidence refused: nothing signed");
            // Nothing is signed and nothing stays pending: the refused evidence remains in
            // the log, where auditors see it, and the operator may submit fixed evidence.
            self.remove(&key)?;
            let e = bkv_protocol::Error::from_code(code).unwrap_or(bkv_protocol::Error::EvidenceMalformed);
            return Err(e.into());
        }
        // S9, recorded (S8) before the answer.
        let claims = Claims { iss: self.name.clone(), sub: ks.fleet_id.clone(), iat: now };
        let intermediate = sign(&request.keyset, &claims, self.config.key.0.as_ref());
        signing.appending = None;
        signing.intermediate = Some(ByteBuf::from(intermediate.clone()));
        self.store(&key, &signing, Some(&request.request_id))?;
        tracing::info!(fleet = %ks.fleet_id, epoch = ks.epoch, "signed the FleetKeySet; awaiting the countersignature");
        Ok(SignResponse { v: 1, request_id: request.request_id, intermediate: ByteBuf::from(intermediate) }
            .to_cbor())
    }

    /// spec/signer-api.md §3 C1–C6: answer a CountersignRequest with the LoggedBundle.
    pub async fn countersign(&self, body: &[u8]) -> Result<Vec<u8>> {
        let now = self.config.clock.now();
        let request = CountersignRequest::from_cbor(body)?;
        let _guard = self.lock.lock().await;
        // C1
        let key = self.request_key(&request.request_id)?.ok_or(bkv_protocol::Error::SignerRequestUnknown)?;
        let mut signing = self.load(&key)?.ok_or(bkv_protocol::Error::SignerRequestUnknown)?;
        if let Some(released) = &signing.released {
            return Ok(released.to_vec());
        }
        let intermediate = signing.intermediate.clone().ok_or(bkv_protocol::Error::SignerRequestUnknown)?;
        // C2–C3
        let final_bundle =
            attach_and_verify(&intermediate, &request.countersignature, &self.config.anchors, now)?;
        if let Some(earlier) = &signing.final_bundle
            && earlier.as_slice() != final_bundle.as_slice()
        {
            // A second, different countersignature while the first is being logged: the
            // bundle of this epoch is the first one.
            return Err(bkv_protocol::Error::SignerEpochTaken.into());
        }
        signing.final_bundle = Some(ByteBuf::from(final_bundle.clone()));
        let ks = bkv_protocol::validation_bundle::FleetKeySet::from_bytes(&signing.keyset)?;
        // C4
        let entry = LogEntry::bundle(&ks.fleet_id, ks.epoch, &final_bundle).to_cbor();
        let index = self.append_once(&key, &mut signing, entry).await?;
        // C5
        let logged = crate::signer::prove(
            &self.config.log,
            &self.config.log_anchors,
            final_bundle,
            &ks.fleet_id,
            ks.epoch,
            index,
        )
        .await
        // The entry is durable; a checkpoint the witnesses did not (all) cosign is the log's
        // passing trouble: 503, and the operator's retry finds the entry (C4).
        .map_err(|e| {
            Error::Http(format!("no witnessed checkpoint covers the bundle entry #{index} yet: {e}"))
        })?;
        // C6
        let bytes = logged.to_cbor();
        signing.appending = None;
        signing.released = Some(ByteBuf::from(bytes.clone()));
        self.store(&key, &signing, None)?;
        tracing::info!(fleet = %ks.fleet_id, epoch = ks.epoch, index, "released the bundle");
        Ok(bytes)
    }

    /// spec/signer-api.md §3.1: log the retirement of an epoch for its successor, both
    /// released by this signer; answers a RetireResponse.
    pub async fn retire(&self, body: &[u8]) -> Result<Vec<u8>> {
        use bkv_protocol::Error::SignerRetirementInvalid as Invalid;
        let now = self.config.clock.now();
        // R1
        let r = open_retire_request(body, &self.config.anchors, now)?;
        let _guard = self.lock.lock().await;
        // R2
        if r.fleet_id != self.config.anchors.fleet_id {
            return Err(Invalid.into());
        }
        let key = key_of(&r.fleet_id, r.epoch);
        let mut old = self.load(&key)?.filter(|s| s.released.is_some()).ok_or(Invalid)?;
        let next = r.epoch.checked_add(1).ok_or(Invalid)?;
        let successor = self.load(&key_of(&r.fleet_id, next))?.and_then(|s| s.released).ok_or(Invalid)?;
        let successor = LoggedBundle::from_cbor(&successor)?.bundle;
        if !bkv_protocol::crypto::ct_eq(&bkv_protocol::crypto::sha256(&successor), &r.successor) {
            return Err(Invalid.into());
        }
        let answer = |index| RetireResponse { v: 1, index }.to_cbor();
        match &old.retired {
            Some((digest, index)) if digest.as_slice() == r.successor.as_slice() => {
                return Ok(answer(*index));
            }
            Some(_) => return Err(Invalid.into()),
            None => {}
        }
        // R3
        let entry = LogEntry::retirement(&r.fleet_id, r.epoch, &successor).to_cbor();
        let index = self.append_once(&key, &mut old, entry).await?;
        self.config.log.publish_checkpoint().await.map_err(|e| {
            Error::Http(format!("no checkpoint covers the retirement entry #{index} yet: {e}"))
        })?;
        old.appending = None;
        old.retired = Some((ByteBuf::from(r.successor.to_vec()), index));
        self.store(&key, &old, None)?;
        tracing::info!(fleet = %r.fleet_id, epoch = r.epoch, index, "logged the retirement");
        Ok(answer(index))
    }
}

/// The HTTP status of a signer failure (spec/signer-api.md §1).
fn failure(e: &Error) -> StatusCode {
    match e {
        Error::Protocol(
            bkv_protocol::Error::SignerEpochTaken | bkv_protocol::Error::SignerRetirementInvalid,
        ) => StatusCode::CONFLICT,
        Error::Protocol(bkv_protocol::Error::SignerRequestUnknown) => StatusCode::NOT_FOUND,
        Error::Protocol(_) => StatusCode::BAD_REQUEST,
        Error::Storage(_) | Error::Http(_) => StatusCode::SERVICE_UNAVAILABLE,
    }
}

fn answer(r: Result<Vec<u8>>) -> Response {
    match r {
        Ok(body) => {
            ([(axum::http::header::CONTENT_TYPE, bkv_protocol::node_api::CBOR)], body).into_response()
        }
        Err(e) => {
            tracing::info!(code = e.code(), "signer refused a request: {e}");
            (failure(&e), e.code()).into_response()
        }
    }
}

/// The signer's HTTP API (spec/signer-api.md §1).
pub fn router(signer: Arc<SignerService>) -> axum::Router {
    axum::Router::new()
        .route(
            "/v1/sign",
            post(
                |State(s): State<Arc<SignerService>>, body: Bytes| async move { answer(s.sign(&body).await) },
            ),
        )
        .route("/v1/retire", post(|State(s): State<Arc<SignerService>>, body: Bytes| async move { answer(s.retire(&body).await) }))
        .route(
            "/v1/countersign",
            post(|State(s): State<Arc<SignerService>>, body: Bytes| async move {
                answer(s.countersign(&body).await)
            }),
        )
        .with_state(signer)
}
