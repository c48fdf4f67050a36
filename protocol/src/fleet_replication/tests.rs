//! spec/fleet-replication.md §4 rule 2, step by step, on the envelope of [`super::rpc`].

use super::rpc::*;
use crate::Error;
use crate::cbor;
use crate::crypto::{Ed25519Signer, PublicKey, Signer};

struct Dir {
    keys: Vec<PublicKey>,
}
impl KeyDirectory for Dir {
    fn fleet_id(&self) -> &str {
        "fleet-a"
    }
    fn epoch(&self) -> u64 {
        3
    }
    fn node_key(&self, node: NodeId) -> Option<&PublicKey> {
        self.keys.get(usize::try_from(node).ok()?)
    }
}

fn setup() -> (Vec<Ed25519Signer>, Dir) {
    let signers: Vec<_> = (0..3u8).map(|i| Ed25519Signer::from_seed(&[i + 1; 32])).collect();
    let keys = signers.iter().map(|s| s.public_key().clone()).collect();
    (signers, Dir { keys })
}

/// `m` signed with `kind` as the text of its `kind` field, whatever that text is (the map
/// stays deterministic: only a value changes).
fn seal_kind(m: &RpcMessage, kind: &str, signer: &dyn Signer) -> Vec<u8> {
    let mut value = cbor::value_from_slice(&cbor::to_vec(m), &[]).unwrap();
    if let ciborium::Value::Map(entries) = &mut value {
        for (k, v) in entries.iter_mut() {
            if k.as_text() == Some("kind") {
                *v = ciborium::Value::Text(kind.into());
            }
        }
    }
    let mut bytes = Vec::new();
    ciborium::into_writer(&value, &mut bytes).unwrap();
    let sig = signer.sign(&bytes);
    cbor::to_vec(&SignedRpc { v: 1, msg: bytes, sig })
}

fn msg(from: NodeId, to: NodeId) -> RpcMessage {
    RpcMessage {
        v: 1,
        purpose: PURPOSE.into(),
        fleet: "fleet-a".into(),
        epoch: 3,
        from,
        to,
        kind: RpcKind::Vote,
        nonce: vec![7; 16],
        time_ms: 1_000_000,
        body: b"body".to_vec(),
    }
}

#[test]
fn valid_message_opens() {
    let (s, d) = setup();
    let m = msg(0, 1);
    assert_eq!(open(&seal(&m, &s[0]), &d, 1, 1_000_500, 2000), Ok(m));
}

#[test]
fn fleet_or_epoch_mismatch() {
    let (s, d) = setup();
    let mut m = msg(0, 1);
    m.fleet = "fleet-b".into();
    assert_eq!(open(&seal(&m, &s[0]), &d, 1, 1_000_000, 2000), Err(Error::FleetRpcFleetMismatch));
    let mut m = msg(0, 1);
    m.epoch = 2;
    assert_eq!(open(&seal(&m, &s[0]), &d, 1, 1_000_000, 2000), Err(Error::FleetRpcFleetMismatch));
}

#[test]
fn sender_not_in_key_set() {
    let (_, d) = setup();
    let outsider = Ed25519Signer::from_seed(&[9; 32]);
    let m = msg(7, 1);
    assert_eq!(open(&seal(&m, &outsider), &d, 1, 1_000_000, 2000), Err(Error::FleetRpcSenderUnknown));
}

#[test]
fn recipient_mismatch() {
    let (s, d) = setup();
    let m = msg(0, 2);
    assert_eq!(open(&seal(&m, &s[0]), &d, 1, 1_000_000, 2000), Err(Error::FleetRpcRecipientMismatch));
}

