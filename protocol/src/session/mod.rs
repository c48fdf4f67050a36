//! The session envelope: HPKE-sealed requests to one fleet node, responses sealed under a
//! key exported from the same HPKE context.
//!
//! spec/session.md. Sans-I/O: the random number generator and the current time are
//! parameters. A client calls [`seal_request`] and keeps the returned [`AwaitResponse`]
//! (consumed by [`AwaitResponse::open`]); a node calls [`SessionServer::open`] and answers
//! through the [`Responder`] of the [`OpenedRequest`] (consumed by the seal), or with
//! [`reject`] when the request could not be opened.

use crate::cbor;
use crate::error::{Error, Result};
use chacha20poly1305::aead::{Aead as _, KeyInit, Payload};
use chacha20poly1305::{ChaCha20Poly1305 as ResponseAead, Key, Nonce};
use hpke::kem::Kem as KemTrait;
use hpke::{Deserializable, OpModeR, OpModeS, Serializable};
use rand_core::{CryptoRng, RngCore};
use serde::{Deserialize, Serialize};
use zeroize::{Zeroize, Zeroizing};

#[cfg(test)]
mod tests;

/// spec/session.md §2: HPKE KEM DHKEM(X25519, HKDF-SHA256).
pub const KEM_ID: u16 = 0x0020;
/// spec/session.md §2: HPKE KDF HKDF-SHA256.
pub const KDF_ID: u16 = 0x0001;
/// spec/session.md §2: HPKE AEAD ChaCha20Poly1305.
pub const AEAD_ID: u16 = 0x0003;
/// spec/session.md §5: a request's `time` may differ from the node's clock by at most this
/// many seconds.
pub const REQUEST_WINDOW_SECS: u64 = 300;
/// spec/session.md §4: the HPKE exporter context of the response key and nonce.
pub const RESPONSE_EXPORT_LABEL: &[u8] = b"bkv session v1 response";
/// spec/session.md §3: the first element of the HPKE `info` array.
pub const INFO_LABEL: &str = "bkv session";
/// Length of a request id (spec/session.md §3).
pub const REQUEST_ID_LEN: usize = 16;
/// Length of the response nonce (spec/session.md §4.2).
pub const RESPONSE_NONCE_LEN: usize = 12;

/// The HPKE export interface of both context halves.
trait ExportCtx {
    fn export_into(&self, label: &[u8], out: &mut [u8]);
}

impl ExportCtx for hpke::aead::AeadCtxS<HpkeAead, Kdf, Kem> {
    fn export_into(&self, label: &[u8], out: &mut [u8]) {
        self.export(label, out).expect("32 bytes is a valid export length");
    }
}

impl ExportCtx for hpke::aead::AeadCtxR<HpkeAead, Kdf, Kem> {
    fn export_into(&self, label: &[u8], out: &mut [u8]) {
        self.export(label, out).expect("32 bytes is a valid export length");
    }
}

/// The HPKE KEM of the suite.
pub type Kem = hpke::kem::X25519HkdfSha256;
type Kdf = hpke::kdf::HkdfSha256;
type HpkeAead = hpke::aead::ChaCha20Poly1305;

/// A request id: 16 random bytes chosen by the client (spec/session.md §3).
pub type RequestId = [u8; REQUEST_ID_LEN];

/// spec/session.md §3.1, `SealedRequest`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SealedRequest {
    /// Protocol version, 1.
    pub v: u64,
    /// HPKE KEM id (0x0020).
    pub kem: u64,
    /// HPKE KDF id (0x0001).
    pub kdf: u64,
    /// HPKE AEAD id (0x0003).
    pub aead: u64,
    /// The fleet the client verified.
    pub fleet_id: String,
    /// The epoch of the FleetKeySet the client verified.
    pub epoch: u64,
    /// The node whose `session` key the request is sealed to.
    pub node_id: String,
    /// The HPKE encapsulated key (32 bytes).
    #[serde(with = "serde_bytes")]
    pub enc: Vec<u8>,
    /// HPKE ciphertext of a `RequestPlaintext` (spec/session.md §3.2).
    #[serde(with = "serde_bytes")]
    pub ct: Vec<u8>,
}

/// spec/session.md §3.2, `RequestPlaintext`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RequestPlaintext {
    v: u64,
    #[serde(with = "serde_bytes")]
    id: Vec<u8>,
    time: u64,
    #[serde(with = "serde_bytes")]
    body: Vec<u8>,
}

