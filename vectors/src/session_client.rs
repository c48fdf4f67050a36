//! Vectors for the response half of spec/session.md: `session_seal_response` (§4.2, the
//! node seals with a given nonce), `session_open_response` (§3.3 then §4.3, the client) and
//! `hpke_kat` (§2, the RFC 9180 known answer of the suite).
//!
//! The client's request is sealed with a fixed ephemeral input `ikm_e` (its ephemeral key
//! pair is RFC 9180 `DeriveKeyPair(ikm_e)`), so a harness recreates the client's HPKE
//! context, and hence the response key, from the vector. Invalid responses are the valid
//! one with one thing changed, or plaintexts sealed by hand under the response key; the
//! expected code is the step of §4.3 that the change breaks.

use crate::cases;
use crate::fixed_rng::FixedRng;
use crate::format::{Case, FileBuilder, map};
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

/// What the response cases are built from: the node, the client's request to it, the
/// stream of response nonces (drawn in file order), and the node's sealed ok answer.
struct World {
    key: SessionSecretKey,
    client: Client,
    request: Vec<u8>,
    server: SessionServer,
    nonces: ChaCha20Rng,
    ok: Vec<u8>,
}

impl World {
    fn new() -> Self {
        let key = SessionSecretKey::derive(b"bkv vectors: session node key");
        let client = Client { pk: key.public_key(), ikm_e: IKM_E, id: ID };
        let request = client.request();
        let server = SessionServer::new(FLEET, EPOCH, NODE, key.clone());
        let mut w = World {
            key,
            client,
            request,
            server,
            nonces: ChaCha20Rng::seed_from_u64(0x5e56),
            ok: Vec::new(),
        };
        // The first nonce of the stream seals the ok answer of the first open case.
        let request = w.request.clone();
        w.ok = w.respond_next(&request, Ok(ANSWER.to_vec()));
        w
    }

    /// The next nonce of the stream.
    fn next_nonce(&mut self) -> [u8; 12] {
        let mut n = [0u8; 12];
        self.nonces.fill_bytes(&mut n);
        n
    }

    /// The node's answer to `request` with `result`, sealed with `nonce`.
    fn respond(&self, nonce: &[u8], request: &[u8], result: Result<Vec<u8>, Error>) -> Vec<u8> {
        self.server.open(request, NOW).expect("opens").responder.seal(&mut FixedRng(nonce.to_vec()), result)
    }

    /// The node's answer to `request` with `result`, sealed with the next nonce.
    fn respond_next(&mut self, request: &[u8], result: Result<Vec<u8>, Error>) -> Vec<u8> {
        let nonce = self.next_nonce();
        self.respond(&nonce, request, result)
    }

    /// A `session_seal_response` case: the node seals `sealed` with the fixed nonce.
    fn seal_case(&self, result: Value, sealed: Result<Vec<u8>, Error>) -> Case {
        let response = self.respond(&NONCE, &self.request, sealed);
        let input = map([
            ("node_key", json!(hex::encode(self.key.to_bytes()))),
            ("fleet_id", json!(FLEET)),
            ("epoch", json!(EPOCH)),
            ("node_id", json!(NODE)),
            ("now", json!(NOW)),
            ("request", json!(hex::encode(&self.request))),
            ("nonce", json!(hex::encode(NONCE))),
            ("result", result),
        ]);
        Case::valid(&["Valid"], input, Some(map([("response", json!(hex::encode(response)))])))
    }

    /// What the client opens: its request and the answer's body.
    fn opened(&self, body: &[u8]) -> Option<BTreeMap<String, Value>> {
        Some(map([("request", json!(hex::encode(&self.request))), ("body", json!(hex::encode(body)))]))
    }