#[test]
fn signature_by_another_node_or_tampered() {
    let (s, d) = setup();
    // Node 2 claims to be node 0: a listed node cannot speak for another.
    let m = msg(0, 1);
    assert_eq!(open(&seal(&m, &s[2]), &d, 1, 1_000_000, 2000), Err(Error::FleetRpcSignatureInvalid));
    // A key outside the set claiming a listed id.
    let outsider = Ed25519Signer::from_seed(&[9; 32]);
    assert_eq!(open(&seal(&m, &outsider), &d, 1, 1_000_000, 2000), Err(Error::FleetRpcSignatureInvalid));
    // A flipped signature bit.
    let mut signed: SignedRpc = cbor::from_slice(&seal(&m, &s[0])).unwrap();
    signed.sig[0] ^= 1;
    assert_eq!(open(&cbor::to_vec(&signed), &d, 1, 1_000_000, 2000), Err(Error::FleetRpcSignatureInvalid));
}

#[test]
fn stale_or_future_time() {
    let (s, d) = setup();
    let m = msg(0, 1);
    let b = seal(&m, &s[0]);
    assert_eq!(open(&b, &d, 1, 1_002_001, 2000), Err(Error::FleetRpcStale));
    assert_eq!(open(&b, &d, 1, 997_999, 2000), Err(Error::FleetRpcStale));
    assert!(open(&b, &d, 1, 1_002_000, 2000).is_ok());
}

#[test]
fn reply_must_match_request() {
    let req = msg(0, 1);
    let mut rep = msg(1, 0);
    rep.kind = RpcKind::VoteReply;
    assert_eq!(check_reply(&req, &rep), Ok(()));
    let mut bad = rep.clone();
    bad.nonce = vec![8; 16];
    assert_eq!(check_reply(&req, &bad), Err(Error::FleetRpcReplyMismatch));
    let mut bad = rep.clone();
    bad.kind = RpcKind::AppendReply;
    assert_eq!(check_reply(&req, &bad), Err(Error::FleetRpcReplyMismatch));
    let mut bad = rep;
    bad.from = 2;
    assert_eq!(check_reply(&req, &bad), Err(Error::FleetRpcReplyMismatch));
}

#[test]
fn non_deterministic_encoding_is_rejected() {
    let (s, d) = setup();
    let m = msg(0, 1);
    let mut b = seal(&m, &s[0]);
    b.push(0);
    assert_eq!(open(&b, &d, 1, 1_000_000, 2000), Err(Error::CborTrailingBytes));
}

#[test]
fn schema_checks_of_step_1() {
    let (s, d) = setup();
    let m = msg(0, 1);
    assert_eq!(open(&seal_kind(&m, "gossip", &s[0]), &d, 1, 1_000_000, 2000), Err(Error::CborSchema));
    assert_eq!(
        open(&seal_kind(&m, "vote.reply.reply", &s[0]), &d, 1, 1_000_000, 2000),
        Err(Error::CborSchema)
    );
    let mut m = msg(0, 1);
    m.nonce.pop();
    assert_eq!(open(&seal(&m, &s[0]), &d, 1, 1_000_000, 2000), Err(Error::CborSchema));
    let mut m = msg(0, 1);
    m.purpose = "bkv fleet rpc ".into();
    assert_eq!(open(&seal(&m, &s[0]), &d, 1, 1_000_000, 2000), Err(Error::CborSchema));
    // A 65-byte signature is a schema failure, before the fleet check of step 2.
    let mut m = msg(0, 1);
    m.fleet = "fleet-b".into();
    let mut signed: SignedRpc = cbor::from_slice(&seal(&m, &s[0])).unwrap();
    signed.sig.push(0);
    assert_eq!(open(&cbor::to_vec(&signed), &d, 1, 1_000_000, 2000), Err(Error::CborSchema));
}

#[test]
fn every_kind_and_its_reply_is_an_rpc_kind() {
    for k in RpcKind::ALL.iter().filter(|k| !k.is_reply()).map(|k| k.as_str()) {
        assert!(is_rpc_kind(k));
        assert!(is_rpc_kind(&format!("{k}{REPLY_SUFFIX}")));
    }
    assert!(!is_rpc_kind(".reply"));
    assert!(!is_rpc_kind(""));
}
