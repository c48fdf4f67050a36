//! RFC 9180 known-answer test for the bkv session suite (spec/session.md §2):
//! DHKEM(X25519, HKDF-SHA256), HKDF-SHA256, ChaCha20Poly1305, base mode.
//! The vector (RFC 9180 Appendix A.2.1) is in `tests/data/`, with its source.

use bkv_protocol::session::{AEAD_ID, KDF_ID, KEM_ID, SessionSecretKey};
use hpke::kem::Kem as _;
use hpke::{Deserializable, OpModeR, OpModeS, Serializable};
use serde_json::Value;

type Kem = hpke::kem::X25519HkdfSha256;
type Kdf = hpke::kdf::HkdfSha256;
type Aead = hpke::aead::ChaCha20Poly1305;

fn vector() -> Value {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/hpke-rfc9180-x25519-sha256-chacha20poly1305-base.json"
    );
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn hx(v: &Value, k: &str) -> Vec<u8> {
    hex::decode(v[k].as_str().unwrap()).unwrap()
}

use bkv_protocol::fixtures::FixedRng;

#[test]
fn vector_is_the_bkv_suite() {
    let v = vector();
    assert_eq!(v["mode"], 0);
    assert_eq!(v["kem_id"].as_u64().unwrap(), u64::from(KEM_ID));
    assert_eq!(v["kdf_id"].as_u64().unwrap(), u64::from(KDF_ID));
    assert_eq!(v["aead_id"].as_u64().unwrap(), u64::from(AEAD_ID));
}

/// GenerateKeyPair is DeriveKeyPair(random(32)) for this KEM, both in `hpke` and in
/// `SessionSecretKey::generate`: an RNG that yields ikmR gives (skRm, pkRm).
#[test]
fn generate_keypair_is_derive_keypair_of_the_rng_output() {
    let v = vector();
    let (sk, pk) = Kem::gen_keypair(&mut FixedRng(hx(&v, "ikmR")));
    assert_eq!(sk.to_bytes().to_vec(), hx(&v, "skRm"));
    assert_eq!(pk.to_bytes().to_vec(), hx(&v, "pkRm"));
    let ours = SessionSecretKey::generate(&mut FixedRng(hx(&v, "ikmR")));
    assert_eq!(ours.to_bytes().to_vec(), hx(&v, "skRm"));
    assert_eq!(ours.public_key().to_vec(), hx(&v, "pkRm"));
    assert_eq!(SessionSecretKey::derive(&hx(&v, "ikmE")).public_key().to_vec(), hx(&v, "pkEm"));
}

#[test]
fn sender_with_fixed_ephemeral_matches_rfc9180_a_2_1() {
    let v = vector();
    let pk_r = <Kem as hpke::kem::Kem>::PublicKey::from_bytes(&hx(&v, "pkRm")).unwrap();
    let mut rng = FixedRng(hx(&v, "ikmE"));
    let (enc, mut ctx) =
        hpke::setup_sender::<Aead, Kdf, Kem, _>(&OpModeS::Base, &pk_r, &hx(&v, "info"), &mut rng).unwrap();
    assert_eq!(enc.to_bytes().to_vec(), hx(&v, "enc"));
    assert_eq!(hx(&v, "enc"), hx(&v, "pkEm"));
    // Sequence numbers 0, 1, 2 in order.
    for (i, e) in v["encryptions"].as_array().unwrap().iter().enumerate() {
        assert_eq!(e["seq"].as_u64().unwrap(), i as u64);
        let ct = ctx.seal(&hx(e, "pt"), &hx(e, "aad")).unwrap();
        assert_eq!(ct, hx(e, "ct"), "encryption {i}");
    }
    for x in v["exports"].as_array().unwrap() {
        let mut out = vec![0u8; x["L"].as_u64().unwrap() as usize];
        ctx.export(&hx(x, "exporter_context"), &mut out).unwrap();
        assert_eq!(out, hx(x, "exported_value"));
    }
}

#[test]
fn receiver_opens_rfc9180_a_2_1() {
    let v = vector();
    let sk_r = <Kem as hpke::kem::Kem>::PrivateKey::from_bytes(&hx(&v, "skRm")).unwrap();
    let enc = <Kem as hpke::kem::Kem>::EncappedKey::from_bytes(&hx(&v, "enc")).unwrap();
    let mut ctx =
        hpke::setup_receiver::<Aead, Kdf, Kem>(&OpModeR::Base, &sk_r, &enc, &hx(&v, "info")).unwrap();
    for e in v["encryptions"].as_array().unwrap() {
        assert_eq!(ctx.open(&hx(e, "ct"), &hx(e, "aad")).unwrap(), hx(e, "pt"));
    }
    let x = &v["exports"][2];
    let mut out = [0u8; 32];
    ctx.export(&hx(x, "exporter_context"), &mut out).unwrap();
    assert_eq!(out.to_vec(), hx(x, "exported_value"));
}

