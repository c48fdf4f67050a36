//! The `produce_*` operations of spec/conformance.md §3.4: the harness builds a structure
//! from these inputs and the runner checks it with the reference. The cases are all valid:
//! what an implementation writes must be accepted; the runner's tests corrupt outputs.

use crate::cases;
use crate::format::{Case, FileBuilder, map};
use bkv_protocol::audit_log::note::{Note, sign_note};
use bkv_protocol::crypto::{Ed25519Signer, Esp256Signer};
use bkv_protocol::fixtures::bundle::{NOW, claims, keyset, organisations};
use bkv_protocol::session::{SessionSecretKey, SessionServer};
use bkv_protocol::validation_bundle::sign;
use serde_json::{Value, json};
use std::collections::BTreeMap;

/// The note every produce group's cases carry.
pub const NOTE: (&str, &str) = (
    "Produce",
    "the harness builds the structure; the runner checks it with the reference (spec/conformance.md §3.4)",
);

const FLAGS: &[&str] = &["Produce"];
const FLEET: &str = "vectors.bkv.example/produce";
const T: u64 = 1_800_000_000;

fn h(b: &[u8]) -> Value {
    json!(hex::encode(b))
}

fn valid(input: BTreeMap<String, Value>) -> Case {
    Case::valid(FLAGS, input, None)
}

// ---- spec/session.md §3.3 -------------------------------------------------------------

fn sealed_request(body: &[u8]) -> Case {
    let secret = [7u8; 32];
    let node = SessionServer::new(FLEET, 3, "node-1", SessionSecretKey::from_bytes(&secret).expect("a key"));
    valid(map([
        ("session_key", h(&node.public_key())),
        ("fleet_id", json!(FLEET)),
        ("epoch", json!(3)),
        ("node_id", json!("node-1")),
        ("request_id", h(&[0x21; 16])),
        ("time", json!(T)),
        ("body", h(body)),
        ("check_node_key", h(&secret)),
    ]))
}

cases! { (), PRODUCE_SEALED_REQUEST;
    /// a request with an empty body
    fn sealed_request_empty_body(_w) { sealed_request(b"") }
    /// a request with a 300-byte body
    fn sealed_request_body(_w) { sealed_request(&[0x5a; 300]) }
}

/// spec/session.md §3.3: the session file's produce group.
pub(crate) fn add_session(f: &mut FileBuilder) {
    f.group("produce_sealed_request", "§3.3");
    f.cases(&mut (), PRODUCE_SEALED_REQUEST);
}

// ---- spec/backup-envelope.md §4 ------------------------------------------------------

fn backup(plaintext: &[u8]) -> Case {
    valid(map([
        ("backup_key", h(&[0x4b; 32])),
        ("fleet_id", json!(FLEET)),
        ("record_id", h(&[0x52; 32])),
        ("plaintext", h(plaintext)),
    ]))
}

cases! { (), PRODUCE_BACKUP_ENVELOPE;
    /// an empty history
    fn backup_empty(_w) { backup(b"") }
    /// one byte
    fn backup_one_byte(_w) { backup(b"x") }
    /// 70 000 bytes: two chunks, the second short
    fn backup_two_chunks(_w) { backup(&(0..70_000u32).map(|i| (i % 251) as u8).collect::<Vec<_>>()) }
}

/// spec/backup-envelope.md §4: the backup-envelope file's produce group.
pub(crate) fn add_backup_envelope(f: &mut FileBuilder) {
    f.group("produce_backup_envelope", "§4");
    f.cases(&mut (), PRODUCE_BACKUP_ENVELOPE);
}

// ---- spec/validation-bundle.md §4.3 --------------------------------------------------

fn countersign(epoch: u64, prev: Option<[u8; 32]>) -> Case {
    let orgs = organisations();
    let intermediate = sign(&keyset(epoch, prev).to_bytes(), &claims(), &orgs.third_party);
    valid(map([
        ("intermediate", h(&intermediate)),
        ("operator_key", h(orgs.operator.scalar().as_slice())),
        ("anchors", h(&orgs.anchors.to_bytes())),
        ("now", json!(NOW)),
    ]))
}

