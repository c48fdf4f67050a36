//! Vectors for spec/validation-bundle.md §5 (`verify_bundle`) and §6 (`verify_pinned`).
//!
//! Every bundle is built from fixed seeds (Ed25519 and RFC 6979 ECDSA are
//! deterministic), so regeneration is byte-stable. Each invalid case is built to break
//! exactly one step, and names the code that step defines.

use crate::cases;
use crate::format::{Case, FileBuilder, VectorFile, map};
use bkv_protocol::Error;
use bkv_protocol::cbor::value_to_vec;
use bkv_protocol::crypto::{Ed25519Signer, Esp256Signer, Signer, sha256};
use bkv_protocol::validation_bundle::countersignature::{
    Context, CoseCountersignature, countersign_structure,
};
use bkv_protocol::validation_bundle::*;
use ciborium::Value;
use serde_json::{Value as Json, json};

pub use bkv_protocol::fixtures::bundle::NOW;
use bkv_protocol::fixtures::bundle::{
    OPERATOR, THIRD_PARTY, anchor, claims, keyset, organisations, protected_header,
};

const NOTES: &[(&str, &str)] = &[
    ("Valid", "a bundle every implementation must accept"),
    ("Encoding", "strict decoding of the envelope (step 1)"),
    ("Header", "header rules (step 2)"),
    ("Countersignature", "the RFC 9338 countersignature rules"),
    ("Algorithm", "COSE algorithm policy (spec/conventions.md §4.1)"),
    ("Anchor", "trust anchor lookup and windows (steps 3, 4)"),
    ("Signature", "signature verification (steps 5, 6)"),
    ("TwoOrganisations", "what one organisation alone cannot do"),
    ("KeySet", "FleetKeySet structure (step 7, §3.2)"),
    ("Claims", "CWT claims (step 8)"),
    ("Validity", "validity window (step 9)"),
    ("Rollback", "rollback state and chain (steps 10, 11, §5.2)"),
    ("Pinned", "pinned mode (§6)"),
    crate::produce::NOTE,
];

type HeaderMap = Vec<(Value, Value)>;

/// What every case of this file is built from: both organisations' keys and anchors, the
/// valid epoch-1 bundle `b1` of the FleetKeySet `payload`, and the chain the rollback cases
/// use (epoch 2 and 3, and bundles that equivocate or break the chain).
struct World {
    third_party: Ed25519Signer,
    operator: Esp256Signer,
    anchors: TrustAnchors,
    payload: Vec<u8>,
    b1: Vec<u8>,
    b1x: Vec<u8>,
    b2: Vec<u8>,
    b2x: Vec<u8>,
    b3: Vec<u8>,
    pinned: TrustAnchors,
}

fn world() -> World {
    let orgs = organisations();
    let bundle = |ks: &FleetKeySet| orgs.bundle(ks);
    let ks1 = keyset(1, None);
    let b1 = bundle(&ks1);
    let mut other1 = keyset(1, None);
    other1.guess_limit = 11;
    let b1x = bundle(&other1);
    let b2 = bundle(&keyset(2, Some(sha256(&b1))));
    let b2x = bundle(&keyset(2, Some(sha256(&b1x))));
    let b3 = bundle(&keyset(3, Some(sha256(&b2))));
    let mut pinned = orgs.anchors.clone();
    pinned.pinned.push(serde_bytes::ByteBuf::from(sha256(&ks1.to_bytes()).to_vec()));
    pinned.pinned.push(serde_bytes::ByteBuf::from(sha256(&other_fleet_keyset().to_bytes()).to_vec()));
    let (payload, anchors) = (ks1.to_bytes(), orgs.anchors.clone());
    World {
        third_party: orgs.third_party,
        operator: orgs.operator,
        anchors,
        payload,
        b1,
        b1x,
        b2,
        b2x,
        b3,
        pinned,
    }
}

/// A valid epoch-1 FleetKeySet of another fleet.
fn other_fleet_keyset() -> FleetKeySet {
    let mut ks = keyset(1, None);
    ks.fleet_id = "other-fleet".into();
    ks
}

fn int(i: i64) -> Value {
    Value::Integer(i.into())
}

impl World {
    fn bundle(&self, ks: &FleetKeySet) -> Vec<u8> {
        countersign(&sign(&ks.to_bytes(), &claims(), &self.third_party), &self.operator).expect("countersign")
    }

    fn protected(&self, edit: impl FnOnce(&mut HeaderMap)) -> Vec<u8> {
        protected_header(&self.third_party.public_key().kid(), edit)
    }

