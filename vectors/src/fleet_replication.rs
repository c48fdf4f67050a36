//! Vectors for spec/fleet-replication.md §4 rule 2 (a node verifying a node-to-node
//! `SignedRpc`, and a reply against its request), operation `fleet_rpc_open`. The node keys
//! come from fixed seeds; each invalid case is the valid message with one thing changed,
//! its comment names the step of §4 rule 2 it breaks, and cases that break two steps check that
//! the earlier step is the one reported.

use crate::cases;
use crate::format::{Case, FileBuilder, VectorFile, map};
use bkv_protocol::Error;
use bkv_protocol::cbor;
use bkv_protocol::crypto::{Ed25519Signer, Signer, sha256};
use bkv_protocol::fleet_replication::rpc::{
    DEFAULT_WINDOW_MS, NodeId, PURPOSE, RpcKind, RpcMessage, SignedRpc, seal,
};
use ciborium::Value;
use rand_chacha::ChaCha20Rng;
use rand_core::{RngCore, SeedableRng};
use serde_json::json;
use std::collections::BTreeMap;

const NOTES: &[(&str, &str)] = &[
    ("Valid", "a message the receiver accepts"),
    ("Encoding", "step 1: the SignedRpc or its msg is not the CDDL structure in deterministic CBOR"),
    ("Fleet", "step 2: another fleet id or epoch"),
    ("Sender", "step 3: the sender is not a node of the FleetKeySet"),
    ("Recipient", "step 4: addressed to another node"),
    ("Signature", "step 5: the signature does not verify with the sender's node key"),
    ("Time", "step 6: the window W around the receiver's clock"),
    ("Reply", "step 7: a reply checked against the request the receiver sent"),
    ("Order", "the message breaks two steps; the earlier one is reported"),
];

const FLEET: &str = "vectors.bkv.example/vault";
const EPOCH: u64 = 3;
/// The receiver: node 1 of a three-node fleet.
const ME: NodeId = 1;
const NOW_MS: u64 = 1_800_000_000_000;

/// Ed25519 (-19) group order L, little-endian (RFC 8032 §5.1).
const ED25519_L: [u8; 32] = [
    0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9, 0xde, 0x14, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10,
];

fn node_signer(label: &str) -> Ed25519Signer {
    Ed25519Signer::from_seed(&sha256(format!("bkv vectors: fleet rpc {label}").as_bytes()))
}

/// The request this node sent, for a reply case (§4 rule 2 step 7).
struct Request<'a> {
    kind: RpcKind,
    to: NodeId,
    nonce: &'a [u8],
}

struct Ctx {
    nodes: Vec<Ed25519Signer>,
}

impl Ctx {
    fn input(
        &self,
        rpc: &[u8],
        now_ms: u64,
        request: Option<&Request<'_>>,
    ) -> BTreeMap<String, serde_json::Value> {
        let keys: Vec<_> = self.nodes.iter().map(|s| hex::encode(&s.public_key().key)).collect();
        map([
            ("fleet_id", json!(FLEET)),
            ("epoch", json!(EPOCH)),
            ("node_keys", json!(keys)),
            ("node_id", json!(ME)),
            ("now_ms", json!(now_ms)),
            ("window_ms", json!(DEFAULT_WINDOW_MS)),
            ("rpc", json!(hex::encode(rpc))),
            (
                "request",
                request.map_or(
                    serde_json::Value::Null,
                    |r| json!({ "kind": r.kind, "to": r.to, "nonce": hex::encode(r.nonce) }),
                ),
            ),
        ])
    }
}

fn output(m: &RpcMessage) -> BTreeMap<String, serde_json::Value> {
    map([
        ("from", json!(m.from)),
        ("kind", json!(m.kind)),
        ("nonce", json!(hex::encode(&m.nonce))),
        ("time_ms", json!(m.time_ms)),
        ("body", json!(hex::encode(&m.body))),
    ])
}

/// A `SignedRpc` around `msg` bytes as given, signed by `signer`.
fn signed_raw(msg: Vec<u8>, signer: &dyn Signer) -> Vec<u8> {
    let sig = signer.sign(&msg);
    cbor::to_vec(&SignedRpc { v: 1, msg, sig })
}

