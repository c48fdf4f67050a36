//! Authenticated node-to-node messages.
//!
//! spec/fleet-replication.md §4: every request and reply between nodes is a `SignedRpc`
//! whose `msg` (deterministic CBOR) is signed with the sender's node key from the
//! FleetKeySet. Receivers verify in the order of §4.2 and stop at the first failure.

use bkv_protocol::crypto::{PublicKey, Signer};
use bkv_protocol::{Error, cbor};
use serde::{Deserialize, Serialize};

use super::NodeId;

/// `purpose` value of every `RpcMessage` (domain separation for the node key).
pub const PURPOSE: &str = "bkv fleet rpc";

/// spec/fleet-replication.md §4 `SignedRpc`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignedRpc {
    /// Version, always 1.
    pub v: u64,
    /// Deterministic CBOR of [`RpcMessage`], signed as received.
    #[serde(with = "serde_bytes")]
    pub msg: Vec<u8>,
    /// Signature of `msg` by the sender's node key.
    #[serde(with = "serde_bytes")]
    pub sig: Vec<u8>,
}

/// spec/fleet-replication.md §4 `RpcMessage`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RpcMessage {
    /// Version, always 1.
    pub v: u64,
    /// Always [`PURPOSE`].
    pub purpose: String,
    /// Fleet id of the FleetKeySet.
    pub fleet: String,
    /// Epoch of the FleetKeySet.
    pub epoch: u64,
    /// Sender node id.
    pub from: NodeId,
    /// Recipient node id.
    pub to: NodeId,
    /// `append`, `vote`, `snapshot`, `propose`, `read`, `status`, or one of them + `.reply`.
    pub kind: String,
    /// 16 random bytes; a reply repeats the request's nonce.
    #[serde(with = "serde_bytes")]
    pub nonce: Vec<u8>,
    /// Sender's clock, unix milliseconds.
    pub time_ms: u64,
    /// The Raft RPC or forwarded command.
    #[serde(with = "serde_bytes")]
    pub body: Vec<u8>,
}

/// What a receiver knows about its fleet (from the FleetKeySet).
pub trait KeyDirectory {
    /// The fleet id.
    fn fleet_id(&self) -> &str;
    /// The epoch.
    fn epoch(&self) -> u64;
    /// The node key of `node`, if it is a node of the FleetKeySet.
    fn node_key(&self, node: NodeId) -> Option<&PublicKey>;
}

/// Sign `msg` with the sender's node key.
pub fn seal(msg: &RpcMessage, signer: &dyn Signer) -> Vec<u8> {
    let bytes = cbor::to_vec(msg);
    let sig = signer.sign(&bytes);
    cbor::to_vec(&SignedRpc { v: 1, msg: bytes, sig })
}

/// spec/fleet-replication.md §4.2 steps 1-6: verify a received `SignedRpc` addressed to `me`.
pub fn open(
    bytes: &[u8],
    dir: &dyn KeyDirectory,
    me: NodeId,
    now_ms: u64,
    window_ms: u64,
) -> Result<RpcMessage, Error> {
    // Step 1: deterministic CBOR of the CDDL.
    let signed: SignedRpc = cbor::from_slice(bytes)?;
    if signed.v != 1 {
        return Err(Error::CborSchema);
    }
    let msg: RpcMessage = cbor::from_slice(&signed.msg)?;
    if msg.v != 1 || msg.purpose != PURPOSE || msg.nonce.len() != 16 {
        return Err(Error::CborSchema);
    }
    // Step 2: fleet id and epoch.
    if msg.fleet != dir.fleet_id() || msg.epoch != dir.epoch() {
        return Err(Error::FleetRpcFleetMismatch);
    }
    // Step 3: the sender is a node of the FleetKeySet.
    let key = dir.node_key(msg.from).ok_or(Error::FleetRpcSenderUnknown)?;
    // Step 4: addressed to me.
    if msg.to != me {
        return Err(Error::FleetRpcRecipientMismatch);
    }
    // Step 5: signature over the bytes as received.
    if !key.verify(&signed.msg, &signed.sig) {
        return Err(Error::FleetRpcSignatureInvalid);
    }
    // Step 6: freshness window.
    if msg.time_ms.abs_diff(now_ms) > window_ms {
        return Err(Error::FleetRpcStale);
    }
    Ok(msg)
}

/// spec/fleet-replication.md §4.2 step 7: a reply matches its request.
pub fn check_reply(request: &RpcMessage, reply: &RpcMessage) -> Result<(), Error> {
    if reply.kind != format!("{}.reply", request.kind)
        || reply.nonce != request.nonce
        || reply.from != request.to
    {
        return Err(Error::FleetRpcReplyMismatch);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use bkv_protocol::crypto::Ed25519Signer;

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

    fn msg(from: NodeId, to: NodeId) -> RpcMessage {
        RpcMessage {
            v: 1,
            purpose: PURPOSE.into(),
            fleet: "fleet-a".into(),
            epoch: 3,
            from,
            to,
            kind: "vote".into(),
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
        assert_eq!(
            open(&cbor::to_vec(&signed), &d, 1, 1_000_000, 2000),
            Err(Error::FleetRpcSignatureInvalid)
        );
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
        rep.kind = "vote.reply".into();
        assert_eq!(check_reply(&req, &rep), Ok(()));
        let mut bad = rep.clone();
        bad.nonce = vec![8; 16];
        assert_eq!(check_reply(&req, &bad), Err(Error::FleetRpcReplyMismatch));
        let mut bad = rep.clone();
        bad.kind = "append.reply".into();
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
}
