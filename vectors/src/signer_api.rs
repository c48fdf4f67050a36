//! Vectors for spec/signer-api.md: the signer's checks of a signing request (§3 S1–S5,
//! operation `signer_open_request`), the operator's checks of the signer's answer (§4
//! O1–O2, `operator_check_intermediate`), and the signer's attaching of the operator's
//! countersignature (§3 C2–C3, `signer_attach_countersignature`). The organisations are
//! the sample deployment of the bundle vectors (`bkv_protocol::fixtures::bundle`); Ed25519
//! and RFC 6979 ECDSA are deterministic, so every case is byte-stable.

use crate::cases;
use crate::format::{Case, FileBuilder, VectorFile, map};
use bkv_protocol::Error;
use bkv_protocol::cbor;
use bkv_protocol::crypto::{Ed25519Signer, Esp256Signer, Signer, sha256};
use bkv_protocol::evidence::{CT_EVIDENCE, sign1};
use bkv_protocol::fixtures::bundle::{NOW, Organisations, claims, keyset, organisations};
use bkv_protocol::signer_api::{CT_SIGN_REQUEST, SignRequest, SignResponse, seal_sign_request};
use bkv_protocol::validation_bundle::{FleetKeySet, countersign, countersignature, sign};
use serde_bytes::ByteBuf;
use serde_json::{Value, json};
use std::collections::BTreeMap;

const NOTES: &[(&str, &str)] = &[
    ("Request", "the signer's checks of a signing request, S1–S5"),
    ("Intermediate", "the operator's checks of the signer's answer, O1–O2"),
    ("Countersignature", "the signer's checks of the operator's countersignature, C2–C3"),
];

struct World {
    orgs: Organisations,
}

impl World {
    fn request(&self, iat: u64) -> SignRequest {
        SignRequest {
            v: 1,
            request_id: [0x5e; 16],
            iat,
            keyset: ByteBuf::from(keyset(1, None).to_bytes()),
            evidence: ByteBuf::from(b"the deployment evidence bytes".to_vec()),
        }
    }

    fn anchors(&self) -> Value {
        json!(hex::encode(self.orgs.anchors.to_bytes()))
    }

    /// `signer_open_request` of `sealed` at `now`.
    fn open(&self, sealed: &[u8], now: u64) -> BTreeMap<String, Value> {
        map([("request", json!(hex::encode(sealed))), ("anchors", self.anchors()), ("now", json!(now))])
    }

    /// The output of `signer_open_request` for `r`.
    fn opened(r: &SignRequest) -> BTreeMap<String, Value> {
        map([
            ("request_id", json!(hex::encode(r.request_id))),
            ("fleet_id", json!(bkv_protocol::fixtures::bundle::FLEET)),
            ("epoch", json!(1)),
            ("keyset_sha256", json!(hex::encode(sha256(&r.keyset)))),
            ("evidence_sha256", json!(hex::encode(sha256(&r.evidence)))),
        ])
    }

    fn refused_request(&self, sealed: &[u8], now: u64, e: Error) -> Case {
        Case::invalid(&["Request"], self.open(sealed, now), e)
    }

    /// The third party's intermediate over `keyset` signed by `signer`.
    fn intermediate(&self, keyset: &[u8], signer: &dyn Signer) -> Vec<u8> {
        sign(keyset, &claims(), signer)
    }

    fn response(&self, intermediate: Vec<u8>) -> SignResponse {
        SignResponse { v: 1, request_id: [0x5e; 16], intermediate: ByteBuf::from(intermediate) }
    }

    /// `operator_check_intermediate` of `response` to the request.
    fn check(&self, response: &[u8]) -> BTreeMap<String, Value> {
        map([
            ("request", json!(hex::encode(cbor::to_vec(&self.request(NOW))))),
            ("response", json!(hex::encode(response))),
            ("anchors", self.anchors()),
            ("now", json!(NOW)),
        ])
    }

    fn refused_answer(&self, response: &[u8], e: Error) -> Case {
        Case::invalid(&["Intermediate"], self.check(response), e)
    }

    /// The request's intermediate.
    fn mine(&self) -> Vec<u8> {
        self.intermediate(&self.request(NOW).keyset, &self.orgs.third_party)
    }

    /// `signer_attach_countersignature` of `cs` to the request's intermediate.
    fn attach(&self, cs: &[u8]) -> BTreeMap<String, Value> {
        map([
            ("intermediate", json!(hex::encode(self.mine()))),
            ("countersignature", json!(hex::encode(cs))),
            ("anchors", self.anchors()),
            ("now", json!(NOW)),
        ])
    }

    fn refused_countersignature(&self, cs: &[u8]) -> Case {
        Case::invalid(&["Countersignature"], self.attach(cs), Error::SignerCountersignatureInvalid)
    }
}