cases! { (), PRODUCE_COUNTERSIGNATURE;
    /// the operator countersigns the third party's signature over the first epoch's keyset
    fn countersign_first_epoch(_w) { countersign(1, None) }
    /// the same over a later epoch's keyset
    fn countersign_later_epoch(_w) { countersign(2, Some([0x33; 32])) }
}

/// spec/validation-bundle.md §4.3: the bundle file's produce group.
pub(crate) fn add_validation_bundle(f: &mut FileBuilder) {
    f.group("produce_countersignature", "§4.3");
    f.cases(&mut (), PRODUCE_COUNTERSIGNATURE);
}

// ---- spec/audit-log.md §4, §8 ------------------------------------------------------------

const ORIGIN: &str = "log.vectors.bkv.example/produce";
const LOG_SEED: [u8; 32] = [0x61; 32];

fn checkpoint(size: u64, root: [u8; 32]) -> Case {
    valid(map([
        ("origin", json!(ORIGIN)),
        ("size", json!(size)),
        ("root", h(&root)),
        ("log_name", json!(ORIGIN)),
        ("log_key", h(&LOG_SEED)),
    ]))
}

/// A checkpoint of `size` signed by the log of [`checkpoint`].
fn signed_checkpoint(size: u64) -> String {
    let text = bkv_protocol::audit_log::Checkpoint { origin: ORIGIN.into(), size, root: [0x77; 32] }.body();
    let sig = sign_note(&text, ORIGIN, &Ed25519Signer::from_seed(&LOG_SEED)).expect("a key name");
    Note { text, signatures: vec![sig] }.encode()
}

fn cosign(size: u64, timestamp: u64) -> Case {
    valid(map([
        ("checkpoint", json!(signed_checkpoint(size))),
        ("witness_name", json!("witness.vectors.bkv.example")),
        ("witness_key", h(&[0x62; 32])),
        ("timestamp", json!(timestamp)),
    ]))
}

cases! { (), PRODUCE_CHECKPOINT;
    /// a tree of one entry
    fn checkpoint_one_entry(_w) { checkpoint(1, [0x11; 32]) }
    /// a tree of 1 000 000 entries
    fn checkpoint_large_tree(_w) { checkpoint(1_000_000, [0x22; 32]) }
}

cases! { (), PRODUCE_COSIGNATURE;
    /// a witness cosigns a checkpoint the log signed
    fn cosign_checkpoint(_w) { cosign(6, T + 123) }
    /// at time 0 of the cosignature's clock
    fn cosign_timestamp_zero(_w) { cosign(7, 0) }
}

/// spec/audit-log.md §4, §8: the log file's produce groups.
pub(crate) fn add_audit_log(f: &mut FileBuilder) {
    f.group("produce_checkpoint", "§4.3");
    f.cases(&mut (), PRODUCE_CHECKPOINT);
    f.group("produce_cosignature", "§8");
    f.cases(&mut (), PRODUCE_COSIGNATURE);
}

// ---- spec/evidence.md §1 ----------------------------------------------------------------

fn envelope(alg: i64, key: &[u8], content_type: &str) -> Case {
    valid(map([
        ("payload", h(&bkv_protocol::cbor::to_vec(&("bkv", 1u8)))),
        ("content_type", json!(content_type)),
        ("alg", json!(alg)),
        ("private_key", h(key)),
    ]))
}

cases! { (), PRODUCE_EVIDENCE_ENVELOPE;
    /// an Ed25519 evidence envelope
    fn envelope_ed25519(_w) {
        envelope(-19, Ed25519Signer::from_seed(&[0x63; 32]).seed().as_slice(), bkv_protocol::evidence::CT_EVIDENCE)
    }
    /// an ESP256 ceremony-step envelope
    fn envelope_esp256(_w) {
        let key = Esp256Signer::from_scalar(&[0x64; 32]).expect("a scalar");
        envelope(-9, key.scalar().as_slice(), bkv_protocol::evidence::CT_STEP)
    }
}

/// spec/evidence.md §1: the audit file's produce group.
pub(crate) fn add_audit(f: &mut FileBuilder) {
    f.group("produce_evidence_envelope", "§1");
    f.cases(&mut (), PRODUCE_EVIDENCE_ENVELOPE);
}
