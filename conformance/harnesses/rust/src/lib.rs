//! `bkv-reference-harness`: the reference harness, every operation of spec/conformance.md §3
//! over `bkv-protocol` (and, for live mode, `bkv-client`).
#![forbid(unsafe_code)]

use bkv_conformance::contract::{ActualResult, CaseResult};
use bkv_protocol::Error;
use bkv_protocol::audit_log::note::VerifierKey;
use bkv_protocol::audit_log::{
    LogAnchors, LogState, LoggedBundle, TreeHead, merkle, verify_logged_bundle, witness_check,
};
use bkv_protocol::crypto::sha256;
use bkv_protocol::validation_bundle::{ClientState, TrustAnchors, verify_bundle_update, verify_pinned};
use serde_json::{Map, Value, json};

mod fleet_replication;
mod live;
mod opaque_rfc9807;
mod produce;
mod session_client;
mod vault_exchange;

/// The features (areas) the reference harness implements.
pub const FEATURES: &[&str] = &[
    "cbor",
    "validation_bundle",
    "audit_log",
    "session",
    "backup_envelope",
    "vault",
    "opaque_rfc9807",
    "rotation",
    "fleet_replication",
    "audit",
    "signer_api",
    "live",
];

/// A malformed case input (a harness fault, not a protocol failure).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("bad case input: {0}")]
pub struct BadInput(pub String);

fn hex_field(input: &Map<String, Value>, key: &str) -> Result<Vec<u8>, BadInput> {
    let s = input.get(key).and_then(Value::as_str).ok_or_else(|| BadInput(format!("missing {key}")))?;
    hex::decode(s).map_err(|e| BadInput(format!("{key}: {e}")))
}

/// A hex input of exactly `N` bytes.
fn array<const N: usize>(input: &Map<String, Value>, key: &str) -> Result<[u8; N], BadInput> {
    hex_field(input, key)?.try_into().map_err(|_| BadInput(format!("{key}: not {N} bytes")))
}

/// A case's protocol outcome: its output, or the registry error.
type CaseOutcome = Result<Option<Map<String, Value>>, Error>;

/// The hex bytes of `key`, or `None` when the key is absent or null.
fn optional_hex(input: &Map<String, Value>, key: &str) -> Result<Option<Vec<u8>>, BadInput> {
    match input.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(_) => hex_field(input, key).map(Some),
    }
}

fn u64_field(input: &Map<String, Value>, key: &str) -> Result<u64, BadInput> {
    input.get(key).and_then(Value::as_u64).ok_or_else(|| BadInput(format!("missing {key}")))
}

fn u32_field(input: &Map<String, Value>, key: &str) -> Result<u32, BadInput> {
    u32::try_from(u64_field(input, key)?).map_err(|_| BadInput(format!("{key}: larger than 2^32 - 1")))
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

fn hashes_field(input: &Map<String, Value>, key: &str) -> Result<Option<Vec<[u8; 32]>>, BadInput> {
    match input.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Array(a)) => a
            .iter()
            .map(|v| {
                v.as_str()
                    .and_then(|s| hex::decode(s).ok())
                    .and_then(|b| <[u8; 32]>::try_from(b).ok())
                    .ok_or_else(|| BadInput(format!("{key}: hash")))
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Some),
        Some(_) => Err(BadInput(key.into())),
    }
}

fn head_field(input: &Map<String, Value>, key: &str) -> Result<Option<TreeHead>, BadInput> {
    match input.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Object(s)) => Ok(Some(TreeHead {
            size: u64_field(s, "size")?,
            root: hex_field(s, "root")?.try_into().map_err(|_| BadInput("root length".into()))?,
        })),
        Some(_) => Err(BadInput(key.into())),
    }
}

fn str_field<'a>(input: &'a Map<String, Value>, key: &str) -> Result<&'a str, BadInput> {
    input.get(key).and_then(Value::as_str).ok_or_else(|| BadInput(format!("missing {key}")))
}

fn head_json(h: TreeHead) -> Value {
    json!({ "size": h.size, "root": hex::encode(h.root) })
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

/// The input of an `envelope_open` case: `data`, with an I/O error (not the end of the
/// input) for any read that would pass byte `fails_at` (spec/conformance.md §3).
struct FailingReader<'a> {
    data: &'a [u8],
    pos: usize,
    fails_at: usize,
}

