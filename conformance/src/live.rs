//! Live mode (spec/conformance.md §6): the runner starts a reference fleet on loopback and
//! asks the harness to register, back up, guess and restore against it, through the
//! fleet's HTTP binding (spec/node-api.md). The cases are built at run time, in the vector
//! format, as area `live`; their expected results follow from the vault rules.

use bkv_fleet::fleet::{FleetConfig, LocalFleet};
use bkv_node::replication::raft::Timing;
use bkv_protocol::Error;
use bkv_protocol::crypto::sha256;
use bkv_vectors::VectorFile;
use bkv_vectors::format::{FileBuilder, map};
use serde_json::json;
use std::path::Path;

const NOTES: &[(&str, &str)] = &[
    ("Live", "runs against a reference fleet on loopback"),
    ("Trust", "the client's anchors do not match the fleet"),
];

/// The live fleet's guess limit.
pub const LIMIT: u32 = 10;

/// Start a 3-node reference fleet in `dir` and build the live cases against it.
pub async fn start(dir: &Path) -> Result<(LocalFleet, VectorFile), String> {
    let mut config = FleetConfig::new("live.bkv.example/vault", 3);
    config.timing = Timing::fast();
    config.guess_limit = LIMIT;
    let fleet = LocalFleet::create(dir, &config, |_| {}).await.map_err(|e| e.to_string())?;
    let trust = hex::encode(bkv_protocol::cbor::to_vec(&fleet.trust));
    let mut wrong_trust = fleet.trust.clone();
    wrong_trust.anchors.third_party[0].key = wrong_trust.anchors.operator[0].key.clone();
    let wrong_trust = hex::encode(bkv_protocol::cbor::to_vec(&wrong_trust));
    let url = |i: usize| json!(fleet.nodes[i % fleet.nodes.len()].url);
    let plaintext: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();

    let mut f = FileBuilder::new("live", "spec/node-api.md, spec/vault.md", NOTES);
    f.group("live_backup_roundtrip", "node-api.md §3, vault.md §6");
    f.case(
        "register through node 1, back up, one wrong code and a restore through node 3",
        &["Live"],
        map([
            ("register_url", url(0)),
            ("restore_url", url(2)),
            ("trust", json!(trust)),
            ("record_id", json!(hex::encode([0x31u8; 32]))),
            ("code", json!("4829 1635 0072")),
            ("wrong_code", json!("4829 1635 0073")),
            ("plaintext", json!(hex::encode(&plaintext))),
        ]),
        None,
        Some(map([
            ("remaining_after_wrong", json!(LIMIT - 1)),
            ("restored_sha256", json!(hex::encode(sha256(&plaintext)))),
        ])),
    );
    f.case(
        "the limit-th wrong code destroys the record; the right code then fails",
        &["Live"],
        map([
            ("register_url", url(1)),
            ("restore_url", url(0)),
            ("trust", json!(trust)),
            ("record_id", json!(hex::encode([0x32u8; 32]))),
            ("code", json!("482 913")),
            ("wrong_code", json!("482-914")),
            ("wrong_attempts", json!(LIMIT)),
            ("plaintext", json!(hex::encode(b"short history"))),
        ]),
        Some(Error::VaultRecordLocked),
        None,
    );
    f.case(
        "anchors whose third-party key is not the one that signed the fleet's bundle",
        &["Live", "Trust"],
        map([
            ("register_url", url(0)),
            ("restore_url", url(0)),
            ("trust", json!(wrong_trust)),
            ("record_id", json!(hex::encode([0x33u8; 32]))),
            ("code", json!("482 913")),
            ("wrong_code", json!("482-914")),
            ("plaintext", json!("00")),
        ]),
        Some(Error::BundleSignerUnknown),
        None,
    );
    Ok((fleet, f.finish()))
}
