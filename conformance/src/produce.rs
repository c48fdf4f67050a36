//! The runner's checks of what a harness produces: spec/conformance.md §3.4.
//!
//! A `produce_*` case passes when the reference accepts the harness's output, not when the
//! output equals bytes in the vector (the harness draws its own randomness).

use bkv_protocol::Error;
use bkv_protocol::audit_log::Checkpoint;
use bkv_protocol::audit_log::note::{Note, SIG_TYPE_COSIGNATURE, SIG_TYPE_ED25519, VerifierKey};
use bkv_protocol::backup_envelope;
use bkv_protocol::crypto::{Algorithm, Ed25519Signer, Esp256Signer, Signer};
use bkv_protocol::evidence::Sign1;
use bkv_protocol::session::{SessionSecretKey, SessionServer};
use bkv_protocol::signer_api::attach_and_verify;
use bkv_protocol::validation_bundle::TrustAnchors;
use bkv_protocol::vault::BackupKey;
use serde_json::{Map, Value};

/// Why an output was refused: the reference's code when it has one, and what was checked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Refused(pub String);

fn refused(what: &str, e: Error) -> Refused {
    Refused(format!("{what}: the reference refuses it [{}] {}", e.code(), e.description()))
}

fn field<'a>(m: &'a Map<String, Value>, key: &str, whose: &str) -> Result<&'a Value, Refused> {
    m.get(key).ok_or_else(|| Refused(format!("{whose} has no `{key}`")))
}

fn text<'a>(m: &'a Map<String, Value>, key: &str, whose: &str) -> Result<&'a str, Refused> {
    field(m, key, whose)?.as_str().ok_or_else(|| Refused(format!("{whose} `{key}` is not a string")))
}

fn hex_of(m: &Map<String, Value>, key: &str, whose: &str) -> Result<Vec<u8>, Refused> {
    hex::decode(text(m, key, whose)?).map_err(|_| Refused(format!("{whose} `{key}` is not hex")))
}

fn array_of<const N: usize>(m: &Map<String, Value>, key: &str, whose: &str) -> Result<[u8; N], Refused> {
    hex_of(m, key, whose)?.try_into().map_err(|_| Refused(format!("{whose} `{key}` is not {N} bytes")))
}

fn uint(m: &Map<String, Value>, key: &str, whose: &str) -> Result<u64, Refused> {
    field(m, key, whose)?
        .as_u64()
        .ok_or_else(|| Refused(format!("{whose} `{key}` is not an unsigned integer")))
}

const INPUT: &str = "the vector's input";
const OUTPUT: &str = "the harness's output";

/// Check the harness's `output` for a case of the `produce_*` `operation` with `input`.
pub fn check(
    operation: &str,
    input: &Map<String, Value>,
    output: &Map<String, Value>,
) -> Result<(), Refused> {
    match operation {
        "produce_sealed_request" => sealed_request(input, output),
        "produce_backup_envelope" => backup_envelope(input, output),
        "produce_countersignature" => countersignature(input, output),
        "produce_checkpoint" => checkpoint(input, output),
        "produce_cosignature" => cosignature(input, output),
        "produce_evidence_envelope" => evidence_envelope(input, output),
        other => Err(Refused(format!("no check for operation {other}"))),
    }
}

/// spec/session.md §5: the node opens the request and finds what the client was given.
fn sealed_request(input: &Map<String, Value>, output: &Map<String, Value>) -> Result<(), Refused> {
    let key = SessionSecretKey::from_bytes(&array_of(input, "check_node_key", INPUT)?)
        .map_err(|e| refused("check_node_key", e))?;
    let time = uint(input, "time", INPUT)?;
    let node = SessionServer::new(
        text(input, "fleet_id", INPUT)?,
        uint(input, "epoch", INPUT)?,
        text(input, "node_id", INPUT)?,
        key,
    );
    let opened =
        node.open(&hex_of(output, "request", OUTPUT)?, time).map_err(|e| refused("the request", e))?;
    let want: [u8; 16] = array_of(input, "request_id", INPUT)?;
    if opened.request_id != want || opened.time != time || opened.body != hex_of(input, "body", INPUT)? {
        return Err(Refused("the request opens, but not to this request id, time and body".into()));
    }
    Ok(())
}

/// spec/backup-envelope.md §5: the file opens for this fleet and record, to the plaintext.
fn backup_envelope(input: &Map<String, Value>, output: &Map<String, Value>) -> Result<(), Refused> {
    let key = BackupKey::from_bytes(array_of(input, "backup_key", INPUT)?);
    let (fleet, record) = (text(input, "fleet_id", INPUT)?, hex_of(input, "record_id", INPUT)?);
    let file = hex_of(output, "file", OUTPUT)?;
    let mut plaintext = Vec::new();
    backup_envelope::open(&key, Some((fleet, &record)), &file[..], &mut plaintext, |_| {})
        .map_err(|e| refused("the file", e))?;
    if plaintext != hex_of(input, "plaintext", INPUT)? {
        return Err(Refused("the file opens to another plaintext".into()));
    }
    Ok(())
}