/// The entries of `m`'s map, in deterministic order.
fn entries(m: &RpcMessage) -> Vec<(Value, Value)> {
    match cbor::value_from_slice(&cbor::to_vec(m), &[]).expect("decodes") {
        Value::Map(e) => e,
        _ => unreachable!("RpcMessage is a map"),
    }
}

/// Write `entries` as a map in the order given (no canonicalization: may be non-deterministic).
fn raw_map(entries: Vec<(Value, Value)>) -> Vec<u8> {
    let mut out = Vec::new();
    ciborium::into_writer(&Value::Map(entries), &mut out).expect("writes");
    out
}

fn set(entries: &mut [(Value, Value)], key: &str, value: Value) {
    let slot = entries.iter_mut().find(|(k, _)| k.as_text() == Some(key)).expect("field exists");
    slot.1 = value;
}

/// What every case of this file is built from: the fleet's node keys, a key outside the
/// fleet, the valid vote request of node 0 to node 1 (`base`), and the vote request node 1
/// sent to node 2 with node 2's valid reply (§4 rule 2 step 7). Nonces come from one seeded
/// stream, drawn in file order.
struct World {
    ctx: Ctx,
    outsider: Ed25519Signer,
    rng: ChaCha20Rng,
    base: RpcMessage,
    valid: Vec<u8>,
    signed: SignedRpc,
    request_nonce: Vec<u8>,
    reply: RpcMessage,
}

impl World {
    fn new() -> Self {
        let ctx = Ctx { nodes: (0..3).map(|i| node_signer(&format!("node {i}"))).collect() };
        let mut rng = ChaCha20Rng::seed_from_u64(0xf1ee7);
        let base = RpcMessage {
            v: 1,
            purpose: PURPOSE.into(),
            fleet: FLEET.into(),
            epoch: EPOCH,
            from: 0,
            to: ME,
            kind: RpcKind::Vote,
            nonce: draw(&mut rng),
            time_ms: NOW_MS - 150,
            body: b"raft vote request (opaque here)".to_vec(),
        };
        let valid = seal(&base, &ctx.nodes[0]);
        let signed: SignedRpc = cbor::from_slice(&valid).expect("decodes");
        let request_nonce = draw(&mut rng);
        let mut reply = base.clone();
        reply.from = 2;
        reply.kind = RpcKind::VoteReply;
        reply.nonce = request_nonce.clone();
        reply.body = b"raft vote reply (opaque here)".to_vec();
        World { ctx, outsider: node_signer("outsider"), rng, base, valid, signed, request_nonce, reply }
    }

    /// The next nonce of the stream.
    fn nonce(&mut self) -> Vec<u8> {
        draw(&mut self.rng)
    }

    /// `base` with one change.
    fn with(&self, change: impl Fn(&mut RpcMessage)) -> RpcMessage {
        let mut m = self.base.clone();
        change(&mut m);
        m
    }

    /// `base` with one change, sealed by node 0 (the sender it claims to be).
    fn sealed(&self, change: impl Fn(&mut RpcMessage)) -> Vec<u8> {
        seal(&self.with(change), &self.ctx.nodes[0])
    }

    /// The input of a request arriving at the receiver's clock.
    fn input(&self, rpc: &[u8]) -> BTreeMap<String, serde_json::Value> {
        self.ctx.input(rpc, NOW_MS, None)
    }

    /// The input of a reply to node 1's vote request to node 2, sealed by `signer`, at `now`.
    fn reply_input(&self, m: &RpcMessage, signer: usize, now: u64) -> BTreeMap<String, serde_json::Value> {
        let request = Request { kind: RpcKind::Vote, to: 2, nonce: &self.request_nonce };
        self.ctx.input(&seal(m, &self.ctx.nodes[signer]), now, Some(&request))
    }

    /// `base`'s map with `text` as its `kind`, signed by node 0: a kind that is no
    /// `RpcKind` cannot be an `RpcMessage`.
    fn with_kind_text(&self, text: &str) -> Vec<u8> {
        let mut e = entries(&self.base);
        set(&mut e, "kind", Value::Text(text.into()));
        signed_raw(raw_map(e), &self.ctx.nodes[0])
    }

    /// `entries` written as a map as given and signed by node 0.
    fn signed_map(&self, e: Vec<(Value, Value)>) -> Vec<u8> {
        signed_raw(cbor::value_to_vec(&Value::Map(e)), &self.ctx.nodes[0])
    }