impl std::io::Read for FailingReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.pos >= self.fails_at {
            return Err(std::io::Error::other("the case's input fails here"));
        }
        let end = self.data.len().min(self.fails_at).min(self.pos + buf.len());
        let n = end.saturating_sub(self.pos);
        buf[..n].copy_from_slice(&self.data[self.pos..end]);
        self.pos = end;
        Ok(n)
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
        "merkle_inclusion" => {
            let path = hashes_field(input, "path")?.unwrap_or_default();
            outcome(
                merkle::verify_inclusion(
                    &hex_field(input, "leaf_hash")?,
                    u64_field(input, "leaf_index")?,
                    u64_field(input, "tree_size")?,
                    &path,
                    &hex_field(input, "root")?,
                )
                .map(|()| None),
            )
        }
        "merkle_consistency" => {
            let path = hashes_field(input, "path")?.unwrap_or_default();
            outcome(
                merkle::verify_consistency(
                    u64_field(input, "size1")?,
                    u64_field(input, "size2")?,
                    &path,
                    &hex_field(input, "root1")?,
                    &hex_field(input, "root2")?,
                )
                .map(|()| None),
            )
        }
        "parse_vkey" => outcome(VerifierKey::parse(str_field(input, "vkey")?).map(|k| {
            Some(obj(json!({ "name": k.name, "key_id": hex::encode(k.key_id()), "type": k.sig_type })))
        })),
        "verify_logged_bundle" => {
            let logged = hex_field(input, "logged_bundle")?;
            let anchors = hex_field(input, "anchors")?;
            let fleet = str_field(input, "fleet_id")?;
            let epoch = u64_field(input, "epoch")?;
            let state = LogState { largest: head_field(input, "state")? };
            let consistency = hashes_field(input, "consistency")?;
            outcome(LoggedBundle::from_cbor(&logged).and_then(|w| {
                let a: LogAnchors = bkv_protocol::cbor::from_slice(&anchors)?;
                verify_logged_bundle(&w.bundle, fleet, epoch, &w.proof, &a, &state, consistency.as_deref())
                    .map(|v| {
                        Some(obj(json!({
                            "leaf_index": v.leaf_index,
                            "development_only": v.development_only,
                            "state": v.state.largest.map(head_json),
                        })))
                    })
            }))
        }
        "witness_check" => {
            let held = head_field(input, "held")?;
            let proof = hashes_field(input, "consistency")?.unwrap_or_default();
            let checkpoint = str_field(input, "checkpoint")?;
            outcome(VerifierKey::parse(str_field(input, "log_vkey")?).and_then(|k| {
                witness_check(&k, held, checkpoint, &proof).map(|(_, h)| Some(obj(head_json(h))))
            }))
        }
        "session_open_request" => outcome(session_client::open_request(input)?.map(|o| {
            Some(obj(json!({
                "request_id": hex::encode(o.request_id),
                "time": o.time,
                "body": hex::encode(&o.body),
            })))
        })),
        "hpke_kat" => outcome(session_client::hpke_kat(input)?),
        "session_seal_response" => outcome(session_client::seal_response(input)?),
        "session_open_response" => outcome(session_client::open_response(input)?),
        "envelope_open" => {
            let key: [u8; 32] = array(input, "backup_key")?;
            let record = hex_field(input, "record_id")?;
            let file = hex_field(input, "file")?;
            let fails_at = match input.get("read_error_at") {
                None | Some(Value::Null) => usize::MAX,
                Some(_) => u64_field(input, "read_error_at")? as usize,
            };
            let mut out = Vec::new();
            outcome(
                bkv_protocol::backup_envelope::open(
                    &bkv_protocol::vault::BackupKey::from_bytes(key),
                    Some((str_field(input, "fleet_id")?, &record)),
                    FailingReader { data: &file, pos: 0, fails_at },
                    &mut out,
                    |_| {},
                )
                .map(|_| {
                    Some(obj(json!({ "length": out.len(), "plaintext_sha256": hex::encode(sha256(&out)) })))
                }),
            )
        }
        "vault_apply" => {
            use bkv_protocol::state_machine::StateMachine;
            use bkv_protocol::vault::{VaultOutput, VaultStateMachine};
            let limit = u32_field(input, "guess_limit")?;
            let awaiting = input.get("awaiting_import").and_then(Value::as_bool).unwrap_or(false);
            let mut sm = if awaiting {
                VaultStateMachine::awaiting_import(limit)
            } else {
                VaultStateMachine::new(limit)
            };
            for c in input.get("setup").and_then(Value::as_array).ok_or_else(|| BadInput("setup".into()))? {
                let c =
                    c.as_str().and_then(|h| hex::decode(h).ok()).ok_or_else(|| BadInput("setup".into()))?;
                VaultOutput::decode(&sm.apply(&c))
                    .map_err(|e| BadInput(format!("setup command failed: {e}")))?;
            }
            let out = sm.apply(&hex_field(input, "command")?);
            outcome(VaultOutput::decode(&out).map(|_| Some(obj(json!({ "output": hex::encode(&out) })))))
        }
        "vault_client_register" => outcome(vault_exchange::client_register(input)?),
        "vault_client_recover" => outcome(vault_exchange::client_recover(input)?),
        "vault_node_login" => outcome(vault_exchange::node_login(input)?),
        op if op.starts_with("produce_") => outcome(produce::produce(op, input)?),
        "code_normalise" => outcome(
            bkv_protocol::vault::normalise_code(str_field(input, "text")?)
                .map(|code| Some(obj(json!({ "code": hex::encode(code.as_slice()) })))),
        ),
        "opaque_rfc9807_real" => outcome(opaque_rfc9807::real(input)?),
        "opaque_rfc9807_fake" => outcome(opaque_rfc9807::fake(input)?),
        "vault_setup_decode" => outcome(
            bkv_protocol::vault::VaultServerSetup::from_bytes(&hex_field(input, "setup")?)
                .map(|s| Some(obj(json!({ "public_key": hex::encode(s.public_key()) })))),
        ),
        "audit" => {
            let evidence = hex_field(input, "evidence")?;
            let entries: Vec<Vec<u8>> = input
                .get("entries")
                .and_then(Value::as_array)
                .ok_or_else(|| BadInput("entries".into()))?
                .iter()
                .map(|v| v.as_str().and_then(|h| hex::decode(h).ok()).ok_or_else(|| BadInput("entry".into())))
                .collect::<Result<_, _>>()?;
            // AU9: `firmware: null` is an auditor that gives no firmware measurement.
            let firmware = match input.get("firmware") {
                Some(Value::Null) => None,
                _ => Some(array(input, "firmware")?),
            };
            let (software, now) = (array(input, "software")?, u64_field(input, "now")?);
            let checkpoint = str_field(input, "checkpoint")?;
            let (released, anchors, log_anchors, roots) = (
                hex_field(input, "released")?,
                hex_field(input, "anchors")?,
                hex_field(input, "log_anchors")?,
                hex_field(input, "vendor_roots")?,
            );
            outcome((|| {
                let released = LoggedBundle::from_cbor(&released)?;
                let anchors = TrustAnchors::from_bytes(&anchors)?;
                let log_anchors: LogAnchors = bkv_protocol::cbor::from_slice(&log_anchors)?;
                let roots: Vec<bkv_protocol::audit::VendorRoot> = bkv_protocol::cbor::from_slice(&roots)?;
                let r = bkv_protocol::audit::audit_result(&bkv_protocol::audit::AuditInputs {
                    evidence: &evidence,
                    released: &released,
                    anchors: &anchors,
                    log_anchors: &log_anchors,
                    checkpoint,
                    entries: &entries,
                    vendor_roots: &roots,
                    software,
                    firmware,
                    now,
                })?;
                Ok(Some(obj(json!({ "steps": r.passed.len() }))))
            })())
        }
        "fleet_rpc_open" => outcome(fleet_replication::open_rpc(input)?),
        "signer_open_request" => {
            let (request, anchors, now) =
                (hex_field(input, "request")?, hex_field(input, "anchors")?, u64_field(input, "now")?);
            outcome((|| {
                let anchors = TrustAnchors::from_bytes(&anchors)?;
                let o = bkv_protocol::signer_api::open_sign_request(&request, &anchors, now)?;
                Ok(Some(obj(json!({
                    "request_id": hex::encode(o.request.request_id),
                    "fleet_id": o.keyset.fleet_id,
                    "epoch": o.keyset.epoch,
                    "keyset_sha256": hex::encode(o.keyset_digest()),
                    "evidence_sha256": hex::encode(o.evidence_digest()),
                }))))
            })())
        }
        "operator_check_intermediate" => {
            let (request, response, anchors, now) = (
                hex_field(input, "request")?,
                hex_field(input, "response")?,
                hex_field(input, "anchors")?,
                u64_field(input, "now")?,
            );
            let request: bkv_protocol::signer_api::SignRequest =
                bkv_protocol::cbor::from_slice(&request).map_err(|e| BadInput(format!("request: {e}")))?;
            outcome((|| {
                let anchors = TrustAnchors::from_bytes(&anchors)?;
                let response = bkv_protocol::signer_api::SignResponse::from_cbor(&response)?;
                bkv_protocol::signer_api::check_intermediate(&request, &response, &anchors, now)?;
                Ok(None)
            })())
        }
        "signer_attach_countersignature" => {
            let (intermediate, cs, anchors, now) = (
                hex_field(input, "intermediate")?,
                hex_field(input, "countersignature")?,
                hex_field(input, "anchors")?,
                u64_field(input, "now")?,
            );
            outcome((|| {
                let anchors = TrustAnchors::from_bytes(&anchors)?;
                let bundle = bkv_protocol::signer_api::attach_and_verify(&intermediate, &cs, &anchors, now)?;
                Ok(Some(obj(json!({
                    "bundle": hex::encode(&bundle),
                    "bundle_sha256": hex::encode(sha256(&bundle)),
                }))))
            })())
        }
        "rotation_check_successor" => {
            let (old_keyset, old_bundle, new_bundle, anchors) = (
                hex_field(input, "old_keyset")?,
                hex_field(input, "old_bundle")?,
                hex_field(input, "new_bundle")?,
                hex_field(input, "anchors")?,
            );
            let now = u64_field(input, "now")?;
            outcome((|| {
                let old = bkv_protocol::validation_bundle::FleetKeySet::from_bytes(&old_keyset)?;
                let anchors = TrustAnchors::from_bytes(&anchors)?;
                let verified = bkv_protocol::validation_bundle::verify_bundle(
                    &new_bundle,
                    &anchors,
                    &ClientState::default(),
                    now,
                )?;
                bkv_protocol::rotation::check_successor(&old, &old_bundle, &verified)?;
                Ok(None)
            })())
        }
        "rotation_open_export" => {
            let key: [u8; 32] = array(input, "node_key")?;
            let digest: [u8; 32] = array(input, "bundle_sha256")?;
            let me = bkv_protocol::rotation::Importer {
                fleet_id: str_field(input, "fleet_id")?,
                epoch: u64_field(input, "epoch")?,
                node_id: str_field(input, "node_id")?,
                bundle_digest: digest,
                guess_limit: u32_field(input, "guess_limit")?,
            };
            let sealed = hex_field(input, "sealed")?;
            outcome(bkv_protocol::session::SessionSecretKey::from_bytes(&key).and_then(|k| {
                bkv_protocol::rotation::open_export(&sealed, &k, &me)
                    .map(|e| Some(obj(json!({ "records": e.records.len() }))))
            }))
        }
        "rotation_open_setup" => {
            let key: [u8; 32] = array(input, "node_key")?;
            let me = bkv_protocol::rotation::SetupReceiver {
                fleet_id: str_field(input, "fleet_id")?,
                epoch: u64_field(input, "epoch")?,
                node_id: str_field(input, "node_id")?,
                bundle_digest: array(input, "bundle_sha256")?,
                opaque: array(input, "opaque")?,
            };
            let sealed = hex_field(input, "sealed")?;
            outcome(bkv_protocol::session::SessionSecretKey::from_bytes(&key).and_then(|k| {
                bkv_protocol::rotation::open_setup(&sealed, &k, &me)
                    .map(|s| Some(obj(json!({ "opaque": hex::encode(s.public_key()) }))))
            }))
        }
        "live_backup_roundtrip" => {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| BadInput(format!("runtime: {e}")))?;
            outcome(rt.block_on(live::roundtrip(input)).map_err(BadInput)?.map(|(remaining, digest)| {
                Some(obj(json!({
                    "remaining_after_wrong": remaining,
                    "restored_sha256": hex::encode(digest),
                })))
            }))
        }
        _ => (ActualResult::Skipped, None, format!("operation {operation} not implemented"), None),
    };
    Ok(CaseResult { id: id.to_owned(), actual_result, error_code, context, output })
}
