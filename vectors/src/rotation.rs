//! Vectors for spec/rotation.md §2 (the successor rules, operation
//! `rotation_check_successor`), §4 (opening a sealed export, operation
//! `rotation_open_export`) and §4.1 (receiving the OPAQUE setup, operation
//! `rotation_open_setup`). Keys come from fixed seeds; each invalid case changes one
//! thing the named rule checks.

use crate::cases;
use crate::format::{Case, FileBuilder, VectorFile, map};
use bkv_protocol::Error;
use bkv_protocol::crypto::{Ed25519Signer, Esp256Signer, Signer, sha256};
use bkv_protocol::rotation::{ExportedRecord, ExportedState, RecordExport, seal_export};
use bkv_protocol::rotation::{SetupTransfer, seal_setup_transfer};
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
    ("Setup", "the transferred OPAQUE setup"),
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

/// The successor cases: both organisations, the old fleet's FleetKeySet and bundle, and
/// the seeded stream that draws OPAQUE setups (and, after these cases, the exports).
struct Successors {
    o: Orgs,
    rng: ChaCha20Rng,
    opaque: [u8; 32],
    old: FleetKeySet,
    old_bundle: Vec<u8>,
}

impl Successors {
    fn new() -> Self {
        let o = orgs();
        let mut rng = ChaCha20Rng::seed_from_u64(0x0707);
        let opaque = VaultServerSetup::generate(&mut rng).public_key();
        let old = keyset(1, None, opaque, 10, 1);
        let old_bundle = bundle(&o, &old);
        Successors { o, rng, opaque, old, old_bundle }
    }

    /// The old bundle's digest: a successor's `prev`.
    fn prev(&self) -> Option<[u8; 32]> {
        Some(sha256(&self.old_bundle))
    }

    /// The input of a successor `new`.
    fn input(&self, new: &FleetKeySet) -> BTreeMap<String, Value> {
        map([
            ("old_keyset", json!(hex::encode(self.old.to_bytes()))),
            ("old_bundle", json!(hex::encode(&self.old_bundle))),
            ("new_bundle", json!(hex::encode(bundle(&self.o, new)))),
            ("anchors", json!(hex::encode(self.o.anchors.to_bytes()))),
            ("now", json!(NOW)),
        ])
    }

    /// A successor refused with `e`.
    fn refused(&self, new: &FleetKeySet, e: Error) -> Case {
        Case::invalid(&["Successor"], self.input(new), e)
    }
}

cases! { Successors, ROTATION_CHECK_SUCCESSOR;
    /// epoch 2, chained, same OPAQUE key and limit, new session and signing keys
    fn valid_successor(w) {
        Case::valid(&["Successor"], w.input(&keyset(2, w.prev(), w.opaque, 10, 2)), None)
    }
    /// RS1: epoch 3
    fn epoch_skipped(w) {
        w.refused(&keyset(3, w.prev(), w.opaque, 10, 2), Error::RotationSuccessorInvalid)
    }
    /// RS1: prev is not the old bundle's digest
    fn prev_not_old_bundle(w) {
        w.refused(&keyset(2, Some([0; 32]), w.opaque, 10, 2), Error::RotationSuccessorInvalid)
    }
    /// RS2: another OPAQUE key
    fn another_opaque_key(w) {
        let other_opaque = VaultServerSetup::generate(&mut w.rng).public_key();
        w.refused(&keyset(2, w.prev(), other_opaque, 10, 2), Error::RotationOpaqueMismatch)
    }
    /// RS3: guess limit 11
    fn successor_guess_limit(w) {
        w.refused(&keyset(2, w.prev(), w.opaque, 11, 2), Error::RotationPolicyMismatch)
    }
    /// the old FleetKeySet breaks §3.2 (no nodes) and the anchors are not CBOR: the old
    /// keyset is decoded first
    fn old_keyset_before_anchors(w) {
        let mut input = w.input(&keyset(2, w.prev(), w.opaque, 10, 2));
        let mut old = w.old.clone();
        old.nodes.clear();
        input.insert("old_keyset".into(), json!(hex::encode(old.to_bytes())));
        input.insert("anchors".into(), json!("ff"));
        Case::invalid(&["Successor"], input, Error::BundleKeySetInvalid)
    }
    /// the anchors are not CBOR and the new bundle is epoch 3: the anchors are decoded
    /// before the new bundle is verified
    fn anchors_before_the_new_bundle(w) {
        let mut input = w.input(&keyset(3, w.prev(), w.opaque, 10, 2));
        input.insert("anchors".into(), json!("ff"));
        Case::invalid(&["Successor"], input, Error::CborMalformed)
    }
}

