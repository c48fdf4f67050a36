//! Known-answer tests: the RFC 9338 appendix countersignature examples
//! (`tests/data/rfc9338.json`, sources named there). They check the hand-written
//! Countersign_structure (which `coset` lacks) byte for byte against the RFC, and verify
//! the RFC's signatures with independent ECDSA implementations (`p256`, `p521`).

use base64::Engine;
use bkv_protocol::validation_bundle::countersignature::{
    Context, CoseCountersignature, CountersignatureValue, countersign_structure,
};
use ciborium::Value;
use pretty_assertions::assert_eq;

fn data() -> serde_json::Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/rfc9338.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn hexfield(v: &serde_json::Value, k: &str) -> Vec<u8> {
    hex::decode(v[k].as_str().unwrap()).unwrap()
}

/// Uncompressed SEC1 point from the JWK-style base64url x and y of a test key.
fn point(key: &serde_json::Value) -> Vec<u8> {
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let mut p = vec![0x04];
    p.extend(b64.decode(key["x_b64url"].as_str().unwrap()).unwrap());
    p.extend(b64.decode(key["y_b64url"].as_str().unwrap()).unwrap());
    p
}

fn bytes(v: &Value) -> Vec<u8> {
    v.as_bytes().unwrap().clone()
}

/// The label-11 entry of an unprotected header map.
fn label11(map: &Value) -> CoseCountersignature {
    let entry = map.as_map().unwrap().iter().find(|(k, _)| *k == Value::Integer(11.into())).unwrap();
    match CoseCountersignature::parse_label_value(&entry.1).unwrap() {
        CountersignatureValue::One(cs) => cs,
        CountersignatureValue::Many(_) => panic!("the RFC examples carry one countersignature"),
    }
}

fn verify_p256(key: &[u8], msg: &[u8], sig: &[u8]) -> bool {
    use p256::ecdsa::signature::Verifier;
    let vk = p256::ecdsa::VerifyingKey::from_sec1_bytes(key).unwrap();
    vk.verify(msg, &p256::ecdsa::Signature::from_slice(sig).unwrap()).is_ok()
}

fn verify_p521(key: &[u8], msg: &[u8], sig: &[u8]) -> bool {
    use p521::ecdsa::signature::Verifier;
    let vk = p521::ecdsa::VerifyingKey::from_sec1_bytes(key).unwrap();
    vk.verify(msg, &p521::ecdsa::Signature::from_slice(sig).unwrap()).is_ok()
}

#[test]
fn rfc9338_v2_countersignature_on_cose_sign1() {
    let d = data();
    let case = &d["countersignature_on_cose_sign1"];
    let msg = hexfield(case, "message_hex");
    assert_eq!(msg.len(), 275);

    let Value::Tag(18, inner) = ciborium::from_reader::<Value, _>(msg.as_slice()).unwrap() else {
        panic!("tagged COSE_Sign1")
    };
    let parts = inner.as_array().unwrap();
    let (body_protected, payload, signature) = (bytes(&parts[0]), bytes(&parts[2]), bytes(&parts[3]));
    let cs = label11(&parts[1]);

    // The V2 structure with other_fields = [signature], byte for byte as in the RFC.
    let tbs =
        countersign_structure(Context::V2, &body_protected, &cs.protected, &[], &payload, &[&signature]);
    assert_eq!(hex::encode(&tbs), case["countersign_structure_hex"].as_str().unwrap());

    // The P-521 countersignature by bilbo.baggins verifies over it, and not over the V1 form.
    let bilbo = point(&d["keys"]["bilbo.baggins@hobbiton.example"]);
    assert!(verify_p521(&bilbo, &tbs, &cs.signature));
    let v1 = countersign_structure(Context::V1, &body_protected, &cs.protected, &[], &payload, &[]);
    assert!(!verify_p521(&bilbo, &v1, &cs.signature));

    // The P-256 signature by key "11" verifies over the RFC 9052 Sig_structure. (coset
    // cannot parse this message: the example's countersignature kid is a text string.)
    let sig_structure = Value::Array(vec![
        Value::Text("Signature1".into()),
        Value::Bytes(body_protected.clone()),
        Value::Bytes(vec![]),
        Value::Bytes(payload.clone()),
    ]);
    let mut tbs1 = Vec::new();
    ciborium::into_writer(&sig_structure, &mut tbs1).unwrap();
    let key11 = point(&d["keys"]["11"]);
    assert!(verify_p256(&key11, &tbs1, &signature));
}

#[test]
fn rfc9338_countersignature_on_cose_sign() {
    let d = data();
    let case = &d["countersignature_on_cose_sign"];
    let msg = hexfield(case, "message_hex");
    assert_eq!(msg.len(), 180);

    let Value::Tag(98, inner) = ciborium::from_reader::<Value, _>(msg.as_slice()).unwrap() else {
        panic!("tagged COSE_Sign")
    };
    let parts = inner.as_array().unwrap();
    let (body_protected, payload) = (bytes(&parts[0]), bytes(&parts[2]));
    let cs = label11(&parts[1]);

    // On a COSE_Sign there are no other_fields: the 5-element structure applies.
    let tbs = countersign_structure(Context::V1, &body_protected, &cs.protected, &[], &payload, &[]);
    let key11 = point(&d["keys"]["11"]);
    assert!(verify_p256(&key11, &tbs, &cs.signature));
    let v2 = countersign_structure(Context::V2, &body_protected, &cs.protected, &[], &payload, &[]);
    assert!(!verify_p256(&key11, &v2, &cs.signature));
}