fn other_keyset(change: impl FnOnce(&mut FleetKeySet)) -> Vec<u8> {
    let mut ks = keyset(1, None);
    change(&mut ks);
    ks.to_bytes()
}

fn flip_last(mut b: Vec<u8>) -> Vec<u8> {
    let last = b.len() - 1;
    b[last] ^= 1;
    b
}

cases! { World, SIGNER_OPEN_REQUEST;
    /// a request signed by the operator, made 5 s before the signer's time
    fn valid_request(w) {
        let r = w.request(NOW - 5);
        Case::valid(&["Request"], w.open(&seal_sign_request(&r, &w.orgs.operator), NOW), Some(World::opened(&r)))
    }
    /// S1: truncated CBOR
    fn truncated(w) {
        let sealed = seal_sign_request(&w.request(NOW), &w.orgs.operator);
        w.refused_request(&sealed[..sealed.len() - 1], NOW, Error::CborMalformed)
    }
    /// S1: the content type of evidence, not of a signing request
    fn evidence_content_type(w) {
        let sealed = sign1(&cbor::to_vec(&w.request(NOW)), CT_EVIDENCE, &w.orgs.operator);
        w.refused_request(&sealed, NOW, Error::SignerRequestMalformed)
    }
    /// S2: signed by the third party's key, which is no operator anchor
    fn signed_by_the_third_party(w) {
        let sealed = seal_sign_request(&w.request(NOW), &w.orgs.third_party);
        w.refused_request(&sealed, NOW, Error::SignerRequestUnauthenticated)
    }
    /// S2: signed by a key nobody pinned
    fn request_by_a_stranger(w) {
        let stranger = Esp256Signer::from_scalar(&[0x33; 32]).expect("valid scalar");
        w.refused_request(&seal_sign_request(&w.request(NOW), &stranger), NOW, Error::SignerRequestUnauthenticated)
    }
    /// S2: the operator's key after its anchor's window (the request made then)
    fn operator_anchor_expired(w) {
        let later = NOW + 1001;
        w.refused_request(&seal_sign_request(&w.request(later), &w.orgs.operator), later, Error::SignerRequestUnauthenticated)
    }
    /// S3: the last byte of the signature flipped
    fn request_signature_flipped(w) {
        let sealed = flip_last(seal_sign_request(&w.request(NOW), &w.orgs.operator));
        w.refused_request(&sealed, NOW, Error::SignerRequestSignatureInvalid)
    }
    /// S4: a payload with "v": 2
    fn version_2(w) {
        let r = SignRequest { v: 2, ..w.request(NOW) };
        w.refused_request(&seal_sign_request(&r, &w.orgs.operator), NOW, Error::SignerRequestMalformed)
    }
    /// S4: a payload that is a byte string, not a SignRequest
    fn payload_not_a_request(w) {
        let sealed = sign1(&cbor::to_vec(&w.request(NOW).keyset), CT_SIGN_REQUEST, &w.orgs.operator);
        w.refused_request(&sealed, NOW, Error::SignerRequestMalformed)
    }
    /// S4: made 301 s before the signer's time
    fn stale_before(w) {
        w.refused_request(&seal_sign_request(&w.request(NOW - 301), &w.orgs.operator), NOW, Error::SignerRequestStale)
    }
    /// S4: made 301 s after the signer's time
    fn stale_after(w) {
        w.refused_request(&seal_sign_request(&w.request(NOW + 301), &w.orgs.operator), NOW, Error::SignerRequestStale)
    }
    /// S4: made exactly 300 s after the signer's time (the edge is accepted)
    fn skew_300_accepted(w) {
        let r = w.request(NOW + 300);
        Case::valid(&["Request"], w.open(&seal_sign_request(&r, &w.orgs.operator), NOW), Some(World::opened(&r)))
    }
    /// S5: a FleetKeySet of another fleet
    fn keyset_of_another_fleet(w) {
        let r = SignRequest { keyset: ByteBuf::from(other_keyset(|k| k.fleet_id = "other.example/vault".into())), ..w.request(NOW) };
        w.refused_request(&seal_sign_request(&r, &w.orgs.operator), NOW, Error::SignerKeysetInvalid)
    }
    /// S5: a FleetKeySet whose quorum is no majority
    fn keyset_quorum_1(w) {
        let r = SignRequest { keyset: ByteBuf::from(other_keyset(|k| k.quorum = 1)), ..w.request(NOW) };
        w.refused_request(&seal_sign_request(&r, &w.orgs.operator), NOW, Error::SignerKeysetInvalid)
    }
    /// S5: keyset bytes that are no CBOR
    fn keyset_not_cbor(w) {
        let r = SignRequest { keyset: ByteBuf::from(b"not a keyset".to_vec()), ..w.request(NOW) };
        w.refused_request(&seal_sign_request(&r, &w.orgs.operator), NOW, Error::SignerKeysetInvalid)
    }
}

