//! The reference harness: every operation of spec/conformance.md §3 over `bkv-protocol`.

use crate::contract::{ActualResult, CaseResult};
use bkv_protocol::Error;
use bkv_protocol::crypto::sha256;
use bkv_protocol::validation_bundle::{ClientState, TrustAnchors, verify_bundle_update, verify_pinned};
use serde_json::{Map, Value, json};

/// The features (areas) the reference harness implements.
pub const FEATURES: &[&str] = &["cbor", "validation_bundle"];

/// A malformed case input (a harness fault, not a protocol failure).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("bad case input: {0}")]
pub struct BadInput(pub String);

fn hex_field(input: &Map<String, Value>, key: &str) -> Result<Vec<u8>, BadInput> {
    let s = input.get(key).and_then(Value::as_str).ok_or_else(|| BadInput(format!("missing {key}")))?;
    hex::decode(s).map_err(|e| BadInput(format!("{key}: {e}")))
}

fn u64_field(input: &Map<String, Value>, key: &str) -> Result<u64, BadInput> {
    input.get(key).and_then(Value::as_u64).ok_or_else(|| BadInput(format!("missing {key}")))
}

fn state_field(input: &Map<String, Value>) -> Result<ClientState, BadInput> {
    match input.get("state") {
        None | Some(Value::Null) => Ok(ClientState::default()),
        Some(Value::Object(s)) => {
            let epoch = u64_field(s, "epoch")?;
            let digest: [u8; 32] =
                hex_field(s, "bundle_sha256")?.try_into().map_err(|_| BadInput("digest length".into()))?;
            Ok(ClientState { highest: Some((epoch, digest)) })
        }
        Some(_) => Err(BadInput("state".into())),
    }
}

fn outcome(
    r: Result<Option<Map<String, Value>>, Error>,
) -> (ActualResult, Option<String>, String, Option<Map<String, Value>>) {
    match r {
        Ok(output) => (ActualResult::Valid, None, String::new(), output),
        Err(e) => (ActualResult::Invalid, Some(e.code().to_owned()), e.description().to_owned(), None),
    }
}

fn obj(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

/// Run one case of `operation` on `input`.
pub fn execute(id: &str, operation: &str, input: &Map<String, Value>) -> Result<CaseResult, BadInput> {
    let (actual_result, error_code, context, output) = match operation {
        "cbor_check" => outcome(bkv_protocol::cbor::check(&hex_field(input, "data")?, &[]).map(|()| None)),
        "verify_bundle" => {
            let bundle = hex_field(input, "bundle")?;
            let anchors = hex_field(input, "anchors")?;
            let now = u64_field(input, "now")?;
            let state = state_field(input)?;
            let intermediates = input
                .get("intermediates")
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .map(|v| {
                            v.as_str()
                                .and_then(|s| hex::decode(s).ok())
                                .ok_or_else(|| BadInput("intermediate".into()))
                        })
                        .collect::<Result<Vec<_>, _>>()
                })
                .transpose()?
                .unwrap_or_default();
            let refs: Vec<&[u8]> = intermediates.iter().map(Vec::as_slice).collect();
            outcome(TrustAnchors::from_bytes(&anchors).and_then(|a| {
                verify_bundle_update(&bundle, &refs, &a, &state, now).map(|v| {
                    Some(obj(json!({
                        "epoch": v.keyset().epoch,
                        "keyset_sha256": hex::encode(v.keyset_digest()),
                        "bundle_sha256": hex::encode(sha256(&bundle)),
                    })))
                })
            }))
        }
        "verify_pinned" => {
            let keyset = hex_field(input, "keyset")?;
            let anchors = hex_field(input, "anchors")?;
            let now = u64_field(input, "now")?;
            outcome(TrustAnchors::from_bytes(&anchors).and_then(|a| {
                verify_pinned(&keyset, &a, now).map(|v| {
                    Some(obj(json!({
                        "epoch": v.keyset().epoch,
                        "keyset_sha256": hex::encode(v.keyset_digest()),
                    })))
                })
            }))
        }
        _ => (ActualResult::Skipped, None, format!("operation {operation} not implemented"), None),
    };
    Ok(CaseResult { id: id.to_owned(), actual_result, error_code, context, output })
}
