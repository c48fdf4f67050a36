//! spec/validation-bundle.md §5 and §6: every client verification step, and every
//! error code of the bundle registry (spec/conventions.md §7.2) produced by a bundle
//! built to break exactly that step.

use bkv_protocol::Error;
use bkv_protocol::crypto::{Ed25519Signer, Esp256Signer, Signer, sha256};
use bkv_protocol::fixtures::bundle::{
    NOW, Organisations, THIRD_PARTY, anchor, claims, keyset, organisations, protected_header,
};
use bkv_protocol::validation_bundle::countersignature::{
    Context, CoseCountersignature, countersign_structure,
};
use bkv_protocol::validation_bundle::*;
use ciborium::Value;

type HeaderMap = Vec<(Value, Value)>;
type Sign1Parts = (Vec<u8>, HeaderMap, Vec<u8>, Vec<u8>);
type KeySetBreaker = Box<dyn Fn(&mut FleetKeySet)>;

/// The sample deployment of the bundle vectors (`bkv_protocol::fixtures::bundle`).
type World = Organisations;

fn world() -> World {
    organisations()
}

fn make(w: &World, ks: &FleetKeySet) -> Vec<u8> {
    let signed = sign(&ks.to_bytes(), &claims(), &w.third_party);
    countersign(&signed, &w.operator).unwrap()
}

fn verify(w: &World, bundle: &[u8]) -> Result<VerifiedFleet, Error> {
    verify_bundle(bundle, &w.anchors, &ClientState::default(), NOW)
}

fn int(i: i64) -> Value {
    Value::Integer(i.into())
}

/// A protected header like the real one, with `edit` applied to its entries.
fn protected_with(kid: &[u8], edit: impl FnOnce(&mut Vec<(Value, Value)>)) -> Vec<u8> {
    protected_header(kid, edit)
}

/// A bundle from raw parts, signed by the third party over `protected` and
/// countersigned by the operator with the V2 structure.
fn raw_bundle(w: &World, protected: &[u8], payload: &[u8]) -> Vec<u8> {
    let sig = w.third_party.sign(&sig_structure(protected, payload));
    let cs = operator_countersignature(w, protected, payload, &sig);
    encode_sign1(protected, vec![(int(11), cs.to_value())], payload, &sig)
}

fn operator_countersignature(
    w: &World,
    protected: &[u8],
    payload: &[u8],
    sig: &[u8],
) -> CoseCountersignature {
    let pk = w.operator.public_key();
    let cs_prot = bkv_protocol::cbor::value_to_vec(&Value::Map(vec![
        (int(1), int(pk.alg.cose_id())),
        (int(4), Value::Bytes(pk.kid().to_vec())),
    ]));
    let tbs = countersign_structure(Context::V2, protected, &cs_prot, &[], payload, &[sig]);
    CoseCountersignature { protected: cs_prot, unprotected: vec![], signature: w.operator.sign(&tbs) }
}

/// Decompose a bundle into (protected, unprotected, payload, signature).
fn parts(bundle: &[u8]) -> Sign1Parts {
    let Value::Tag(18, inner) = ciborium::from_reader::<Value, _>(bundle).unwrap() else { panic!() };
    let a = inner.into_array().unwrap();
    (
        a[0].as_bytes().unwrap().clone(),
        a[1].as_map().unwrap().clone(),
        a[2].as_bytes().unwrap().clone(),
        a[3].as_bytes().unwrap().clone(),
    )
}

fn with_unprotected(bundle: &[u8], edit: impl FnOnce(&mut Vec<(Value, Value)>)) -> Vec<u8> {
    let (p, mut u, pl, s) = parts(bundle);
    edit(&mut u);
    encode_sign1(&p, u, &pl, &s)
}

#[test]
fn a_signed_and_countersigned_bundle_verifies() {
    let w = world();
    let ks = keyset(1, None);
    let b = make(&w, &ks);
    let v = verify(&w, &b).unwrap();
    assert_eq!(v.keyset(), &ks);
    assert_eq!(v.mode(), TrustMode::OverTheAir);
    assert_eq!(v.keyset_digest(), sha256(&ks.to_bytes()));
    assert_eq!(v.next_state().highest, Some((1, sha256(&b))));
    // The bundle is deterministic CBOR and its payload is the keyset's bytes.
    bkv_protocol::cbor::check(&b, &[18]).unwrap();
    assert_eq!(Parsed::parse(&b).unwrap().payload, ks.to_bytes());
}