    /// The valid `SignedRpc` with its signature cut to 63 bytes.
    fn short_sig(&self) -> Vec<u8> {
        let mut sig = self.signed.sig.clone();
        sig.truncate(63);
        sig
    }

    /// `base`'s map with its keys in reverse order.
    fn unsorted(&self) -> Vec<u8> {
        let mut e = entries(&self.base);
        e.reverse();
        raw_map(e)
    }

    /// The valid `SignedRpc` with one change.
    fn signed_with(&self, change: impl Fn(&mut SignedRpc)) -> Vec<u8> {
        let mut s = self.signed.clone();
        change(&mut s);
        cbor::to_vec(&s)
    }
}

fn draw(rng: &mut ChaCha20Rng) -> Vec<u8> {
    let mut n = vec![0u8; 16];
    rng.fill_bytes(&mut n);
    n
}

/// The message sent `dt` ms from the receiver's clock: an append request from node 2.
fn append_at(w: &World, dt: i64) -> Case {
    let m = w.with(|m| {
        m.kind = RpcKind::Append;
        m.from = 2;
        m.time_ms = NOW_MS.checked_add_signed(dt).expect("in range");
    });
    Case::valid(&["Valid", "Time"], w.input(&seal(&m, &w.ctx.nodes[2])), Some(output(&m)))
}

/// A message sent `dt` ms from the receiver's clock, signed by node 0.
fn stale_at(w: &World, dt: i64) -> Case {
    let rpc = w.sealed(|m| m.time_ms = NOW_MS.checked_add_signed(dt).expect("in range"));
    Case::invalid(&["Time"], w.input(&rpc), Error::FleetRpcStale)
}

