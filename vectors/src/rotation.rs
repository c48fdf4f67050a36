//! Vectors for spec/rotation.md §2 (the successor rules, operation
//! `rotation_check_successor`) and §4 (opening a sealed export, operation
//! `rotation_open_export`). Keys come from fixed seeds; each invalid case changes one
//! thing the named rule checks.

use crate::format::{FileBuilder, VectorFile, map};
use bkv_protocol::Error;
use bkv_protocol::crypto::{Ed25519Signer, Esp256Signer, Signer, sha256};
use bkv_protocol::rotation::{ExportedRecord, ExportedState, RecordExport, seal_export};
use bkv_protocol::session::{SessionSecretKey, SessionTarget};
use bkv_protocol::validation_bundle::{
    Claims, FleetKeySet, KeyRole, Node, NodeKey, TrustAnchors, countersign, keyset, sign,
};
use bkv_protocol::vault::STORED_REGISTRATION_LEN;
use bkv_protocol::vault::{VaultServerSetup, WRAPPED_KEY_LEN};
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;
use serde_json::{Value, json};
use std::collections::BTreeMap;

const NOTES: &[(&str, &str)] = &[
    ("Successor", "the new fleet's FleetKeySet against the old one"),
    ("Envelope", "the sealed export's public fields"),
    ("Open", "the HPKE open of the export"),
    ("Records", "the exported records"),
];

const FLEET: &str = "vectors.bkv.example/vault";
const NOW: u64 = 1_800_000_000;

struct Orgs {
    tp: Ed25519Signer,
    op: Esp256Signer,
    anchors: TrustAnchors,
}

fn orgs() -> Orgs {
    let tp = Ed25519Signer::from_seed(&[0x71; 32]);
    let op = Esp256Signer::from_scalar(&[0x72; 32]).expect("valid scalar");
    let anchors = bkv_protocol::audit::fixture::anchors(FLEET, tp.public_key(), op.public_key());
    Orgs { tp, op, anchors }
}

fn keyset(epoch: u64, prev: Option<[u8; 32]>, opaque: [u8; 32], limit: u32, seed: u8) -> FleetKeySet {
    let nodes = (0..3u8)
        .map(|i| Node {
            id: format!("node-{}", i + 1),
            datacenter: "dc".into(),
            keys: vec![
                NodeKey {
                    role: KeyRole::Session,
                    suite: keyset::SESSION_SUITE_X25519,
                    key: SessionSecretKey::derive(&[seed, i]).public_key().to_vec(),
                },
                NodeKey { role: KeyRole::Opaque, suite: keyset::OPAQUE_SUITE_1, key: opaque.to_vec() },
                NodeKey {
                    role: KeyRole::Signing,
                    suite: -19,
                    key: Ed25519Signer::from_seed(&[
                        seed, i, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
                        1, 1, 1, 1, 1,
                    ])
                    .public_key()
                    .key
                    .clone(),
                },
            ],
        })
        .collect();
    FleetKeySet {
        v: 1,
        fleet_id: FLEET.into(),
        epoch,
        not_before: 0,
        not_after: u64::MAX / 2,
        guess_limit: limit,
        quorum: 2,
        nodes,
        prev,
        evidence: None,
    }
}

fn bundle(o: &Orgs, ks: &FleetKeySet) -> Vec<u8> {
    let claims = Claims { iss: "tp".into(), sub: FLEET.into(), iat: NOW };
    countersign(&sign(&ks.to_bytes(), &claims, &o.tp), &o.op).expect("countersigns")
}

fn records() -> Vec<ExportedRecord> {
    vec![
        ExportedRecord {
            id: vec![1; 32],
            state: ExportedState::Registered,
            registration: Some(vec![1; STORED_REGISTRATION_LEN]),
            wrapped_key: Some(vec![1; WRAPPED_KEY_LEN]),
            remaining: 3,
        },
        ExportedRecord {
            id: vec![2; 32],
            state: ExportedState::Unregistered,
            registration: None,
            wrapped_key: None,
            remaining: 8,
        },
        ExportedRecord {
            id: vec![3; 32],
            state: ExportedState::Locked,
            registration: None,
            wrapped_key: None,
            remaining: 0,
        },
    ]
}

