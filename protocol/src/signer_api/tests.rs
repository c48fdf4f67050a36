//! spec/signer-api.md: one test per check of S1–S5, O1–O2 and C2–C3, on the sample
//! deployment of the bundle vectors.

use super::*;
use crate::crypto::{Ed25519Signer, Esp256Signer};
use crate::fixtures::bundle::{NOW, claims, keyset, organisations};
use crate::validation_bundle::{countersignature, sign};

fn request(iat: u64) -> SignRequest {
    SignRequest {
        v: 1,
        request_id: [7; 16],
        iat,
        keyset: ByteBuf::from(keyset(1, None).to_bytes()),
        evidence: ByteBuf::from(b"evidence bytes".to_vec()),
    }
}

#[test]
fn a_request_signed_by_the_operator_opens() {
    let orgs = organisations();
    let sealed = seal_sign_request(&request(NOW - 5), &orgs.operator);
    let opened = open_sign_request(&sealed, &orgs.anchors, NOW).unwrap();
    assert_eq!(opened.request, request(NOW - 5));
    assert_eq!(opened.keyset, keyset(1, None));
    assert_eq!(opened.operator_kid, orgs.operator.public_key().kid().to_vec());
}

#[test]
fn s1_s4_malformed_requests() {
    let orgs = organisations();
    assert_eq!(open_sign_request(b"\xff", &orgs.anchors, NOW), Err(Error::CborMalformed));
    // Another content type (evidence's) is not a sign request.
    let other = sign1(&cbor::to_vec(&request(NOW)), crate::evidence::CT_EVIDENCE, &orgs.operator);
    assert_eq!(open_sign_request(&other, &orgs.anchors, NOW), Err(Error::SignerRequestMalformed));
    // A payload that is not a SignRequest (version 2, or a missing field).
    let v2 = SignRequest { v: 2, ..request(NOW) };
    let sealed = seal_sign_request(&v2, &orgs.operator);
    assert_eq!(open_sign_request(&sealed, &orgs.anchors, NOW), Err(Error::SignerRequestMalformed));
    let sealed = sign1(&cbor::to_vec(&request(NOW).keyset), CT_SIGN_REQUEST, &orgs.operator);
    assert_eq!(open_sign_request(&sealed, &orgs.anchors, NOW), Err(Error::SignerRequestMalformed));
}

#[test]
fn s2_a_key_that_is_no_operator_anchor_is_unauthenticated() {
    let orgs = organisations();
    // The third party's own key, a stranger's, and the operator's outside its window.
    let stranger = Esp256Signer::from_scalar(&[9; 32]).unwrap();
    for (signer, now) in [
        (&orgs.third_party as &dyn Signer, NOW),
        (&stranger as &dyn Signer, NOW),
        (&orgs.operator as &dyn Signer, NOW + 1001),
    ] {
        let sealed = seal_sign_request(&request(now), signer);
        assert_eq!(open_sign_request(&sealed, &orgs.anchors, now), Err(Error::SignerRequestUnauthenticated));
    }
}

#[test]
fn s3_a_forged_signature_is_refused() {
    let orgs = organisations();
    let mut sealed = seal_sign_request(&request(NOW), &orgs.operator);
    let last = sealed.len() - 1;
    sealed[last] ^= 1;
    assert_eq!(open_sign_request(&sealed, &orgs.anchors, NOW), Err(Error::SignerRequestSignatureInvalid));
}

#[test]
fn s4_a_request_more_than_300_s_away_is_stale() {
    let orgs = organisations();
    for iat in [NOW - 301, NOW + 301] {
        let sealed = seal_sign_request(&request(iat), &orgs.operator);
        assert_eq!(open_sign_request(&sealed, &orgs.anchors, NOW), Err(Error::SignerRequestStale));
    }
    let sealed = seal_sign_request(&request(NOW + 300), &orgs.operator);
    assert!(open_sign_request(&sealed, &orgs.anchors, NOW).is_ok());
}

#[test]
fn s5_a_keyset_of_another_fleet_or_invalid_is_refused() {
    let orgs = organisations();
    let mut other = keyset(1, None);
    other.fleet_id = "other.example/vault".into();
    let mut bad = keyset(1, None);
    bad.quorum = 1;
    for ks in [other.to_bytes(), bad.to_bytes(), b"not cbor".to_vec()] {
        let r = SignRequest { keyset: ByteBuf::from(ks), ..request(NOW) };
        let sealed = seal_sign_request(&r, &orgs.operator);
        assert_eq!(open_sign_request(&sealed, &orgs.anchors, NOW), Err(Error::SignerKeysetInvalid));
    }
}

fn intermediate(ks: &[u8], signer: &dyn Signer) -> SignResponse {
    SignResponse { v: 1, request_id: [7; 16], intermediate: ByteBuf::from(sign(ks, &claims(), signer)) }
}

