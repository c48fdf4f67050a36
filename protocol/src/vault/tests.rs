//! Unit tests of the vault (spec/vault.md): the state machine's rules on raw commands,
//! key wrapping, and the KSF parameters.

use super::state::{SEEN_RETENTION_SECS, VaultCommand, VaultOutput};
use super::*;
use crate::state_machine::StateMachine;

const REC: &[u8] = b"0123456789abcdef";

fn rid(n: u8) -> Vec<u8> {
    vec![n; 16]
}

fn register(n: u8, time: u64) -> VaultCommand {
    VaultCommand::Register {
        request_id: rid(n),
        time,
        record: REC.to_vec(),
        registration: vec![1; STORED_REGISTRATION_LEN],
        wrapped_key: vec![2; WRAPPED_KEY_LEN],
    }
}

fn attempt(n: u8, time: u64) -> VaultCommand {
    VaultCommand::AttemptStart { request_id: rid(n), time, record: REC.to_vec() }
}

fn apply(sm: &mut VaultStateMachine, c: &VaultCommand) -> Result<VaultOutput> {
    VaultOutput::decode(&sm.apply(&cbor::to_vec(c)))
}

#[test]
fn malformed_and_failing_commands_change_nothing() {
    let mut sm = VaultStateMachine::new(3);
    apply(&mut sm, &register(1, 100)).unwrap();
    let before = sm.snapshot();
    // Not CBOR, unknown variant, short request id, bad record id, bad wrapped key, exists.
    assert_eq!(VaultOutput::decode(&sm.apply(b"\xff")), Err(Error::CborMalformed));
    assert_eq!(VaultOutput::decode(&sm.apply(&cbor::to_vec(&"reset_everything"))), Err(Error::CborSchema));
    let short_id = VaultCommand::AttemptStart { request_id: vec![1; 15], time: 100, record: REC.to_vec() };
    assert_eq!(apply(&mut sm, &short_id), Err(Error::CborSchema));
    let bad_record = VaultCommand::AttemptStart { request_id: rid(9), time: 100, record: vec![0; 8] };
    assert_eq!(apply(&mut sm, &bad_record), Err(Error::VaultRecordIdInvalid));
    let mut bad_wrap = register(10, 100);
    if let VaultCommand::Register { wrapped_key, .. } = &mut bad_wrap {
        wrapped_key.push(0);
    }
    assert_eq!(apply(&mut sm, &bad_wrap), Err(Error::VaultWrappedKeyInvalid));
    let mut bad_reg = register(12, 100);
    if let VaultCommand::Register { registration, .. } = &mut bad_reg {
        registration.pop();
    }
    assert_eq!(apply(&mut sm, &bad_reg), Err(Error::VaultMessageInvalid));
    assert_eq!(apply(&mut sm, &register(11, 100)), Err(Error::VaultRecordExists));
    assert_eq!(sm.snapshot(), before);
    // A failed command does not use up its request id.
    assert!(apply(&mut sm, &attempt(11, 100)).is_ok());
}

#[test]
fn decrement_reset_and_lock() {
    let mut sm = VaultStateMachine::new(3);
    apply(&mut sm, &register(1, 100)).unwrap();
    let Ok(VaultOutput::Attempt { remaining: 2, generation: 1, registration: Some(_), wrapped_key: Some(_) }) =
        apply(&mut sm, &attempt(2, 100))
    else {
        panic!("first attempt")
    };
    let success =
        VaultCommand::AttemptSuccess { request_id: rid(3), time: 100, record: REC.to_vec(), generation: 1 };
    assert_eq!(apply(&mut sm, &success), Ok(VaultOutput::Released { remaining: 3 }));
    // A success for an older generation does not reset.
    apply(&mut sm, &attempt(4, 100)).unwrap();
    let stale =
        VaultCommand::AttemptSuccess { request_id: rid(5), time: 100, record: REC.to_vec(), generation: 0 };
    assert_eq!(apply(&mut sm, &stale), Ok(VaultOutput::Released { remaining: 0 }));
    assert_eq!(sm.status(REC).remaining, 2);
    apply(&mut sm, &attempt(6, 100)).unwrap();
    let Ok(VaultOutput::Attempt { remaining: 0, registration: Some(_), .. }) =
        apply(&mut sm, &attempt(7, 100))
    else {
        panic!("last attempt still gets the record")
    };
    assert_eq!(sm.status(REC).state, RecordState::Locked);
    // spec/vault.md §5.4: the record is destroyed, not only marked: neither the stored
    // registration (bytes 0x01) nor the wrapped key (bytes 0x02) is in the state any more.
    let snap = sm.snapshot();
    for secret in [vec![1u8; STORED_REGISTRATION_LEN], vec![2u8; WRAPPED_KEY_LEN]] {
        assert!(
            !snap.windows(secret.len()).any(|w| w == secret.as_slice()),
            "a destroyed secret is still held"
        );
    }
    let mut before = VaultStateMachine::new(3);
    apply(&mut before, &register(1, 100)).unwrap();
    let held = before.snapshot();
    assert!(
        held.windows(WRAPPED_KEY_LEN).any(|w| w == [2u8; WRAPPED_KEY_LEN]),
        "the check can see a held key"
    );
    assert_eq!(apply(&mut sm, &attempt(8, 100)), Err(Error::VaultRecordLocked));
    let del = VaultCommand::Delete { request_id: rid(9), time: 100, record: REC.to_vec(), generation: 1 };
    assert_eq!(apply(&mut sm, &del), Err(Error::VaultRecordChanged));
    // Re-registration of a locked id starts a new generation.
    apply(&mut sm, &register(10, 100)).unwrap();
    let Ok(VaultOutput::Attempt { generation: 2, remaining: 2, .. }) = apply(&mut sm, &attempt(11, 100))
    else {
        panic!("new generation")
    };
}