/// The rotation vector file.
pub fn generate() -> VectorFile {
    let mut f = FileBuilder::new("rotation", "spec/rotation.md", NOTES);
    let o = orgs();
    let mut rng = ChaCha20Rng::seed_from_u64(0x0707);
    let opaque = VaultServerSetup::generate(&mut rng).public_key();
    let old = keyset(1, None, opaque, 10, 1);
    let old_bundle = bundle(&o, &old);
    let prev = Some(sha256(&old_bundle));
    let case = |new: &FleetKeySet| -> BTreeMap<String, Value> {
        map([
            ("old_keyset", json!(hex::encode(old.to_bytes()))),
            ("old_bundle", json!(hex::encode(&old_bundle))),
            ("new_bundle", json!(hex::encode(bundle(&o, new)))),
            ("anchors", json!(hex::encode(o.anchors.to_bytes()))),
            ("now", json!(NOW)),
        ])
    };
    f.group("rotation_check_successor", "§2");
    f.case(
        "epoch 2, chained, same OPAQUE key and limit, new session and signing keys",
        &["Successor"],
        case(&keyset(2, prev, opaque, 10, 2)),
        None,
        None,
    );
    f.case(
        "RS1: epoch 3",
        &["Successor"],
        case(&keyset(3, prev, opaque, 10, 2)),
        Some(Error::RotationSuccessorInvalid),
        None,
    );
    f.case(
        "RS1: prev is not the old bundle's digest",
        &["Successor"],
        case(&keyset(2, Some([0; 32]), opaque, 10, 2)),
        Some(Error::RotationSuccessorInvalid),
        None,
    );
    let other_opaque = VaultServerSetup::generate(&mut rng).public_key();
    f.case(
        "RS2: another OPAQUE key",
        &["Successor"],
        case(&keyset(2, prev, other_opaque, 10, 2)),
        Some(Error::RotationOpaqueMismatch),
        None,
    );
    f.case(
        "RS3: guess limit 11",
        &["Successor"],
        case(&keyset(2, prev, opaque, 11, 2)),
        Some(Error::RotationPolicyMismatch),
        None,
    );

    let key = SessionSecretKey::derive(b"bkv vectors: successor node-1");
    let digest = [0x5a; 32];
    let export = |recs: Vec<ExportedRecord>| RecordExport {
        v: 1,
        fleet_id: FLEET.into(),
        from_epoch: 1,
        to_epoch: 2,
        successor: digest.to_vec(),
        guess_limit: 10,
        records: recs,
    };
    let target = SessionTarget {
        fleet_id: FLEET.into(),
        epoch: 2,
        node_id: "node-1".into(),
        session_key: key.public_key(),
    };
    let sealed = seal_export(&mut rng, &export(records()), &target).expect("seals");
    let inp =
        |key: &SessionSecretKey, node: &str, epoch: u64, digest: [u8; 32], limit: u32, sealed: &[u8]| {
            map([
                ("node_key", json!(hex::encode(&key.to_bytes()[..]))),
                ("fleet_id", json!(FLEET)),
                ("epoch", json!(epoch)),
                ("node_id", json!(node)),
                ("bundle_sha256", json!(hex::encode(digest))),
                ("guess_limit", json!(limit)),
                ("sealed", json!(hex::encode(sealed))),
            ])
        };
    f.group("rotation_open_export", "§4");
    f.case(
        "an export sealed to this node for its bundle",
        &["Envelope"],
        inp(&key, "node-1", 2, digest, 10, &sealed),
        None,
        Some(map([("records", json!(3))])),
    );
    f.case(
        "addressed to node-1, opened by node-2",
        &["Envelope"],
        inp(&key, "node-2", 2, digest, 10, &sealed),
        Some(Error::RotationExportMismatch),
        None,
    );
    f.case(
        "for epoch 2, opened by epoch 3",
        &["Envelope"],
        inp(&key, "node-1", 3, digest, 10, &sealed),
        Some(Error::RotationExportMismatch),
        None,
    );
    f.case(
        "for another successor bundle",
        &["Records"],
        inp(&key, "node-1", 2, [0x5b; 32], 10, &sealed),
        Some(Error::RotationExportMismatch),
        None,
    );
    f.case(
        "for another guess limit",
        &["Records"],
        inp(&key, "node-1", 2, digest, 9, &sealed),
        Some(Error::RotationExportMismatch),
        None,
    );
    let other = SessionSecretKey::derive(b"bkv vectors: another node");
    f.case(
        "opened with another session key",
        &["Open"],
        inp(&other, "node-1", 2, digest, 10, &sealed),
        Some(Error::RotationOpenFailed),
        None,
    );
    let mut s: bkv_protocol::rotation::SealedExport =
        bkv_protocol::cbor::from_slice(&sealed).expect("decodes");
    let last = s.ct.len() - 1;
    s.ct[last] ^= 1;
    let tampered = bkv_protocol::cbor::to_vec(&s);
    f.case(
        "last ciphertext byte flipped",
        &["Open"],
        inp(&key, "node-1", 2, digest, 10, &tampered),
        Some(Error::RotationOpenFailed),
        None,
    );
    let mut unsorted = records();
    unsorted.swap(0, 2);
    let s2 = seal_export(&mut rng, &export(unsorted), &target).expect("seals");
    f.case(
        "records out of id order",
        &["Records"],
        inp(&key, "node-1", 2, digest, 10, &s2),
        Some(Error::RotationExportMismatch),
        None,
    );
    let mut bad = records();
    bad[2].remaining = 1;
    let s3 = seal_export(&mut rng, &export(bad), &target).expect("seals");
    f.case(
        "a locked record with a guess left",
        &["Records"],
        inp(&key, "node-1", 2, digest, 10, &s3),
        Some(Error::RotationExportMismatch),
        None,
    );
    // spec/conventions.md §6: a version the receiver does not implement is cbor.schema,
    // before any field of the structure is compared.
    let mut v2: bkv_protocol::rotation::SealedExport =
        bkv_protocol::cbor::from_slice(&sealed).expect("decodes");
    v2.v = 2;
    v2.node_id = "node-9".into();
    f.case(
        "SealedExport \"v\": 2 (and another node id): the version is checked first",
        &["Envelope"],
        inp(&key, "node-1", 2, digest, 10, &bkv_protocol::cbor::to_vec(&v2)),
        Some(Error::CborSchema),
        None,
    );
    let inner_v2 = RecordExport { v: 2, guess_limit: 9, ..export(records()) };
    let s4 = seal_export(&mut rng, &inner_v2, &target).expect("seals");
    f.case(
        "RecordExport \"v\": 2 (and another guess limit): the version is checked first",
        &["Records"],
        inp(&key, "node-1", 2, digest, 10, &s4),
        Some(Error::CborSchema),
        None,
    );
    f.finish()
}