/// spec/signer-api.md §3 C2–C3: attached at label 11, the bundle verifies.
fn countersignature(input: &Map<String, Value>, output: &Map<String, Value>) -> Result<(), Refused> {
    let anchors =
        TrustAnchors::from_bytes(&hex_of(input, "anchors", INPUT)?).map_err(|e| refused("anchors", e))?;
    attach_and_verify(
        &hex_of(input, "intermediate", INPUT)?,
        &hex_of(output, "countersignature", OUTPUT)?,
        &anchors,
        uint(input, "now", INPUT)?,
    )
    .map(|_| ())
    .map_err(|e| refused("the countersignature", e))
}

/// An Ed25519 verifier key of `sig_type` for the key named `name` with this seed.
fn verifier(name: &str, sig_type: u8, seed: [u8; 32]) -> Result<VerifierKey, Refused> {
    let key: [u8; 32] =
        Ed25519Signer::from_seed(&seed).public_key().key.clone().try_into().expect("32 bytes");
    VerifierKey::new(name, sig_type, key).map_err(|e| refused("the key name", e))
}

/// spec/audit-log.md §4.1, §4.3: a signed note whose body is this checkpoint, signed by the log.
fn checkpoint(input: &Map<String, Value>, output: &Map<String, Value>) -> Result<(), Refused> {
    let log =
        verifier(text(input, "log_name", INPUT)?, SIG_TYPE_ED25519, array_of(input, "log_key", INPUT)?)?;
    let note = Note::parse(text(output, "checkpoint", OUTPUT)?).map_err(|e| refused("the note", e))?;
    let body = Checkpoint::parse_body(&note.text).map_err(|e| refused("the checkpoint body", e))?;
    let root: [u8; 32] = array_of(input, "root", INPUT)?;
    if body.origin != text(input, "origin", INPUT)?
        || body.size != uint(input, "size", INPUT)?
        || body.root != root
    {
        return Err(Refused("the checkpoint names another origin, size or root".into()));
    }
    if !note.signatures.iter().any(|s| log.matches(s) && log.verify_note_signature(&note.text, s)) {
        return Err(Refused("no signature of the log's key verifies [log.checkpoint.unsigned]".into()));
    }
    Ok(())
}

/// spec/audit-log.md §4.3, §8: the note is unchanged but for a verifying cosignature.
fn cosignature(input: &Map<String, Value>, output: &Map<String, Value>) -> Result<(), Refused> {
    let before = Note::parse(text(input, "checkpoint", INPUT)?).map_err(|e| refused("the input note", e))?;
    let after = Note::parse(text(output, "checkpoint", OUTPUT)?).map_err(|e| refused("the note", e))?;
    let witness = verifier(
        text(input, "witness_name", INPUT)?,
        SIG_TYPE_COSIGNATURE,
        array_of(input, "witness_key", INPUT)?,
    )?;
    let others: Vec<_> = after.signatures.iter().filter(|s| !witness.matches(s)).cloned().collect();
    if after.text != before.text || others != before.signatures {
        return Err(Refused("the note's text or its other signature lines changed".into()));
    }
    let timestamp = uint(input, "timestamp", INPUT)?;
    let ok = after
        .signatures
        .iter()
        .filter(|s| witness.matches(s))
        .any(|s| witness.verify_cosignature(&after.text, s) == Some(timestamp));
    if !ok {
        return Err(Refused(
            "no cosignature of the witness verifies for this timestamp [log.cosignature.invalid]".into(),
        ));
    }
    Ok(())
}

/// spec/evidence.md §1: it parses with this content type, carries the payload, verifies.
fn evidence_envelope(input: &Map<String, Value>, output: &Map<String, Value>) -> Result<(), Refused> {
    let alg = field(input, "alg", INPUT)?.as_i64().ok_or_else(|| Refused("alg is not an integer".into()))?;
    let secret: [u8; 32] = array_of(input, "private_key", INPUT)?;
    let signer: Box<dyn Signer> = match Algorithm::from_cose_id(alg).map_err(|e| refused("alg", e))? {
        Algorithm::Ed25519 => Box::new(Ed25519Signer::from_seed(&secret)),
        Algorithm::Esp256 => {
            Box::new(Esp256Signer::from_scalar(&secret).map_err(|e| refused("private_key", e))?)
        }
    };
    let signed = Sign1::parse(&hex_of(output, "envelope", OUTPUT)?, text(input, "content_type", INPUT)?)
        .map_err(|e| refused("the envelope", e))?;
    if signed.payload != hex_of(input, "payload", INPUT)? {
        return Err(Refused("the envelope carries another payload".into()));
    }
    if !signed.verified_by(signer.public_key()) {
        return Err(Refused("the signature does not verify with the key".into()));
    }
    Ok(())
}
