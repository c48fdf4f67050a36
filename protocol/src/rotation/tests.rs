//! spec/rotation.md: one test per rule and per code.

use super::*;
use crate::crypto::{Ed25519Signer, Esp256Signer, Signer};
use crate::session::SessionSecretKey;
use crate::state_machine::StateMachine;
use crate::validation_bundle::{
    Claims, ClientState, Node, NodeKey, TrustAnchors, countersign, keyset, sign, verify_bundle,
};
use crate::vault::{STORED_REGISTRATION_LEN, WRAPPED_KEY_LEN};
use crate::vault::{VaultCommand, VaultOutput, VaultServerSetup, VaultStateMachine};
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

const FLEET: &str = "rotation.example/vault";
const NOW: u64 = 1_800_000_000;

fn rid(n: u8) -> Vec<u8> {
    vec![n; 16]
}

fn record(n: u8) -> Vec<u8> {
    vec![n; 32]
}

fn apply(sm: &mut VaultStateMachine, c: VaultCommand) -> Result<VaultOutput> {
    VaultOutput::decode(&sm.apply(&cbor::to_vec(&c)))
}

fn register(sm: &mut VaultStateMachine, n: u8, id: u8) {
    let c = VaultCommand::Register {
        request_id: rid(id),
        time: NOW,
        record: record(n),
        registration: vec![n; STORED_REGISTRATION_LEN],
        wrapped_key: vec![n; WRAPPED_KEY_LEN],
    };
    assert!(matches!(apply(sm, c), Ok(VaultOutput::Registered { .. })));
}

fn attempt(sm: &mut VaultStateMachine, n: u8, id: u8) -> Result<VaultOutput> {
    apply(sm, VaultCommand::AttemptStart { request_id: rid(id), time: NOW, record: record(n) })
}

fn remaining(out: Result<VaultOutput>) -> u32 {
    match out {
        Ok(VaultOutput::Attempt { remaining, .. }) => remaining,
        other => panic!("not an attempt: {other:?}"),
    }
}

fn retire(sm: &mut VaultStateMachine, id: u8, successor: [u8; 32]) -> Result<Vec<ExportedRecord>> {
    match apply(sm, VaultCommand::Retire { request_id: rid(id), time: NOW, successor: successor.to_vec() })? {
        VaultOutput::Retired { records } => Ok(records),
        other => panic!("not retired: {other:?}"),
    }
}

/// An old vault with: record 1 after 7 wrong guesses, record 2 locked, record 3 never
/// registered but guessed twice, record 4 registered and untouched.
fn old_vault() -> VaultStateMachine {
    let mut sm = VaultStateMachine::new(10);
    register(&mut sm, 1, 1);
    register(&mut sm, 2, 2);
    register(&mut sm, 4, 4);
    let mut id = 10;
    for _ in 0..7 {
        attempt(&mut sm, 1, id).unwrap();
        id += 1;
    }
    for _ in 0..10 {
        attempt(&mut sm, 2, id).unwrap();
        id += 1;
    }
    for _ in 0..2 {
        attempt(&mut sm, 3, id).unwrap();
        id += 1;
    }
    sm
}

