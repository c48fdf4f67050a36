//! spec/vault.md end to end in process: client -> session -> vault server -> state machine.

mod common;

use bkv_protocol::Error;
use bkv_protocol::state_machine::StateMachine;
use bkv_protocol::vault::{BackupKey, RecordState, VaultStateMachine};
use common::*;

const RECORD: &[u8] = b"record-0123456789abcdef";

#[test]
fn register_then_recover_through_sessions() {
    let mut node = Node::new(1, 10);
    let mut client = Client::new(2, &node);
    let key = BackupKey::generate(&mut client.rng);
    assert_eq!(client.register(&mut node, RECORD, b"123456", &key).unwrap(), 10);
    let (remaining, outcome) = client.recover(&mut node, RECORD, b"123456");
    assert_eq!(remaining, Some(9));
    let (got, after) = expect_key(outcome);
    assert_eq!(got.as_bytes(), key.as_bytes());
    assert_eq!(after, 10);
    assert_eq!(node.state.status(RECORD).remaining, 10);
}

#[test]
fn wrong_code_decrements_by_exactly_one_and_right_code_resets() {
    let mut node = Node::new(3, 10);
    let mut client = Client::new(4, &node);
    let key = BackupKey::generate(&mut client.rng);
    client.register(&mut node, RECORD, b"123456", &key).unwrap();
    for expected in (7..=9).rev() {
        let (remaining, outcome) = client.recover(&mut node, RECORD, b"000000");
        assert_eq!(remaining, Some(expected));
        assert_eq!(expect_err(outcome), Error::VaultCodeInvalid);
        assert_eq!(node.state.status(RECORD).remaining, expected);
    }
    let (_, outcome) = client.recover(&mut node, RECORD, b"123456");
    let (got, after) = expect_key(outcome);
    assert_eq!(got.as_bytes(), key.as_bytes());
    assert_eq!(after, 10);
    assert_eq!(node.state.status(RECORD).remaining, 10);
}

#[test]
fn limit_th_wrong_code_destroys_the_record() {
    let limit = 3;
    let mut node = Node::new(5, limit);
    let mut client = Client::new(6, &node);
    let key = BackupKey::generate(&mut client.rng);
    client.register(&mut node, RECORD, b"123456", &key).unwrap();
    for i in 1..=limit {
        let (remaining, outcome) = client.recover(&mut node, RECORD, b"999999");
        assert_eq!(remaining, Some(limit - i));
        assert_eq!(expect_err(outcome), Error::VaultCodeInvalid);
    }
    assert_eq!(node.state.status(RECORD).state, RecordState::Locked);
    // The destroyed record's secrets are not in the state any more.
    let snap = node.state.snapshot();
    let restored = VaultStateMachine::restore(&snap).unwrap();
    assert_eq!(restored.status(RECORD).state, RecordState::Locked);
    let (remaining, outcome) = client.recover(&mut node, RECORD, b"123456");
    assert_eq!(remaining, None);
    assert_eq!(expect_err(outcome), Error::VaultRecordLocked);
}
