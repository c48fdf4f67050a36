//! Vectors for the response half of spec/session.md: `session_seal_response` (§4.2, the
//! node seals with a given nonce), `session_open_response` (§3.3 then §4.3, the client) and
//! `hpke_kat` (§2, the RFC 9180 known answer of the suite).
//!
//! The client's request is sealed with a fixed ephemeral input `ikm_e` (its ephemeral key
//! pair is RFC 9180 `DeriveKeyPair(ikm_e)`), so a harness recreates the client's HPKE
//! context, and hence the response key, from the vector. Invalid responses are the valid
//! one with one thing changed, or plaintexts sealed by hand under the response key; the
//! expected code is the step of §4.3 that the change breaks.

use crate::fixed_rng::FixedRng;
use crate::format::{FileBuilder, map};
use bkv_protocol::Error;
use bkv_protocol::cbor;
use bkv_protocol::session::{
    self, RESPONSE_EXPORT_LABEL, RequestId, SessionSecretKey, SessionServer, SessionTarget,
};
use chacha20poly1305::aead::{Aead as _, KeyInit, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use ciborium::Value as Cbor;
use hpke::{Deserializable, OpModeS};
use rand_chacha::ChaCha20Rng;
use rand_core::{RngCore, SeedableRng};
use serde_json::{Value, json};
use std::collections::BTreeMap;

const FLEET: &str = super::session::FLEET;
const EPOCH: u64 = super::session::EPOCH;
const NODE: &str = super::session::NODE;
const NOW: u64 = super::session::NOW;
const IKM_E: [u8; 32] = [0x11; 32];
const ID: RequestId = [0x5a; 16];
const BODY: &[u8] = b"vault request body";
const ANSWER: &[u8] = b"vault response body";
const NONCE: [u8; 12] = [0x33; 12];

struct Client {
    pk: [u8; 32],
    ikm_e: [u8; 32],
    id: RequestId,
}

impl Client {
    /// The SealedRequest of §3.3 with this client's ephemeral input.
    fn request(&self) -> Vec<u8> {
        let target = SessionTarget {
            fleet_id: FLEET.into(),
            epoch: EPOCH,
            node_id: NODE.into(),
            session_key: self.pk,
        };
        session::seal_request_with_id(&mut FixedRng(self.ikm_e.to_vec()), &target, NOW, self.id, BODY)
            .expect("seals")
            .0
    }

    /// The response key `rk` of §4.2, from an independent HPKE sender context.
    fn response_key(&self) -> [u8; 32] {
        type Kem = session::Kem;
        let pk = <Kem as hpke::kem::Kem>::PublicKey::from_bytes(&self.pk).expect("public key");
        let (_, ctx) = hpke::setup_sender::<hpke::aead::ChaCha20Poly1305, hpke::kdf::HkdfSha256, Kem, _>(
            &OpModeS::Base,
            &pk,
            &session::info(FLEET, EPOCH, NODE),
            &mut FixedRng(self.ikm_e.to_vec()),
        )
        .expect("setup");
        let mut rk = [0u8; 32];
        ctx.export(RESPONSE_EXPORT_LABEL, &mut rk).expect("export");
        rk
    }

    fn input(&self, response: &[u8]) -> BTreeMap<String, Value> {
        map([
            ("session_key", json!(hex::encode(self.pk))),
            ("fleet_id", json!(FLEET)),
            ("epoch", json!(EPOCH)),
            ("node_id", json!(NODE)),
            ("ikm_e", json!(hex::encode(self.ikm_e))),
            ("request_id", json!(hex::encode(self.id))),
            ("time", json!(NOW)),
            ("body", json!(hex::encode(BODY))),
            ("response", json!(hex::encode(response))),
        ])
    }
}

fn cbor_map(pairs: Vec<(&str, Cbor)>) -> Vec<u8> {
    cbor::value_to_vec(&Cbor::Map(pairs.into_iter().map(|(k, v)| (Cbor::Text(k.into()), v)).collect()))
}

/// A SealedResponse around any plaintext bytes, under `rk` and `nonce`.
fn seal_raw(rk: &[u8; 32], nonce: &[u8; 12], plaintext: &[u8]) -> Vec<u8> {
    let sealed = ChaCha20Poly1305::new(Key::from_slice(rk))
        .encrypt(Nonce::from_slice(nonce), Payload { msg: plaintext, aad: b"" })
        .expect("seal");
    cbor_map(vec![("v", 1.into()), ("nonce", nonce.to_vec().into()), ("sealed", sealed.into())])
}

/// The fields of a SessionResponse, for editing.
fn fields(response: &[u8]) -> BTreeMap<String, Cbor> {
    let v = cbor::value_from_slice(response, &[]).expect("cbor");
    v.as_map().expect("map").iter().map(|(k, v)| (k.as_text().expect("text").into(), v.clone())).collect()
}

fn kat(f: &mut FileBuilder) {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../protocol/tests/data/hpke-rfc9180-x25519-sha256-chacha20poly1305-base.json"
    );
    let v: Value = serde_json::from_str(&std::fs::read_to_string(path).expect("KAT file")).expect("KAT json");
    for (k, want) in [("mode", 0), ("kem_id", 32), ("kdf_id", 1), ("aead_id", 3)] {
        assert_eq!(v[k], json!(want), "the KAT file is the bkv suite");
    }
    f.group("hpke_kat", "§2");
    let mut input = BTreeMap::new();
    for k in ["info", "ikmE", "pkEm", "skRm", "pkRm", "enc", "encryptions", "exports"] {
        input.insert(k.to_owned(), v[k].clone());
    }
    f.case(
        "RFC 9180 Appendix A.2.1 (base mode, the bkv suite): the sender keyed by \
         DeriveKeyPair(ikmE) gives enc and every ct in order, the receiver with skRm opens \
         them, every export matches",
        &["Rfc9180"],
        input,
        None,
        None,
    );
}