    fn countersignature(
        &self,
        context: Context,
        protected: &[u8],
        payload: &[u8],
        sig: &[u8],
    ) -> CoseCountersignature {
        let pk = self.operator.public_key();
        let cs_prot = value_to_vec(&Value::Map(vec![
            (int(1), int(pk.alg.cose_id())),
            (int(4), Value::Bytes(pk.kid().to_vec())),
        ]));
        let others: &[&[u8]] = if context == Context::V2 { &[sig] } else { &[] };
        let tbs = countersign_structure(context, protected, &cs_prot, &[], payload, others);
        CoseCountersignature { protected: cs_prot, unprotected: vec![], signature: self.operator.sign(&tbs) }
    }

    /// A bundle over `protected` bytes built by hand, properly signed and countersigned.
    fn raw(&self, protected: &[u8], payload: &[u8]) -> Vec<u8> {
        let sig = self.third_party.sign(&sig_structure(protected, payload));
        let cs = self.countersignature(Context::V2, protected, payload, &sig);
        encode_sign1(protected, vec![(int(11), cs.to_value())], payload, &sig)
    }
}

struct Parts {
    protected: Vec<u8>,
    unprotected: HeaderMap,
    payload: Vec<u8>,
    signature: Vec<u8>,
}

fn parts(bundle: &[u8]) -> Parts {
    let Ok(Value::Tag(18, inner)) = ciborium::from_reader::<Value, _>(bundle) else { panic!("a bundle") };
    let Ok(a) = inner.into_array() else { panic!("an array") };
    let bytes = |v: &Value| v.as_bytes().expect("bytes").clone();
    Parts {
        protected: bytes(&a[0]),
        unprotected: a[1].as_map().expect("map").clone(),
        payload: bytes(&a[2]),
        signature: bytes(&a[3]),
    }
}

fn with_unprotected(bundle: &[u8], edit: impl FnOnce(&mut HeaderMap)) -> Vec<u8> {
    let mut p = parts(bundle);
    edit(&mut p.unprotected);
    encode_sign1(&p.protected, p.unprotected, &p.payload, &p.signature)
}

fn state_json(st: Option<(u64, [u8; 32])>) -> Json {
    st.map_or(Json::Null, |(e, d)| json!({ "epoch": e, "bundle_sha256": hex::encode(d) }))
}

impl World {
    /// A `verify_bundle` case of `bundle` against `anchors`, with the client's rollback
    /// `state` and the `intermediates` of a skipped epoch (§5.2).
    fn bundle_case(
        &self,
        flags: &'static [&'static str],
        bundle: &[u8],
        anchors: &TrustAnchors,
        state: Option<(u64, [u8; 32])>,
        intermediates: &[&[u8]],
        error: Option<Error>,
    ) -> Case {
        let input = map([
            ("bundle", json!(hex::encode(bundle))),
            ("anchors", json!(hex::encode(anchors.to_bytes()))),
            ("now", json!(NOW)),
            ("state", state_json(state)),
            ("intermediates", json!(intermediates.iter().map(hex::encode).collect::<Vec<_>>())),
        ]);
        let output = error.is_none().then(|| {
            let p = parts(bundle);
            let ks = FleetKeySet::from_bytes(&p.payload).expect("valid cases have valid keysets");
            map([
                ("epoch", json!(ks.epoch)),
                ("keyset_sha256", json!(hex::encode(sha256(&p.payload)))),
                ("bundle_sha256", json!(hex::encode(sha256(bundle)))),
            ])
        });
        Case { flags, input, error, output }
    }

    /// `bundle` against the world's anchors, no rollback state.
    fn simple(&self, flags: &'static [&'static str], bundle: &[u8], error: Option<Error>) -> Case {
        self.bundle_case(flags, bundle, &self.anchors, None, &[], error)
    }

    /// A bundle whose protected header is the valid one with `edit` applied.
    fn header(
        &self,
        flags: &'static [&'static str],
        edit: impl FnOnce(&mut HeaderMap),
        error: Error,
    ) -> Case {
        self.simple(flags, &self.raw(&self.protected(edit), &self.payload), Some(error))
    }

    /// `b1` with its unprotected header edited.
    fn unprotected(
        &self,
        flags: &'static [&'static str],
        edit: impl FnOnce(&mut HeaderMap),
        error: Error,
    ) -> Case {
        self.simple(flags, &with_unprotected(&self.b1, edit), Some(error))
    }

    /// The world's anchors with `edit` applied, against `b1`.
    fn anchors_case(&self, edit: impl FnOnce(&mut TrustAnchors), error: Error) -> Case {
        let mut a = self.anchors.clone();
        edit(&mut a);
        self.bundle_case(&["Anchor"], &self.b1, &a, None, &[], Some(error))
    }

    /// A well-signed bundle of a FleetKeySet that breaks §3.2.
    fn broken_keyset(&self, edit: impl FnOnce(&mut FleetKeySet)) -> Case {
        let mut ks = keyset(1, None);
        edit(&mut ks);
        self.simple(&["KeySet"], &self.bundle(&ks), Some(Error::BundleKeySetInvalid))
    }

    /// A bundle signed with claims `c`.
    fn claims_case(&self, c: Claims) -> Case {
        let b =
            countersign(&sign(&self.payload, &c, &self.third_party), &self.operator).expect("countersign");
        self.simple(&["Claims"], &b, Some(Error::BundleClaimsMismatch))
    }

    /// A bundle whose validity window is shifted by `shift` seconds.
    fn shifted_window(&self, shift: i64, error: Error) -> Case {
        let mut ks = keyset(1, None);
        ks.not_before = ks.not_before.saturating_add_signed(shift);
        ks.not_after = ks.not_after.saturating_add_signed(shift);
        self.simple(&["Validity"], &self.bundle(&ks), Some(error))
    }

    /// A rollback case: `bundle` while the client holds `held`.
    fn rollback(
        &self,
        flags: &'static [&'static str],
        bundle: &[u8],
        held: (u64, &[u8]),
        intermediates: &[&[u8]],
        error: Option<Error>,
    ) -> Case {
        let state = Some((held.0, sha256(held.1)));
        self.bundle_case(flags, bundle, &self.anchors, state, intermediates, error)
    }

    /// A `verify_pinned` case: the FleetKeySet `ks` at `now`, against the pinned anchors.
    fn pinned_case(&self, ks: &[u8], now: u64, error: Option<Error>) -> Case {
        let output = error
            .is_none()
            .then(|| map([("epoch", json!(1)), ("keyset_sha256", json!(hex::encode(sha256(ks))))]));
        let input = map([
            ("keyset", json!(hex::encode(ks))),
            ("anchors", json!(hex::encode(self.pinned.to_bytes()))),
            ("now", json!(now)),
        ]);
        Case { flags: &["Pinned"], input, error, output }
    }

    /// An abbreviated countersignature at `label`.
    fn abbreviated(&self, label: i64) -> Case {
        self.unprotected(
            &["Countersignature"],
            |u| u.push((int(label), Value::Bytes(vec![0; 64]))),
            Error::BundleCountersignatureForbiddenLabel,
        )
    }
}