/// Node-1 of the successor (epoch 2): its session key and where to seal to it.
fn successor_node_1() -> (SessionSecretKey, SessionTarget) {
    let key = SessionSecretKey::derive(b"bkv vectors: successor node-1");
    let target = SessionTarget {
        fleet_id: FLEET.into(),
        epoch: 2,
        node_id: "node-1".into(),
        session_key: key.public_key(),
    };
    (key, target)
}

/// The export cases: node-1 of the successor, the successor bundle's digest, and an
/// export of three records sealed to node-1 (the stream continues from the successor cases).
struct Exports {
    rng: ChaCha20Rng,
    key: SessionSecretKey,
    digest: [u8; 32],
    target: SessionTarget,
    sealed: Vec<u8>,
}

impl Exports {
    fn new(mut rng: ChaCha20Rng) -> Self {
        let (key, target) = successor_node_1();
        let digest = [0x5a; 32];
        let sealed = seal_export(&mut rng, &export(digest, records()), &target).expect("seals");
        Exports { rng, key, digest, target, sealed }
    }

    /// The input of node `node` of epoch `epoch` (bundle `digest`, limit `limit`) opening
    /// `sealed` with `key`.
    fn input(
        key: &SessionSecretKey,
        node: &str,
        epoch: u64,
        digest: [u8; 32],
        limit: u32,
        sealed: &[u8],
    ) -> BTreeMap<String, Value> {
        receiver(key, node, epoch, digest, ("guess_limit", json!(limit)), sealed)
    }

    /// Node-1 of epoch 2 opening `sealed`, refused with `e`.
    fn refused(&self, flags: &'static [&'static str], sealed: &[u8], e: Error) -> Case {
        Case::invalid(flags, Self::input(&self.key, "node-1", 2, self.digest, 10, sealed), e)
    }

    /// `export` sealed to node-1 with the next draw of the stream.
    fn seal(&mut self, export: &RecordExport) -> Vec<u8> {
        seal_export(&mut self.rng, export, &self.target).expect("seals")
    }

    /// The sealed export with one change to its public fields.
    fn sealed_with(&self, change: impl FnOnce(&mut bkv_protocol::rotation::SealedExport)) -> Vec<u8> {
        let mut s: bkv_protocol::rotation::SealedExport =
            bkv_protocol::cbor::from_slice(&self.sealed).expect("decodes");
        change(&mut s);
        bkv_protocol::cbor::to_vec(&s)
    }
}

/// The input of a receiving successor node (§4, §4.1): its key, identity and bundle
/// digest, one field of its own (`guess_limit` or the awaited `opaque` key) and `sealed`.
fn receiver(
    key: &SessionSecretKey,
    node: &str,
    epoch: u64,
    digest: [u8; 32],
    own: (&str, Value),
    sealed: &[u8],
) -> BTreeMap<String, Value> {
    map([
        ("node_key", json!(hex::encode(&key.to_bytes()[..]))),
        ("fleet_id", json!(FLEET)),
        ("epoch", json!(epoch)),
        ("node_id", json!(node)),
        ("bundle_sha256", json!(hex::encode(digest))),
        own,
        ("sealed", json!(hex::encode(sealed))),
    ])
}

/// The export of `records` from epoch 1 to the successor bundle `digest`.
fn export(digest: [u8; 32], records: Vec<ExportedRecord>) -> RecordExport {
    RecordExport {
        v: 1,
        fleet_id: FLEET.into(),
        from_epoch: 1,
        to_epoch: 2,
        successor: digest.to_vec(),
        guess_limit: 10,
        records,
    }
}

