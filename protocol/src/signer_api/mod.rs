//! spec/signer-api.md: the signing protocol between the operator and the third party.
//!
//! Sans-I/O: the operator's side ([`seal_sign_request`], [`check_intermediate`]) and the
//! signer's stateless checks ([`open_sign_request`], [`attach_and_verify`]) take bytes,
//! keys and the time, and return bytes or a spec code. The signer's durable state (one
//! signing per fleet and epoch, spec/signer-api.md §3 S6, S8, C4, C6) and its log calls
//! live in the service (`bkv-third-party`).

use crate::cbor;
use crate::crypto::{Algorithm, Digest32, Signer, sha256};
use crate::error::{Error, Result};
use crate::evidence::{Sign1, sign1};
use crate::validation_bundle::{
    Anchor, ClientState, FleetKeySet, Parsed, TrustAnchors, attach_countersignature, sig_structure,
    verify_bundle,
};
use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;

/// spec/signer-api.md §2.1: content type of a signed [`SignRequest`].
pub const CT_SIGN_REQUEST: &str = "application/bkv-sign-request+cbor";
/// spec/signer-api.md §3.1: content type of a signed [`RetireRequest`].
pub const CT_RETIRE_REQUEST: &str = "application/bkv-retire-request+cbor";

/// spec/signer-api.md §3 S4: how far a request's `iat` may be from the signer's time.
pub const MAX_REQUEST_SKEW: u64 = 300;

/// spec/signer-api.md §2.1, `SignRequest`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignRequest {
    /// Version, 1.
    pub v: u64,
    /// Random, chosen by the operator.
    #[serde(with = "serde_bytes")]
    pub request_id: [u8; 16],
    /// When the operator made the request (POSIX seconds).
    pub iat: u64,
    /// The FleetKeySet bytes to sign.
    pub keyset: ByteBuf,
    /// The DeploymentEvidence bytes.
    pub evidence: ByteBuf,
}

/// spec/signer-api.md §3.1, `RetireRequest`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetireRequest {
    /// Version, 1.
    pub v: u64,
    /// The fleet.
    pub fleet_id: String,
    /// The retired epoch.
    pub epoch: u64,
    /// SHA-256 of the successor's final bundle bytes.
    #[serde(with = "serde_bytes")]
    pub successor: [u8; 32],
    /// When the operator made the request (POSIX seconds).
    pub iat: u64,
}

/// spec/signer-api.md §3.1 R3: the answer to a retirement request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetireResponse {
    /// Version, 1.
    pub v: u64,
    /// The retirement entry's index in the log.
    pub index: u64,
}

impl RetireResponse {
    /// Deterministic CBOR.
    pub fn to_cbor(&self) -> Vec<u8> {
        cbor::to_vec(self)
    }

    /// Strict decode (`cbor.*`, `signer.request.malformed`).
    pub fn from_cbor(bytes: &[u8]) -> Result<Self> {
        decode(bytes, |m: &Self| m.v)
    }
}

/// spec/signer-api.md §2.2, `SignResponse`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignResponse {
    /// Version, 1.
    pub v: u64,
    /// The request's id.
    #[serde(with = "serde_bytes")]
    pub request_id: [u8; 16],
    /// The third party's COSE_Sign1 over the keyset, without a countersignature.
    pub intermediate: ByteBuf,
}

/// spec/signer-api.md §2.3, `CountersignRequest`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CountersignRequest {
    /// Version, 1.
    pub v: u64,
    /// The request's id.
    #[serde(with = "serde_bytes")]
    pub request_id: [u8; 16],
    /// The operator's COSE_Countersignature over the intermediate.
    pub countersignature: ByteBuf,
}

/// Strictly decode a version-1 message of §2; a shape error is `signer.request.malformed`.
fn decode<T: serde::de::DeserializeOwned>(bytes: &[u8], v: impl Fn(&T) -> u64) -> Result<T> {
    let msg: T = cbor::from_slice(bytes).map_err(|e| match e {
        Error::CborSchema => Error::SignerRequestMalformed,
        other => other,
    })?;
    if v(&msg) != 1 {
        return Err(Error::SignerRequestMalformed);
    }
    Ok(msg)
}

impl SignResponse {
    /// Deterministic CBOR.
    pub fn to_cbor(&self) -> Vec<u8> {
        cbor::to_vec(self)
    }

    /// spec/signer-api.md §4 O1 (the decoding, by the operator): `cbor.*` for
    /// non-deterministic CBOR, `signer.intermediate.mismatch` for any other shape.
    pub fn from_cbor(bytes: &[u8]) -> Result<Self> {
        decode(bytes, |m: &Self| m.v).map_err(|e| match e {
            Error::SignerRequestMalformed => Error::SignerIntermediateMismatch,
            other => other,
        })
    }
}

impl CountersignRequest {
    /// Deterministic CBOR.
    pub fn to_cbor(&self) -> Vec<u8> {
        cbor::to_vec(self)
    }

    /// spec/signer-api.md §3 C1 (the decoding): `cbor.*`, `signer.request.malformed`.
    pub fn from_cbor(bytes: &[u8]) -> Result<Self> {
        decode(bytes, |m: &Self| m.v)
    }
}

/// The anchor of `list` with key id `kid` and algorithm `alg` whose window contains `now`.
fn anchor<'a>(list: &'a [Anchor], kid: &[u8], alg: Algorithm, now: u64) -> Option<&'a Anchor> {
    list.iter().find(|a| a.key.kid().as_slice() == kid && a.key.alg == alg && a.valid_at(now))
}

