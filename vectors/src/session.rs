//! Vectors for spec/session.md §5 (a node opening a request), operation
//! `session_open_request`. Requests are sealed with fixed HPKE ephemeral keys (a seeded
//! RNG); each invalid case is the valid request with one thing changed, and its expected
//! code is the step of §5 that the change breaks. The response half (§4) and the RFC 9180
//! known answer are in `session_client`.

use crate::cases;
use crate::format::{Case, FileBuilder, VectorFile, map};
use bkv_protocol::Error;
use bkv_protocol::cbor;
use bkv_protocol::session::{SealedRequest, SessionSecretKey, SessionTarget, seal_request_with_id};
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;
use serde_json::{Value, json};
use std::collections::BTreeMap;

const NOTES: &[(&str, &str)] = &[
    ("Valid", "a request the node opens, a response the node seals or the client accepts"),
    ("Header", "a public header field names another suite, fleet, epoch or node"),
    ("Open", "the HPKE open fails (wrong key, tampered ciphertext or encapsulated key)"),
    ("Time", "the request time is outside the node's window"),
    ("Encoding", "the SealedRequest or SessionResponse is not the CDDL structure in deterministic CBOR"),
    ("Rfc9180", "RFC 9180 Appendix A.2.1, the bkv suite in base mode"),
    ("Sealed", "a sealed application or session error that the client accepts"),
    ("Unsealed", "an UnsealedError response (spec/session.md §4.3 step 2)"),
    ("Tampered", "bytes of a sealed response were changed"),
    ("Context", "a response sealed under another request's HPKE context, or for another request id"),
    ("Plaintext", "a ResponsePlaintext sealed by hand under the right response key"),
    crate::produce::NOTE,
];

pub(crate) const FLEET: &str = "vectors.bkv.example/vault";
pub(crate) const EPOCH: u64 = 3;
pub(crate) const NODE: &str = "node-2";
pub(crate) const NOW: u64 = 1_800_000_000;

#[derive(Clone)]
struct Node {
    key: Vec<u8>,
    fleet: &'static str,
    epoch: u64,
    node: &'static str,
    now: u64,
}

fn input(n: &Node, request: &[u8]) -> BTreeMap<String, Value> {
    map([
        ("node_key", json!(hex::encode(&n.key))),
        ("fleet_id", json!(n.fleet)),
        ("epoch", json!(n.epoch)),
        ("node_id", json!(n.node)),
        ("now", json!(n.now)),
        ("request", json!(hex::encode(request))),
    ])
}

/// What every case of this file is built from: the node's session key (and another), and
/// one request sealed to it with a fixed HPKE ephemeral key and request id.
struct World {
    node: Node,
    other: SessionSecretKey,
    request: Vec<u8>,
    sealed: SealedRequest,
    body: Vec<u8>,
    id: [u8; 16],
}

impl World {
    fn new() -> Self {
        let key = SessionSecretKey::derive(b"bkv vectors: session node key");
        let other = SessionSecretKey::derive(b"bkv vectors: another node key");
        let target = SessionTarget {
            fleet_id: FLEET.into(),
            epoch: EPOCH,
            node_id: NODE.into(),
            session_key: key.public_key(),
        };
        let mut rng = ChaCha20Rng::seed_from_u64(0x5e55);
        let body = cbor::to_vec(&("vector body", 1u64));
        let id = [0x11u8; 16];
        let (request, _) = seal_request_with_id(&mut rng, &target, NOW, id, &body).expect("seals");
        let node = Node { key: key.to_bytes().to_vec(), fleet: FLEET, epoch: EPOCH, node: NODE, now: NOW };
        let sealed: SealedRequest = cbor::from_slice(&request).expect("decodes");
        World { node, other, request, sealed, body, id }
    }

    /// The request with one change to its fields, re-encoded.
    fn reencode(&self, change: impl FnOnce(&mut SealedRequest)) -> Vec<u8> {
        let mut s = self.sealed.clone();
        change(&mut s);
        cbor::to_vec(&s)
    }

    /// The node's view with one change.
    fn node_with(&self, change: impl FnOnce(&mut Node)) -> Node {
        let mut n = self.node.clone();
        change(&mut n);
        n
    }

    /// What the node opens from the request.
    fn opened(&self) -> BTreeMap<String, Value> {
        map([
            ("request_id", json!(hex::encode(self.id))),
            ("time", json!(NOW)),
            ("body", json!(hex::encode(&self.body))),
        ])
    }

    /// The request, opened by a node whose clock is `dt` s from the request's time.
    fn at(&self, dt: i64) -> BTreeMap<String, Value> {
        input(&self.node_with(|n| n.now = (NOW as i64 + dt) as u64), &self.request)
    }