/// Add the groups `hpke_kat`, `session_seal_response` and `session_open_response`.
pub(crate) fn add(f: &mut FileBuilder) {
    kat(f);
    let key = SessionSecretKey::derive(b"bkv vectors: session node key");
    let client = Client { pk: key.public_key(), ikm_e: IKM_E, id: ID };
    let request = client.request();
    let server = SessionServer::new(FLEET, EPOCH, NODE, key.clone());
    let respond = |rng: &mut dyn FnMut() -> FixedRng, request: &[u8], result: Result<Vec<u8>, Error>| {
        server.open(request, NOW).expect("opens").responder.seal(&mut rng(), result)
    };

    f.group("session_seal_response", "§4.2");
    for (comment, result, sealed) in [
        ("the node seals an ok body", json!({ "ok": hex::encode(ANSWER) }), Ok(ANSWER.to_vec())),
        ("the node seals an empty ok body", json!({ "ok": "" }), Ok(Vec::new())),
        (
            "the node seals an application error",
            json!({ "error": Error::VaultRecordLocked.code() }),
            Err(Error::VaultRecordLocked),
        ),
    ] {
        let response = respond(&mut || FixedRng(NONCE.to_vec()), &request, sealed);
        let input = map([
            ("node_key", json!(hex::encode(key.to_bytes()))),
            ("fleet_id", json!(FLEET)),
            ("epoch", json!(EPOCH)),
            ("node_id", json!(NODE)),
            ("now", json!(NOW)),
            ("request", json!(hex::encode(&request))),
            ("nonce", json!(hex::encode(NONCE))),
            ("result", result),
        ]);
        f.case(comment, &["Valid"], input, None, Some(map([("response", json!(hex::encode(response)))])));
    }

    f.group("session_open_response", "§4.3");
    let mut nonces = ChaCha20Rng::seed_from_u64(0x5e56);
    let mut next_nonce = || {
        let mut n = [0u8; 12];
        nonces.fill_bytes(&mut n);
        FixedRng(n.to_vec())
    };
    let opened = |body: &[u8]| {
        Some(map([("request", json!(hex::encode(&request))), ("body", json!(hex::encode(body)))]))
    };
    let ok = respond(&mut next_nonce, &request, Ok(ANSWER.to_vec()));
    f.case("a sealed ok body", &["Valid"], client.input(&ok), None, opened(ANSWER));
    let empty = respond(&mut next_nonce, &request, Ok(Vec::new()));
    f.case("a sealed empty ok body", &["Valid"], client.input(&empty), None, opened(b""));
    // Step 4: a sealed error is the node's code.
    for e in [Error::VaultRecordLocked, Error::SessionRequestReplayed] {
        let r = respond(&mut next_nonce, &request, Err(e));
        f.case(&format!("sealed {} (step 4)", e.code()), &["Sealed"], client.input(&r), Some(e), None);
    }
    // Step 2: unsealed errors.
    for e in [Error::SessionRequestStale, Error::SessionEpochMismatch, Error::CborSchema] {
        f.case(
            &format!("unsealed {} (step 2)", e.code()),
            &["Unsealed"],
            client.input(&session::reject(e)),
            Some(e),
            None,
        );
    }
    let invalid = Some(Error::SessionResponseInvalid);
    f.case(
        "unsealed vault.record.locked: not a code a node may send unsealed (step 2)",
        &["Unsealed"],
        client.input(&session::reject(Error::VaultRecordLocked)),
        invalid,
        None,
    );
    f.case(
        "unsealed code that is not in the registry (step 2)",
        &["Unsealed"],
        client.input(&cbor_map(vec![("v", 1.into()), ("error", "session.bogus".into())])),
        invalid,
        None,
    );
    // Step 1: the SessionResponse structure.
    let parts = fields(&ok);
    let part = |k: &str| parts[k].as_bytes().expect("bytes").clone();
    let (nonce, sealed) = (part("nonce"), part("sealed"));
    let response = |nonce: &[u8], sealed: &[u8], extra: Vec<(&str, Cbor)>| {
        let mut pairs =
            vec![("v", Cbor::from(1)), ("nonce", nonce.to_vec().into()), ("sealed", sealed.to_vec().into())];
        pairs.extend(extra);
        cbor_map(pairs)
    };
    f.case(
        "unsealed error with v 2 (step 1)",
        &["Unsealed", "Encoding"],
        client.input(&cbor_map(vec![("v", 2.into()), ("error", "session.request.stale".into())])),
        invalid,
        None,
    );
    f.case("not CBOR (step 1)", &["Encoding"], client.input(&[0xff]), invalid, None);
    f.case(
        "neither sealed nor error (step 1)",
        &["Encoding"],
        client.input(&cbor_map(vec![("v", 1.into())])),
        invalid,
        None,
    );
    f.case(
        "both sealed and error (step 1)",
        &["Encoding"],
        client.input(&response(&nonce, &sealed, vec![("error", "session.request.stale".into())])),
        invalid,
        None,
    );
    f.case(
        "an unknown field next to nonce and sealed (step 1)",
        &["Encoding"],
        client.input(&response(&nonce, &sealed, vec![("zz", 0.into())])),
        invalid,
        None,
    );
    f.case(
        "a nonce of 11 bytes (step 1)",
        &["Encoding"],
        client.input(&response(&nonce[..11], &sealed, vec![])),
        invalid,
        None,
    );
    let mut indefinite = ok.clone();
    indefinite[0] = 0xbf;
    indefinite.push(0xff);
    f.case(
        "a SealedResponse as an indefinite-length map (step 1)",
        &["Encoding"],
        client.input(&indefinite),
        invalid,
        None,
    );
    // Step 3: the AEAD under the response key.
    let mut flipped = sealed.clone();
    let last = flipped.len() - 1;
    flipped[last] ^= 0x01;
    f.case(
        "last byte of sealed flipped (tag, step 3)",
        &["Tampered"],
        client.input(&response(&nonce, &flipped, vec![])),
        invalid,
        None,
    );
    let mut other_nonce = nonce.clone();
    other_nonce[0] ^= 0x01;
    f.case(
        "nonce changed (step 3)",
        &["Tampered"],
        client.input(&response(&other_nonce, &sealed, vec![])),
        invalid,
        None,
    );
    f.case(
        "sealed shorter than a tag (step 3)",
        &["Tampered"],
        client.input(&response(&nonce, &sealed[..15], vec![])),
        invalid,
        None,
    );
    let other = Client { pk: client.pk, ikm_e: [0x22; 32], id: ID };
    f.case(
        "the node's answer to another request with the same id (another HPKE context, step 3)",
        &["Context"],
        client.input(&respond(&mut next_nonce, &other.request(), Ok(ANSWER.to_vec()))),
        invalid,
        None,
    );
    let other_node =
        SessionServer::new(FLEET, EPOCH, NODE, SessionSecretKey::derive(b"bkv vectors: another node key"));
    let other_target = SessionTarget {
        fleet_id: FLEET.into(),
        epoch: EPOCH,
        node_id: NODE.into(),
        session_key: other_node.public_key(),
    };
    let (to_other, _) =
        session::seal_request_with_id(&mut FixedRng(IKM_E.to_vec()), &other_target, NOW, ID, BODY)
            .expect("seals");
    let r = other_node
        .open(&to_other, NOW)
        .expect("opens")
        .responder
        .seal(&mut next_nonce(), Ok(ANSWER.to_vec()));
    f.case(
        "the answer of another node's key to the same ikm_e, id and body (step 3)",
        &["Context"],
        client.input(&r),
        invalid,
        None,
    );
    // Step 4: the ResponsePlaintext.
    let same_ctx = Client { id: [0x5b; 16], pk: client.pk, ikm_e: IKM_E };
    f.case(
        "same HPKE context, the answer names another request id (step 4)",
        &["Context"],
        client.input(&respond(&mut next_nonce, &same_ctx.request(), Ok(ANSWER.to_vec()))),
        invalid,
        None,
    );
    let rk = client.response_key();
    let mut raw_nonce = || {
        let mut n = [0u8; 12];
        nonces.fill_bytes(&mut n);
        n
    };
    let plain = |extra: Vec<(&str, Cbor)>| {
        let mut pairs = vec![("v", Cbor::from(1)), ("id", ID.to_vec().into())];
        pairs.extend(extra);
        cbor_map(pairs)
    };
    let r = seal_raw(&rk, &raw_nonce(), &plain(vec![("ok", ANSWER.to_vec().into())]));
    f.case(
        "ResponsePlaintext sealed by hand under the response key: ok (the raw sealing is right)",
        &["Valid", "Plaintext"],
        client.input(&r),
        None,
        opened(ANSWER),
    );
    let bad: Vec<(&str, Vec<u8>)> = vec![
        (
            "ResponsePlaintext with both ok and error (step 4)",
            plain(vec![("ok", ANSWER.to_vec().into()), ("error", "vault.record.locked".into())]),
        ),
        ("ResponsePlaintext with neither ok nor error (step 4)", plain(vec![])),
        (
            "ResponsePlaintext with an error code not in the registry (step 4)",
            plain(vec![("error", "vault.bogus".into())]),
        ),
        (
            "ResponsePlaintext with v 2 (step 4)",
            cbor_map(vec![("v", 2.into()), ("id", ID.to_vec().into()), ("ok", ANSWER.to_vec().into())]),
        ),
        (
            "ResponsePlaintext with a 15-byte id, a prefix of the request id (step 4)",
            cbor_map(vec![("v", 1.into()), ("id", ID[..15].to_vec().into()), ("ok", ANSWER.to_vec().into())]),
        ),
        (
            "ResponsePlaintext that is not deterministic CBOR: 1 in a one-byte argument (step 4)",
            vec![0x18, 0x01],
        ),
    ];
    for (comment, pt) in bad {
        let r = seal_raw(&rk, &raw_nonce(), &pt);
        f.case(comment, &["Plaintext"], client.input(&r), invalid, None);
    }
}