#[test]
fn either_algorithm_can_sign_either_role() {
    let third_party = Esp256Signer::from_scalar(&[3; 32]).unwrap();
    let operator = Ed25519Signer::from_seed(&[4; 32]);
    let mut w = world();
    w.anchors.third_party = vec![anchor(THIRD_PARTY, third_party.public_key())];
    w.anchors.operator = vec![anchor("op", operator.public_key())];
    let signed = sign(&keyset(1, None).to_bytes(), &claims(), &third_party);
    let b = countersign(&signed, &operator).unwrap();
    verify(&w, &b).unwrap();
}

#[test]
fn swapped_roles_fail() {
    // The operator signs and the third party countersigns: each key is pinned, but for
    // the other role.
    let w = world();
    let signed = sign(&keyset(1, None).to_bytes(), &claims(), &w.operator);
    let b = countersign(&signed, &w.third_party).unwrap();
    assert_eq!(verify(&w, &b), Err(Error::BundleSignerUnknown));
}

#[test]
fn countersignature_over_the_payload_instead_of_the_signature_fails() {
    let w = world();
    let ks = keyset(1, None).to_bytes();
    let protected = protected_with(&w.third_party.public_key().kid(), |_| {});
    let sig = w.third_party.sign(&sig_structure(&protected, &ks));
    let pk = w.operator.public_key();
    let cs_prot = bkv_protocol::cbor::value_to_vec(&Value::Map(vec![
        (int(1), int(pk.alg.cose_id())),
        (int(4), Value::Bytes(pk.kid().to_vec())),
    ]));
    // The V1 form commits to the payload only, not to the signature bytes.
    let tbs = countersign_structure(Context::V1, &protected, &cs_prot, &[], &ks, &[]);
    let cs =
        CoseCountersignature { protected: cs_prot, unprotected: vec![], signature: w.operator.sign(&tbs) };
    let b = encode_sign1(&protected, vec![(int(11), cs.to_value())], &ks, &sig);
    assert_eq!(verify(&w, &b), Err(Error::BundleCountersignatureInvalid));
}

#[test]
fn countersignature_does_not_transfer_to_another_signature() {
    // A valid countersignature from bundle A does not verify on bundle B with the same
    // payload but another (valid) third-party signature: it is bound to A's signature.
    let w = world();
    let ks = keyset(1, None).to_bytes();
    let a = make(&w, &keyset(1, None));
    let (_, ua, _, _) = parts(&a);
    let mut c = claims();
    c.iat += 1;
    let b_signed = sign(&ks, &c, &w.third_party);
    let spliced = with_unprotected(&b_signed, |u| *u = ua);
    assert_eq!(verify(&w, &spliced), Err(Error::BundleCountersignatureInvalid));
}

#[test]
fn envelope_errors() {
    let w = world();
    let b = make(&w, &keyset(1, None));
    // Untagged COSE_Sign1.
    let (p, u, pl, s) = parts(&b);
    let untagged = bkv_protocol::cbor::value_to_vec(&Value::Array(vec![
        Value::Bytes(p.clone()),
        Value::Map(u.clone()),
        Value::Bytes(pl.clone()),
        Value::Bytes(s.clone()),
    ]));
    assert_eq!(verify(&w, &untagged), Err(Error::BundleNotSign1));
    // Detached payload.
    let detached = bkv_protocol::cbor::value_to_vec(&Value::Tag(
        18,
        Box::new(Value::Array(vec![Value::Bytes(p), Value::Map(u), Value::Null, Value::Bytes(s)])),
    ));
    assert_eq!(verify(&w, &detached), Err(Error::BundleNotSign1));
    // Another tag (COSE_Sign, 98) is not allowed at all.
    let mut tagged98 = b.clone();
    tagged98[0] = 0xd8;
    tagged98.insert(1, 98);
    assert_eq!(verify(&w, &tagged98), Err(Error::CborTagUnknown));
    // Trailing byte, and a non-deterministic (unsorted) unprotected map.
    let mut trailing = b.clone();
    trailing.push(0);
    assert_eq!(verify(&w, &trailing), Err(Error::CborTrailingBytes));
}