#[test]
fn rotation_keeps_every_counter_and_locked_stays_locked() {
    let mut old = old_vault();
    let records = retire(&mut old, 100, [7; 32]).unwrap();
    let states: Vec<_> = records.iter().map(|r| (r.id[0], r.state, r.remaining)).collect();
    assert_eq!(
        states,
        vec![
            (1, ExportedState::Registered, 3),
            (2, ExportedState::Locked, 0),
            (3, ExportedState::Unregistered, 8),
            (4, ExportedState::Registered, 10),
        ]
    );
    let mut new = VaultStateMachine::awaiting_import(10);
    let out = apply(&mut new, VaultCommand::Import { request_id: rid(1), time: NOW, from_epoch: 1, records });
    assert_eq!(out.unwrap(), VaultOutput::Imported { records: 4 });
    // 7 wrong guesses on the old fleet: exactly 3 left here, so the next wrong one leaves 2.
    assert_eq!(remaining(attempt(&mut new, 1, 2)), 2);
    assert_eq!(attempt(&mut new, 2, 3).unwrap_err(), Error::VaultRecordLocked);
    assert_eq!(remaining(attempt(&mut new, 3, 4)), 7);
    // The registration moved: the attempt output carries it.
    match attempt(&mut new, 4, 5).unwrap() {
        VaultOutput::Attempt { registration: Some(r), wrapped_key: Some(w), remaining: 9, .. } => {
            assert_eq!((r[0], w[0]), (4, 4));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn retired_fleet_refuses_everything_but_the_same_retire_and_destroy() {
    let mut old = old_vault();
    let first = retire(&mut old, 100, [7; 32]).unwrap();
    assert_eq!(attempt(&mut old, 4, 101).unwrap_err(), Error::RotationFleetRetired);
    assert_eq!(retire(&mut old, 102, [8; 32]).unwrap_err(), Error::RotationFleetRetired);
    // A lost export can be asked for again, and is the same.
    assert_eq!(retire(&mut old, 103, [7; 32]).unwrap(), first);
    assert_eq!(
        apply(&mut old, VaultCommand::Destroy { request_id: rid(104), time: NOW }).unwrap(),
        VaultOutput::Destroyed
    );
    assert_eq!(retire(&mut old, 105, [7; 32]).unwrap_err(), Error::RotationFleetRetired);
    assert!(old.is_retired());
    let snap = old.snapshot();
    let back = VaultStateMachine::restore(&snap).unwrap();
    assert_eq!(back.snapshot(), snap);
    assert!(back.is_retired());
}

#[test]
fn successor_awaits_its_import_and_imports_once() {
    let mut new = VaultStateMachine::awaiting_import(10);
    assert_eq!(attempt(&mut new, 1, 1).unwrap_err(), Error::RotationImportPending);
    let snap = VaultStateMachine::restore(&new.snapshot()).unwrap();
    assert_eq!(snap.snapshot(), new.snapshot());
    let import = |id| VaultCommand::Import { request_id: rid(id), time: NOW, from_epoch: 1, records: vec![] };
    apply(&mut new, import(2)).unwrap();
    assert_eq!(apply(&mut new, import(3)).unwrap_err(), Error::RotationImportRefused);
    // A first fleet never imports, and cannot be destroyed before it is retired.
    let mut first = VaultStateMachine::new(10);
    assert_eq!(apply(&mut first, import(4)).unwrap_err(), Error::RotationImportRefused);
    let destroy = VaultCommand::Destroy { request_id: rid(5), time: NOW };
    assert_eq!(apply(&mut first, destroy).unwrap_err(), Error::RotationImportRefused);
}

#[test]
fn malformed_import_changes_nothing() {
    let mut old = old_vault();
    let mut records = retire(&mut old, 100, [7; 32]).unwrap();
    records.swap(0, 1);
    let mut new = VaultStateMachine::awaiting_import(10);
    let before = new.snapshot();
    let c = VaultCommand::Import { request_id: rid(1), time: NOW, from_epoch: 1, records };
    assert_eq!(apply(&mut new, c).unwrap_err(), Error::RotationExportMismatch);
    assert_eq!(new.snapshot(), before);
}

// ---- successor check and sealing -------------------------------------------------------

struct Org {
    third_party: Ed25519Signer,
    operator: Esp256Signer,
    anchors: TrustAnchors,
}

fn org(rng: &mut ChaCha20Rng) -> Org {
    let third_party = Ed25519Signer::generate(rng);
    let operator = Esp256Signer::generate(rng);
    let anchors = crate::audit::fixture::anchors(FLEET, third_party.public_key(), operator.public_key());
    Org { third_party, operator, anchors }
}

fn keyset(
    rng: &mut ChaCha20Rng,
    epoch: u64,
    prev: Option<[u8; 32]>,
    opaque: [u8; 32],
    sessions: &[SessionSecretKey],
) -> FleetKeySet {
    let nodes = sessions
        .iter()
        .enumerate()
        .map(|(i, s)| Node {
            id: format!("n{i}"),
            datacenter: "dc".into(),
            keys: vec![
                NodeKey {
                    role: KeyRole::Session,
                    suite: keyset::SESSION_SUITE_X25519,
                    key: s.public_key().to_vec(),
                },
                NodeKey { role: KeyRole::Opaque, suite: keyset::OPAQUE_SUITE_1, key: opaque.to_vec() },
                NodeKey {
                    role: KeyRole::Signing,
                    suite: -19,
                    key: Ed25519Signer::generate(rng).public_key().key.clone(),
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
        guess_limit: 10,
        quorum: 2,
        nodes,
        prev,
        evidence: None,
    }
}

fn bundle(o: &Org, ks: &FleetKeySet) -> Vec<u8> {
    let claims = Claims { iss: "tp".into(), sub: FLEET.into(), iat: NOW };
    countersign(&sign(&ks.to_bytes(), &claims, &o.third_party), &o.operator).unwrap()
}

struct Pair {
    old: FleetKeySet,
    old_bundle: Vec<u8>,
    org: Org,
    opaque: [u8; 32],
    sessions: Vec<SessionSecretKey>,
    rng: ChaCha20Rng,
}

fn pair() -> Pair {
    let mut rng = ChaCha20Rng::seed_from_u64(9);
    let o = org(&mut rng);
    let opaque = VaultServerSetup::generate(&mut rng).public_key();
    let sessions: Vec<_> = (0..3).map(|_| SessionSecretKey::generate(&mut rng)).collect();
    let old = keyset(&mut rng, 1, None, opaque, &sessions);
    let old_bundle = bundle(&o, &old);
    Pair { old, old_bundle, org: o, opaque, sessions, rng }
}

fn verified(p: &mut Pair, ks: &FleetKeySet) -> VerifiedFleet {
    let b = bundle(&p.org, ks);
    verify_bundle(&b, &p.org.anchors, &ClientState::default(), NOW).unwrap()
}

#[test]
fn successor_rules_each_have_their_code() {
    let mut p = pair();
    let prev = Some(sha256(&p.old_bundle));
    let (opaque, sessions) = (p.opaque, p.sessions.clone());
    let good = keyset(&mut p.rng, 2, prev, opaque, &sessions);
    let v = verified(&mut p, &good);
    check_successor(&p.old, &p.old_bundle, &v).unwrap();

    for bad in [
        keyset(&mut p.rng, 3, prev, opaque, &sessions),
        keyset(&mut p.rng, 2, Some([0; 32]), opaque, &sessions),
    ] {
        let v = verified(&mut p, &bad);
        assert_eq!(check_successor(&p.old, &p.old_bundle, &v).unwrap_err(), Error::RotationSuccessorInvalid);
    }
    let other_opaque = VaultServerSetup::generate(&mut p.rng).public_key();
    let bad = keyset(&mut p.rng, 2, prev, other_opaque, &sessions);
    let v = verified(&mut p, &bad);
    assert_eq!(check_successor(&p.old, &p.old_bundle, &v).unwrap_err(), Error::RotationOpaqueMismatch);
    let mut bad = keyset(&mut p.rng, 2, prev, opaque, &sessions);
    bad.guess_limit = 5;
    let v = verified(&mut p, &bad);
    assert_eq!(check_successor(&p.old, &p.old_bundle, &v).unwrap_err(), Error::RotationPolicyMismatch);
}

fn sample_export(successor: [u8; 32]) -> RecordExport {
    let mut old = old_vault();
    let records = retire(&mut old, 100, successor).unwrap();
    RecordExport {
        v: 1,
        fleet_id: FLEET.into(),
        from_epoch: 1,
        to_epoch: 2,
        successor: successor.to_vec(),
        guess_limit: 10,
        records,
    }
}

#[test]
fn sealed_export_opens_only_at_its_node_for_its_bundle() {
    let mut rng = ChaCha20Rng::seed_from_u64(3);
    let key = SessionSecretKey::generate(&mut rng);
    let target = SessionTarget {
        fleet_id: FLEET.into(),
        epoch: 2,
        node_id: "n0".into(),
        session_key: key.public_key(),
    };
    let export = sample_export([7; 32]);
    let sealed = seal_export(&mut rng, &export, &target).unwrap();
    // The sender seals only an export from the target's epoch - 1 to the target's epoch.
    let skipping = RecordExport { from_epoch: 0, ..export.clone() };
    assert_eq!(seal_export(&mut rng, &skipping, &target).unwrap_err(), Error::RotationExportMismatch);
    let me = Importer { fleet_id: FLEET, epoch: 2, node_id: "n0", bundle_digest: [7; 32], guess_limit: 10 };
    assert_eq!(open_export(&sealed, &key, &me).unwrap(), export);

    // rotation.export.mismatch: another node, another epoch, another bundle, another limit.
    for me in [
        Importer { node_id: "n1", ..me.clone() },
        Importer { epoch: 3, ..me.clone() },
        Importer { bundle_digest: [8; 32], ..me.clone() },
        Importer { guess_limit: 9, ..me.clone() },
    ] {
        assert_eq!(open_export(&sealed, &key, &me).unwrap_err(), Error::RotationExportMismatch);
    }
    // rotation.open.failed: another key, or a tampered ciphertext.
    let other = SessionSecretKey::generate(&mut rng);
    assert_eq!(open_export(&sealed, &other, &me).unwrap_err(), Error::RotationOpenFailed);
    let mut s: SealedExport = cbor::from_slice(&sealed).unwrap();
    let last = s.ct.len() - 1;
    s.ct[last] ^= 1;
    assert_eq!(open_export(&cbor::to_vec(&s), &key, &me).unwrap_err(), Error::RotationOpenFailed);
    // Records out of order inside a well-sealed export.
    let mut unsorted = export.clone();
    unsorted.records.swap(0, 1);
    let sealed = seal_export(&mut rng, &unsorted, &target).unwrap();
    assert_eq!(open_export(&sealed, &key, &me).unwrap_err(), Error::RotationExportMismatch);
    // cbor.*: not a SealedExport at all.
    assert_eq!(open_export(b"\xa0", &key, &me).unwrap_err(), Error::CborSchema);
    // cbor.schema: a version this receiver does not implement (spec/conventions.md §6), in
    // the SealedExport and in the RecordExport it carries.
    let mut v2: SealedExport = cbor::from_slice(&seal_export(&mut rng, &export, &target).unwrap()).unwrap();
    v2.v = 2;
    assert_eq!(open_export(&cbor::to_vec(&v2), &key, &me).unwrap_err(), Error::CborSchema);
    let inner_v2 = RecordExport { v: 2, ..export.clone() };
    let sealed = seal_export(&mut rng, &inner_v2, &target).unwrap();
    assert_eq!(open_export(&sealed, &key, &me).unwrap_err(), Error::CborSchema);
}

/// spec/rotation.md §4.1: the OPAQUE setup goes only to a node of a verified successor,
/// opens only at that node for that bundle, and only if it is the setup the node awaits.
#[test]
fn setup_transfer_reaches_only_attested_successor_nodes() {
    let mut rng = ChaCha20Rng::seed_from_u64(11);
    let o = org(&mut rng);
    let setup = VaultServerSetup::generate(&mut rng);
    let opaque = setup.public_key();
    let old_sessions: Vec<_> = (0..3).map(|_| SessionSecretKey::generate(&mut rng)).collect();
    let old = keyset(&mut rng, 1, None, opaque, &old_sessions);
    let old_bundle = bundle(&o, &old);
    let sessions: Vec<_> = (0..3).map(|_| SessionSecretKey::generate(&mut rng)).collect();
    let new = keyset(&mut rng, 2, Some(sha256(&old_bundle)), opaque, &sessions);
    let new_bundle = bundle(&o, &new);
    let v = verify_bundle(&new_bundle, &o.anchors, &ClientState::default(), NOW).unwrap();
    let digest = sha256(&new_bundle);
    let me = SetupReceiver { fleet_id: FLEET, epoch: 2, node_id: "n1", bundle_digest: digest, opaque };

    let successor = Successor::check(&old, &old_bundle, v, &new_bundle).unwrap();
    assert_eq!(successor.bundle_digest(), digest);
    let sealed = seal_setup(&mut rng, &setup, &successor, "n1").unwrap();
    let got = open_setup(&sealed, &sessions[1], &me).unwrap();
    assert_eq!(got.to_bytes(), setup.to_bytes());

    // The sender: a node the verified successor does not attest gets nothing, and a
    // successor that fails RS1–RS3 (here: not chained to the old bundle) is no Successor.
    assert_eq!(seal_setup(&mut rng, &setup, &successor, "n9").unwrap_err(), Error::RotationExportMismatch);
    let unchained = keyset(&mut rng, 2, Some([0; 32]), opaque, &sessions);
    let unchained_bundle = bundle(&o, &unchained);
    let u = verify_bundle(&unchained_bundle, &o.anchors, &ClientState::default(), NOW).unwrap();
    assert_eq!(
        Successor::check(&old, &old_bundle, u, &unchained_bundle).err(),
        Some(Error::RotationSuccessorInvalid)
    );

    // The receiver, in order: cbor.schema, rotation.export.mismatch, rotation.open.failed,
    // rotation.export.mismatch (another bundle), rotation.opaque.mismatch.
    assert_eq!(open_setup(b"\xa0", &sessions[1], &me).unwrap_err(), Error::CborSchema);
    let mut v2: SealedExport = cbor::from_slice(&sealed).unwrap();
    v2.v = 2;
    assert_eq!(open_setup(&cbor::to_vec(&v2), &sessions[1], &me).unwrap_err(), Error::CborSchema);
    for other in [
        SetupReceiver { node_id: "n0", ..me.clone() },
        SetupReceiver { epoch: 3, ..me.clone() },
        SetupReceiver { fleet_id: "other.example/vault", ..me.clone() },
    ] {
        assert_eq!(open_setup(&sealed, &sessions[1], &other).unwrap_err(), Error::RotationExportMismatch);
    }
    assert_eq!(open_setup(&sealed, &sessions[0], &me).unwrap_err(), Error::RotationOpenFailed);
    // A record export sealed to the same node does not open as a setup (another info label).
    let target = SessionTarget {
        fleet_id: FLEET.into(),
        epoch: 2,
        node_id: "n1".into(),
        session_key: sessions[1].public_key(),
    };
    let export = seal_export(&mut rng, &sample_export(digest), &target).unwrap();
    assert_eq!(open_setup(&export, &sessions[1], &me).unwrap_err(), Error::RotationOpenFailed);
    let other_bundle = SetupReceiver { bundle_digest: [7; 32], ..me.clone() };
    assert_eq!(open_setup(&sealed, &sessions[1], &other_bundle).unwrap_err(), Error::RotationExportMismatch);
    let other_key = SetupReceiver { opaque: VaultServerSetup::generate(&mut rng).public_key(), ..me.clone() };
    assert_eq!(open_setup(&sealed, &sessions[1], &other_key).unwrap_err(), Error::RotationOpaqueMismatch);
}