cases! { World, CASES;
    /// a vote request from node 0 to node 1
    fn valid_vote_request(w) {
        Case::valid(&["Valid"], w.input(&w.valid), Some(output(&w.base)))
    }
    /// an append request sent exactly W = 2000 ms before the receiver's clock
    fn valid_at_minus_w(w) {
        append_at(w, -(DEFAULT_WINDOW_MS as i64))
    }
    /// an append request sent exactly W = 2000 ms after the receiver's clock
    fn valid_at_plus_w(w) {
        append_at(w, DEFAULT_WINDOW_MS as i64)
    }
    /// a propose request with an empty body
    fn valid_propose_empty_body(w) {
        let m = w.with(|m| {
            m.kind = RpcKind::Propose;
            m.body = Vec::new();
        });
        Case::valid(&["Valid"], w.input(&seal(&m, &w.ctx.nodes[0])), Some(output(&m)))
    }
    /// step 1: SignedRpc version 2
    fn signed_rpc_v2(w) {
        Case::invalid(&["Encoding"], w.input(&w.signed_with(|s| s.v = 2)), Error::CborSchema)
    }
    /// step 1: RpcMessage version 2, signed by the sender
    fn rpc_message_v2(w) {
        Case::invalid(&["Encoding"], w.input(&w.sealed(|m| m.v = 2)), Error::CborSchema)
    }
    /// step 1: purpose "bkv fleet rpc v2"
    fn purpose_v2(w) {
        Case::invalid(&["Encoding"], w.input(&w.sealed(|m| m.purpose = "bkv fleet rpc v2".into())), Error::CborSchema)
    }
    /// step 1: kind "gossip" is not an RpcKind
    fn kind_gossip(w) {
        Case::invalid(&["Encoding"], w.input(&w.with_kind_text("gossip")), Error::CborSchema)
    }
    /// step 1: kind "vote.reply.reply" is not an RpcKind
    fn kind_reply_of_reply(w) {
        Case::invalid(&["Encoding"], w.input(&w.with_kind_text("vote.reply.reply")), Error::CborSchema)
    }
    /// step 1: a 15-byte nonce
    fn nonce_15_bytes(w) {
        Case::invalid(&["Encoding"], w.input(&w.sealed(|m| m.nonce.truncate(15))), Error::CborSchema)
    }
    /// step 1: a 17-byte nonce
    fn nonce_17_bytes(w) {
        Case::invalid(&["Encoding"], w.input(&w.sealed(|m| m.nonce.push(0))), Error::CborSchema)
    }
    /// step 1: a 63-byte sig (`.size 64` is part of the CDDL)
    fn sig_63_bytes(w) {
        let sig = w.short_sig();
        Case::invalid(&["Encoding"], w.input(&w.signed_with(|s| s.sig = sig.clone())), Error::CborSchema)
    }
    /// step 1: a 63-byte sig around a msg with its keys in reverse order: SignedRpc is checked
    /// before msg
    fn sig_63_bytes_before_unsorted_msg(w) {
        let rpc = cbor::to_vec(&SignedRpc { v: 1, msg: w.unsorted(), sig: w.short_sig() });
        Case::invalid(&["Encoding", "Order"], w.input(&rpc), Error::CborSchema)
    }
    /// step 1: an unknown field in SignedRpc
    fn unknown_field_in_signed_rpc(w) {
        let mut outer = match cbor::value_from_slice(&w.valid, &[]).expect("decodes") {
            Value::Map(e) => e,
            _ => unreachable!("SignedRpc is a map"),
        };
        outer.push((Value::Text("zz".into()), Value::Integer(0.into())));
        Case::invalid(&["Encoding"], w.input(&cbor::value_to_vec(&Value::Map(outer))), Error::CborSchema)
    }
    /// step 1: an unknown field in RpcMessage, signed by the sender
    fn unknown_field_in_rpc_message(w) {
        let mut e = entries(&w.base);
        e.push((Value::Text("prio".into()), Value::Integer(1.into())));
        Case::invalid(&["Encoding"], w.input(&w.signed_map(e)), Error::CborSchema)
    }
    /// step 1 before step 2: an unknown field in an RpcMessage for another fleet
    fn unknown_field_before_fleet(w) {
        let mut e = entries(&w.with(|m| m.fleet = "other.example/vault".into()));
        e.push((Value::Text("prio".into()), Value::Integer(1.into())));
        Case::invalid(&["Encoding", "Order"], w.input(&w.signed_map(e)), Error::CborSchema)
    }
    /// step 1: RpcMessage without body
    fn no_body(w) {
        let mut e = entries(&w.base);
        e.retain(|(k, _)| k.as_text() != Some("body"));
        Case::invalid(&["Encoding"], w.input(&w.signed_map(e)), Error::CborSchema)
    }
    /// step 1: from is -1, not a uint
    fn from_negative(w) {
        let mut e = entries(&w.base);
        set(&mut e, "from", Value::Integer((-1).into()));
        Case::invalid(&["Encoding"], w.input(&w.signed_map(e)), Error::CborSchema)
    }
    /// step 1: msg is the RpcMessage map itself, not a byte string holding it
    fn msg_inline_map(w) {
        let inline = cbor::value_to_vec(&Value::Map(vec![
            (Value::Text("v".into()), Value::Integer(1.into())),
            (Value::Text("msg".into()), Value::Map(entries(&w.base))),
            (Value::Text("sig".into()), Value::Bytes(w.signed.sig.clone())),
        ]));
        Case::invalid(&["Encoding"], w.input(&inline), Error::CborSchema)
    }
    /// step 1: a byte after the SignedRpc
    fn trailing_byte_outer(w) {
        let mut trailing = w.valid.clone();
        trailing.push(0);
        Case::invalid(&["Encoding"], w.input(&trailing), Error::CborTrailingBytes)
    }
    /// step 1: a byte after the RpcMessage inside msg, signed by the sender
    fn trailing_byte_inner(w) {
        let mut inner = cbor::to_vec(&w.base);
        inner.push(0);
        Case::invalid(&["Encoding"], w.input(&signed_raw(inner, &w.ctx.nodes[0])), Error::CborTrailingBytes)
    }
    /// step 1: SignedRpc as an indefinite-length map
    fn indefinite_length_map(w) {
        let mut indefinite = w.valid.clone();
        assert_eq!(indefinite[0], 0xa3, "a map of three");
        indefinite[0] = 0xbf;
        indefinite.push(0xff);
        Case::invalid(&["Encoding"], w.input(&indefinite), Error::CborIndefiniteLength)
    }
    /// step 1: epoch 3 as a one-byte argument (0x1803) in msg, signed by the sender
    fn non_minimal_epoch(w) {
        let canonical = cbor::to_vec(&w.base);
        let needle = b"\x65epoch\x03";
        let at = canonical.windows(needle.len()).position(|x| x == needle).expect("epoch 3 is encoded");
        let mut long = canonical[..at + 6].to_vec();
        long.extend_from_slice(&[0x18, 0x03]);
        long.extend_from_slice(&canonical[at + needle.len()..]);
        Case::invalid(&["Encoding"], w.input(&signed_raw(long, &w.ctx.nodes[0])), Error::CborNonMinimal)
    }
    /// step 1: RpcMessage keys in reverse order, signed by the sender
    fn unsorted_keys(w) {
        Case::invalid(&["Encoding"], w.input(&signed_raw(w.unsorted(), &w.ctx.nodes[0])), Error::CborMapUnsorted)
    }
    /// step 1: time_ms as a double, signed by the sender
    fn time_as_float(w) {
        let mut e = entries(&w.base);
        set(&mut e, "time_ms", Value::Float((NOW_MS - 150) as f64));
        Case::invalid(&["Encoding"], w.input(&signed_raw(raw_map(e), &w.ctx.nodes[0])), Error::CborFloat)
    }
    /// step 2: another fleet id
    fn other_fleet(w) {
        let rpc = w.sealed(|m| m.fleet = "other.example/vault".into());
        Case::invalid(&["Fleet"], w.input(&rpc), Error::FleetRpcFleetMismatch)
    }
    /// step 2: the previous epoch
    fn previous_epoch(w) {
        Case::invalid(&["Fleet"], w.input(&w.sealed(|m| m.epoch = EPOCH - 1)), Error::FleetRpcFleetMismatch)
    }
    /// step 2 before step 3: the next epoch, from node 7 (signed by a key outside the fleet)
    fn next_epoch_before_sender(w) {
        let m = w.with(|m| {
            m.epoch = EPOCH + 1;
            m.from = 7;
        });
        Case::invalid(&["Fleet", "Order"], w.input(&seal(&m, &w.outsider)), Error::FleetRpcFleetMismatch)
    }
    /// step 3: from node 3 of a three-node fleet (ids 0 to 2), signed by its own key
    fn sender_outside_fleet(w) {
        let m = w.with(|m| m.from = 3);
        Case::invalid(&["Sender"], w.input(&seal(&m, &w.outsider)), Error::FleetRpcSenderUnknown)
    }
    /// step 3 before step 4: from node 2^64-1, to node 2
    fn sender_before_recipient(w) {
        let m = w.with(|m| {
            m.from = u64::MAX;
            m.to = 2;
        });
        Case::invalid(&["Sender", "Order"], w.input(&seal(&m, &w.outsider)), Error::FleetRpcSenderUnknown)
    }
    /// step 4: addressed to node 2
    fn other_recipient(w) {
        Case::invalid(&["Recipient"], w.input(&w.sealed(|m| m.to = 2)), Error::FleetRpcRecipientMismatch)
    }
    /// step 4 before step 5: addressed to node 0, from node 0, signed by node 2
    fn recipient_before_signature(w) {
        let m = w.with(|m| m.to = 0);
        let rpc = seal(&m, &w.ctx.nodes[2]);
        Case::invalid(&["Recipient", "Order"], w.input(&rpc), Error::FleetRpcRecipientMismatch)
    }
    /// step 5: node 2 signs a message that claims to be from node 0
    fn signed_by_another_node(w) {
        let rpc = seal(&w.base, &w.ctx.nodes[2]);
        Case::invalid(&["Signature"], w.input(&rpc), Error::FleetRpcSignatureInvalid)
    }
    /// step 5: a key outside the fleet signs a message that claims to be from node 0
    fn signed_by_outsider(w) {
        let rpc = seal(&w.base, &w.outsider);
        Case::invalid(&["Signature"], w.input(&rpc), Error::FleetRpcSignatureInvalid)
    }
    /// step 5: the first signature bit flipped
    fn signature_bit_flipped(w) {
        let rpc = w.signed_with(|s| s.sig[0] ^= 1);
        Case::invalid(&["Signature"], w.input(&rpc), Error::FleetRpcSignatureInvalid)
    }
    /// step 5: the body's first byte changed after signing ("Raft vote request")
    fn body_changed_after_signing(w) {
        let body = w.base.body.clone();
        let rpc = w.signed_with(|s| {
            let at = s.msg.windows(body.len()).position(|x| x == body).expect("body is in msg");
            s.msg[at] ^= 0x20;
        });
        Case::invalid(&["Signature"], w.input(&rpc), Error::FleetRpcSignatureInvalid)
    }
    /// step 5: S replaced by S + L, which RFC 8032 §5.1.7 verification rejects (S < L)
    fn s_plus_l(w) {
        let rpc = w.signed_with(|s| {
            let mut carry = 0u16;
            for (b, l) in s.sig[32..].iter_mut().zip(ED25519_L) {
                let sum = u16::from(*b) + u16::from(l) + carry;
                *b = sum as u8;
                carry = sum >> 8;
            }
            assert_eq!(carry, 0, "S + L fits in 32 bytes");
        });
        Case::invalid(&["Signature"], w.input(&rpc), Error::FleetRpcSignatureInvalid)
    }
    /// step 5: an all-zero signature
    fn zero_signature(w) {
        let rpc = w.signed_with(|s| s.sig = vec![0; 64]);
        Case::invalid(&["Signature"], w.input(&rpc), Error::FleetRpcSignatureInvalid)
    }
    /// step 5 before step 6: a minute old and signed by node 2
    fn signature_before_time(w) {
        let m = w.with(|m| m.time_ms = NOW_MS - 60_000);
        let rpc = seal(&m, &w.ctx.nodes[2]);
        Case::invalid(&["Signature", "Order"], w.input(&rpc), Error::FleetRpcSignatureInvalid)
    }
    /// step 6: sent 2001 ms before the receiver's clock
    fn stale_before(w) {
        stale_at(w, -(DEFAULT_WINDOW_MS as i64) - 1)
    }
    /// step 6: sent 2001 ms after the receiver's clock
    fn stale_after(w) {
        stale_at(w, DEFAULT_WINDOW_MS as i64 + 1)
    }
    /// step 6: time_ms 0
    fn time_zero(w) {
        Case::invalid(&["Time"], w.input(&w.sealed(|m| m.time_ms = 0)), Error::FleetRpcStale)
    }
    /// step 7: node 2's vote.reply to node 1's vote request, with its nonce
    fn valid_reply(w) {
        Case::valid(&["Valid", "Reply"], w.reply_input(&w.reply, 2, NOW_MS), Some(output(&w.reply)))
    }
    /// step 7: an append.reply to a vote request
    fn reply_of_another_kind(w) {
        let m = RpcMessage { kind: RpcKind::AppendReply, ..w.reply.clone() };
        Case::invalid(&["Reply"], w.reply_input(&m, 2, NOW_MS), Error::FleetRpcReplyMismatch)
    }
    /// step 7: a vote request (not vote.reply) in answer to a vote request
    fn request_as_reply(w) {
        let m = RpcMessage { kind: RpcKind::Vote, ..w.reply.clone() };
        Case::invalid(&["Reply"], w.reply_input(&m, 2, NOW_MS), Error::FleetRpcReplyMismatch)
    }
    /// step 7: a vote.reply with another nonce
    fn reply_with_another_nonce(w) {
        let m = RpcMessage { nonce: w.nonce(), ..w.reply.clone() };
        Case::invalid(&["Reply"], w.reply_input(&m, 2, NOW_MS), Error::FleetRpcReplyMismatch)
    }
    /// step 7: a vote.reply with the request's nonce from node 0, though the request went to node 2
    fn reply_from_another_node(w) {
        let m = RpcMessage { from: 0, ..w.reply.clone() };
        Case::invalid(&["Reply"], w.reply_input(&m, 0, NOW_MS), Error::FleetRpcReplyMismatch)
    }
    /// step 6 before step 7: a vote.reply with another nonce, 2001 ms old
    fn time_before_reply(w) {
        let m = RpcMessage { nonce: w.nonce(), ..w.reply.clone() };
        let now = w.reply.time_ms + DEFAULT_WINDOW_MS + 1;
        Case::invalid(&["Time", "Reply", "Order"], w.reply_input(&m, 2, now), Error::FleetRpcStale)
    }
}

/// The vector file of spec/fleet-replication.md.
pub fn generate() -> VectorFile {
    let mut f = FileBuilder::new("fleet_replication", "spec/fleet-replication.md", NOTES);
    f.group("fleet_rpc_open", "§4 rule 2");
    f.cases(&mut World::new(), CASES);
    f.finish()
}
