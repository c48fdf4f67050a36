//! Authenticated node-to-node messages.
//!
//! spec/fleet-replication.md §4: every request and reply between nodes is a [`SignedRpc`]
//! whose `msg` (deterministic CBOR of an [`RpcMessage`]) is signed with the sender's node
//! key from the FleetKeySet ([`seal`]). Receivers verify in the order of §4 rule 2 and stop at
//! the first failure ([`open`], steps 1–6); a node that sent a request also checks the
//! reply against it ([`check_reply`], step 7).

use crate::crypto::{PublicKey, Signer};
use crate::{Error, cbor};
use serde::{Deserialize, Serialize};

/// A node id: node `i` is the `i`-th (0-based) node of the FleetKeySet
/// (spec/fleet-replication.md §2 rule 1), and its Raft node id.
pub type NodeId = u64;

/// `purpose` value of every `RpcMessage` (domain separation for the node key).
pub const PURPOSE: &str = "bkv fleet rpc";

/// spec/fleet-replication.md §4 `RpcKind`: a request kind, or a request kind followed by
/// [`REPLY_SUFFIX`]. On the wire it is the text of its name; any other text fails step 1
/// (`cbor.schema`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum RpcKind {
    /// Raft AppendEntries.
    #[serde(rename = "append")]
    Append,
    /// Raft RequestVote.
    #[serde(rename = "vote")]
    Vote,
    /// Raft InstallSnapshot.
    #[serde(rename = "snapshot")]
    Snapshot,
    /// A client command forwarded to the leader (§4 rule 5).
    #[serde(rename = "propose")]
    Propose,
    /// A client query forwarded to the leader (§4 rule 5).
    #[serde(rename = "read")]
    Read,
    /// A node's term and last log id (§6.3 step 1).
    #[serde(rename = "status")]
    Status,
    /// An HSM acknowledgement of a position (spec/hsm.md §4.3).
    #[serde(rename = "ack")]
    Ack,
    /// The reply to `append`.
    #[serde(rename = "append.reply")]
    AppendReply,
    /// The reply to `vote`.
    #[serde(rename = "vote.reply")]
    VoteReply,
    /// The reply to `snapshot`.
    #[serde(rename = "snapshot.reply")]
    SnapshotReply,
    /// The reply to `propose`.
    #[serde(rename = "propose.reply")]
    ProposeReply,
    /// The reply to `read`.
    #[serde(rename = "read.reply")]
    ReadReply,
    /// The reply to `status`.
    #[serde(rename = "status.reply")]
    StatusReply,
    /// The reply to `ack`.
    #[serde(rename = "ack.reply")]
    AckReply,
}

impl RpcKind {
    /// Every kind, requests first.
    pub const ALL: [RpcKind; 14] = [
        RpcKind::Append,
        RpcKind::Vote,
        RpcKind::Snapshot,
        RpcKind::Propose,
        RpcKind::Read,
        RpcKind::Status,
        RpcKind::Ack,
        RpcKind::AppendReply,
        RpcKind::VoteReply,
        RpcKind::SnapshotReply,
        RpcKind::ProposeReply,
        RpcKind::ReadReply,
        RpcKind::StatusReply,
        RpcKind::AckReply,
    ];

    /// The wire text.
    pub fn as_str(self) -> &'static str {
        match self {
            RpcKind::Append => "append",
            RpcKind::Vote => "vote",
            RpcKind::Snapshot => "snapshot",
            RpcKind::Propose => "propose",
            RpcKind::Read => "read",
            RpcKind::Status => "status",
            RpcKind::Ack => "ack",
            RpcKind::AppendReply => "append.reply",
            RpcKind::VoteReply => "vote.reply",
            RpcKind::SnapshotReply => "snapshot.reply",
            RpcKind::ProposeReply => "propose.reply",
            RpcKind::ReadReply => "read.reply",
            RpcKind::StatusReply => "status.reply",
            RpcKind::AckReply => "ack.reply",
        }
    }

    /// The kind whose wire text is `text`.
    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == text)
    }

    /// The kind of the reply to a request of this kind; `None` for a reply kind.
    pub fn reply(self) -> Option<Self> {
        Self::parse(&format!("{}{REPLY_SUFFIX}", self.as_str()))
    }

    /// Whether this is a reply kind.
    pub fn is_reply(self) -> bool {
        self.as_str().ends_with(REPLY_SUFFIX)
    }
}