#[test]
fn o1_o2_the_operator_checks_what_the_signer_signed() {
    let orgs = organisations();
    let r = request(NOW);
    let good = intermediate(&r.keyset, &orgs.third_party);
    assert_eq!(check_intermediate(&r, &good, &orgs.anchors, NOW), Ok(()));
    // O1: an answer to another request.
    let other_id = SignResponse { request_id: [8; 16], ..good.clone() };
    assert_eq!(check_intermediate(&r, &other_id, &orgs.anchors, NOW), Err(Error::SignerIntermediateMismatch));
    // O2: other bytes signed, an already countersigned bundle, garbage.
    let mut ks = keyset(1, None);
    ks.guess_limit = 1000;
    let swapped = intermediate(&ks.to_bytes(), &orgs.third_party);
    assert_eq!(check_intermediate(&r, &swapped, &orgs.anchors, NOW), Err(Error::SignerIntermediateMismatch));
    let countersigned = SignResponse {
        intermediate: ByteBuf::from(
            crate::validation_bundle::countersign(&good.intermediate, &orgs.operator).unwrap(),
        ),
        ..good.clone()
    };
    assert_eq!(
        check_intermediate(&r, &countersigned, &orgs.anchors, NOW),
        Err(Error::SignerIntermediateMismatch)
    );
    let garbage = SignResponse { intermediate: ByteBuf::from(b"\x82\x01\x02".to_vec()), ..good.clone() };
    assert_eq!(check_intermediate(&r, &garbage, &orgs.anchors, NOW), Err(Error::SignerIntermediateMismatch));
    // O2: signed by a key that is no third-party anchor; a bad signature.
    let stranger = intermediate(&r.keyset, &Ed25519Signer::from_seed(&[9; 32]));
    assert_eq!(check_intermediate(&r, &stranger, &orgs.anchors, NOW), Err(Error::BundleSignerUnknown));
    let mut forged = good.intermediate.to_vec();
    let last = forged.len() - 1;
    forged[last] ^= 1;
    let forged = SignResponse { intermediate: ByteBuf::from(forged), ..good };
    assert_eq!(check_intermediate(&r, &forged, &orgs.anchors, NOW), Err(Error::BundleSignatureInvalid));
}

#[test]
fn c2_c3_only_the_operators_countersignature_over_this_intermediate_attaches() {
    let orgs = organisations();
    let r = request(NOW);
    let mine = intermediate(&r.keyset, &orgs.third_party).intermediate;
    let cs = countersignature(&mine, &orgs.operator).unwrap();
    let bundle = attach_and_verify(&mine, &cs, &orgs.anchors, NOW).unwrap();
    assert!(verify_bundle(&bundle, &orgs.anchors, &ClientState::default(), NOW).is_ok());
    // A countersignature over another request's intermediate (another keyset) is refused.
    let mut ks = keyset(1, None);
    ks.guess_limit = 11;
    let theirs = intermediate(&ks.to_bytes(), &orgs.third_party).intermediate;
    let replayed = countersignature(&theirs, &orgs.operator).unwrap();
    assert_eq!(
        attach_and_verify(&mine, &replayed, &orgs.anchors, NOW),
        Err(Error::SignerCountersignatureInvalid)
    );
    // By a key that is no operator anchor (the third party's own), or not a countersignature.
    let by_signer = countersignature(&mine, &orgs.third_party).unwrap();
    assert_eq!(
        attach_and_verify(&mine, &by_signer, &orgs.anchors, NOW),
        Err(Error::SignerCountersignatureInvalid)
    );
    assert_eq!(
        attach_and_verify(&mine, b"\xa0", &orgs.anchors, NOW),
        Err(Error::SignerCountersignatureInvalid)
    );
}

#[test]
fn messages_round_trip_and_refuse_other_versions() {
    let m = CountersignRequest { v: 1, request_id: [1; 16], countersignature: ByteBuf::from(vec![1, 2]) };
    assert_eq!(CountersignRequest::from_cbor(&m.to_cbor()), Ok(m.clone()));
    let v2 = CountersignRequest { v: 2, ..m };
    assert_eq!(CountersignRequest::from_cbor(&v2.to_cbor()), Err(Error::SignerRequestMalformed));
    let r = SignResponse { v: 1, request_id: [1; 16], intermediate: ByteBuf::from(vec![3]) };
    assert_eq!(SignResponse::from_cbor(&r.to_cbor()), Ok(r.clone()));
    let v2 = SignResponse { v: 2, ..r };
    assert_eq!(SignResponse::from_cbor(&v2.to_cbor()), Err(Error::SignerIntermediateMismatch));
}

#[test]
fn a_retirement_request_opens_only_from_the_operator_and_in_time() {
    let orgs = organisations();
    let r = RetireRequest { v: 1, fleet_id: "f".into(), epoch: 1, successor: [3; 32], iat: NOW };
    assert_eq!(
        open_retire_request(&seal_retire_request(&r, &orgs.operator), &orgs.anchors, NOW),
        Ok(r.clone())
    );
    let by_third_party = seal_retire_request(&r, &orgs.third_party);
    assert_eq!(
        open_retire_request(&by_third_party, &orgs.anchors, NOW),
        Err(Error::SignerRequestUnauthenticated)
    );
    let stale = RetireRequest { iat: NOW - 301, ..r.clone() };
    assert_eq!(
        open_retire_request(&seal_retire_request(&stale, &orgs.operator), &orgs.anchors, NOW),
        Err(Error::SignerRequestStale)
    );
    // A signing request is not a retirement request (content type).
    let sign = seal_sign_request(&request(NOW), &orgs.operator);
    assert_eq!(open_retire_request(&sign, &orgs.anchors, NOW), Err(Error::SignerRequestMalformed));
}