cases! { World, VERIFY_BUNDLE;
    /// Ed25519 third party, ESP256 operator
    fn valid_ed25519_esp256(w) {
        w.simple(&["Valid"], &w.b1, None)
    }
    /// ESP256 third party, Ed25519 operator
    fn valid_esp256_ed25519(w) {
        let tp = Esp256Signer::from_scalar(&[3; 32]).expect("scalar");
        let op = Ed25519Signer::from_seed(&[4; 32]);
        let mut a = w.anchors.clone();
        a.third_party = vec![anchor(THIRD_PARTY, tp.public_key())];
        a.operator = vec![anchor(OPERATOR, op.public_key())];
        let b = countersign(&sign(&w.payload, &claims(), &tp), &op).expect("countersign");
        w.bundle_case(&["Valid"], &b, &a, None, &[], None)
    }
    /// two third-party anchors during a key rotation
    fn valid_two_third_party_anchors(w) {
        let tp = Esp256Signer::from_scalar(&[3; 32]).expect("scalar");
        let mut rotated = w.anchors.clone();
        rotated.third_party.insert(0, anchor("old-key", tp.public_key()));
        w.bundle_case(&["Valid", "Anchor"], &w.b1, &rotated, None, &[], None)
    }
    /// roles swapped: operator signs, third party countersigns
    fn roles_swapped(w) {
        let b = countersign(&sign(&w.payload, &claims(), &w.operator), &w.third_party).expect("countersign");
        w.simple(&["TwoOrganisations"], &b, Some(Error::BundleSignerUnknown))
    }
    /// operator signs and countersigns
    fn operator_alone(w) {
        let b = countersign(&sign(&w.payload, &claims(), &w.operator), &w.operator).expect("countersign");
        w.simple(&["TwoOrganisations"], &b, Some(Error::BundleSignerUnknown))
    }
    /// third party signs and countersigns
    fn third_party_alone(w) {
        let b = countersign(&sign(&w.payload, &claims(), &w.third_party), &w.third_party).expect("countersign");
        w.simple(&["TwoOrganisations"], &b, Some(Error::BundleCountersignerUnknown))
    }
    /// no countersignature
    fn no_countersignature(w) {
        let b = sign(&w.payload, &claims(), &w.third_party);
        w.simple(&["TwoOrganisations", "Countersignature"], &b, Some(Error::BundleCountersignatureMissing))
    }
    /// countersignature over the payload (V1 structure) instead of the signature
    fn countersignature_v1_over_payload(w) {
        w.simple(&["Countersignature"], &v1_countersigned(w), Some(Error::BundleCountersignatureInvalid))
    }
    /// countersignature moved to another signature over the same payload
    fn countersignature_moved(w) {
        let mut c = claims();
        c.iat += 1;
        let other = sign(&w.payload, &c, &w.third_party);
        let moved = with_unprotected(&other, |u| *u = parts(&w.b1).unprotected);
        w.simple(&["Countersignature"], &moved, Some(Error::BundleCountersignatureInvalid))
    }
    /// untagged COSE_Sign1
    fn untagged(w) {
        let p = parts(&w.b1);
        let untagged = value_to_vec(&Value::Array(vec![
            Value::Bytes(p.protected),
            Value::Map(p.unprotected),
            Value::Bytes(p.payload),
            Value::Bytes(p.signature),
        ]));
        w.simple(&["Encoding"], &untagged, Some(Error::BundleNotSign1))
    }
    /// detached payload
    fn detached_payload(w) {
        let p = parts(&w.b1);
        let detached = value_to_vec(&Value::Tag(
            18,
            Box::new(Value::Array(vec![
                Value::Bytes(p.protected),
                Value::Map(p.unprotected),
                Value::Null,
                Value::Bytes(p.signature),
            ])),
        ));
        w.simple(&["Encoding"], &detached, Some(Error::BundleNotSign1))
    }
    /// tag 98 (COSE_Sign) instead of 18
    fn tag_98(w) {
        let mut tag98 = w.b1.clone();
        tag98[0] = 0xd8;
        tag98.insert(1, 98);
        w.simple(&["Encoding"], &tag98, Some(Error::CborTagUnknown))
    }
    /// a byte after the bundle
    fn trailing_byte(w) {
        let mut trailing = w.b1.clone();
        trailing.push(0);
        w.simple(&["Encoding"], &trailing, Some(Error::CborTrailingBytes))
    }
    /// tag 18 in a one-byte argument
    fn tag_18_non_minimal(w) {
        // The tag head 0xd2 re-encoded in two bytes.
        let mut nm = w.b1.clone();
        nm[0] = 0xd8;
        nm.insert(1, 18);
        w.simple(&["Encoding"], &nm, Some(Error::CborNonMinimal))
    }
    /// a zero-length protected header: the empty map for step 1, but no CBOR item for the
    /// encoding check of step 2.2
    fn protected_header_zero_length(w) {
        w.simple(&["Encoding", "Header"], &w.raw(&[], &w.payload), Some(Error::CborMalformed))
    }
    /// label 1 twice in the protected header, once in the non-minimal encoding `0x1801`:
    /// step 1 compares labels as values, so this is a repeated label, before the
    /// encoding check of step 2.2
    fn protected_label_repeated_in_another_encoding(w) {
        let p = parts(&w.b1).protected;
        let Ok(Value::Map(m)) = ciborium::from_reader::<Value, _>(p.as_slice()) else {
            panic!("a protected header map")
        };
        let enc = |v: &Value| {
            let mut out = Vec::new();
            ciborium::into_writer(v, &mut out).expect("vec");
            out
        };
        let mut raw = vec![0xa0 + m.len() as u8 + 1];
        for (n, (k, v)) in m.iter().enumerate() {
            raw.extend(enc(k));
            raw.extend(enc(v));
            if n == 0 {
                raw.extend([0x18, 0x01]);
                raw.extend(enc(v));
            }
        }
        w.simple(&["Encoding", "Header"], &w.raw(&raw, &w.payload), Some(Error::BundleNotSign1))
    }
    /// a byte after the protected header's map
    fn protected_header_trailing_byte(w) {
        let mut p = parts(&w.b1).protected;
        p.push(0x00);
        w.simple(&["Encoding", "Header"], &w.raw(&p, &w.payload), Some(Error::BundleNotSign1))
    }
    /// protected header map keys out of order
    fn protected_keys_unsorted(w) {
        let p = parts(&w.b1);
        let Ok(Value::Map(mut m)) = ciborium::from_reader::<Value, _>(p.protected.as_slice()) else {
            panic!("a protected header map")
        };
        m.swap(0, 1);
        let mut unsorted = Vec::new();
        ciborium::into_writer(&Value::Map(m), &mut unsorted).expect("vec");
        w.simple(&["Encoding", "Header"], &w.raw(&unsorted, &w.payload), Some(Error::CborMapUnsorted))
    }
    /// no CWT claims
    fn no_claims(w) {
        w.header(&["Header"], |m| m.retain(|(k, _)| *k != int(15)), Error::BundleHeaderMissing)
    }
    /// no alg
    fn no_alg(w) {
        w.header(&["Header"], |m| m.retain(|(k, _)| *k != int(1)), Error::BundleHeaderMissing)
    }
    /// no content type
    fn no_content_type(w) {
        w.header(&["Header"], |m| m.retain(|(k, _)| *k != int(3)), Error::BundleHeaderMissing)
    }
    /// kid of 8 bytes
    fn kid_8_bytes(w) {
        w.header(&["Header"], |m| m[2].1 = Value::Bytes(vec![1; 8]), Error::BundleHeaderMissing)
    }
    /// empty CWT claims
    fn empty_claims(w) {
        w.header(&["Header", "Claims"], |m| m[3].1 = Value::Map(vec![]), Error::BundleHeaderMissing)
    }
    /// CWT claims with the claim names as text keys ("iss", "sub", "iat") instead of the
    /// RFC 8392 integer labels 1, 2, 6
    fn claims_with_text_keys(w) {
        let text_keys = |m: &mut HeaderMap| {
            let Value::Map(claims) = &mut m[3].1 else { panic!("the claims map") };
            for (k, _) in claims.iter_mut() {
                *k = Value::Text(match k {
                    Value::Integer(i) if i128::from(*i) == 1 => "iss".into(),
                    Value::Integer(i) if i128::from(*i) == 2 => "sub".into(),
                    _ => "iat".into(),
                });
            }
            // Deterministic order of the new keys: "iat" < "iss" < "sub" (length, then bytes).
            claims.sort_by(|a, b| a.0.as_text().cmp(&b.0.as_text()));
        };
        w.header(&["Header", "Claims"], text_keys, Error::BundleHeaderMissing)
    }
    /// content type application/cbor
    fn content_type_cbor(w) {
        w.header(&["Header"], |m| m[1].1 = Value::Text("application/cbor".into()), Error::BundleContentType)
    }
    /// unknown protected label 33
    fn protected_label_33(w) {
        w.header(&["Header"], |m| m.push((int(33), int(0))), Error::BundleHeaderMisplaced)
    }
    /// alg -8 (EdDSA, deprecated)
    fn alg_eddsa(w) {
        w.header(&["Header", "Algorithm"], |m| m[0].1 = int(-8), Error::CoseAlgorithmDeprecated)
    }
    /// alg -7 (ES256, deprecated)
    fn alg_es256(w) {
        w.header(&["Header", "Algorithm"], |m| m[0].1 = int(-7), Error::CoseAlgorithmDeprecated)
    }
    /// alg -35 (ES384, unsupported)
    fn alg_es384(w) {
        w.header(&["Header", "Algorithm"], |m| m[0].1 = int(-35), Error::CoseAlgorithmUnsupported)
    }
    /// alg -9 with the kid of the Ed25519 anchor
    fn alg_esp256_with_ed25519_kid(w) {
        w.header(&["Header", "Algorithm", "Anchor"], |m| m[0].1 = int(-9), Error::BundleAlgorithmMismatch)
    }
    /// content type text without a slash
    fn content_type_without_slash(w) {
        w.header(&["Header"], |m| m[1].1 = Value::Text("cbor".into()), Error::BundleContentType)
    }
    /// empty content type
    fn content_type_empty(w) {
        w.header(&["Header"], |m| m[1].1 = Value::Text(String::new()), Error::BundleContentType)
    }
    /// content type integer 70000
    fn content_type_integer(w) {
        w.header(&["Header"], |m| m[1].1 = int(70000), Error::BundleContentType)
    }
    /// empty kid
    fn kid_empty(w) {
        w.header(&["Header"], |m| m[2].1 = Value::Bytes(vec![]), Error::BundleHeaderMissing)
    }
    /// alg -20, an unassigned integer
    fn alg_unassigned(w) {
        w.header(&["Header"], |m| m[0].1 = int(-20), Error::CoseAlgorithmUnsupported)
    }
    /// alg as a text string
    fn alg_text(w) {
        w.header(&["Header"], |m| m[0].1 = Value::Text("EdDSA".into()), Error::CoseAlgorithmUnsupported)
    }
    /// protected label -2^64, an integer outside i64
    fn protected_label_outside_i64(w) {
        w.header(
            &["Header"],
            |m| m.push((Value::Integer(ciborium::value::Integer::try_from(-(1i128 << 64)).expect("int")), int(0))),
            Error::BundleHeaderMisplaced,
        )
    }
    /// no CWT claims and an extra label: step 2.3 comes before 2.4
    fn missing_before_misplaced(w) {
        w.header(
            &["Header"],
            |m| {
                m.retain(|(k, _)| *k != int(15));
                m.insert(0, (int(-70000), int(0)));
            },
            Error::BundleHeaderMissing,
        )
    }
    /// kid of the wrong type (text) is not an RFC 9052 header map
    fn kid_text(w) {
        w.header(&["Header"], |m| m[2].1 = Value::Text("kid".into()), Error::BundleNotSign1)
    }
    /// crit (label 2) empty is not an RFC 9052 header map
    fn crit_empty(w) {
        w.header(&["Header"], |m| m.insert(1, (int(2), Value::Array(vec![]))), Error::BundleNotSign1)
    }
    /// empty IV in the unprotected header
    fn unprotected_empty_iv(w) {
        w.unprotected(&["Header"], |u| u.insert(0, (int(5), Value::Bytes(vec![]))), Error::BundleHeaderMisplaced)
    }
    /// IV and Partial IV together are not an RFC 9052 header map
    fn iv_and_partial_iv(w) {
        w.unprotected(
            &["Header"],
            |u| {
                u.insert(0, (int(6), Value::Bytes(vec![1])));
                u.insert(0, (int(5), Value::Bytes(vec![1])));
            },
            Error::BundleNotSign1,
        )
    }
    /// label 7 holding a byte string
    fn label_7_bytes(w) {
        w.unprotected(
            &["Countersignature"],
            |u| u.insert(0, (int(7), Value::Bytes(vec![0; 8]))),
            Error::BundleCountersignatureForbiddenLabel,
        )
    }
    /// simple value 99 in the protected header
    fn protected_simple_99(w) {
        // The protected header with simple(99) as an extra value: well-formed, so step 2.2
        // reports it.
        let mut simple = w.protected(|_| {});
        simple[0] += 1; // one more entry
        simple.extend([0x18, 0x63, 0xf8, 0x63]); // 99: simple(99)
        w.simple(&["Header", "Encoding"], &w.raw(&simple, &w.payload), Some(Error::CborSimpleUnsupported))
    }
    /// FleetKeySet with the byte-string key h'65706f6368' for "epoch"
    fn keyset_byte_string_key(w) {
        // Byte-string keys where the CDDL has text: two encodings of one FleetKeySet.
        let mut ks_bytes = w.payload.clone();
        let at = ks_bytes.windows(6).position(|x| x == b"\x65epoch").expect("epoch key");
        ks_bytes[at] = 0x45; // text(5) -> bytes(5)
        // Keep the map sorted: rebuild through ciborium's value order.
        let Ok(Value::Map(mut m)) = ciborium::from_reader::<Value, _>(ks_bytes.as_slice()) else {
            panic!("a FleetKeySet map")
        };
        m.sort_by_key(|(k, _)| {
            let mut b = Vec::new();
            ciborium::into_writer(k, &mut b).expect("vec");
            b
        });
        let mut sorted = Vec::new();
        ciborium::into_writer(&Value::Map(m), &mut sorted).expect("vec");
        w.simple(&["KeySet"], &w.raw(&w.protected(|_| {}), &sorted), Some(Error::CborSchema))
    }
    /// kid in the unprotected header
    fn kid_unprotected(w) {
        let kid = w.third_party.public_key().kid();
        w.unprotected(&["Header"], |u| u.insert(0, (int(4), Value::Bytes(kid.to_vec()))), Error::BundleHeaderMisplaced)
    }
    /// two countersignatures at label 11
    fn two_countersignatures(w) {
        let one = parts(&w.b1).unprotected[0].1.clone();
        w.unprotected(
            &["Countersignature"],
            |u| u[0].1 = Value::Array(vec![one.clone(), one]),
            Error::BundleCountersignatureMultiple,
        )
    }
    /// label 11 holds the countersignature inside tag 18: tag 18 passes the CBOR check of
    /// step 1 anywhere, but only the outermost item may be tagged; here step 2.5 refuses it
    fn countersignature_tagged_18(w) {
        let one = parts(&w.b1).unprotected[0].1.clone();
        w.unprotected(
            &["Countersignature"],
            |u| u[0].1 = Value::Tag(18, Box::new(one)),
            Error::BundleCountersignatureMalformed,
        )
    }
    /// label 11 holds an integer
    fn label_11_integer(w) {
        w.unprotected(&["Countersignature"], |u| u[0].1 = int(5), Error::BundleCountersignatureMalformed)
    }
    /// an abbreviated countersignature: Countersignature0 (label 9)
    fn countersignature0(w) {
        w.abbreviated(9)
    }
    /// an abbreviated countersignature: Countersignature0V2 (label 12)
    fn countersignature0_v2(w) {
        w.abbreviated(12)
    }
    /// a version-1 countersignature at label 7
    fn countersignature_v1_label_7(w) {
        let v1 = Value::Array(vec![Value::Bytes(vec![0xa1, 0x01, 0x26]), Value::Map(vec![]), Value::Bytes(vec![0; 64])]);
        w.unprotected(&["Countersignature"], |u| u.insert(0, (int(7), v1)), Error::BundleCountersignatureForbiddenLabel)
    }
    /// signer is not a pinned third-party anchor
    fn signer_unknown(w) {
        let key = Ed25519Signer::from_seed(&[9; 32]);
        w.anchors_case(|a| a.third_party = vec![anchor(THIRD_PARTY, key.public_key())], Error::BundleSignerUnknown)
    }
    /// countersigner is not a pinned operator anchor
    fn countersigner_unknown(w) {
        let key = Esp256Signer::from_scalar(&[9; 32]).expect("scalar");
        w.anchors_case(|a| a.operator = vec![anchor(OPERATOR, key.public_key())], Error::BundleCountersignerUnknown)
    }
    /// third-party anchor expired
    fn signer_expired(w) {
        w.anchors_case(|a| a.third_party[0].not_after = NOW - 1, Error::BundleSignerExpired)
    }
    /// operator anchor not yet valid
    fn countersigner_not_yet_valid(w) {
        w.anchors_case(|a| a.operator[0].not_before = NOW + 1, Error::BundleCountersignerExpired)
    }
    /// third-party signature with a flipped bit
    fn signature_bit_flipped(w) {
        let mut bad = parts(&w.b1);
        bad.signature[0] ^= 1;
        let b = encode_sign1(&bad.protected, bad.unprotected, &bad.payload, &bad.signature);
        w.simple(&["Signature"], &b, Some(Error::BundleSignatureInvalid))
    }
    /// countersignature with a flipped bit
    fn countersignature_bit_flipped(w) {
        w.unprotected(
            &["Signature", "Countersignature"],
            |u| {
                if let Value::Array(items) = &mut u[0].1
                    && let Value::Bytes(sig) = &mut items[2]
                {
                    sig[5] ^= 1;
                }
            },
            Error::BundleCountersignatureInvalid,
        )
    }
    /// quorum 2 of 5 is not a majority
    fn quorum_minority(w) {
        w.broken_keyset(|k| k.quorum = 2)
    }
    /// quorum 5 of 5 is not floor(n/2)+1
    fn quorum_all(w) {
        w.broken_keyset(|k| k.quorum = 5)
    }
    /// guess limit 0
    fn guess_limit_0(w) {
        w.broken_keyset(|k| k.guess_limit = 0)
    }
    /// guess limit 101
    fn guess_limit_101(w) {
        w.broken_keyset(|k| k.guess_limit = 101)
    }
    /// epoch 0
    fn epoch_0(w) {
        w.broken_keyset(|k| k.epoch = 0)
    }
    /// epoch 1 with a previous bundle digest
    fn epoch_1_with_prev(w) {
        w.broken_keyset(|k| k.prev = Some([1; 32]))
    }
    /// not_before after not_after
    fn window_inverted(w) {
        w.broken_keyset(|k| k.not_before = k.not_after + 1)
    }
    /// two nodes with one id
    fn duplicate_node_id(w) {
        w.broken_keyset(|k| k.nodes[1].id = "node-1".into())
    }
    /// a node without a signing key
    fn node_without_signing_key(w) {
        w.broken_keyset(|k| {
            k.nodes[1].keys.pop();
        })
    }
    /// nodes disagree on the OPAQUE key
    fn opaque_keys_differ(w) {
        w.broken_keyset(|k| k.nodes[1].keys[1].key = vec![0xbb; 32])
    }
    /// a session key used by two nodes
    fn session_key_shared(w) {
        w.broken_keyset(|k| k.nodes[1].keys[0].key = vec![1; 32])
    }
    /// session key with suite 0x0010
    fn session_suite_unknown(w) {
        w.broken_keyset(|k| k.nodes[1].keys[0].suite = 0x0010)
    }
    /// signing key of 31 bytes
    fn signing_key_31_bytes(w) {
        w.broken_keyset(|k| k.nodes[1].keys[2].key = vec![0; 31])
    }
    /// no nodes
    fn no_nodes(w) {
        w.broken_keyset(|k| k.nodes.clear())
    }
    /// empty fleet id
    fn empty_fleet_id(w) {
        w.broken_keyset(|k| k.fleet_id.clear())
    }
    /// payload is not a FleetKeySet
    fn payload_not_a_keyset(w) {
        let not_a_keyset = bkv_protocol::cbor::to_vec(&std::collections::BTreeMap::from([("v", 1)]));
        w.simple(&["KeySet"], &w.raw(&w.protected(|_| {}), &not_a_keyset), Some(Error::CborSchema))
    }
    /// a valid bundle for another fleet
    fn another_fleet(w) {
        let c = Claims { sub: "other-fleet".into(), ..claims() };
        let b = countersign(&sign(&other_fleet_keyset().to_bytes(), &c, &w.third_party), &w.operator)
            .expect("countersign");
        w.simple(&["KeySet"], &b, Some(Error::BundleFleetMismatch))
    }
    /// iss is not the signer anchor's name
    fn claims_iss(w) {
        w.claims_case(Claims { iss: "someone.else".into(), ..claims() })
    }
    /// sub is not the fleet id
    fn claims_sub(w) {
        w.claims_case(Claims { sub: "other-fleet".into(), ..claims() })
    }
    /// iat after the signer anchor's window
    fn claims_iat(w) {
        w.claims_case(Claims { iat: NOW + 5000, ..claims() })
    }
    /// not yet valid
    fn not_yet_valid(w) {
        w.shifted_window(200, Error::BundleNotYetValid)
    }
    /// expired
    fn expired(w) {
        w.shifted_window(-200, Error::BundleExpired)
    }
    /// the bundle the client already holds
    fn held_bundle(w) {
        w.rollback(&["Valid", "Rollback"], &w.b1, (1, &w.b1), &[], None)
    }
    /// the next epoch chaining to the held bundle
    fn next_epoch(w) {
        w.rollback(&["Valid", "Rollback"], &w.b2, (1, &w.b1), &[], None)
    }
    /// epoch 1 while holding epoch 2
    fn older_epoch(w) {
        w.rollback(&["Rollback"], &w.b1, (2, &w.b2), &[], Some(Error::BundleRollback))
    }
    /// another bundle for the held epoch
    fn equivocation(w) {
        w.rollback(&["Rollback"], &w.b1x, (1, &w.b1), &[], Some(Error::BundleEquivocation))
    }
    /// epoch 2 whose prev is not the held bundle
    fn chain_broken(w) {
        w.rollback(&["Rollback"], &w.b2x, (1, &w.b1), &[], Some(Error::BundleChainBroken))
    }
    /// epoch 3 while holding epoch 1, no intermediates
    fn skipped_epoch_without_intermediates(w) {
        w.rollback(&["Rollback"], &w.b3, (1, &w.b1), &[], Some(Error::BundleChainBroken))
    }
    /// epoch 3 while holding epoch 1, with epoch 2 as intermediate
    fn skipped_epoch_with_intermediate(w) {
        w.rollback(&["Valid", "Rollback"], &w.b3, (1, &w.b1), &[&w.b2], None)
    }
    /// epoch 3 with an intermediate that does not chain
    fn intermediate_does_not_chain(w) {
        w.rollback(&["Rollback"], &w.b3, (1, &w.b1), &[&w.b2x], Some(Error::BundleChainBroken))
    }
    /// trust anchors holding a key that is not a P-256 point
    fn anchor_not_a_point(w) {
        w.anchors_case(|a| a.operator[0].key.key[10] ^= 0xff, Error::CoseKeyInvalid)
    }
    /// the same invalid key, and a pinned digest of 31 bytes: every schema check of the
    /// whole TrustAnchors comes before any key is validated
    fn anchor_schema_before_key_validity(w) {
        w.anchors_case(
            |a| {
                a.operator[0].key.key[10] ^= 0xff;
                a.pinned.push(serde_bytes::ByteBuf::from(vec![0u8; 31]));
            },
            Error::CborSchema,
        )
    }
}