#[test]
fn non_deterministic_protected_header_is_rejected() {
    let w = world();
    let ks = keyset(1, None).to_bytes();
    let good = protected_with(&w.third_party.public_key().kid(), |_| {});
    // Same map with keys 1 and 3 swapped: coset accepts it, bkv must not.
    let Value::Map(mut m) = ciborium::from_reader::<Value, _>(good.as_slice()).unwrap() else { panic!() };
    m.swap(0, 1);
    let mut unsorted = Vec::new();
    ciborium::into_writer(&Value::Map(m), &mut unsorted).unwrap();
    assert_eq!(verify(&w, &raw_bundle(&w, &unsorted, &ks)), Err(Error::CborMapUnsorted));
}

#[test]
fn header_errors() {
    let w = world();
    let ks = keyset(1, None).to_bytes();
    let kid = w.third_party.public_key().kid();
    let case = |edit: &dyn Fn(&mut HeaderMap)| verify(&w, &raw_bundle(&w, &protected_with(&kid, edit), &ks));

    assert_eq!(case(&|m| m.retain(|(k, _)| *k != int(15))), Err(Error::BundleHeaderMissing));
    assert_eq!(case(&|m| m.retain(|(k, _)| *k != int(1))), Err(Error::BundleHeaderMissing));
    assert_eq!(case(&|m| m.retain(|(k, _)| *k != int(3))), Err(Error::BundleHeaderMissing));
    assert_eq!(case(&|m| m[2].1 = Value::Bytes(vec![1; 8])), Err(Error::BundleHeaderMissing));
    assert_eq!(case(&|m| m[3].1 = Value::Map(vec![])), Err(Error::BundleHeaderMissing));
    assert_eq!(case(&|m| m[1].1 = Value::Text("application/cbor".into())), Err(Error::BundleContentType));
    assert_eq!(case(&|m| m.push((int(33), int(0)))), Err(Error::BundleHeaderMisplaced));
    assert_eq!(case(&|m| m[0].1 = int(-8)), Err(Error::CoseAlgorithmDeprecated));
    assert_eq!(case(&|m| m[0].1 = int(-7)), Err(Error::CoseAlgorithmDeprecated));
    assert_eq!(case(&|m| m[0].1 = int(-35)), Err(Error::CoseAlgorithmUnsupported));
    // The header says ESP256 but the kid names the Ed25519 anchor.
    assert_eq!(case(&|m| m[0].1 = int(-9)), Err(Error::BundleAlgorithmMismatch));

    // kid in the unprotected bucket.
    let b = make(&w, &keyset(1, None));
    let misplaced = with_unprotected(&b, |u| u.insert(0, (int(4), Value::Bytes(kid.to_vec()))));
    assert_eq!(verify(&w, &misplaced), Err(Error::BundleHeaderMisplaced));
}

#[test]
fn countersignature_form_errors() {
    let w = world();
    let b = make(&w, &keyset(1, None));
    let signed_only = sign(&keyset(1, None).to_bytes(), &claims(), &w.third_party);
    assert_eq!(verify(&w, &signed_only), Err(Error::BundleCountersignatureMissing));

    let (_, u, _, _) = parts(&b);
    let one = u[0].1.clone();
    let two = with_unprotected(&b, |u| u[0].1 = Value::Array(vec![one.clone(), one.clone()]));
    assert_eq!(verify(&w, &two), Err(Error::BundleCountersignatureMultiple));

    let junk = with_unprotected(&b, |u| u[0].1 = int(5));
    assert_eq!(verify(&w, &junk), Err(Error::BundleCountersignatureMalformed));

    // Label 9 (Countersignature0) and 12 (Countersignature0V2): abbreviated forms.
    for label in [9, 12] {
        let extra = with_unprotected(&b, |u| u.push((int(label), Value::Bytes(vec![0; 64]))));
        assert_eq!(verify(&w, &extra), Err(Error::BundleCountersignatureForbiddenLabel), "label {label}");
    }
    // Label 7: a V1 COSE_Countersignature (a well-formed COSE_Signature).
    let v1 = Value::Array(vec![
        Value::Bytes(vec![0xa1, 0x01, 0x26]),
        Value::Map(vec![]),
        Value::Bytes(vec![0; 64]),
    ]);
    let seven = with_unprotected(&b, |u| u.insert(0, (int(7), v1)));
    assert_eq!(verify(&w, &seven), Err(Error::BundleCountersignatureForbiddenLabel));
}

