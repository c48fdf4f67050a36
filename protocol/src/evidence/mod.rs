//! Deployment evidence: its structures, the signed-object envelope, and builders.
//!
//! spec/evidence.md. Sans-I/O: keys are [`Signer`]s, times are parameters. The Audit
//! procedure that checks a document is [`crate::audit`].

use crate::cbor;
use crate::crypto::{Algorithm, PublicKey, Signer, sha256};
use crate::error::{Error, Result};
use crate::validation_bundle::{FleetKeySet, NodeKey, encode_sign1, sig_structure};
use ciborium::Value;
use serde::{Deserialize, Serialize};

/// spec/evidence.md §1: content type of the evidence document.
pub const CT_EVIDENCE: &str = "application/bkv-evidence+cbor";
/// spec/evidence.md §1: content type of a device certificate.
pub const CT_DEVICE_CERT: &str = "application/bkv-device-cert+cbor";
/// spec/evidence.md §1: content type of an attestation statement.
pub const CT_ATTESTATION: &str = "application/bkv-attestation+cbor";
/// spec/evidence.md §1: content type of a ceremony step.
pub const CT_STEP: &str = "application/bkv-ceremony-step+cbor";

const COSE_SIGN1_TAG: u64 = 18;

/// spec/evidence.md §1: sign `payload` as a tagged COSE_Sign1 with `content_type`.
pub fn sign1(payload: &[u8], content_type: &str, signer: &dyn Signer) -> Vec<u8> {
    let pk = signer.public_key();
    let protected = cbor::value_to_vec(&Value::Map(vec![
        (Value::Integer(1.into()), Value::Integer(pk.alg.cose_id().into())),
        (Value::Integer(3.into()), Value::Text(content_type.into())),
        (Value::Integer(4.into()), Value::Bytes(pk.kid().to_vec())),
    ]));
    let signature = signer.sign(&sig_structure(&protected, payload));
    encode_sign1(&protected, Vec::new(), payload, &signature)
}

/// A strictly parsed signed object of spec/evidence.md §1.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sign1 {
    /// The signing algorithm.
    pub alg: Algorithm,
    /// The signer's key id.
    pub kid: Vec<u8>,
    /// The payload bytes as received.
    pub payload: Vec<u8>,
    tbs: Vec<u8>,
    signature: Vec<u8>,
}

impl Sign1 {
    /// Parse `bytes` as a COSE_Sign1 of `content_type`; any other shape is
    /// `evidence.malformed` (or a `cbor.*` code for non-deterministic CBOR).
    pub fn parse(bytes: &[u8], content_type: &str) -> Result<Self> {
        let bad = Error::EvidenceMalformed;
        let Value::Tag(COSE_SIGN1_TAG, inner) = cbor::value_from_slice(bytes, &[COSE_SIGN1_TAG])? else {
            return Err(bad);
        };
        let Value::Array(items) = *inner else { return Err(bad) };
        let [
            Value::Bytes(protected),
            Value::Map(unprotected),
            Value::Bytes(payload),
            Value::Bytes(signature),
        ] = <[Value; 4]>::try_from(items).map_err(|_| bad)?
        else {
            return Err(bad);
        };
        if !unprotected.is_empty() {
            return Err(bad);
        }
        let Value::Map(header) = cbor::value_from_slice(&protected, &[])? else { return Err(bad) };
        let label = |l: i64| header.iter().find(|(k, _)| *k == Value::Integer(l.into())).map(|(_, v)| v);
        if header.len() != 3 {
            return Err(bad);
        }
        let alg = match label(1) {
            Some(Value::Integer(i)) => {
                Algorithm::from_cose_id(i64::try_from(*i).map_err(|_| bad)?).map_err(|_| bad)?
            }
            _ => return Err(bad),
        };
        if label(3) != Some(&Value::Text(content_type.into())) {
            return Err(bad);
        }
        let Some(Value::Bytes(kid)) = label(4) else { return Err(bad) };
        Ok(Sign1 { alg, kid: kid.clone(), tbs: sig_structure(&protected, &payload), payload, signature })
    }

    /// Whether `key` (of the object's algorithm, with the object's kid) signed it.
    pub fn verified_by(&self, key: &PublicKey) -> bool {
        key.alg == self.alg
            && key.kid().as_slice() == self.kid.as_slice()
            && key.verify(&self.tbs, &self.signature)
    }

    /// Decode the payload strictly as `T`; shape errors are `evidence.malformed`.
    pub fn decode<T: serde::de::DeserializeOwned>(&self) -> Result<T> {
        cbor::from_slice(&self.payload).map_err(|e| match e {
            Error::CborSchema => Error::EvidenceMalformed,
            other => other,
        })
    }
}

/// spec/evidence.md §2, `Evidence`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Evidence {
    /// Version, 1.
    pub v: u64,
    /// The fleet.
    pub fleet_id: String,
    /// The epoch.
    pub epoch: u64,
    /// SHA-256 of the FleetKeySet encoded with `evidence: null`.
    #[serde(with = "serde_bytes")]
    pub keyset_core: [u8; 32],
    /// The policy.
    pub policy: Policy,
    /// The node software.
    pub software: Software,
    /// One attestation per node, in node order.
    pub attestations: Vec<Attestation>,
    /// The key ceremony.
    pub ceremony: Ceremony,
}

/// spec/evidence.md §2, `Policy`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    /// Guess limit.
    pub guess_limit: u32,
    /// Quorum.
    pub quorum: u32,
    /// Datacenter of each node, in node order.
    pub datacenters: Vec<String>,
}