cases! { World, VERIFY_PINNED;
    /// the pinned FleetKeySet
    fn pinned(w) {
        w.pinned_case(&w.payload, NOW, None)
    }
    /// a FleetKeySet that is not pinned
    fn not_pinned(w) {
        let mut changed = keyset(1, None);
        changed.guess_limit = 9;
        w.pinned_case(&changed.to_bytes(), NOW, Some(Error::PinnedMismatch))
    }
    /// the pinned FleetKeySet after not_after: retired
    fn pinned_retired(w) {
        w.pinned_case(&w.payload, NOW + 101, Some(Error::PinnedFleetRetired))
    }
    /// the pinned FleetKeySet before not_before
    fn pinned_not_yet_valid(w) {
        w.pinned_case(&w.payload, NOW - 101, Some(Error::BundleNotYetValid))
    }
    /// a pinned FleetKeySet of another fleet
    fn pinned_other_fleet(w) {
        w.pinned_case(&other_fleet_keyset().to_bytes(), NOW, Some(Error::BundleFleetMismatch))
    }
}

/// A bundle whose countersignature covers the payload (the V1 structure) instead of the
/// signature.
fn v1_countersigned(w: &World) -> Vec<u8> {
    let prot = w.protected(|_| {});
    let sig = w.third_party.sign(&sig_structure(&prot, &w.payload));
    let cs = w.countersignature(Context::V1, &prot, &w.payload, &sig);
    encode_sign1(&prot, vec![(int(11), cs.to_value())], &w.payload, &sig)
}

/// The `validation_bundle` vector file.
pub fn generate() -> VectorFile {
    let mut w = world();
    let mut f = FileBuilder::new("validation_bundle", "spec/validation-bundle.md", NOTES);
    f.group("verify_bundle", "§5");
    f.cases(&mut w, VERIFY_BUNDLE);
    f.group("verify_pinned", "§6");
    f.cases(&mut w, VERIFY_PINNED);
    crate::produce::add_validation_bundle(&mut f);
    f.finish()
}