    /// `request` refused by the node with `e`.
    fn refused(&self, flags: &'static [&'static str], request: &[u8], e: Error) -> Case {
        Case::invalid(flags, input(&self.node, request), e)
    }

    /// The request refused with `e` by a node changed by `change`.
    fn refused_by(&self, flags: &'static [&'static str], change: impl FnOnce(&mut Node), e: Error) -> Case {
        Case::invalid(flags, input(&self.node_with(change), &self.request), e)
    }
}

cases! { World, SESSION_OPEN_REQUEST;
    /// a request sealed to this node
    fn valid_request(w) {
        Case::valid(&["Valid"], input(&w.node, &w.request), Some(w.opened()))
    }
    /// request time 300 s before the node's clock
    fn valid_300_s_early(w) {
        Case::valid(&["Valid", "Time"], w.at(300), Some(w.opened()))
    }
    /// request time 300 s after
    fn valid_300_s_late(w) {
        Case::valid(&["Valid", "Time"], w.at(-300), Some(w.opened()))
    }
    /// KEM 0x0021 (X448)
    fn kem_x448(w) {
        w.refused(&["Header"], &w.reencode(|s| s.kem = 0x0021), Error::SessionSuiteUnsupported)
    }
    /// AEAD 0x0001 (AES-128-GCM)
    fn aead_aes_128_gcm(w) {
        w.refused(&["Header"], &w.reencode(|s| s.aead = 0x0001), Error::SessionSuiteUnsupported)
    }
    /// sealed for another fleet id than the node's
    fn another_fleet(w) {
        w.refused_by(&["Header"], |n| n.fleet = "other.example/vault", Error::SessionFleetMismatch)
    }
    /// sealed for the previous epoch
    fn previous_epoch(w) {
        w.refused_by(&["Header"], |n| n.epoch = EPOCH + 1, Error::SessionEpochMismatch)
    }
    /// addressed to another node
    fn another_node(w) {
        w.refused_by(&["Header"], |n| n.node = "node-3", Error::SessionNodeMismatch)
    }
    /// the node holds another session key
    fn another_session_key(w) {
        let key = w.other.to_bytes().to_vec();
        w.refused_by(&["Open"], |n| n.key = key, Error::SessionOpenFailed)
    }
    /// last ciphertext byte flipped (tag)
    fn tag_flipped(w) {
        let bad = w.reencode(|s| {
            let last = s.ct.len() - 1;
            s.ct[last] ^= 0x01
        });
        w.refused(&["Open"], &bad, Error::SessionOpenFailed)
    }
    /// encapsulated key changed
    fn enc_changed(w) {
        w.refused(&["Open"], &w.reencode(|s| s.enc[0] ^= 0x80), Error::SessionOpenFailed)
    }
    /// all-zero encapsulated key (small-order point)
    fn enc_zero(w) {
        w.refused(&["Open"], &w.reencode(|s| s.enc = vec![0; 32]), Error::SessionOpenFailed)
    }
    /// a 31-byte encapsulated key: the .size 32 is checked in S4, not S1
    fn enc_31_bytes(w) {
        w.refused(&["Open"], &w.reencode(|s| s.enc.truncate(31)), Error::SessionOpenFailed)
    }
    /// request time 301 s before the node's clock
    fn stale_301_s_early(w) {
        Case::invalid(&["Time"], w.at(301), Error::SessionRequestStale)
    }
    /// request time 301 s after
    fn stale_301_s_late(w) {
        Case::invalid(&["Time"], w.at(-301), Error::SessionRequestStale)
    }
    /// version 2
    fn version_2(w) {
        w.refused(&["Encoding"], &w.reencode(|s| s.v = 2), Error::CborSchema)
    }
    /// an unknown field
    fn unknown_field(w) {
        let mut extra = cbor::value_from_slice(&w.request, &[]).expect("value");
        if let ciborium::Value::Map(m) = &mut extra {
            m.push((ciborium::Value::Text("zz".into()), ciborium::Value::Integer(0.into())));
        }
        w.refused(&["Encoding"], &cbor::value_to_vec(&extra), Error::CborSchema)
    }
    /// indefinite-length map
    fn indefinite_length_map(w) {
        let mut indefinite = w.request.clone();
        indefinite[0] = 0xbf;
        indefinite.push(0xff);
        w.refused(&["Encoding"], &indefinite, Error::CborIndefiniteLength)
    }
}

/// The session vector file.
pub fn generate() -> VectorFile {
    let mut f = FileBuilder::new("session", "spec/session.md", NOTES);
    f.group("session_open_request", "§5");
    f.cases(&mut World::new(), SESSION_OPEN_REQUEST);
    crate::session_client::add(&mut f);
    crate::produce::add_session(&mut f);
    f.finish()
}
