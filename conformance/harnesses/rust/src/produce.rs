//! The `produce_*` operations of spec/conformance.md §3.4 with the reference: build what
//! the input asks for, with fresh randomness; the runner checks it.

use super::{BadInput, CaseOutcome, array, hex_field, obj, str_field, u64_field};
use bkv_protocol::Error;
use bkv_protocol::audit_log::Checkpoint;
use bkv_protocol::audit_log::note::{Note, cosign, sign_note};
use bkv_protocol::crypto::{Algorithm, Ed25519Signer, Esp256Signer, Signer};
use bkv_protocol::session::{SessionTarget, seal_request_with_id};
use bkv_protocol::vault::BackupKey;
use rand_core::OsRng;
use serde_json::{Map, Value, json};

/// Build the output of the `produce_*` `operation`.
pub(super) fn produce(operation: &str, input: &Map<String, Value>) -> Result<CaseOutcome, BadInput> {
    let out = match operation {
        "produce_sealed_request" => {
            let target = SessionTarget {
                fleet_id: str_field(input, "fleet_id")?.to_owned(),
                epoch: u64_field(input, "epoch")?,
                node_id: str_field(input, "node_id")?.to_owned(),
                session_key: array(input, "session_key")?,
            };
            let (time, id, body) =
                (u64_field(input, "time")?, array(input, "request_id")?, hex_field(input, "body")?);
            seal_request_with_id(&mut OsRng, &target, time, id, &body)
                .map(|(r, _)| json!({ "request": hex::encode(r) }))
        }
        "produce_backup_envelope" => {
            let key = BackupKey::from_bytes(array(input, "backup_key")?);
            let (record, plaintext) = (hex_field(input, "record_id")?, hex_field(input, "plaintext")?);
            let mut file = Vec::new();
            let fleet = str_field(input, "fleet_id")?;
            bkv_protocol::backup_envelope::seal(
                &key,
                fleet,
                &record,
                &mut OsRng,
                &plaintext[..],
                &mut file,
                |_| {},
            )
            .map(|_| json!({ "file": hex::encode(file) }))
        }
        "produce_countersignature" => {
            let intermediate = hex_field(input, "intermediate")?;
            Esp256Signer::from_scalar(&array(input, "operator_key")?)
                .and_then(|op| bkv_protocol::validation_bundle::countersignature(&intermediate, &op))
                .map(|cs| json!({ "countersignature": hex::encode(cs) }))
        }
        "produce_checkpoint" => {
            let text = Checkpoint {
                origin: str_field(input, "origin")?.into(),
                size: u64_field(input, "size")?,
                root: array(input, "root")?,
            }
            .body();
            let log = Ed25519Signer::from_seed(&array(input, "log_key")?);
            sign_note(&text, str_field(input, "log_name")?, &log)
                .map(|sig| json!({ "checkpoint": Note { text, signatures: vec![sig] }.encode() }))
        }
        "produce_cosignature" => {
            let witness = Ed25519Signer::from_seed(&array(input, "witness_key")?);
            let (name, timestamp) = (str_field(input, "witness_name")?, u64_field(input, "timestamp")?);
            Note::parse(str_field(input, "checkpoint")?).and_then(|mut note| {
                note.signatures.push(cosign(&note.text, name, &witness, timestamp)?);
                Ok(json!({ "checkpoint": note.encode() }))
            })
        }
        "produce_evidence_envelope" => {
            let secret = array(input, "private_key")?;
            let alg = input.get("alg").and_then(Value::as_i64).ok_or_else(|| BadInput("alg".into()))?;
            let (payload, ct) = (hex_field(input, "payload")?, str_field(input, "content_type")?);
            Algorithm::from_cose_id(alg)
                .and_then(|alg| -> Result<Box<dyn Signer>, Error> {
                    Ok(match alg {
                        Algorithm::Ed25519 => Box::new(Ed25519Signer::from_seed(&secret)),
                        Algorithm::Esp256 => Box::new(Esp256Signer::from_scalar(&secret)?),
                    })
                })
                .map(|s| json!({ "envelope": hex::encode(bkv_protocol::evidence::sign1(&payload, ct, s.as_ref())) }))
        }
        other => return Err(BadInput(format!("no producer for {other}"))),
    };
    Ok(out.map(|v| Some(obj(v))))
}
