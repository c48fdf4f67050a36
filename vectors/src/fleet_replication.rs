//! Vectors for spec/fleet-replication.md §4.2 (a node verifying a node-to-node
//! `SignedRpc`, and a reply against its request), operation `fleet_rpc_open`. The node keys
//! come from fixed seeds; each invalid case is the valid message with one thing changed,
//! its comment names the step of §4.2 it breaks, and cases that break two steps check that
//! the earlier step is the one reported.

use crate::format::{FileBuilder, VectorFile, map};
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

/// The request this node sent, for a reply case (§4.2 step 7).
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

/// The vector file of spec/fleet-replication.md.
pub fn generate() -> VectorFile {
    let mut f = FileBuilder::new("fleet_replication", "spec/fleet-replication.md", NOTES);
    let ctx = Ctx { nodes: (0..3).map(|i| node_signer(&format!("node {i}"))).collect() };
    let outsider = node_signer("outsider");
    let mut rng = ChaCha20Rng::seed_from_u64(0xf1ee7);
    let mut nonce = || {
        let mut n = vec![0u8; 16];
        rng.fill_bytes(&mut n);
        n
    };
    let base = RpcMessage {
        v: 1,
        purpose: PURPOSE.into(),
        fleet: FLEET.into(),
        epoch: EPOCH,
        from: 0,
        to: ME,
        kind: RpcKind::Vote,
        nonce: nonce(),
        time_ms: NOW_MS - 150,
        body: b"raft vote request (opaque here)".to_vec(),
    };
    let with = |change: &dyn Fn(&mut RpcMessage)| {
        let mut m = base.clone();
        change(&mut m);
        m
    };
    let valid = seal(&base, &ctx.nodes[0]);
    let inp = |rpc: &[u8]| ctx.input(rpc, NOW_MS, None);

    f.group("fleet_rpc_open", "§4.2");
    f.case("a vote request from node 0 to node 1", &["Valid"], inp(&valid), None, Some(output(&base)));
    for (dt, comment) in [
        (
            -(DEFAULT_WINDOW_MS as i64),
            "an append request sent exactly W = 2000 ms before the receiver's clock",
        ),
        (DEFAULT_WINDOW_MS as i64, "an append request sent exactly W = 2000 ms after the receiver's clock"),
    ] {
        let m = with(&|m| {
            m.kind = RpcKind::Append;
            m.from = 2;
            m.time_ms = NOW_MS.checked_add_signed(dt).expect("in range");
        });
        f.case(comment, &["Valid", "Time"], inp(&seal(&m, &ctx.nodes[2])), None, Some(output(&m)));
    }
    let m = with(&|m| {
        m.kind = RpcKind::Propose;
        m.body = Vec::new();
    });
    f.case(
        "a propose request with an empty body",
        &["Valid"],
        inp(&seal(&m, &ctx.nodes[0])),
        None,
        Some(output(&m)),
    );

    // Step 1: SignedRpc, then msg.
    let signed: SignedRpc = cbor::from_slice(&valid).expect("decodes");
    let bad = cbor::to_vec(&SignedRpc { v: 2, ..signed.clone() });
    f.case("step 1: SignedRpc version 2", &["Encoding"], inp(&bad), Some(Error::CborSchema), None);
    // A kind that is no `RpcKind` cannot be an `RpcMessage`: write the text into the map.
    let kind_text = |text: &str| {
        let mut e = entries(&base);
        set(&mut e, "kind", Value::Text(text.into()));
        signed_raw(raw_map(e), &ctx.nodes[0])
    };
    let sealed = |change: &dyn Fn(&mut RpcMessage)| seal(&with(change), &ctx.nodes[0]);
    for (comment, rpc) in [
        ("step 1: RpcMessage version 2, signed by the sender", sealed(&|m| m.v = 2)),
        ("step 1: purpose \"bkv fleet rpc v2\"", sealed(&|m| m.purpose = "bkv fleet rpc v2".into())),
        ("step 1: kind \"gossip\" is not an RpcKind", kind_text("gossip")),
        ("step 1: kind \"vote.reply.reply\" is not an RpcKind", kind_text("vote.reply.reply")),
        ("step 1: a 15-byte nonce", sealed(&|m| m.nonce.truncate(15))),
        ("step 1: a 17-byte nonce", sealed(&|m| m.nonce.push(0))),
    ] {
        f.case(comment, &["Encoding"], inp(&rpc), Some(Error::CborSchema), None);
    }
    let mut short = signed.clone();
    short.sig.truncate(63);
    f.case(
        "step 1: a 63-byte sig (`.size 64` is part of the CDDL)",
        &["Encoding"],
        inp(&cbor::to_vec(&short)),
        Some(Error::CborSchema),
        None,
    );
    let mut e = entries(&base);
    e.reverse();
    let unsorted = raw_map(e);
    f.case(
        "step 1: a 63-byte sig around a msg with its keys in reverse order: SignedRpc is checked \
         before msg",
        &["Encoding", "Order"],
        inp(&cbor::to_vec(&SignedRpc { v: 1, msg: unsorted.clone(), sig: short.sig.clone() })),
        Some(Error::CborSchema),
        None,
    );
    let mut outer = match cbor::value_from_slice(&valid, &[]).expect("decodes") {
        Value::Map(e) => e,
        _ => unreachable!(),
    };
    outer.push((Value::Text("zz".into()), Value::Integer(0.into())));
    f.case(
        "step 1: an unknown field in SignedRpc",
        &["Encoding"],
        inp(&cbor::value_to_vec(&Value::Map(outer))),
        Some(Error::CborSchema),
        None,
    );
    let mut e = entries(&base);
    e.push((Value::Text("prio".into()), Value::Integer(1.into())));
    f.case(
        "step 1: an unknown field in RpcMessage, signed by the sender",
        &["Encoding"],
        inp(&signed_raw(cbor::value_to_vec(&Value::Map(e)), &ctx.nodes[0])),
        Some(Error::CborSchema),
        None,
    );
    let mut e = entries(&with(&|m| m.fleet = "other.example/vault".into()));
    e.push((Value::Text("prio".into()), Value::Integer(1.into())));
    f.case(
        "step 1 before step 2: an unknown field in an RpcMessage for another fleet",
        &["Encoding", "Order"],
        inp(&signed_raw(cbor::value_to_vec(&Value::Map(e)), &ctx.nodes[0])),
        Some(Error::CborSchema),
        None,
    );
    let mut e = entries(&base);
    e.retain(|(k, _)| k.as_text() != Some("body"));
    f.case(
        "step 1: RpcMessage without body",
        &["Encoding"],
        inp(&signed_raw(cbor::value_to_vec(&Value::Map(e)), &ctx.nodes[0])),
        Some(Error::CborSchema),
        None,
    );
    let mut e = entries(&base);
    set(&mut e, "from", Value::Integer((-1).into()));
    f.case(
        "step 1: from is -1, not a uint",
        &["Encoding"],
        inp(&signed_raw(cbor::value_to_vec(&Value::Map(e)), &ctx.nodes[0])),
        Some(Error::CborSchema),
        None,
    );
    let inline = cbor::value_to_vec(&Value::Map(vec![
        (Value::Text("v".into()), Value::Integer(1.into())),
        (Value::Text("msg".into()), Value::Map(entries(&base))),
        (Value::Text("sig".into()), Value::Bytes(signed.sig.clone())),
    ]));
    f.case(
        "step 1: msg is the RpcMessage map itself, not a byte string holding it",
        &["Encoding"],
        inp(&inline),
        Some(Error::CborSchema),
        None,
    );
    let mut trailing = valid.clone();
    trailing.push(0);
    f.case(
        "step 1: a byte after the SignedRpc",
        &["Encoding"],
        inp(&trailing),
        Some(Error::CborTrailingBytes),
        None,
    );
    let mut inner = cbor::to_vec(&base);
    inner.push(0);
    f.case(
        "step 1: a byte after the RpcMessage inside msg, signed by the sender",
        &["Encoding"],
        inp(&signed_raw(inner, &ctx.nodes[0])),
        Some(Error::CborTrailingBytes),
        None,
    );
    let mut indefinite = valid.clone();
    assert_eq!(indefinite[0], 0xa3, "a map of three");
    indefinite[0] = 0xbf;
    indefinite.push(0xff);
    f.case(
        "step 1: SignedRpc as an indefinite-length map",
        &["Encoding"],
        inp(&indefinite),
        Some(Error::CborIndefiniteLength),
        None,
    );
    let canonical = cbor::to_vec(&base);
    let needle = b"\x65epoch\x03";
    let at = canonical.windows(needle.len()).position(|w| w == needle).expect("epoch 3 is encoded");
    let mut long = canonical[..at + 6].to_vec();
    long.extend_from_slice(&[0x18, 0x03]);
    long.extend_from_slice(&canonical[at + needle.len()..]);
    f.case(
        "step 1: epoch 3 as a one-byte argument (0x1803) in msg, signed by the sender",
        &["Encoding"],
        inp(&signed_raw(long, &ctx.nodes[0])),
        Some(Error::CborNonMinimal),
        None,
    );
    f.case(
        "step 1: RpcMessage keys in reverse order, signed by the sender",
        &["Encoding"],
        inp(&signed_raw(unsorted, &ctx.nodes[0])),
        Some(Error::CborMapUnsorted),
        None,
    );
    let mut e = entries(&base);
    set(&mut e, "time_ms", Value::Float((NOW_MS - 150) as f64));
    f.case(
        "step 1: time_ms as a double, signed by the sender",
        &["Encoding"],
        inp(&signed_raw(raw_map(e), &ctx.nodes[0])),
        Some(Error::CborFloat),
        None,
    );

    // Step 2: fleet id and epoch.
    let m = with(&|m| m.fleet = "other.example/vault".into());
    f.case(
        "step 2: another fleet id",
        &["Fleet"],
        inp(&seal(&m, &ctx.nodes[0])),
        Some(Error::FleetRpcFleetMismatch),
        None,
    );
    let m = with(&|m| m.epoch = EPOCH - 1);
    f.case(
        "step 2: the previous epoch",
        &["Fleet"],
        inp(&seal(&m, &ctx.nodes[0])),
        Some(Error::FleetRpcFleetMismatch),
        None,
    );
    let m = with(&|m| {
        m.epoch = EPOCH + 1;
        m.from = 7;
    });
    f.case(
        "step 2 before step 3: the next epoch, from node 7 (signed by a key outside the fleet)",
        &["Fleet", "Order"],
        inp(&seal(&m, &outsider)),
        Some(Error::FleetRpcFleetMismatch),
        None,
    );

    // Step 3: the sender.
    let m = with(&|m| m.from = 3);
    f.case(
        "step 3: from node 3 of a three-node fleet (ids 0 to 2), signed by its own key",
        &["Sender"],
        inp(&seal(&m, &outsider)),
        Some(Error::FleetRpcSenderUnknown),
        None,
    );
    let m = with(&|m| {
        m.from = u64::MAX;
        m.to = 2;
    });
    f.case(
        "step 3 before step 4: from node 2^64-1, to node 2",
        &["Sender", "Order"],
        inp(&seal(&m, &outsider)),
        Some(Error::FleetRpcSenderUnknown),
        None,
    );

    // Step 4: the recipient.
    let m = with(&|m| m.to = 2);
    f.case(
        "step 4: addressed to node 2",
        &["Recipient"],
        inp(&seal(&m, &ctx.nodes[0])),
        Some(Error::FleetRpcRecipientMismatch),
        None,
    );
    let m = with(&|m| m.to = 0);
    f.case(
        "step 4 before step 5: addressed to node 0, from node 0, signed by node 2",
        &["Recipient", "Order"],
        inp(&seal(&m, &ctx.nodes[2])),
        Some(Error::FleetRpcRecipientMismatch),
        None,
    );

    // Step 5: the signature over msg as received.
    f.case(
        "step 5: node 2 signs a message that claims to be from node 0",
        &["Signature"],
        inp(&seal(&base, &ctx.nodes[2])),
        Some(Error::FleetRpcSignatureInvalid),
        None,
    );
    f.case(
        "step 5: a key outside the fleet signs a message that claims to be from node 0",
        &["Signature"],
        inp(&seal(&base, &outsider)),
        Some(Error::FleetRpcSignatureInvalid),
        None,
    );
    let mut flipped = signed.clone();
    flipped.sig[0] ^= 1;
    f.case(
        "step 5: the first signature bit flipped",
        &["Signature"],
        inp(&cbor::to_vec(&flipped)),
        Some(Error::FleetRpcSignatureInvalid),
        None,
    );
    let mut tampered = signed.clone();
    let at = tampered.msg.windows(base.body.len()).position(|w| w == base.body).expect("body is in msg");
    tampered.msg[at] ^= 0x20;
    f.case(
        "step 5: the body's first byte changed after signing (\"Raft vote request\")",
        &["Signature"],
        inp(&cbor::to_vec(&tampered)),
        Some(Error::FleetRpcSignatureInvalid),
        None,
    );
    let mut big_s = signed.clone();
    let mut carry = 0u16;
    for (s, l) in big_s.sig[32..].iter_mut().zip(ED25519_L) {
        let sum = u16::from(*s) + u16::from(l) + carry;
        *s = sum as u8;
        carry = sum >> 8;
    }
    assert_eq!(carry, 0, "S + L fits in 32 bytes");
    f.case(
        "step 5: S replaced by S + L, which RFC 8032 §5.1.7 verification rejects (S < L)",
        &["Signature"],
        inp(&cbor::to_vec(&big_s)),
        Some(Error::FleetRpcSignatureInvalid),
        None,
    );
    let mut zero = signed.clone();
    zero.sig = vec![0; 64];
    f.case(
        "step 5: an all-zero signature",
        &["Signature"],
        inp(&cbor::to_vec(&zero)),
        Some(Error::FleetRpcSignatureInvalid),
        None,
    );
    let m = with(&|m| m.time_ms = NOW_MS - 60_000);
    f.case(
        "step 5 before step 6: a minute old and signed by node 2",
        &["Signature", "Order"],
        inp(&seal(&m, &ctx.nodes[2])),
        Some(Error::FleetRpcSignatureInvalid),
        None,
    );

    // Step 6: the window W.
    for (dt, comment) in [
        (-(DEFAULT_WINDOW_MS as i64) - 1, "step 6: sent 2001 ms before the receiver's clock"),
        (DEFAULT_WINDOW_MS as i64 + 1, "step 6: sent 2001 ms after the receiver's clock"),
    ] {
        let m = with(&|m| m.time_ms = NOW_MS.checked_add_signed(dt).expect("in range"));
        f.case(comment, &["Time"], inp(&seal(&m, &ctx.nodes[0])), Some(Error::FleetRpcStale), None);
    }
    let m = with(&|m| m.time_ms = 0);
    f.case("step 6: time_ms 0", &["Time"], inp(&seal(&m, &ctx.nodes[0])), Some(Error::FleetRpcStale), None);

    // Step 7: node 1 sent a vote request to node 2; node 2's reply comes back.
    let request_nonce = nonce();
    let request = Request { kind: RpcKind::Vote, to: 2, nonce: &request_nonce };
    let reply = with(&|m| {
        m.from = 2;
        m.kind = RpcKind::VoteReply;
        m.nonce = request_nonce.clone();
        m.body = b"raft vote reply (opaque here)".to_vec();
    });
    let rep =
        |m: &RpcMessage, signer: &Ed25519Signer, now: u64| ctx.input(&seal(m, signer), now, Some(&request));
    f.case(
        "step 7: node 2's vote.reply to node 1's vote request, with its nonce",
        &["Valid", "Reply"],
        rep(&reply, &ctx.nodes[2], NOW_MS),
        None,
        Some(output(&reply)),
    );
    let m = RpcMessage { kind: RpcKind::AppendReply, ..reply.clone() };
    f.case(
        "step 7: an append.reply to a vote request",
        &["Reply"],
        rep(&m, &ctx.nodes[2], NOW_MS),
        Some(Error::FleetRpcReplyMismatch),
        None,
    );
    let m = RpcMessage { kind: RpcKind::Vote, ..reply.clone() };
    f.case(
        "step 7: a vote request (not vote.reply) in answer to a vote request",
        &["Reply"],
        rep(&m, &ctx.nodes[2], NOW_MS),
        Some(Error::FleetRpcReplyMismatch),
        None,
    );
    let m = RpcMessage { nonce: nonce(), ..reply.clone() };
    f.case(
        "step 7: a vote.reply with another nonce",
        &["Reply"],
        rep(&m, &ctx.nodes[2], NOW_MS),
        Some(Error::FleetRpcReplyMismatch),
        None,
    );
    let m = RpcMessage { from: 0, ..reply.clone() };
    f.case(
        "step 7: a vote.reply with the request's nonce from node 0, though the request went to node 2",
        &["Reply"],
        rep(&m, &ctx.nodes[0], NOW_MS),
        Some(Error::FleetRpcReplyMismatch),
        None,
    );
    let m = RpcMessage { nonce: nonce(), ..reply.clone() };
    f.case(
        "step 6 before step 7: a vote.reply with another nonce, 2001 ms old",
        &["Time", "Reply", "Order"],
        rep(&m, &ctx.nodes[2], reply.time_ms + DEFAULT_WINDOW_MS + 1),
        Some(Error::FleetRpcStale),
        None,
    );
    f.finish()
}