#[test]
fn unknown_ids_count_like_records_and_lock() {
    let mut sm = VaultStateMachine::new(2);
    assert_eq!(
        apply(&mut sm, &attempt(1, 100)),
        Ok(VaultOutput::Attempt { registration: None, wrapped_key: None, remaining: 1, generation: 0 })
    );
    assert_eq!(sm.status(REC).state, RecordState::Unregistered);
    apply(&mut sm, &attempt(2, 100)).unwrap();
    assert_eq!(apply(&mut sm, &attempt(3, 100)), Err(Error::VaultRecordLocked));
    // Registering an unregistered or locked id is allowed.
    apply(&mut sm, &register(4, 100)).unwrap();
    assert_eq!(sm.status(REC), RecordStatus { state: RecordState::Registered, remaining: 2 });
}

#[test]
fn replay_window_is_deterministic() {
    let mut sm = VaultStateMachine::new(10);
    apply(&mut sm, &attempt(1, 1000)).unwrap();
    assert_eq!(apply(&mut sm, &attempt(1, 1000)), Err(Error::SessionRequestReplayed));
    // Remembered for the whole retention window of log time...
    apply(&mut sm, &attempt(2, 1000 + SEEN_RETENTION_SECS)).unwrap();
    assert_eq!(apply(&mut sm, &attempt(1, 1000)), Err(Error::SessionRequestReplayed));
    // ...then forgotten, and anything that old is stale.
    apply(&mut sm, &attempt(3, 1001 + SEEN_RETENTION_SECS)).unwrap();
    assert_eq!(apply(&mut sm, &attempt(1, 1000)), Err(Error::SessionRequestStale));
    assert_eq!(apply(&mut sm, &attempt(4, 1000)), Err(Error::SessionRequestStale));
    assert!(apply(&mut sm, &attempt(5, 1001)).is_ok());
}

#[test]
fn same_commands_same_state_and_snapshot_round_trip() {
    let commands = [register(1, 100), attempt(2, 101), attempt(3, 102), attempt(4, 103)];
    let mut a = VaultStateMachine::new(5);
    let mut b = VaultStateMachine::new(5);
    let out_a: Vec<_> = commands.iter().map(|c| a.apply(&cbor::to_vec(c))).collect();
    let out_b: Vec<_> = commands.iter().map(|c| b.apply(&cbor::to_vec(c))).collect();
    assert_eq!(out_a, out_b);
    assert_eq!(a.snapshot(), b.snapshot());
    let mut c = VaultStateMachine::restore(&a.snapshot()).unwrap();
    assert_eq!(c.snapshot(), a.snapshot());
    assert_eq!(c.apply(&cbor::to_vec(&attempt(5, 104))), a.apply(&cbor::to_vec(&attempt(5, 104))));
    assert_eq!(c.apply(&cbor::to_vec(&attempt(2, 104))), a.apply(&cbor::to_vec(&attempt(2, 104))));
    assert_eq!(VaultStateMachine::restore(b"\x80").unwrap_err(), Error::CborSchema);
}

#[test]
fn query_record_status() {
    let mut sm = VaultStateMachine::new(4);
    apply(&mut sm, &register(1, 100)).unwrap();
    let q = cbor::to_vec(&VaultQuery::Record { record: REC.to_vec() });
    let status: RecordStatus = cbor::from_slice(&sm.query(&q)).unwrap();
    assert_eq!(status, RecordStatus { state: RecordState::Registered, remaining: 4 });
}

#[test]
fn wrap_unwrap_and_wrong_key() {
    let key = BackupKey::from_bytes([7; 32]);
    let export = [9u8; 64];
    let wrapped = wrap_backup_key(&export, "fleet", REC, &key);
    assert_eq!(wrapped.len(), WRAPPED_KEY_LEN);
    assert_eq!(unwrap_backup_key(&export, "fleet", REC, &wrapped).unwrap(), key);
    let other = [8u8; 64];
    for (e, fleet, rec, w) in [
        (&other[..], "fleet", REC, wrapped.clone()),
        (&export[..], "other", REC, wrapped.clone()),
        (&export[..], "fleet", b"fedcba9876543210".as_slice(), wrapped.clone()),
        (&export[..], "fleet", REC, wrapped[..47].to_vec()),
    ] {
        assert_eq!(unwrap_backup_key(e, fleet, rec, &w).unwrap_err(), Error::VaultWrappedKeyInvalid);
    }
}

#[test]
fn ksf_profiles_build() {
    assert!(KsfParams::PRODUCTION.argon2().is_ok());
    assert!(KsfParams::TEST.argon2().is_ok());
    assert_eq!(
        KsfParams { m_cost_kib: 1, t_cost: 1, p_cost: 1 }.argon2().unwrap_err(),
        Error::VaultMessageInvalid
    );
}