/// spec/evidence.md §2, `Software`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Software {
    /// SHA-256 of the node software artifact.
    #[serde(with = "serde_bytes")]
    pub measurement: [u8; 32],
    /// How to rebuild it.
    pub recipe: String,
}

/// spec/evidence.md §3, `Attestation`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Attestation {
    /// The node.
    pub node_id: String,
    /// DeviceCert COSE_Sign1s, the device's first.
    pub chain: Vec<serde_bytes::ByteBuf>,
    /// AttestationStatement COSE_Sign1.
    #[serde(with = "serde_bytes")]
    pub statement: Vec<u8>,
}

/// spec/evidence.md §3, `DeviceCert`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeviceCert {
    /// Version, 1.
    pub v: u64,
    /// The signer's name.
    pub issuer: String,
    /// Device identity, or intermediate name.
    pub subject: String,
    /// The subject's key.
    pub key: PublicKey,
    /// HSM firmware measurement (zeros for CAs).
    #[serde(with = "serde_bytes")]
    pub firmware: [u8; 32],
    /// Whether the subject signs further certificates.
    pub ca: bool,
}

/// spec/evidence.md §3, `AttestationStatement`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AttestationStatement {
    /// Version, 1.
    pub v: u64,
    /// The device cert's subject.
    pub device: String,
    /// The fleet.
    pub fleet_id: String,
    /// The epoch.
    pub epoch: u64,
    /// The node.
    pub node_id: String,
    /// The node's keys, as in the FleetKeySet.
    pub keys: Vec<NodeKey>,
    /// HSM firmware measurement.
    #[serde(with = "serde_bytes")]
    pub firmware: [u8; 32],
    /// Node software measurement.
    #[serde(with = "serde_bytes")]
    pub software: [u8; 32],
}

/// spec/evidence.md §4, `Ceremony`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Ceremony {
    /// The participants.
    pub participants: Vec<Participant>,
    /// CeremonyStep COSE_Sign1s in order.
    pub steps: Vec<serde_bytes::ByteBuf>,
}

/// A ceremony participant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Participant {
    /// Name.
    pub name: String,
    /// Signing key.
    pub key: PublicKey,
}

/// spec/evidence.md §4, `CeremonyStep`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CeremonyStep {
    /// Position, from 0.
    pub seq: u64,
    /// POSIX seconds.
    pub time: u64,
    /// What was done (spec/evidence.md §4.1).
    pub action: String,
    /// What it was done to.
    pub subject: String,
    /// SHA-256 of the previous step's bytes (zeros for the first).
    #[serde(with = "serde_bytes")]
    pub prev: [u8; 32],
}

/// spec/evidence.md §2: SHA-256 of the FleetKeySet encoded with `evidence: null`.
pub fn keyset_core(keyset: &FleetKeySet) -> [u8; 32] {
    let mut core = keyset.clone();
    core.evidence = None;
    sha256(&core.to_bytes())
}

/// Builds a ceremony transcript, chaining each step to the previous (spec/evidence.md §4).
#[derive(Debug, Clone, Default)]
pub struct Transcript {
    participants: Vec<Participant>,
    steps: Vec<Vec<u8>>,
}

impl Transcript {
    /// A transcript among `participants`.
    pub fn new(participants: Vec<Participant>) -> Self {
        Self { participants, steps: Vec::new() }
    }

    /// Append a step signed by `signer`.
    pub fn step(&mut self, signer: &dyn Signer, time: u64, action: &str, subject: &str) {
        let prev = self.steps.last().map(|s| sha256(s)).unwrap_or([0; 32]);
        let step = CeremonyStep {
            seq: self.steps.len() as u64,
            time,
            action: action.into(),
            subject: subject.into(),
            prev,
        };
        self.steps.push(sign1(&cbor::to_vec(&step), CT_STEP, signer));
    }

    /// The finished transcript.
    pub fn finish(self) -> Ceremony {
        Ceremony {
            participants: self.participants,
            steps: self.steps.into_iter().map(serde_bytes::ByteBuf::from).collect(),
        }
    }
}

/// A certificate authority that issues [`DeviceCert`]s (a simulated HSM vendor root in the
/// reference; spec/evidence.md §3).
pub struct Issuer<'a> {
    /// Its name (the certs' `issuer`).
    pub name: &'a str,
    /// Its key.
    pub signer: &'a dyn Signer,
}

impl Issuer<'_> {
    /// Certify `key` as device `subject` with `firmware`.
    pub fn certify(&self, subject: &str, key: &PublicKey, firmware: [u8; 32], ca: bool) -> Vec<u8> {
        let cert = DeviceCert {
            v: 1,
            issuer: self.name.into(),
            subject: subject.into(),
            key: key.clone(),
            firmware,
            ca,
        };
        sign1(&cbor::to_vec(&cert), CT_DEVICE_CERT, self.signer)
    }
}

/// An HSM's attestation statement for `node_id`, signed with its device key.
pub fn attest(device_key: &dyn Signer, statement: &AttestationStatement) -> Vec<u8> {
    sign1(&cbor::to_vec(statement), CT_ATTESTATION, device_key)
}

/// Sign the evidence document as the operator.
pub fn sign_evidence(evidence: &Evidence, operator: &dyn Signer) -> Vec<u8> {
    sign1(&cbor::to_vec(evidence), CT_EVIDENCE, operator)
}
