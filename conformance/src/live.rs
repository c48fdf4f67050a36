//! Live mode (spec/conformance.md §6): the runner starts a reference fleet on loopback and
//! asks the harness to register, back up, guess and restore against it, through the
//! fleet's HTTP binding (spec/node-api.md). The cases are built at run time, in the vector
//! format, as area `live`; their expected results follow from the vault rules.

use bkv_fleet::fleet::{FleetConfig, LocalFleet};
use bkv_fleet::replication::raft::Timing;
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
            ("code", json!("correct horse")),
            ("wrong_code", json!("battery staple")),
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
            ("code", json!("1234")),
            ("wrong_code", json!("0000")),
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
            ("code", json!("1234")),
            ("wrong_code", json!("0000")),
            ("plaintext", json!("00")),
        ]),
        Some(Error::BundleSignerUnknown),
        None,
    );
    Ok((fleet, f.finish()))
}

/// What the reference harness does for `live_backup_roundtrip`: register on
/// `register_url`, seal `plaintext`, make `wrong_attempts` (default 1) wrong guesses and
/// restore on `restore_url`. Returns the remaining count after the last wrong guess and
/// the SHA-256 of the restored plaintext.
pub async fn roundtrip(input: &serde_json::Map<String, serde_json::Value>) -> Result<(u32, [u8; 32]), Error> {
    use bkv_fleet::client::{FleetClient, Persisted, Recovery, Trust};
    use bkv_protocol::vault::{BackupKey, KsfParams};
    let s = |k: &str| input.get(k).and_then(|v| v.as_str()).unwrap_or_default().to_owned();
    let h = |k: &str| hex::decode(s(k)).unwrap_or_default();
    let trust: Trust = bkv_protocol::cbor::from_slice(&h("trust"))?;
    let now = bkv_fleet::cli::output::now();
    let connect = |url: String| {
        let trust = trust.clone();
        async move {
            FleetClient::connect(&url, &trust, &Persisted::default(), KsfParams::TEST, now)
                .await
                .map(|c| c.0)
                .map_err(|e| match e {
                    bkv_fleet::client::ClientError::Protocol(p) => p,
                    bkv_fleet::client::ClientError::Transport(_) => Error::FleetUnavailable,
                })
        }
    };
    let proto = |e: bkv_fleet::client::ClientError| match e {
        bkv_fleet::client::ClientError::Protocol(p) => p,
        bkv_fleet::client::ClientError::Transport(_) => Error::FleetUnavailable,
    };
    let (record, code, wrong) = (h("record_id"), s("code"), s("wrong_code"));
    let phone = connect(s("register_url")).await?;
    let key = BackupKey::from_bytes(rand_key());
    phone.register(&record, code.as_bytes(), &key).await.map_err(proto)?;
    let mut sealed = Vec::new();
    let fleet_id = phone.keyset().fleet_id.clone();
    bkv_protocol::backup_envelope::seal(
        &key,
        &fleet_id,
        &record,
        &mut rand_core::OsRng,
        &h("plaintext")[..],
        &mut sealed,
        |_| {},
    )?;
    let other = connect(s("restore_url")).await?;
    let attempts = input.get("wrong_attempts").and_then(|v| v.as_u64()).unwrap_or(1);
    let mut remaining = LIMIT;
    for _ in 0..attempts {
        match other.recover(&record, wrong.as_bytes()).await.map_err(proto)? {
            Recovery::WrongCode { remaining: r } => remaining = r,
            Recovery::Recovered { .. } => return Err(Error::VaultCodeInvalid),
        }
    }
    match other.recover(&record, code.as_bytes()).await.map_err(proto)? {
        Recovery::Recovered { backup_key, .. } => {
            let mut out = Vec::new();
            bkv_protocol::backup_envelope::open(
                &backup_key,
                Some((&fleet_id, &record)),
                &sealed[..],
                &mut out,
                |_| {},
            )?;
            Ok((remaining, sha256(&out)))
        }
        Recovery::WrongCode { .. } => Err(Error::VaultCodeInvalid),
    }
}

fn rand_key() -> [u8; 32] {
    use rand_core::RngCore;
    let mut k = [0u8; 32];
    rand_core::OsRng.fill_bytes(&mut k);
    k
}