/// spec/signer-api.md §2.1: the operator signs `request` with its operator key.
pub fn seal_sign_request(request: &SignRequest, operator: &dyn Signer) -> Vec<u8> {
    sign1(&cbor::to_vec(request), CT_SIGN_REQUEST, operator)
}

/// A SignRequest that passed spec/signer-api.md §3 S1–S5.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenedRequest {
    /// The request as signed.
    pub request: SignRequest,
    /// Its FleetKeySet, decoded and validated.
    pub keyset: FleetKeySet,
    /// The key id of the operator key that signed it.
    pub operator_kid: Vec<u8>,
}

impl OpenedRequest {
    /// SHA-256 of the keyset bytes.
    pub fn keyset_digest(&self) -> Digest32 {
        sha256(&self.request.keyset)
    }

    /// SHA-256 of the evidence bytes.
    pub fn evidence_digest(&self) -> Digest32 {
        sha256(&self.request.evidence)
    }
}

/// spec/signer-api.md §3 S1–S4 for a request of `content_type` whose payload is `T`
/// (`v_iat` gives its version and time): the request and the key id of the operator key
/// that signed it.
fn open_operator_request<T: serde::de::DeserializeOwned>(
    bytes: &[u8],
    content_type: &str,
    anchors: &TrustAnchors,
    now: u64,
    v_iat: impl Fn(&T) -> (u64, u64),
) -> Result<(T, Vec<u8>)> {
    // S1
    let signed = Sign1::parse(bytes, content_type).map_err(|e| match e {
        Error::EvidenceMalformed => Error::SignerRequestMalformed,
        other => other,
    })?;
    // S2
    let operator =
        anchor(&anchors.operator, &signed.kid, signed.alg, now).ok_or(Error::SignerRequestUnauthenticated)?;
    // S3
    if !signed.verified_by(&operator.key) {
        return Err(Error::SignerRequestSignatureInvalid);
    }
    // S4
    let request: T = decode(&signed.payload, |m: &T| v_iat(m).0)?;
    if v_iat(&request).1.abs_diff(now) > MAX_REQUEST_SKEW {
        return Err(Error::SignerRequestStale);
    }
    Ok((request, signed.kid))
}

/// spec/signer-api.md §3.1: the operator signs a retirement request with its key.
pub fn seal_retire_request(request: &RetireRequest, operator: &dyn Signer) -> Vec<u8> {
    sign1(&cbor::to_vec(request), CT_RETIRE_REQUEST, operator)
}

/// spec/signer-api.md §3.1 R1: authenticate and decode a retirement request (S1–S4, their
/// codes). R2 needs the signer's state and is the service's.
pub fn open_retire_request(bytes: &[u8], anchors: &TrustAnchors, now: u64) -> Result<RetireRequest> {
    let (request, _) =
        open_operator_request(bytes, CT_RETIRE_REQUEST, anchors, now, |r: &RetireRequest| (r.v, r.iat))?;
    Ok(request)
}

/// spec/signer-api.md §3 S1–S5: authenticate and decode a signing request against the
/// fleet's `anchors` at the signer's time `now`.
pub fn open_sign_request(bytes: &[u8], anchors: &TrustAnchors, now: u64) -> Result<OpenedRequest> {
    let (request, operator_kid) =
        open_operator_request(bytes, CT_SIGN_REQUEST, anchors, now, |r: &SignRequest| (r.v, r.iat))?;
    // S5
    let keyset = FleetKeySet::from_bytes(&request.keyset).map_err(|_| Error::SignerKeysetInvalid)?;
    if keyset.fleet_id != anchors.fleet_id {
        return Err(Error::SignerKeysetInvalid);
    }
    Ok(OpenedRequest { request, keyset, operator_kid })
}

/// spec/signer-api.md §4 O1–O2: the operator checks the signer's answer to `request`
/// against the fleet's `anchors` at `now`. On success it may countersign
/// `response.intermediate` ([`crate::validation_bundle::countersignature`]).
pub fn check_intermediate(
    request: &SignRequest,
    response: &SignResponse,
    anchors: &TrustAnchors,
    now: u64,
) -> Result<()> {
    // O1
    if response.request_id != request.request_id {
        return Err(Error::SignerIntermediateMismatch);
    }
    // O2
    let parsed = Parsed::parse(&response.intermediate).map_err(|e| match e {
        e if e.spec_area() == "cbor" => e,
        _ => Error::SignerIntermediateMismatch,
    })?;
    if parsed.countersignature.is_some() || parsed.payload != request.keyset.as_slice() {
        return Err(Error::SignerIntermediateMismatch);
    }
    let signer =
        anchor(&anchors.third_party, &parsed.kid, parsed.alg, now).ok_or(Error::BundleSignerUnknown)?;
    if !signer.key.verify(&sig_structure(&parsed.protected, &parsed.payload), &parsed.signature) {
        return Err(Error::BundleSignatureInvalid);
    }
    Ok(())
}

/// spec/signer-api.md §3 C2–C3: attach the operator's `countersignature` to the pending
/// `intermediate` and check the final bundle as a client with `anchors` would at `now`
/// (spec/validation-bundle.md §5.1 steps 1–11). Any failure is
/// `signer.countersignature.invalid`. Returns the final bundle bytes.
pub fn attach_and_verify(
    intermediate: &[u8],
    countersignature: &[u8],
    anchors: &TrustAnchors,
    now: u64,
) -> Result<Vec<u8>> {
    let invalid = |_| Error::SignerCountersignatureInvalid;
    let bundle = attach_countersignature(intermediate, countersignature).map_err(invalid)?;
    verify_bundle(&bundle, anchors, &ClientState::default(), now).map_err(invalid)?;
    Ok(bundle)
}

#[cfg(test)]
mod tests;