cases! { Exports, ROTATION_OPEN_EXPORT;
    /// an export sealed to this node for its bundle
    fn valid_export(w) {
        let input = Exports::input(&w.key, "node-1", 2, w.digest, 10, &w.sealed);
        Case::valid(&["Envelope"], input, Some(map([("records", json!(3))])))
    }
    /// addressed to node-1, opened by node-2
    fn another_node(w) {
        let input = Exports::input(&w.key, "node-2", 2, w.digest, 10, &w.sealed);
        Case::invalid(&["Envelope"], input, Error::RotationExportMismatch)
    }
    /// for epoch 2, opened by epoch 3
    fn another_epoch(w) {
        let input = Exports::input(&w.key, "node-1", 3, w.digest, 10, &w.sealed);
        Case::invalid(&["Envelope"], input, Error::RotationExportMismatch)
    }
    /// for another successor bundle
    fn another_successor(w) {
        let input = Exports::input(&w.key, "node-1", 2, [0x5b; 32], 10, &w.sealed);
        Case::invalid(&["Records"], input, Error::RotationExportMismatch)
    }
    /// for another guess limit
    fn export_for_another_guess_limit(w) {
        let input = Exports::input(&w.key, "node-1", 2, w.digest, 9, &w.sealed);
        Case::invalid(&["Records"], input, Error::RotationExportMismatch)
    }
    /// opened with another session key
    fn another_session_key(w) {
        let other = SessionSecretKey::derive(b"bkv vectors: another node");
        let input = Exports::input(&other, "node-1", 2, w.digest, 10, &w.sealed);
        Case::invalid(&["Open"], input, Error::RotationOpenFailed)
    }
    /// last ciphertext byte flipped
    fn ciphertext_flipped(w) {
        let tampered = w.sealed_with(|s| {
            let last = s.ct.len() - 1;
            s.ct[last] ^= 1;
        });
        w.refused(&["Open"], &tampered, Error::RotationOpenFailed)
    }
    /// records out of id order
    fn records_unsorted(w) {
        let mut unsorted = records();
        unsorted.swap(0, 2);
        let s = w.seal(&export(w.digest, unsorted));
        w.refused(&["Records"], &s, Error::RotationExportMismatch)
    }
    /// a locked record with a guess left
    fn locked_with_a_guess(w) {
        let mut bad = records();
        bad[2].remaining = 1;
        let s = w.seal(&export(w.digest, bad));
        w.refused(&["Records"], &s, Error::RotationExportMismatch)
    }
    /// SealedExport "v": 2 (and another node id): the version is checked first
    fn sealed_export_v2(w) {
        // spec/conventions.md §6: a version the receiver does not implement is cbor.schema,
        // before any field of the structure is compared.
        let v2 = w.sealed_with(|s| {
            s.v = 2;
            s.node_id = "node-9".into();
        });
        w.refused(&["Envelope"], &v2, Error::CborSchema)
    }
    /// RecordExport "v": 2 (and another guess limit): the version is checked first
    fn record_export_v2(w) {
        let inner_v2 = RecordExport { v: 2, guess_limit: 9, ..export(w.digest, records()) };
        let s = w.seal(&inner_v2);
        w.refused(&["Records"], &s, Error::CborSchema)
    }
}

/// The setup-transfer cases (spec/rotation.md §4.1): node-1 of the successor, awaiting the
/// setup whose public key is `opaque`, and that setup sealed to it.
struct Setups {
    rng: ChaCha20Rng,
    key: SessionSecretKey,
    digest: [u8; 32],
    target: SessionTarget,
    setup: VaultServerSetup,
    sealed: Vec<u8>,
}

impl Setups {
    fn new(mut rng: ChaCha20Rng) -> Self {
        let (key, target) = successor_node_1();
        let setup = VaultServerSetup::generate(&mut rng);
        let digest = [0x5a; 32];
        let mut w = Setups { rng, key, digest, target, setup, sealed: Vec::new() };
        w.sealed = w.seal(&w.transfer());
        w
    }

    /// The transfer of the setup to the successor bundle.
    fn transfer(&self) -> SetupTransfer {
        SetupTransfer { v: 1, successor: self.digest.to_vec(), setup: self.setup.to_bytes().to_vec() }
    }