/// spec/session.md §4.1, `SessionResponse`: `nonce` and `sealed`, or `error`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct SessionResponse {
    v: u64,
    #[serde(default, with = "serde_bytes", skip_serializing_if = "Option::is_none")]
    nonce: Option<Vec<u8>>,
    #[serde(default, with = "serde_bytes", skip_serializing_if = "Option::is_none")]
    sealed: Option<Vec<u8>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

/// spec/session.md §4.2, `ResponsePlaintext`: exactly one of `ok` and `error`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct ResponsePlaintext {
    v: u64,
    #[serde(with = "serde_bytes")]
    id: Vec<u8>,
    #[serde(default, with = "serde_bytes", skip_serializing_if = "Option::is_none")]
    ok: Option<Vec<u8>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

/// spec/session.md §3: `info = CBOR ["bkv session", 1, fleet_id, epoch, node_id]`.
pub fn info(fleet_id: &str, epoch: u64, node_id: &str) -> Vec<u8> {
    cbor::to_vec(&(INFO_LABEL, 1u64, fleet_id, epoch, node_id))
}

/// What a client needs to seal to one node: taken from a verified FleetKeySet
/// (spec/validation-bundle.md §3, the node's `session` key).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionTarget {
    /// `fleet_id` of the verified FleetKeySet.
    pub fleet_id: String,
    /// `epoch` of the verified FleetKeySet.
    pub epoch: u64,
    /// The node's `id`.
    pub node_id: String,
    /// The node's `session` key: a 32-byte X25519 public key.
    pub session_key: [u8; 32],
}

/// A node's HPKE session private key (X25519, 32 bytes), zeroized on drop.
///
/// spec/session.md §2. In a deployment this key lives in the node's HSM; the reference
/// fleet's software HSM holds it in this type.
#[derive(Clone)]
pub struct SessionSecretKey(Zeroizing<[u8; 32]>);

impl core::fmt::Debug for SessionSecretKey {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("SessionSecretKey(..)")
    }
}

impl SessionSecretKey {
    /// Generate a key: RFC 9180 GenerateKeyPair = DeriveKeyPair(32 random bytes).
    pub fn generate<R: RngCore + CryptoRng>(rng: &mut R) -> Self {
        let (sk, _) = Kem::gen_keypair(rng);
        Self::from_hpke(&sk)
    }

    /// RFC 9180 §7.1.3 DeriveKeyPair(ikm) for this suite.
    pub fn derive(ikm: &[u8]) -> Self {
        let (sk, _) = Kem::derive_keypair(ikm);
        Self::from_hpke(&sk)
    }

    fn from_hpke(sk: &<Kem as KemTrait>::PrivateKey) -> Self {
        let mut bytes = Zeroizing::new([0u8; 32]);
        let mut raw = sk.to_bytes();
        bytes.copy_from_slice(&raw);
        raw.zeroize();
        Self(bytes)
    }

    /// Load a serialized key (RFC 9180 SerializePrivateKey, 32 bytes).
    pub fn from_bytes(bytes: &[u8; 32]) -> Result<Self> {
        <Kem as KemTrait>::PrivateKey::from_bytes(bytes).map_err(|_| Error::CoseKeyInvalid)?;
        Ok(Self(Zeroizing::new(*bytes)))
    }

    /// The serialized private key. Handle with care.
    pub fn to_bytes(&self) -> Zeroizing<[u8; 32]> {
        self.0.clone()
    }

    fn hpke(&self) -> <Kem as KemTrait>::PrivateKey {
        <Kem as KemTrait>::PrivateKey::from_bytes(&self.0[..]).expect("checked at construction")
    }

    /// The public key for the node's `session` entry in the FleetKeySet.
    pub fn public_key(&self) -> [u8; 32] {
        let pk = <Kem as KemTrait>::sk_to_pk(&self.hpke());
        let mut out = [0u8; 32];
        out.copy_from_slice(&pk.to_bytes());
        out
    }
}

/// The response key, exported from the HPKE context (spec/session.md §4.2).
struct ResponseKey {
    key: Zeroizing<[u8; 32]>,
}

impl ResponseKey {
    fn export<C: ExportCtx>(ctx: &C) -> Self {
        let mut key = Zeroizing::new([0u8; 32]);
        ctx.export_into(RESPONSE_EXPORT_LABEL, &mut key[..]);
        Self { key }
    }