    /// The client refuses `response` with `session.response.invalid`.
    fn invalid(&self, flags: &'static [&'static str], response: &[u8]) -> Case {
        Case::invalid(flags, self.client.input(response), Error::SessionResponseInvalid)
    }

    /// A field of the sealed ok answer.
    fn part(&self, k: &str) -> Vec<u8> {
        fields(&self.ok)[k].as_bytes().expect("bytes").clone()
    }

    /// A SealedResponse of `nonce` and `sealed` with `extra` fields.
    fn response(nonce: &[u8], sealed: &[u8], extra: Vec<(&str, Cbor)>) -> Vec<u8> {
        let mut pairs =
            vec![("v", Cbor::from(1)), ("nonce", nonce.to_vec().into()), ("sealed", sealed.to_vec().into())];
        pairs.extend(extra);
        cbor_map(pairs)
    }

    /// The ok answer's nonce and sealed bytes, changed by `change`, with `extra` fields.
    fn ok_with(&self, change: impl FnOnce(&mut Vec<u8>, &mut Vec<u8>), extra: Vec<(&str, Cbor)>) -> Vec<u8> {
        let (mut nonce, mut sealed) = (self.part("nonce"), self.part("sealed"));
        change(&mut nonce, &mut sealed);
        Self::response(&nonce, &sealed, extra)
    }

    /// A ResponsePlaintext for the request id with `extra` fields, sealed by hand under the
    /// response key with the next nonce.
    fn plaintext(&mut self, extra: Vec<(&str, Cbor)>) -> Vec<u8> {
        let mut pairs = vec![("v", Cbor::from(1)), ("id", ID.to_vec().into())];
        pairs.extend(extra);
        self.sealed_by_hand(&cbor_map(pairs))
    }

    /// `pt` sealed by hand under the response key with the next nonce.
    fn sealed_by_hand(&mut self, pt: &[u8]) -> Vec<u8> {
        let nonce = self.next_nonce();
        seal_raw(&self.client.response_key(), &nonce, pt)
    }
}

cases! { World, HPKE_KAT;
    /// RFC 9180 Appendix A.2.1 (base mode, the bkv suite): the sender keyed by
    /// DeriveKeyPair(ikmE) gives enc and every ct in order, the receiver with skRm opens
    /// them, every export matches
    fn rfc9180_a_2_1(_w) {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../protocol/tests/data/hpke-rfc9180-x25519-sha256-chacha20poly1305-base.json"
        );
        let v: Value = serde_json::from_str(&std::fs::read_to_string(path).expect("KAT file")).expect("KAT json");
        for (k, want) in [("mode", 0), ("kem_id", 32), ("kdf_id", 1), ("aead_id", 3)] {
            assert_eq!(v[k], json!(want), "the KAT file is the bkv suite");
        }
        let mut input = BTreeMap::new();
        for k in ["info", "ikmE", "pkEm", "skRm", "pkRm", "enc", "encryptions", "exports"] {
            input.insert(k.to_owned(), v[k].clone());
        }
        Case::valid(&["Rfc9180"], input, None)
    }
}

cases! { World, SESSION_SEAL_RESPONSE;
    /// the node seals an ok body
    fn seal_ok(w) {
        w.seal_case(json!({ "ok": hex::encode(ANSWER) }), Ok(ANSWER.to_vec()))
    }
    /// the node seals an empty ok body
    fn seal_empty_ok(w) {
        w.seal_case(json!({ "ok": "" }), Ok(Vec::new()))
    }
    /// the node seals an application error
    fn seal_error(w) {
        w.seal_case(json!({ "error": Error::VaultRecordLocked.code() }), Err(Error::VaultRecordLocked))
    }
}