#[test]
fn anchor_errors() {
    let w = world();
    let b = make(&w, &keyset(1, None));

    let mut a = w.anchors.clone();
    a.third_party = vec![anchor(THIRD_PARTY, Ed25519Signer::from_seed(&[9; 32]).public_key())];
    assert_eq!(verify_bundle(&b, &a, &ClientState::default(), NOW), Err(Error::BundleSignerUnknown));

    let mut a = w.anchors.clone();
    a.operator = vec![anchor("op", Esp256Signer::from_scalar(&[9; 32]).unwrap().public_key())];
    assert_eq!(verify_bundle(&b, &a, &ClientState::default(), NOW), Err(Error::BundleCountersignerUnknown));

    let mut a = w.anchors.clone();
    a.third_party[0].not_after = NOW - 1;
    assert_eq!(verify_bundle(&b, &a, &ClientState::default(), NOW), Err(Error::BundleSignerExpired));

    let mut a = w.anchors.clone();
    a.operator[0].not_before = NOW + 1;
    assert_eq!(verify_bundle(&b, &a, &ClientState::default(), NOW), Err(Error::BundleCountersignerExpired));

    // Key rotation with overlap: an old and a new third-party key are both pinned.
    let mut a = w.anchors.clone();
    a.third_party.insert(0, anchor("old", Ed25519Signer::from_seed(&[8; 32]).public_key()));
    assert!(verify_bundle(&b, &a, &ClientState::default(), NOW).is_ok());
}

#[test]
fn signature_errors() {
    let w = world();
    let b = make(&w, &keyset(1, None));
    let (p, u, pl, mut s) = parts(&b);
    s[0] ^= 1;
    assert_eq!(verify(&w, &encode_sign1(&p, u.clone(), &pl, &s)), Err(Error::BundleSignatureInvalid));

    let bad_cs = with_unprotected(&b, |u| {
        let Value::Array(items) = &mut u[0].1 else { panic!() };
        let Value::Bytes(sig) = &mut items[2] else { panic!() };
        sig[5] ^= 1;
    });
    assert_eq!(verify(&w, &bad_cs), Err(Error::BundleCountersignatureInvalid));
}

#[test]
fn claims_errors() {
    let w = world();
    let ks = keyset(1, None).to_bytes();
    for c in [
        Claims { iss: "someone.else".into(), ..claims() },
        Claims { sub: "other-fleet".into(), ..claims() },
        Claims { iat: NOW + 5000, ..claims() },
    ] {
        let b = countersign(&sign(&ks, &c, &w.third_party), &w.operator).unwrap();
        assert_eq!(verify(&w, &b), Err(Error::BundleClaimsMismatch), "{c:?}");
    }
}

#[test]
fn keyset_errors() {
    let w = world();
    let breakers: Vec<KeySetBreaker> = vec![
        Box::new(|k| k.quorum = 2),
        Box::new(|k| k.quorum = 5),
        Box::new(|k| k.guess_limit = 0),
        Box::new(|k| k.guess_limit = 101),
        Box::new(|k| k.epoch = 0),
        Box::new(|k| k.prev = Some([1; 32])),
        Box::new(|k| k.not_before = k.not_after + 1),
        Box::new(|k| k.nodes[1].id = "node-1".into()),
        Box::new(|k| k.nodes[1].keys.pop().map(|_| ()).unwrap()),
        Box::new(|k| k.nodes[1].keys[1].key = vec![0xbb; 32]),
        Box::new(|k| k.nodes[1].keys[0].key = vec![1; 32]),
        Box::new(|k| k.nodes[1].keys[0].suite = 0x0010),
        Box::new(|k| k.nodes[1].keys[2].key = vec![0; 31]),
        Box::new(|k| k.nodes.clear()),
        Box::new(|k| k.fleet_id.clear()),
    ];
    for (i, brk) in breakers.iter().enumerate() {
        let mut ks = keyset(1, None);
        brk(&mut ks);
        assert_eq!(verify(&w, &make(&w, &ks)), Err(Error::BundleKeySetInvalid), "breaker {i}");
    }
    // A non-FleetKeySet payload, properly signed, is a schema error.
    let kid = w.third_party.public_key().kid();
    let other = bkv_protocol::cbor::to_vec(&std::collections::BTreeMap::from([("v", 1)]));
    assert_eq!(verify(&w, &raw_bundle(&w, &protected_with(&kid, |_| {}), &other)), Err(Error::CborSchema));

    let mut ks = keyset(1, None);
    ks.fleet_id = "other-fleet".into();
    let c = Claims { sub: "other-fleet".into(), ..claims() };
    let b = countersign(&sign(&ks.to_bytes(), &c, &w.third_party), &w.operator).unwrap();
    assert_eq!(verify(&w, &b), Err(Error::BundleFleetMismatch));
}