    fn cipher(&self) -> ResponseAead {
        ResponseAead::new(Key::from_slice(&self.key[..]))
    }
}

/// Client side, spec/session.md §3 steps C1–C4: seal `body` to `target` at time `now`.
///
/// Returns the [`SealedRequest`] bytes to send and the state that opens the answer.
pub fn seal_request<R: RngCore + CryptoRng>(
    rng: &mut R,
    target: &SessionTarget,
    now: u64,
    body: &[u8],
) -> Result<(Vec<u8>, AwaitResponse)> {
    let mut id = [0u8; REQUEST_ID_LEN];
    rng.fill_bytes(&mut id);
    seal_request_with_id(rng, target, now, id, body)
}

/// [`seal_request`] with a caller-chosen request id (tests and retries of an identical
/// request; a fresh request MUST use a fresh random id).
pub fn seal_request_with_id<R: RngCore + CryptoRng>(
    rng: &mut R,
    target: &SessionTarget,
    now: u64,
    id: RequestId,
    body: &[u8],
) -> Result<(Vec<u8>, AwaitResponse)> {
    let pk =
        <Kem as KemTrait>::PublicKey::from_bytes(&target.session_key).map_err(|_| Error::CoseKeyInvalid)?;
    let info = info(&target.fleet_id, target.epoch, &target.node_id);
    let (enc, mut ctx) = hpke::setup_sender::<HpkeAead, Kdf, Kem, R>(&OpModeS::Base, &pk, &info, rng)
        .map_err(|_| Error::CoseKeyInvalid)?;
    let plaintext = Zeroizing::new(cbor::to_vec(&RequestPlaintext {
        v: 1,
        id: id.to_vec(),
        time: now,
        body: body.to_vec(),
    }));
    let ct = ctx.seal(&plaintext, b"").map_err(|_| Error::SessionOpenFailed)?;
    let key = ResponseKey::export(&ctx);
    let request = SealedRequest {
        v: 1,
        kem: KEM_ID.into(),
        kdf: KDF_ID.into(),
        aead: AEAD_ID.into(),
        fleet_id: target.fleet_id.clone(),
        epoch: target.epoch,
        node_id: target.node_id.clone(),
        enc: enc.to_bytes().to_vec(),
        ct,
    };
    Ok((cbor::to_vec(&request), AwaitResponse { id, key }))
}

/// Client state between sending a request and reading its response.
pub struct AwaitResponse {
    id: RequestId,
    key: ResponseKey,
}

impl core::fmt::Debug for AwaitResponse {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("AwaitResponse").field("id", &hex::encode(self.id)).finish_non_exhaustive()
    }
}

impl AwaitResponse {
    /// The id of the request this state answers.
    pub fn request_id(&self) -> RequestId {
        self.id
    }

    /// spec/session.md §4.3: open the node's response. `Ok` is the application body; an
    /// error is the node's code (a sealed error, or an unsealed `session.*`/`cbor.*` error)
    /// or `session.response.invalid` when the response cannot be trusted.
    pub fn open(self, response: &[u8]) -> Result<Vec<u8>> {
        let resp: SessionResponse = cbor::from_slice(response).map_err(|_| Error::SessionResponseInvalid)?;
        if resp.v != 1 {
            return Err(Error::SessionResponseInvalid);
        }
        match (resp.nonce, resp.sealed, resp.error) {
            (None, None, Some(code)) => {
                // Unsealed errors are unauthenticated: only codes a node can send before it
                // has opened the request are accepted (spec/session.md §4.3 step 2).
                match Error::from_code(&code) {
                    Some(e) if unsealed_code_allowed(e) => Err(e),
                    _ => Err(Error::SessionResponseInvalid),
                }
            }
            (Some(nonce), Some(sealed), None) if nonce.len() == RESPONSE_NONCE_LEN => {
                let pt = Zeroizing::new(
                    self.key
                        .cipher()
                        .decrypt(Nonce::from_slice(&nonce), Payload { msg: &sealed, aad: b"" })
                        .map_err(|_| Error::SessionResponseInvalid)?,
                );
                let inner: ResponsePlaintext =
                    cbor::from_slice(&pt).map_err(|_| Error::SessionResponseInvalid)?;
                if inner.v != 1 || !crate::crypto::ct_eq(&inner.id, &self.id) {
                    return Err(Error::SessionResponseInvalid);
                }
                match (inner.ok, inner.error) {
                    (Some(body), None) => Ok(body),
                    (None, Some(code)) => Err(Error::from_code(&code).ok_or(Error::SessionResponseInvalid)?),
                    _ => Err(Error::SessionResponseInvalid),
                }
            }
            _ => Err(Error::SessionResponseInvalid),
        }
    }
}

