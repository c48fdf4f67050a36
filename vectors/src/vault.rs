//! Vectors for spec/vault.md §8 (the vault state machine) and §2.3 (the ServerSetup
//! encoding), plus the phases of spec/rotation.md §3–§6. Operation `vault_apply`: a fresh
//! state machine applies the `setup` commands (each succeeds), then `command`, whose
//! output is the case's result. Each expected result follows from the rule of §8.2 named
//! in the comment.

use crate::format::{FileBuilder, VectorFile, map};
use bkv_protocol::Error;
use bkv_protocol::cbor;
use bkv_protocol::rotation::{ExportedRecord, ExportedState};
use bkv_protocol::vault::STORED_REGISTRATION_LEN;
use bkv_protocol::vault::{VaultCommand, VaultOutput, VaultServerSetup, WRAPPED_KEY_LEN};
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;
use serde_json::{Value, json};
use std::collections::BTreeMap;

const NOTES: &[(&str, &str)] = &[
    ("Counter", "the guess counter: decrement, reset, lockout"),
    ("Record", "record ids and record state"),
    ("Replay", "request ids and times (spec/session.md §6)"),
    ("Shape", "lengths and encodings of command fields"),
    ("Rotation", "phases of spec/rotation.md"),
    ("Setup", "the ServerSetup encoding"),
    (
        "Exchange",
        "one OPAQUE exchange with fixed seeds (spec/conformance.md §3.1): the harness plays one side",
    ),
    ("ServerKey", "the fleet's OPAQUE key is not the one of the verified FleetKeySet"),
];

const T: u64 = 1_800_000_000;
const LIMIT: u32 = 3;

fn id(n: u8) -> Vec<u8> {
    vec![n; 16]
}

fn rec(n: u8) -> Vec<u8> {
    vec![n; 32]
}

fn register(rid: u8, record: u8) -> VaultCommand {
    VaultCommand::Register {
        request_id: id(rid),
        time: T,
        record: rec(record),
        registration: vec![record; STORED_REGISTRATION_LEN],
        wrapped_key: vec![record; WRAPPED_KEY_LEN],
    }
}

fn attempt(rid: u8, record: u8) -> VaultCommand {
    VaultCommand::AttemptStart { request_id: id(rid), time: T, record: rec(record) }
}

fn success(rid: u8, record: u8, generation: u64) -> VaultCommand {
    VaultCommand::AttemptSuccess { request_id: id(rid), time: T, record: rec(record), generation }
}

fn hexes(cs: &[VaultCommand]) -> Value {
    json!(cs.iter().map(|c| hex::encode(cbor::to_vec(c))).collect::<Vec<_>>())
}

fn input(awaiting_import: bool, setup: &[VaultCommand], command: &[u8]) -> BTreeMap<String, Value> {
    map([
        ("guess_limit", json!(LIMIT)),
        ("awaiting_import", json!(awaiting_import)),
        ("setup", hexes(setup)),
        ("command", json!(hex::encode(command))),
    ])
}

fn ok(out: VaultOutput) -> Option<BTreeMap<String, Value>> {
    Some(map([("output", json!(hex::encode(cbor::to_vec(&out))))]))
}