cases! { World, SESSION_OPEN_RESPONSE;
    /// a sealed ok body
    fn sealed_ok(w) {
        Case::valid(&["Valid"], w.client.input(&w.ok), w.opened(ANSWER))
    }
    /// a sealed empty ok body
    fn sealed_empty_ok(w) {
        let request = w.request.clone();
        let empty = w.respond_next(&request, Ok(Vec::new()));
        Case::valid(&["Valid"], w.client.input(&empty), w.opened(b""))
    }
    /// sealed vault.record.locked (step 4)
    fn sealed_record_locked(w) {
        let request = w.request.clone();
        let r = w.respond_next(&request, Err(Error::VaultRecordLocked));
        Case::invalid(&["Sealed"], w.client.input(&r), Error::VaultRecordLocked)
    }
    /// sealed session.request.replayed (step 4)
    fn sealed_request_replayed(w) {
        let request = w.request.clone();
        let r = w.respond_next(&request, Err(Error::SessionRequestReplayed));
        Case::invalid(&["Sealed"], w.client.input(&r), Error::SessionRequestReplayed)
    }
    /// unsealed session.request.stale (step 2)
    fn unsealed_request_stale(w) {
        Case::invalid(&["Unsealed"], w.client.input(&session::reject(Error::SessionRequestStale)), Error::SessionRequestStale)
    }
    /// unsealed session.epoch.mismatch (step 2)
    fn unsealed_epoch_mismatch(w) {
        Case::invalid(&["Unsealed"], w.client.input(&session::reject(Error::SessionEpochMismatch)), Error::SessionEpochMismatch)
    }
    /// unsealed cbor.schema (step 2)
    fn unsealed_cbor_schema(w) {
        Case::invalid(&["Unsealed"], w.client.input(&session::reject(Error::CborSchema)), Error::CborSchema)
    }
    /// unsealed vault.record.locked: not a code a node may send unsealed (step 2)
    fn unsealed_client_only_code(w) {
        w.invalid(&["Unsealed"], &session::reject(Error::VaultRecordLocked))
    }
    /// unsealed code that is not in the registry (step 2)
    fn unsealed_unknown_code(w) {
        w.invalid(&["Unsealed"], &cbor_map(vec![("v", 1.into()), ("error", "session.bogus".into())]))
    }
    /// unsealed error with v 2 (step 1)
    fn unsealed_v2(w) {
        w.invalid(&["Unsealed", "Encoding"], &cbor_map(vec![("v", 2.into()), ("error", "session.request.stale".into())]))
    }
    /// not CBOR (step 1)
    fn not_cbor(w) {
        w.invalid(&["Encoding"], &[0xff])
    }
    /// neither sealed nor error (step 1)
    fn neither_sealed_nor_error(w) {
        w.invalid(&["Encoding"], &cbor_map(vec![("v", 1.into())]))
    }
    /// both sealed and error (step 1)
    fn both_sealed_and_error(w) {
        w.invalid(&["Encoding"], &w.ok_with(|_, _| {}, vec![("error", "session.request.stale".into())]))
    }
    /// an unknown field next to nonce and sealed (step 1)
    fn unknown_field(w) {
        w.invalid(&["Encoding"], &w.ok_with(|_, _| {}, vec![("zz", 0.into())]))
    }
    /// a nonce of 11 bytes (step 1)
    fn nonce_11_bytes(w) {
        w.invalid(&["Encoding"], &w.ok_with(|n, _| n.truncate(11), vec![]))
    }
    /// a SealedResponse as an indefinite-length map (step 1)
    fn indefinite_length_map(w) {
        let mut indefinite = w.ok.clone();
        indefinite[0] = 0xbf;
        indefinite.push(0xff);
        w.invalid(&["Encoding"], &indefinite)
    }
    /// last byte of sealed flipped (tag, step 3)
    fn tag_flipped(w) {
        let r = w.ok_with(
            |_, s| {
                let last = s.len() - 1;
                s[last] ^= 0x01;
            },
            vec![],
        );
        w.invalid(&["Tampered"], &r)
    }
    /// nonce changed (step 3)
    fn nonce_changed(w) {
        w.invalid(&["Tampered"], &w.ok_with(|n, _| n[0] ^= 0x01, vec![]))
    }
    /// sealed shorter than a tag (step 3)
    fn sealed_shorter_than_tag(w) {
        w.invalid(&["Tampered"], &w.ok_with(|_, s| s.truncate(15), vec![]))
    }
    /// the node's answer to another request with the same id (another HPKE context, step 3)
    fn another_hpke_context(w) {
        let other = Client { pk: w.client.pk, ikm_e: [0x22; 32], id: ID };
        let r = w.respond_next(&other.request(), Ok(ANSWER.to_vec()));
        w.invalid(&["Context"], &r)
    }
    /// the answer of another node's key to the same ikm_e, id and body (step 3)
    fn another_node_key(w) {
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
        let nonce = w.next_nonce();
        let r = other_node
            .open(&to_other, NOW)
            .expect("opens")
            .responder
            .seal(&mut FixedRng(nonce.to_vec()), Ok(ANSWER.to_vec()));
        w.invalid(&["Context"], &r)
    }
    /// same HPKE context, the answer names another request id (step 4)
    fn another_request_id(w) {
        let same_ctx = Client { id: [0x5b; 16], pk: w.client.pk, ikm_e: IKM_E };
        let r = w.respond_next(&same_ctx.request(), Ok(ANSWER.to_vec()));
        w.invalid(&["Context"], &r)
    }
    /// ResponsePlaintext sealed by hand under the response key: ok (the raw sealing is right)
    fn plaintext_ok(w) {
        let r = w.plaintext(vec![("ok", ANSWER.to_vec().into())]);
        Case::valid(&["Valid", "Plaintext"], w.client.input(&r), w.opened(ANSWER))
    }
    /// ResponsePlaintext with both ok and error (step 4)
    fn plaintext_ok_and_error(w) {
        let r = w.plaintext(vec![("ok", ANSWER.to_vec().into()), ("error", "vault.record.locked".into())]);
        w.invalid(&["Plaintext"], &r)
    }
    /// ResponsePlaintext with neither ok nor error (step 4)
    fn plaintext_neither(w) {
        let r = w.plaintext(vec![]);
        w.invalid(&["Plaintext"], &r)
    }
    /// ResponsePlaintext with an error code not in the registry (step 4)
    fn plaintext_unknown_code(w) {
        let r = w.plaintext(vec![("error", "vault.bogus".into())]);
        w.invalid(&["Plaintext"], &r)
    }
    /// ResponsePlaintext with v 2 (step 4)
    fn plaintext_v2(w) {
        let pt = cbor_map(vec![("v", 2.into()), ("id", ID.to_vec().into()), ("ok", ANSWER.to_vec().into())]);
        let r = w.sealed_by_hand(&pt);
        w.invalid(&["Plaintext"], &r)
    }
    /// ResponsePlaintext with a 15-byte id, a prefix of the request id (step 4)
    fn plaintext_id_prefix(w) {
        let pt = cbor_map(vec![("v", 1.into()), ("id", ID[..15].to_vec().into()), ("ok", ANSWER.to_vec().into())]);
        let r = w.sealed_by_hand(&pt);
        w.invalid(&["Plaintext"], &r)
    }
    /// ResponsePlaintext that is not deterministic CBOR: 1 in a one-byte argument (step 4)
    fn plaintext_non_minimal(w) {
        let r = w.sealed_by_hand(&[0x18, 0x01]);
        w.invalid(&["Plaintext"], &r)
    }
}

/// Add the groups `hpke_kat`, `session_seal_response` and `session_open_response`.
pub(crate) fn add(f: &mut FileBuilder) {
    let mut w = World::new();
    f.group("hpke_kat", "§2");
    f.cases(&mut w, HPKE_KAT);
    f.group("session_seal_response", "§4.2");
    f.cases(&mut w, SESSION_SEAL_RESPONSE);
    f.group("session_open_response", "§4.3");
    f.cases(&mut w, SESSION_OPEN_RESPONSE);
}