/// spec/session.md §4.1: the codes a node may send unsealed.
fn unsealed_code_allowed(e: Error) -> bool {
    matches!(e.spec_area(), "session" | "cbor") && e != Error::SessionResponseInvalid
}

/// A node's view of its own place in the fleet, and its session key.
pub struct SessionServer {
    fleet_id: String,
    epoch: u64,
    node_id: String,
    key: SessionSecretKey,
    info: Vec<u8>,
}

impl core::fmt::Debug for SessionServer {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("SessionServer")
            .field("fleet_id", &self.fleet_id)
            .field("epoch", &self.epoch)
            .field("node_id", &self.node_id)
            .finish_non_exhaustive()
    }
}

/// A request the node opened: its id, the client's time, the application body, and the
/// one-shot [`Responder`] that seals the answer.
#[derive(Debug)]
pub struct OpenedRequest {
    /// The client's request id.
    pub request_id: RequestId,
    /// The client's `time` (already checked against the node's clock).
    pub time: u64,
    /// The application body (a `VaultRequest`, spec/vault.md).
    pub body: Vec<u8>,
    /// Seals the response for this request only.
    pub responder: Responder,
}

/// Seals exactly one response to the client that sent the request (spec/session.md §4.2).
pub struct Responder {
    id: RequestId,
    key: ResponseKey,
}

impl core::fmt::Debug for Responder {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Responder").field("id", &hex::encode(self.id)).finish_non_exhaustive()
    }
}

impl Responder {
    /// Seal a successful application response. `rng` draws the response nonce.
    pub fn seal_ok<R: RngCore + CryptoRng>(self, rng: &mut R, body: &[u8]) -> Vec<u8> {
        self.seal_plaintext(
            rng,
            ResponsePlaintext { v: 1, id: self.id.to_vec(), ok: Some(body.to_vec()), error: None },
        )
    }

    /// Seal an error (any code: only this client can read it).
    pub fn seal_error<R: RngCore + CryptoRng>(self, rng: &mut R, error: Error) -> Vec<u8> {
        self.seal_plaintext(
            rng,
            ResponsePlaintext { v: 1, id: self.id.to_vec(), ok: None, error: Some(error.code().to_owned()) },
        )
    }

    /// Seal `Ok(body)` or `Err(code)`.
    pub fn seal<R: RngCore + CryptoRng>(self, rng: &mut R, result: Result<Vec<u8>>) -> Vec<u8> {
        match result {
            Ok(body) => self.seal_ok(rng, &body),
            Err(e) => self.seal_error(rng, e),
        }
    }

    fn seal_plaintext<R: RngCore + CryptoRng>(&self, rng: &mut R, plaintext: ResponsePlaintext) -> Vec<u8> {
        let pt = Zeroizing::new(cbor::to_vec(&plaintext));
        // A random nonce: a replayed request recreates the same HPKE context and hence the
        // same key, so a node may seal more than one response under it (spec/session.md §4.2).
        let mut nonce = [0u8; RESPONSE_NONCE_LEN];
        rng.fill_bytes(&mut nonce);
        let sealed = self
            .key
            .cipher()
            .encrypt(Nonce::from_slice(&nonce), Payload { msg: &pt, aad: b"" })
            .expect("ChaCha20Poly1305 encryption of a bounded message cannot fail");
        cbor::to_vec(&SessionResponse {
            v: 1,
            nonce: Some(nonce.to_vec()),
            sealed: Some(sealed),
            error: None,
        })
    }
}

/// spec/session.md §4.1: the unsealed answer to a request the node could not open.
pub fn reject(error: Error) -> Vec<u8> {
    cbor::to_vec(&SessionResponse { v: 1, nonce: None, sealed: None, error: Some(error.code().to_owned()) })
}