/// bkv's own sealing (spec/session.md §3.3) with the RFC's ephemeral ikmE and recipient
/// key: `enc` is the RFC's, and an independent RFC 9180 receiver with the bkv `info`
/// opens the request and exports the same response key.
#[test]
fn bkv_seal_with_fixed_ephemeral_is_rfc9180_base_mode() {
    use bkv_protocol::session::{self, RESPONSE_EXPORT_LABEL, SessionServer, SessionTarget};
    let v = vector();
    let mut pk = [0u8; 32];
    pk.copy_from_slice(&hx(&v, "pkRm"));
    let target = SessionTarget { fleet_id: "f".into(), epoch: 7, node_id: "n".into(), session_key: pk };
    let id = [0x42u8; 16];
    let (request, wait) =
        session::seal_request_with_id(&mut FixedRng(hx(&v, "ikmE")), &target, 1000, id, b"hello").unwrap();
    let sealed: session::SealedRequest = bkv_protocol::cbor::from_slice(&request).unwrap();
    assert_eq!(sealed.enc, hx(&v, "enc"));
    assert_eq!((sealed.kem, sealed.kdf, sealed.aead), (32, 1, 3));

    // Independent receiver: the hpke crate with the RFC's skRm and the bkv info.
    let sk_r = <Kem as hpke::kem::Kem>::PrivateKey::from_bytes(&hx(&v, "skRm")).unwrap();
    let enc = <Kem as hpke::kem::Kem>::EncappedKey::from_bytes(&sealed.enc).unwrap();
    let info = session::info("f", 7, "n");
    let mut ctx = hpke::setup_receiver::<Aead, Kdf, Kem>(&OpModeR::Base, &sk_r, &enc, &info).unwrap();
    let pt = ctx.open(&sealed.ct, b"").unwrap();
    let value: ciborium::Value = ciborium::from_reader(pt.as_slice()).unwrap();
    let map = value.as_map().unwrap();
    let get = |k: &str| map.iter().find(|(key, _)| key.as_text() == Some(k)).map(|(_, v)| v.clone()).unwrap();
    assert_eq!(get("id").as_bytes().unwrap(), &id.to_vec());
    assert_eq!(get("body").as_bytes().unwrap(), &b"hello".to_vec());
    assert_eq!(map.len(), 4);

    // The node side, with the same key, opens it and answers; the client reads the answer,
    // and the answer is sealed under the exported key the independent receiver computes.
    let mut sk = [0u8; 32];
    sk.copy_from_slice(&hx(&v, "skRm"));
    let server = SessionServer::new("f", 7, "n", SessionSecretKey::from_bytes(&sk).unwrap());
    let opened = server.open(&request, 1000).unwrap();
    let response = opened.responder.seal_ok(&mut rand_core::OsRng, b"world");
    let mut rk = [0u8; 32];
    ctx.export(RESPONSE_EXPORT_LABEL, &mut rk).unwrap();
    let outer: ciborium::Value = ciborium::from_reader(response.as_slice()).unwrap();
    let field =
        |k: &str| outer.as_map().unwrap().iter().find(|(key, _)| key.as_text() == Some(k)).unwrap().1.clone();
    let (sealed_resp, nonce) = (field("sealed"), field("nonce"));
    use chacha20poly1305::aead::{Aead as _, KeyInit};
    let inner = chacha20poly1305::ChaCha20Poly1305::new_from_slice(&rk)
        .unwrap()
        .decrypt(
            chacha20poly1305::Nonce::from_slice(nonce.as_bytes().unwrap()),
            sealed_resp.as_bytes().unwrap().as_slice(),
        )
        .unwrap();
    let inner: ciborium::Value = ciborium::from_reader(inner.as_slice()).unwrap();
    let ok = inner.as_map().unwrap().iter().find(|(k, _)| k.as_text() == Some("ok")).unwrap().1.clone();
    assert_eq!(ok.as_bytes().unwrap(), &b"world".to_vec());
    assert_eq!(wait.open(&response).unwrap(), b"world");
}