impl core::fmt::Display for RpcKind {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a reply's kind adds to its request's kind.
pub const REPLY_SUFFIX: &str = ".reply";

/// W, the default freshness window of §4 rule 2 step 6, in milliseconds.
pub const DEFAULT_WINDOW_MS: u64 = 2000;

/// spec/fleet-replication.md §4 `SignedRpc`:
///
/// ```cddl
/// SignedRpc = {
///   "v": 1,
///   "msg": bstr .cbor RpcMessage,   ; deterministic CBOR, signed as received
///   "sig": bstr .size 64,           ; Ed25519 signature of "msg" by the sender's node key
/// }
/// ```
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

/// spec/fleet-replication.md §4 `RpcMessage`:
///
/// ```cddl
/// RpcMessage = {
///   "v": 1,
///   "purpose": "bkv fleet rpc",     ; domain separation for the node key
///   "fleet": tstr,                  ; fleet_id of the FleetKeySet
///   "epoch": uint,                  ; epoch of the FleetKeySet
///   "from": uint,                   ; sender's node id (§2 rule 1)
///   "to": uint,                     ; recipient's node id
///   "kind": RpcKind,
///   "nonce": bstr .size 16,         ; random per request; a reply repeats the request's nonce
///   "time_ms": uint,                ; sender's clock, unix milliseconds
///   "body": bstr,                   ; the Raft RPC or forwarded command (opaque here)
/// }
/// ```
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
    /// What the message is.
    pub kind: RpcKind,
    /// 16 random bytes; a reply repeats the request's nonce.
    #[serde(with = "serde_bytes")]
    pub nonce: Vec<u8>,
    /// Sender's clock, unix milliseconds.
    pub time_ms: u64,
    /// The Raft RPC or forwarded command.
    #[serde(with = "serde_bytes")]
    pub body: Vec<u8>,
}

/// Whether `kind` is the wire text of an `RpcKind` of spec/fleet-replication.md §4.
pub fn is_rpc_kind(kind: &str) -> bool {
    RpcKind::parse(kind).is_some()
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

/// Sign `msg` with the sender's node key: the bytes of a `SignedRpc`.
pub fn seal(msg: &RpcMessage, signer: &dyn Signer) -> Vec<u8> {
    let bytes = cbor::to_vec(msg);
    let sig = signer.sign(&bytes);
    cbor::to_vec(&SignedRpc { v: 1, msg: bytes, sig })
}

/// spec/fleet-replication.md §4 rule 2 steps 1–6: verify a received `SignedRpc` addressed to
/// `me`, with the receiver's clock `now_ms` and the window W `window_ms`.
pub fn open(
    bytes: &[u8],
    dir: &dyn KeyDirectory,
    me: NodeId,
    now_ms: u64,
    window_ms: u64,
) -> Result<RpcMessage, Error> {
    // Step 1: deterministic CBOR of the CDDL, first SignedRpc, then msg.
    let signed: SignedRpc = cbor::from_slice(bytes)?;
    if signed.v != 1 || signed.sig.len() != 64 {
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
    // Step 6: freshness window, inclusive.
    if msg.time_ms.abs_diff(now_ms) > window_ms {
        return Err(Error::FleetRpcStale);
    }
    Ok(msg)
}

/// spec/fleet-replication.md §4 rule 2 step 7: an opened `reply` answers `request`: its kind is
/// the request's + `.reply`, it comes from the node the request went to, with its nonce.
pub fn check_reply(request: &RpcMessage, reply: &RpcMessage) -> Result<(), Error> {
    if request.kind.reply() != Some(reply.kind) || reply.nonce != request.nonce || reply.from != request.to {
        return Err(Error::FleetRpcReplyMismatch);
    }
    Ok(())
}