#[test]
fn validity_window() {
    let w = world();
    let b = make(&w, &keyset(1, None));
    let st = ClientState::default();
    assert_eq!(verify_bundle(&b, &w.anchors, &st, NOW - 101), Err(Error::BundleNotYetValid));
    assert_eq!(verify_bundle(&b, &w.anchors, &st, NOW + 101), Err(Error::BundleExpired));
    assert!(verify_bundle(&b, &w.anchors, &st, NOW - 100).is_ok());
    assert!(verify_bundle(&b, &w.anchors, &st, NOW + 100).is_ok());
}

#[test]
fn rollback_equivocation_and_chain() {
    let w = world();
    let b1 = make(&w, &keyset(1, None));
    let s1 = verify(&w, &b1).unwrap().next_state();
    // The same bundle again is fine; another bundle for epoch 1 is equivocation.
    assert_eq!(verify_bundle(&b1, &w.anchors, &s1, NOW).unwrap().next_state(), s1);
    let mut other = keyset(1, None);
    other.guess_limit = 11;
    let b1x = make(&w, &other);
    assert_eq!(verify_bundle(&b1x, &w.anchors, &s1, NOW), Err(Error::BundleEquivocation));

    let b2 = make(&w, &keyset(2, Some(sha256(&b1))));
    let s2 = verify_bundle(&b2, &w.anchors, &s1, NOW).unwrap().next_state();
    assert_eq!(s2.highest, Some((2, sha256(&b2))));
    assert_eq!(verify_bundle(&b1, &w.anchors, &s2, NOW), Err(Error::BundleRollback));

    // Epoch 2 whose prev is not the bundle the client holds.
    let b2x = make(&w, &keyset(2, Some(sha256(&b1x))));
    assert_eq!(verify_bundle(&b2x, &w.anchors, &s1, NOW), Err(Error::BundleChainBroken));

    // Skipping epoch 2 needs the intermediate bundle.
    let b3 = make(&w, &keyset(3, Some(sha256(&b2))));
    assert_eq!(verify_bundle(&b3, &w.anchors, &s1, NOW), Err(Error::BundleChainBroken));
    let v3 = verify_bundle_update(&b3, &[&b2], &w.anchors, &s1, NOW).unwrap();
    assert_eq!(v3.next_state().highest, Some((3, sha256(&b3))));
    assert_eq!(verify_bundle_update(&b3, &[&b2x], &w.anchors, &s1, NOW), Err(Error::BundleChainBroken));
}

#[test]
fn pinned_mode() {
    let mut w = world();
    let ks = keyset(1, None);
    let bytes = ks.to_bytes();
    assert_eq!(verify_pinned(&bytes, &w.anchors, NOW), Err(Error::PinnedMismatch));
    w.anchors.pinned.push(serde_bytes::ByteBuf::from(sha256(&bytes).to_vec()));
    let v = verify_pinned(&bytes, &w.anchors, NOW).unwrap();
    assert_eq!(v.mode(), TrustMode::Pinned);
    assert_eq!(v.keyset(), &ks);
    // A pinned fleet past its window is retired: the app must be updated.
    assert_eq!(verify_pinned(&bytes, &w.anchors, NOW + 101), Err(Error::PinnedFleetRetired));
    // A different keyset is refused even if it is otherwise valid.
    let mut other = ks.clone();
    other.guess_limit = 9;
    assert_eq!(verify_pinned(&other.to_bytes(), &w.anchors, NOW), Err(Error::PinnedMismatch));
}

#[test]
fn trust_anchors_round_trip_and_reject_bad_keys() {
    let w = world();
    let bytes = w.anchors.to_bytes();
    assert_eq!(TrustAnchors::from_bytes(&bytes).unwrap(), w.anchors);
    let mut bad = w.anchors.clone();
    bad.operator[0].key.key[10] ^= 0xff; // no longer a point on P-256
    assert_eq!(TrustAnchors::from_bytes(&bad.to_bytes()), Err(Error::CoseKeyInvalid));
}