impl SessionServer {
    /// A node `node_id` of fleet `fleet_id` at `epoch`, holding its session key.
    pub fn new(fleet_id: &str, epoch: u64, node_id: &str, key: SessionSecretKey) -> Self {
        Self {
            fleet_id: fleet_id.to_owned(),
            epoch,
            node_id: node_id.to_owned(),
            info: info(fleet_id, epoch, node_id),
            key,
        }
    }

    /// The node's session public key.
    pub fn public_key(&self) -> [u8; 32] {
        self.key.public_key()
    }

    /// spec/session.md §5 steps S1–S7: open a request at node time `now`.
    ///
    /// On `Err`, answer with [`reject`]. The request id is NOT checked for replay here:
    /// the vault state machine does that for every command (spec/session.md §6).
    pub fn open(&self, request: &[u8], now: u64) -> Result<OpenedRequest> {
        // S1: strict decode.
        let req: SealedRequest = cbor::from_slice(request)?;
        if req.v != 1 {
            return Err(Error::CborSchema);
        }
        // S2: suite.
        if (req.kem, req.kdf, req.aead) != (KEM_ID.into(), KDF_ID.into(), AEAD_ID.into()) {
            return Err(Error::SessionSuiteUnsupported);
        }
        // S3: fleet, epoch, node.
        if req.fleet_id != self.fleet_id {
            return Err(Error::SessionFleetMismatch);
        }
        if req.epoch != self.epoch {
            return Err(Error::SessionEpochMismatch);
        }
        if req.node_id != self.node_id {
            return Err(Error::SessionNodeMismatch);
        }
        // S4: HPKE open; every failure is the same code.
        let enc =
            <Kem as KemTrait>::EncappedKey::from_bytes(&req.enc).map_err(|_| Error::SessionOpenFailed)?;
        let mut ctx =
            hpke::setup_receiver::<HpkeAead, Kdf, Kem>(&OpModeR::Base, &self.key.hpke(), &enc, &self.info)
                .map_err(|_| Error::SessionOpenFailed)?;
        let pt = Zeroizing::new(ctx.open(&req.ct, b"").map_err(|_| Error::SessionOpenFailed)?);
        // S5: the plaintext.
        let inner: RequestPlaintext = cbor::from_slice(&pt)?;
        if inner.v != 1 || inner.id.len() != REQUEST_ID_LEN {
            return Err(Error::CborSchema);
        }
        // S6: time window.
        if inner.time.abs_diff(now) > REQUEST_WINDOW_SECS {
            return Err(Error::SessionRequestStale);
        }
        // S7: the response key.
        let key = ResponseKey::export(&ctx);
        let mut id = [0u8; REQUEST_ID_LEN];
        id.copy_from_slice(&inner.id);
        Ok(OpenedRequest {
            request_id: id,
            time: inner.time,
            body: inner.body.clone(),
            responder: Responder { id, key },
        })
    }
}

/// Single-shot HPKE base-mode seal with the session suite (spec/session.md §2) to the X25519
/// public key `pk` under `info`: returns `(enc, ct)`. Used by spec/rotation.md §4.
pub(crate) fn hpke_seal<R: RngCore + CryptoRng>(
    rng: &mut R,
    pk: &[u8; 32],
    info: &[u8],
    plaintext: &[u8],
) -> Result<(Vec<u8>, Vec<u8>)> {
    let pk = <Kem as KemTrait>::PublicKey::from_bytes(pk).map_err(|_| Error::CoseKeyInvalid)?;
    let (enc, mut ctx) = hpke::setup_sender::<HpkeAead, Kdf, Kem, R>(&OpModeS::Base, &pk, info, rng)
        .map_err(|_| Error::CoseKeyInvalid)?;
    let ct = ctx.seal(plaintext, b"").map_err(|_| Error::CoseKeyInvalid)?;
    Ok((enc.to_bytes().to_vec(), ct))
}

/// Single-shot HPKE base-mode open with `key`; `None` for every failure (the caller maps
/// it to one code, so the step is no oracle).
pub(crate) fn hpke_open(
    key: &SessionSecretKey,
    enc: &[u8],
    info: &[u8],
    ct: &[u8],
) -> Option<Zeroizing<Vec<u8>>> {
    let enc = <Kem as KemTrait>::EncappedKey::from_bytes(enc).ok()?;
    let mut ctx = hpke::setup_receiver::<HpkeAead, Kdf, Kem>(&OpModeR::Base, &key.hpke(), &enc, info).ok()?;
    ctx.open(ct, b"").ok().map(Zeroizing::new)
}
