//! Vectors for spec/session.md §5 (a node opening a request), operation
//! `session_open_request`. Requests are sealed with fixed HPKE ephemeral keys (a seeded
//! RNG); each invalid case is the valid request with one thing changed, and its expected
//! code is the step of §5 that the change breaks. The response half (§4) and the RFC 9180
//! known answer are in `session_client`.

use crate::format::{FileBuilder, VectorFile, map};
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
];

pub(crate) const FLEET: &str = "vectors.bkv.example/vault";
pub(crate) const EPOCH: u64 = 3;
pub(crate) const NODE: &str = "node-2";
pub(crate) const NOW: u64 = 1_800_000_000;

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

/// The session vector file.
pub fn generate() -> VectorFile {
    let mut f = FileBuilder::new("session", "spec/session.md", NOTES);
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
    let reencode = |change: &dyn Fn(&mut SealedRequest)| {
        let mut s = sealed.clone();
        change(&mut s);
        cbor::to_vec(&s)
    };
    let out = map([
        ("request_id", json!(hex::encode(id))),
        ("time", json!(NOW)),
        ("body", json!(hex::encode(&body))),
    ]);

    f.group("session_open_request", "§5");
    f.case("a request sealed to this node", &["Valid"], input(&node, &request), None, Some(out.clone()));
    for (dt, comment) in
        [(300i64, "request time 300 s before the node's clock"), (-300, "request time 300 s after")]
    {
        let n = Node { now: (NOW as i64 + dt) as u64, ..Node { key: node.key.clone(), ..node } };
        f.case(comment, &["Valid", "Time"], input(&n, &request), None, Some(out.clone()));
    }
    // S2-S3: the public header.
    let bad = reencode(&|s| s.kem = 0x0021);
    f.case("KEM 0x0021 (X448)", &["Header"], input(&node, &bad), Some(Error::SessionSuiteUnsupported), None);
    let bad = reencode(&|s| s.aead = 0x0001);
    f.case(
        "AEAD 0x0001 (AES-128-GCM)",
        &["Header"],
        input(&node, &bad),
        Some(Error::SessionSuiteUnsupported),
        None,
    );
    let n = Node { fleet: "other.example/vault", key: node.key.clone(), ..node };
    f.case(
        "sealed for another fleet id than the node's",
        &["Header"],
        input(&n, &request),
        Some(Error::SessionFleetMismatch),
        None,
    );
    let n = Node { epoch: EPOCH + 1, key: node.key.clone(), ..node };
    f.case(
        "sealed for the previous epoch",
        &["Header"],
        input(&n, &request),
        Some(Error::SessionEpochMismatch),
        None,
    );
    let n = Node { node: "node-3", key: node.key.clone(), ..node };
    f.case(
        "addressed to another node",
        &["Header"],
        input(&n, &request),
        Some(Error::SessionNodeMismatch),
        None,
    );
    // S4: one code for every failure of the open.
    let n = Node { key: other.to_bytes().to_vec(), ..Node { key: vec![], ..node } };
    f.case(
        "the node holds another session key",
        &["Open"],
        input(&n, &request),
        Some(Error::SessionOpenFailed),
        None,
    );
    let bad = reencode(&|s| {
        let last = s.ct.len() - 1;
        s.ct[last] ^= 0x01
    });
    f.case(
        "last ciphertext byte flipped (tag)",
        &["Open"],
        input(&node, &bad),
        Some(Error::SessionOpenFailed),
        None,
    );
    let bad = reencode(&|s| s.enc[0] ^= 0x80);
    f.case("encapsulated key changed", &["Open"], input(&node, &bad), Some(Error::SessionOpenFailed), None);
    let bad = reencode(&|s| s.enc = vec![0; 32]);
    f.case(
        "all-zero encapsulated key (small-order point)",
        &["Open"],
        input(&node, &bad),
        Some(Error::SessionOpenFailed),
        None,
    );
    let bad = reencode(&|s| s.enc.truncate(31));
    f.case(
        "a 31-byte encapsulated key: the .size 32 is checked in S4, not S1",
        &["Open"],
        input(&node, &bad),
        Some(Error::SessionOpenFailed),
        None,
    );
    // S6: the window.
    for (dt, comment) in
        [(301i64, "request time 301 s before the node's clock"), (-301, "request time 301 s after")]
    {
        let n = Node { now: (NOW as i64 + dt) as u64, key: node.key.clone(), ..node };
        f.case(comment, &["Time"], input(&n, &request), Some(Error::SessionRequestStale), None);
    }
    // S1: encoding.
    let bad = reencode(&|s| s.v = 2);
    f.case("version 2", &["Encoding"], input(&node, &bad), Some(Error::CborSchema), None);
    let mut extra = cbor::value_from_slice(&request, &[]).expect("value");
    if let ciborium::Value::Map(m) = &mut extra {
        m.push((ciborium::Value::Text("zz".into()), ciborium::Value::Integer(0.into())));
    }
    f.case(
        "an unknown field",
        &["Encoding"],
        input(&node, &cbor::value_to_vec(&extra)),
        Some(Error::CborSchema),
        None,
    );
    let mut indefinite = request.clone();
    indefinite[0] = 0xbf;
    indefinite.push(0xff);
    f.case(
        "indefinite-length map",
        &["Encoding"],
        input(&node, &indefinite),
        Some(Error::CborIndefiniteLength),
        None,
    );
    crate::session_client::add(&mut f);
    f.finish()
}