    /// `transfer` sealed to node-1 with the next draw of the stream.
    fn seal(&mut self, transfer: &SetupTransfer) -> Vec<u8> {
        seal_setup_transfer(&mut self.rng, transfer, &self.target).expect("seals")
    }

    /// The input of node `node` of epoch `epoch` (bundle `digest`), awaiting `opaque`,
    /// opening `sealed` with `key`.
    fn input(
        key: &SessionSecretKey,
        node: &str,
        epoch: u64,
        digest: [u8; 32],
        opaque: [u8; 32],
        sealed: &[u8],
    ) -> BTreeMap<String, Value> {
        receiver(key, node, epoch, digest, ("opaque", json!(hex::encode(opaque))), sealed)
    }

    /// Node-1 of epoch 2 awaiting this setup, opening `sealed`, refused with `e`.
    fn refused(&self, flags: &'static [&'static str], sealed: &[u8], e: Error) -> Case {
        let input = Self::input(&self.key, "node-1", 2, self.digest, self.setup.public_key(), sealed);
        Case::invalid(flags, input, e)
    }
}

cases! { Setups, ROTATION_OPEN_SETUP;
    /// the setup sealed to this node for its bundle; the output is its public key
    fn valid_setup(w) {
        let opaque = w.setup.public_key();
        let input = Setups::input(&w.key, "node-1", 2, w.digest, opaque, &w.sealed);
        Case::valid(&["Setup"], input, Some(map([("opaque", json!(hex::encode(opaque)))])))
    }
    /// addressed to node-1, opened by node-2
    fn setup_for_another_node(w) {
        let input = Setups::input(&w.key, "node-2", 2, w.digest, w.setup.public_key(), &w.sealed);
        Case::invalid(&["Envelope"], input, Error::RotationExportMismatch)
    }
    /// opened with another session key
    fn setup_another_session_key(w) {
        let other = SessionSecretKey::derive(b"bkv vectors: another node");
        let input = Setups::input(&other, "node-1", 2, w.digest, w.setup.public_key(), &w.sealed);
        Case::invalid(&["Open"], input, Error::RotationOpenFailed)
    }
    /// a record export sealed to the same node: another HPKE info label
    fn record_export_is_not_a_setup(w) {
        let target = w.target.clone();
        let export = seal_export(&mut w.rng, &export(w.digest, records()), &target).expect("seals");
        w.refused(&["Open"], &export, Error::RotationOpenFailed)
    }
    /// SetupTransfer "v": 2
    fn setup_transfer_v2(w) {
        let mut t = w.transfer();
        t.v = 2;
        let s = w.seal(&t);
        w.refused(&["Setup"], &s, Error::CborSchema)
    }
    /// for another successor bundle
    fn setup_for_another_successor(w) {
        let input = Setups::input(&w.key, "node-1", 2, [0x5b; 32], w.setup.public_key(), &w.sealed);
        Case::invalid(&["Setup"], input, Error::RotationExportMismatch)
    }
    /// a setup of 127 bytes
    fn setup_truncated(w) {
        let mut t = w.transfer();
        t.setup.truncate(127);
        let s = w.seal(&t);
        w.refused(&["Setup"], &s, Error::VaultSetupInvalid)
    }
    /// a well-formed setup, but not the one this HSM awaits
    fn setup_not_the_awaited_one(w) {
        let other = VaultServerSetup::generate(&mut w.rng).public_key();
        let input = Setups::input(&w.key, "node-1", 2, w.digest, other, &w.sealed);
        Case::invalid(&["Setup"], input, Error::RotationOpaqueMismatch)
    }
}

/// The rotation vector file.
pub fn generate() -> VectorFile {
    let mut f = FileBuilder::new("rotation", "spec/rotation.md", NOTES);
    let mut successors = Successors::new();
    f.group("rotation_check_successor", "§2");
    f.cases(&mut successors, ROTATION_CHECK_SUCCESSOR);
    f.group("rotation_open_export", "§4");
    f.cases(&mut Exports::new(successors.rng), ROTATION_OPEN_EXPORT);
    f.group("rotation_open_setup", "§4.1");
    f.cases(&mut Setups::new(ChaCha20Rng::seed_from_u64(0x4_1)), ROTATION_OPEN_SETUP);
    f.finish()
}