/// The vault vector file.
pub fn generate() -> VectorFile {
    let mut f = FileBuilder::new("vault", "spec/vault.md", NOTES);
    let enc = |c: &VaultCommand| cbor::to_vec(c);
    let reg1 = register(1, 1);

    f.group("vault_apply", "§8.2");
    f.case(
        "register a new id: full counter",
        &["Record"],
        input(false, &[], &enc(&reg1)),
        None,
        ok(VaultOutput::Registered { remaining: LIMIT }),
    );
    f.case(
        "first attempt: the counter goes down by one, the registration is handed to the node",
        &["Counter"],
        input(false, std::slice::from_ref(&reg1), &enc(&attempt(2, 1))),
        None,
        ok(VaultOutput::Attempt {
            registration: Some(vec![1; STORED_REGISTRATION_LEN]),
            wrapped_key: Some(vec![1; WRAPPED_KEY_LEN]),
            remaining: LIMIT - 1,
            generation: 1,
        }),
    );
    f.case(
        "attempt on an unknown id: counted like a registered one, nothing handed out",
        &["Counter", "Record"],
        input(false, &[], &enc(&attempt(2, 9))),
        None,
        ok(VaultOutput::Attempt {
            registration: None,
            wrapped_key: None,
            remaining: LIMIT - 1,
            generation: 0,
        }),
    );
    f.case(
        "a verified KE3 resets the counter to the limit",
        &["Counter"],
        input(false, &[reg1.clone(), attempt(2, 1), attempt(3, 1)], &enc(&success(4, 1, 1))),
        None,
        ok(VaultOutput::Released { remaining: LIMIT }),
    );
    let locked = [reg1.clone(), attempt(2, 1), attempt(3, 1), attempt(4, 1)];
    f.case(
        "the success of an attempt whose record the last guess destroyed: remaining 0",
        &["Counter"],
        input(false, &locked, &enc(&success(5, 1, 1))),
        None,
        ok(VaultOutput::Released { remaining: 0 }),
    );
    f.case(
        "an attempt after the limit-th",
        &["Counter"],
        input(false, &locked, &enc(&attempt(5, 1))),
        Some(Error::VaultRecordLocked),
        None,
    );
    f.case(
        "register over a locked id: a fresh record",
        &["Record"],
        input(false, &locked, &enc(&register(5, 1))),
        None,
        ok(VaultOutput::Registered { remaining: LIMIT }),
    );
    f.case(
        "register over a registered id",
        &["Record"],
        input(false, std::slice::from_ref(&reg1), &enc(&register(2, 1))),
        Some(Error::VaultRecordExists),
        None,
    );
    let rekey = VaultCommand::Rekey {
        request_id: id(3),
        time: T,
        record: rec(1),
        generation: 0,
        registration: vec![7; STORED_REGISTRATION_LEN],
        wrapped_key: vec![7; WRAPPED_KEY_LEN],
    };
    f.case(
        "rekey for a generation the record no longer has",
        &["Record"],
        input(false, std::slice::from_ref(&reg1), &enc(&rekey)),
        Some(Error::VaultRecordChanged),
        None,
    );
    let delete = VaultCommand::Delete { request_id: id(3), time: T, record: rec(1), generation: 1 };
    f.case(
        "delete at the record's generation",
        &["Record"],
        input(false, std::slice::from_ref(&reg1), &enc(&delete)),
        None,
        ok(VaultOutput::Deleted),
    );
    let short = VaultCommand::AttemptStart { request_id: id(2), time: T, record: vec![1; 15] };
    f.case(
        "a 15-byte record id",
        &["Record", "Shape"],
        input(false, &[], &enc(&short)),
        Some(Error::VaultRecordIdInvalid),
        None,
    );
    let VaultCommand::Register { request_id, time, record, registration, wrapped_key } = register(2, 2)
    else {
        unreachable!()
    };
    let bad = VaultCommand::Register {
        request_id: request_id.clone(),
        time,
        record: record.clone(),
        registration: registration[1..].to_vec(),
        wrapped_key: wrapped_key.clone(),
    };
    f.case(
        "a stored registration one byte short",
        &["Shape"],
        input(false, &[], &enc(&bad)),
        Some(Error::VaultMessageInvalid),
        None,
    );
    let bad = VaultCommand::Register { request_id, time, record, registration, wrapped_key: vec![2; 47] };
    f.case(
        "a 47-byte wrapped key",
        &["Shape"],
        input(false, &[], &enc(&bad)),
        Some(Error::VaultWrappedKeyInvalid),
        None,
    );
    f.case(
        "a request id already applied",
        &["Replay"],
        input(false, std::slice::from_ref(&reg1), &enc(&attempt(1, 1))),
        Some(Error::SessionRequestReplayed),
        None,
    );
    let old = VaultCommand::AttemptStart { request_id: id(9), time: T - 601, record: rec(1) };
    f.case(
        "a time 601 s before the latest applied",
        &["Replay"],
        input(false, std::slice::from_ref(&reg1), &enc(&old)),
        Some(Error::SessionRequestStale),
        None,
    );
    let edge = VaultCommand::AttemptStart { request_id: id(9), time: T - 600, record: rec(1) };
    f.case(
        "a time exactly 600 s before the latest applied",
        &["Replay"],
        input(false, std::slice::from_ref(&reg1), &enc(&edge)),
        None,
        ok(VaultOutput::Attempt {
            registration: Some(vec![1; STORED_REGISTRATION_LEN]),
            wrapped_key: Some(vec![1; WRAPPED_KEY_LEN]),
            remaining: LIMIT - 1,
            generation: 1,
        }),
    );
    f.case(
        "not a command",
        &["Shape"],
        input(false, &[], &cbor::to_vec(&"attempt")),
        Some(Error::CborSchema),
        None,
    );

    // spec/rotation.md phases.
    let retire =
        |rid: u8, s: u8| VaultCommand::Retire { request_id: id(rid), time: T, successor: vec![s; 32] };
    let exported = vec![
        ExportedRecord {
            id: rec(1),
            state: ExportedState::Registered,
            registration: Some(vec![1; STORED_REGISTRATION_LEN]),
            wrapped_key: Some(vec![1; WRAPPED_KEY_LEN]),
            remaining: 1,
        },
        ExportedRecord {
            id: rec(2),
            state: ExportedState::Locked,
            registration: None,
            wrapped_key: None,
            remaining: 0,
        },
    ];
    let retired_setup = [
        register(1, 1),
        attempt(2, 1),
        attempt(3, 1),
        register(4, 2),
        attempt(5, 2),
        attempt(6, 2),
        attempt(7, 2),
    ];
    f.case(
        "retire: every record with its counter, in id order",
        &["Rotation", "Counter"],
        input(false, &retired_setup, &enc(&retire(8, 7))),
        None,
        ok(VaultOutput::Retired { records: exported.clone() }),
    );
    let mut after = retired_setup.to_vec();
    after.push(retire(8, 7));
    f.case(
        "an attempt on a retired fleet",
        &["Rotation"],
        input(false, &after, &enc(&attempt(9, 1))),
        Some(Error::RotationFleetRetired),
        None,
    );
    f.case(
        "retire for another successor",
        &["Rotation"],
        input(false, &after, &enc(&retire(9, 8))),
        Some(Error::RotationFleetRetired),
        None,
    );
    let import = |rid: u8, records: Vec<ExportedRecord>| VaultCommand::Import {
        request_id: id(rid),
        time: T,
        from_epoch: 1,
        records,
    };
    f.case(
        "import into a successor",
        &["Rotation"],
        input(true, &[], &enc(&import(1, exported.clone()))),
        None,
        ok(VaultOutput::Imported { records: 2 }),
    );
    f.case(
        "after the import, the moved counter: one guess was left",
        &["Rotation", "Counter"],
        input(true, &[import(1, exported.clone())], &enc(&attempt(2, 1))),
        None,
        ok(VaultOutput::Attempt {
            registration: Some(vec![1; STORED_REGISTRATION_LEN]),
            wrapped_key: Some(vec![1; WRAPPED_KEY_LEN]),
            remaining: 0,
            generation: 1,
        }),
    );
    f.case(
        "a locked record stays locked",
        &["Rotation", "Counter"],
        input(true, &[import(1, exported.clone())], &enc(&attempt(2, 2))),
        Some(Error::VaultRecordLocked),
        None,
    );
    f.case(
        "an attempt before the import",
        &["Rotation"],
        input(true, &[], &enc(&attempt(1, 1))),
        Some(Error::RotationImportPending),
        None,
    );
    f.case(
        "a second import",
        &["Rotation"],
        input(true, &[import(1, exported.clone())], &enc(&import(2, vec![]))),
        Some(Error::RotationImportRefused),
        None,
    );
    let mut unsorted = exported.clone();
    unsorted.reverse();
    f.case(
        "import records out of order",
        &["Rotation"],
        input(true, &[], &enc(&import(1, unsorted))),
        Some(Error::RotationExportMismatch),
        None,
    );

    f.group("vault_setup_decode", "§2.3");
    f.case(
        "a ServerSetup one byte short",
        &["Setup"],
        map([("setup", json!(hex::encode(vec![0u8; 127])))]),
        Some(Error::VaultSetupInvalid),
        None,
    );
    let setup = VaultServerSetup::generate(&mut ChaCha20Rng::seed_from_u64(0x5e7));
    let good = setup.to_bytes().to_vec();
    let input = |b: &[u8]| map([("setup", json!(hex::encode(b)))]);
    f.case(
        "a generated ServerSetup: its public key is the server private key times the generator",
        &["Setup"],
        input(&good),
        None,
        Some(map([("public_key", json!(hex::encode(setup.public_key())))])),
    );
    let mut long = good.clone();
    long.push(0);
    f.case(
        "a byte after the fake-record key",
        &["Setup"],
        input(&long),
        Some(Error::VaultSetupInvalid),
        None,
    );
    // Bytes 64..96: the server private key, a ristretto255 scalar (little-endian).
    let with = |at: usize, bytes: &[u8]| {
        let mut b = good.clone();
        b[at..at + 32].copy_from_slice(bytes);
        b
    };
    f.case(
        "server private key zero",
        &["Setup"],
        input(&with(64, &[0; 32])),
        Some(Error::VaultSetupInvalid),
        None,
    );
    let order = hex::decode("edd3f55c1a631258d69cf7a2def9de1400000000000000000000000000000010").expect("hex");
    f.case(
        "server private key equal to the group order (not reduced)",
        &["Setup"],
        input(&with(64, &order)),
        Some(Error::VaultSetupInvalid),
        None,
    );
    // Bytes 96..128: the fake-record public key, a ristretto255 element.
    f.case(
        "fake-record public key: the identity element",
        &["Setup"],
        input(&with(96, &[0; 32])),
        Some(Error::VaultSetupInvalid),
        None,
    );
    let mut p = [0u8; 32];
    p[0] = 1;
    f.case(
        "fake-record public key: a negative field element (RFC 9496 A.2), not an encoding",
        &["Setup"],
        input(&with(96, &p)),
        Some(Error::VaultSetupInvalid),
        None,
    );
    let mut p = [0xffu8; 32];
    p[31] = 0x7f;
    f.case(
        "fake-record public key: a value of at least p, not an encoding",
        &["Setup"],
        input(&with(96, &p)),
        Some(Error::VaultSetupInvalid),
        None,
    );
    crate::vault_exchange::add(&mut f);
    f.finish()
}