cases! { World, OPERATOR_CHECK_INTERMEDIATE;
    /// the third party signed exactly the keyset of this request
    fn valid_intermediate(w) {
        Case::valid(&["Intermediate"], w.check(&w.response(w.mine()).to_cbor()), None)
    }
    /// O1: the answer names another request id
    fn another_request_id(w) {
        let r = SignResponse { request_id: [0x5f; 16], ..w.response(w.mine()) };
        w.refused_answer(&r.to_cbor(), Error::SignerIntermediateMismatch)
    }
    /// O1: the answer is no SignResponse ("v": 2)
    fn answer_version_2(w) {
        let r = SignResponse { v: 2, ..w.response(w.mine()) };
        w.refused_answer(&r.to_cbor(), Error::SignerIntermediateMismatch)
    }
    /// O2: the third party signed another keyset (guess limit 1000)
    fn other_keyset_signed(w) {
        let other = w.intermediate(&other_keyset(|k| k.guess_limit = 1000), &w.orgs.third_party);
        w.refused_answer(&w.response(other).to_cbor(), Error::SignerIntermediateMismatch)
    }
    /// O2: the intermediate already carries a countersignature
    fn already_countersigned(w) {
        let cs = countersign(&w.mine(), &w.orgs.operator).expect("countersigns");
        w.refused_answer(&w.response(cs).to_cbor(), Error::SignerIntermediateMismatch)
    }
    /// O2: the intermediate is an array of two integers, not a COSE_Sign1
    fn not_a_bundle(w) {
        w.refused_answer(&w.response(vec![0x82, 0x01, 0x02]).to_cbor(), Error::SignerIntermediateMismatch)
    }
    /// O2: signed by a key that is no third-party anchor
    fn intermediate_by_a_stranger(w) {
        let other = w.intermediate(&w.request(NOW).keyset, &Ed25519Signer::from_seed(&[0x34; 32]));
        w.refused_answer(&w.response(other).to_cbor(), Error::BundleSignerUnknown)
    }
    /// O2: the last byte of the third party's signature flipped
    fn intermediate_signature_flipped(w) {
        w.refused_answer(&w.response(flip_last(w.mine())).to_cbor(), Error::BundleSignatureInvalid)
    }
}

cases! { World, SIGNER_ATTACH_COUNTERSIGNATURE;
    /// the operator's countersignature over this intermediate: the final bundle
    fn valid_countersignature(w) {
        let cs = countersignature(&w.mine(), &w.orgs.operator).expect("countersigns");
        let bundle = countersign(&w.mine(), &w.orgs.operator).expect("countersigns");
        let output = map([
            ("bundle", json!(hex::encode(&bundle))),
            ("bundle_sha256", json!(hex::encode(sha256(&bundle)))),
        ]);
        Case::valid(&["Countersignature"], w.attach(&cs), Some(output))
    }
    /// C2: the operator's countersignature over another request's intermediate (replayed)
    fn replayed_from_another_request(w) {
        let theirs = w.intermediate(&other_keyset(|k| k.guess_limit = 11), &w.orgs.third_party);
        w.refused_countersignature(&countersignature(&theirs, &w.orgs.operator).expect("countersigns"))
    }
    /// C2: a countersignature by the third party's key, which is no operator anchor
    fn by_the_third_party(w) {
        w.refused_countersignature(&countersignature(&w.mine(), &w.orgs.third_party).expect("countersigns"))
    }
    /// C2: the last byte of the operator's signature flipped
    fn countersignature_flipped(w) {
        w.refused_countersignature(&flip_last(countersignature(&w.mine(), &w.orgs.operator).expect("countersigns")))
    }
    /// C2: an empty map, not a COSE_Countersignature
    fn not_a_countersignature(w) {
        w.refused_countersignature(&[0xa0])
    }
}

/// The signer API vector file.
pub fn generate() -> VectorFile {
    let mut f = FileBuilder::new("signer_api", "spec/signer-api.md", NOTES);
    let mut w = World { orgs: organisations() };
    f.group("signer_open_request", "§3 S1–S5");
    f.cases(&mut w, SIGNER_OPEN_REQUEST);
    f.group("operator_check_intermediate", "§4 O1–O2");
    f.cases(&mut w, OPERATOR_CHECK_INTERMEDIATE);
    f.group("signer_attach_countersignature", "§3 C2–C3");
    f.cases(&mut w, SIGNER_ATTACH_COUNTERSIGNATURE);
    f.finish()
}
