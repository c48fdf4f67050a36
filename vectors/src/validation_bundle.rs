//! Vectors for spec/validation-bundle.md §5 (`verify_bundle`) and §6 (`verify_pinned`).
//!
//! Every bundle is built from fixed seeds (Ed25519 and RFC 6979 ECDSA are
//! deterministic), so regeneration is byte-stable. Each invalid case is built to break
//! exactly one step, and names the code that step defines.

use crate::format::{FileBuilder, VectorFile, map};
use bkv_protocol::Error;
use bkv_protocol::cbor::value_to_vec;
use bkv_protocol::crypto::{Ed25519Signer, Esp256Signer, PublicKey, Signer, sha256};
use bkv_protocol::validation_bundle::countersignature::{
    Context, CoseCountersignature, countersign_structure,
};
use bkv_protocol::validation_bundle::keyset::{OPAQUE_SUITE_1, SESSION_SUITE_X25519};
use bkv_protocol::validation_bundle::*;
use ciborium::Value;
use serde_json::{Value as Json, json};

/// Verification time of every case.
pub const NOW: u64 = 1_800_000_000;
const FLEET: &str = "chat.example/backup-vault";
const THIRD_PARTY: &str = "auditco.example";
const OPERATOR: &str = "operator.example";

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
];

type HeaderMap = Vec<(Value, Value)>;
type HeaderEdit = Box<dyn Fn(&mut HeaderMap)>;
type KeySetEdit = Box<dyn Fn(&mut FleetKeySet)>;

struct World {
    third_party: Ed25519Signer,
    operator: Esp256Signer,
    anchors: TrustAnchors,
}

fn anchor(name: &str, key: &PublicKey) -> Anchor {
    Anchor { name: name.into(), key: key.clone(), not_before: NOW - 1000, not_after: NOW + 1000 }
}

fn world() -> World {
    let third_party = Ed25519Signer::from_seed(&[1; 32]);
    let operator = Esp256Signer::from_scalar(&[2; 32]).expect("valid scalar");
    let anchors = TrustAnchors {
        v: 1,
        fleet_id: FLEET.into(),
        third_party: vec![anchor(THIRD_PARTY, third_party.public_key())],
        operator: vec![anchor(OPERATOR, operator.public_key())],
        pinned: vec![],
    };
    World { third_party, operator, anchors }
}

fn node(i: u8) -> Node {
    let signing = Ed25519Signer::from_seed(&[100 + i; 32]);
    Node {
        id: format!("node-{i}"),
        datacenter: ["dc-east", "dc-west", "dc-north"][usize::from(i) % 3].into(),
        keys: vec![
            NodeKey { role: KeyRole::Session, suite: SESSION_SUITE_X25519, key: vec![i; 32] },
            NodeKey { role: KeyRole::Opaque, suite: OPAQUE_SUITE_1, key: vec![0xaa; 32] },
            NodeKey { role: KeyRole::Signing, suite: -19, key: signing.public_key().key.clone() },
        ],
    }
}

fn keyset(epoch: u64, prev: Option<[u8; 32]>) -> FleetKeySet {
    FleetKeySet {
        v: 1,
        fleet_id: FLEET.into(),
        epoch,
        not_before: NOW - 100,
        not_after: NOW + 100,
        guess_limit: 10,
        quorum: 3,
        nodes: (1..=5).map(node).collect(),
        prev,
        evidence: None,
    }
}

fn claims() -> Claims {
    Claims { iss: THIRD_PARTY.into(), sub: FLEET.into(), iat: NOW - 10 }
}

fn int(i: i64) -> Value {
    Value::Integer(i.into())
}

impl World {
    fn bundle(&self, ks: &FleetKeySet) -> Vec<u8> {
        countersign(&sign(&ks.to_bytes(), &claims(), &self.third_party), &self.operator).expect("countersign")
    }

    fn protected(&self, edit: impl FnOnce(&mut HeaderMap)) -> Vec<u8> {
        let mut m = vec![
            (int(1), int(-19)),
            (int(3), Value::Text("application/bkv-fleet-key-set+cbor".into())),
            (int(4), Value::Bytes(self.third_party.public_key().kid().to_vec())),
            (
                int(15),
                Value::Map(vec![
                    (int(1), Value::Text(THIRD_PARTY.into())),
                    (int(2), Value::Text(FLEET.into())),
                    (int(6), Value::Integer((NOW - 10).into())),
                ]),
            ),
        ];
        edit(&mut m);
        value_to_vec(&Value::Map(m))
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

struct Gen {
    f: FileBuilder,
}

impl Gen {
    #[allow(clippy::too_many_arguments)]
    fn bundle_case(
        &mut self,
        comment: &str,
        flags: &[&str],
        bundle: &[u8],
        anchors: &TrustAnchors,
        state: Option<(u64, [u8; 32])>,
        intermediates: &[&[u8]],
        error: Option<Error>,
    ) {
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
        self.f.case(comment, flags, input, error, output);
    }

    fn simple(&mut self, w: &World, comment: &str, flags: &[&str], bundle: &[u8], error: Option<Error>) {
        self.bundle_case(comment, flags, bundle, &w.anchors, None, &[], error);
    }
}

/// The `validation_bundle` vector file.
pub fn generate() -> VectorFile {
    let w = world();
    let mut g = Gen { f: FileBuilder::new("validation_bundle", "spec/validation-bundle.md", NOTES) };
    g.f.group("verify_bundle", "§5");
    let ks1 = keyset(1, None);
    let b1 = w.bundle(&ks1);
    let payload = ks1.to_bytes();

    // Valid bundles.
    g.simple(&w, "Ed25519 third party, ESP256 operator", &["Valid"], &b1, None);
    {
        let tp = Esp256Signer::from_scalar(&[3; 32]).expect("scalar");
        let op = Ed25519Signer::from_seed(&[4; 32]);
        let mut a = w.anchors.clone();
        a.third_party = vec![anchor(THIRD_PARTY, tp.public_key())];
        a.operator = vec![anchor(OPERATOR, op.public_key())];
        let b = countersign(&sign(&payload, &claims(), &tp), &op).expect("countersign");
        g.bundle_case("ESP256 third party, Ed25519 operator", &["Valid"], &b, &a, None, &[], None);
        let mut rotated = w.anchors.clone();
        rotated.third_party.insert(0, anchor("old-key", tp.public_key()));
        g.bundle_case(
            "two third-party anchors during a key rotation",
            &["Valid", "Anchor"],
            &b1,
            &rotated,
            None,
            &[],
            None,
        );
    }

    // Two organisations.
    let swapped = countersign(&sign(&payload, &claims(), &w.operator), &w.third_party).expect("countersign");
    g.simple(
        &w,
        "roles swapped: operator signs, third party countersigns",
        &["TwoOrganisations"],
        &swapped,
        Some(Error::BundleSignerUnknown),
    );
    let only_op = countersign(&sign(&payload, &claims(), &w.operator), &w.operator).expect("countersign");
    g.simple(
        &w,
        "operator signs and countersigns",
        &["TwoOrganisations"],
        &only_op,
        Some(Error::BundleSignerUnknown),
    );
    let only_tp =
        countersign(&sign(&payload, &claims(), &w.third_party), &w.third_party).expect("countersign");
    g.simple(
        &w,
        "third party signs and countersigns",
        &["TwoOrganisations"],
        &only_tp,
        Some(Error::BundleCountersignerUnknown),
    );
    let signed_only = sign(&payload, &claims(), &w.third_party);
    g.simple(
        &w,
        "no countersignature",
        &["TwoOrganisations", "Countersignature"],
        &signed_only,
        Some(Error::BundleCountersignatureMissing),
    );
    {
        let prot = w.protected(|_| {});
        let sig = w.third_party.sign(&sig_structure(&prot, &payload));
        let cs = w.countersignature(Context::V1, &prot, &payload, &sig);
        let b = encode_sign1(&prot, vec![(int(11), cs.to_value())], &payload, &sig);
        g.simple(
            &w,
            "countersignature over the payload (V1 structure) instead of the signature",
            &["Countersignature"],
            &b,
            Some(Error::BundleCountersignatureInvalid),
        );
        let mut c = claims();
        c.iat += 1;
        let other = sign(&payload, &c, &w.third_party);
        let moved = with_unprotected(&other, |u| *u = parts(&b1).unprotected);
        g.simple(
            &w,
            "countersignature moved to another signature over the same payload",
            &["Countersignature"],
            &moved,
            Some(Error::BundleCountersignatureInvalid),
        );
    }

    // Step 1: encoding.
    let p = parts(&b1);
    let untagged = value_to_vec(&Value::Array(vec![
        Value::Bytes(p.protected.clone()),
        Value::Map(p.unprotected.clone()),
        Value::Bytes(p.payload.clone()),
        Value::Bytes(p.signature.clone()),
    ]));
    g.simple(&w, "untagged COSE_Sign1", &["Encoding"], &untagged, Some(Error::BundleNotSign1));
    let detached = value_to_vec(&Value::Tag(
        18,
        Box::new(Value::Array(vec![
            Value::Bytes(p.protected.clone()),
            Value::Map(p.unprotected.clone()),
            Value::Null,
            Value::Bytes(p.signature.clone()),
        ])),
    ));
    g.simple(&w, "detached payload", &["Encoding"], &detached, Some(Error::BundleNotSign1));
    let mut tag98 = b1.clone();
    tag98[0] = 0xd8;
    tag98.insert(1, 98);
    g.simple(&w, "tag 98 (COSE_Sign) instead of 18", &["Encoding"], &tag98, Some(Error::CborTagUnknown));
    let mut trailing = b1.clone();
    trailing.push(0);
    g.simple(&w, "a byte after the bundle", &["Encoding"], &trailing, Some(Error::CborTrailingBytes));
    {
        // The tag head 0xd2 re-encoded in two bytes.
        let mut nm = b1.clone();
        nm[0] = 0xd8;
        nm.insert(1, 18);
        g.simple(&w, "tag 18 in a one-byte argument", &["Encoding"], &nm, Some(Error::CborNonMinimal));
        let Ok(Value::Map(mut m)) = ciborium::from_reader::<Value, _>(p.protected.as_slice()) else {
            panic!()
        };
        m.swap(0, 1);
        let mut unsorted = Vec::new();
        ciborium::into_writer(&Value::Map(m), &mut unsorted).expect("vec");
        g.simple(
            &w,
            "protected header map keys out of order",
            &["Encoding", "Header"],
            &w.raw(&unsorted, &payload),
            Some(Error::CborMapUnsorted),
        );
    }

    // Step 2: headers.
    let header_cases: Vec<(&str, HeaderEdit, Error, &[&str])> = vec![
        (
            "no CWT claims",
            Box::new(|m| m.retain(|(k, _)| *k != int(15))),
            Error::BundleHeaderMissing,
            &["Header"],
        ),
        ("no alg", Box::new(|m| m.retain(|(k, _)| *k != int(1))), Error::BundleHeaderMissing, &["Header"]),
        (
            "no content type",
            Box::new(|m| m.retain(|(k, _)| *k != int(3))),
            Error::BundleHeaderMissing,
            &["Header"],
        ),
        (
            "kid of 8 bytes",
            Box::new(|m| m[2].1 = Value::Bytes(vec![1; 8])),
            Error::BundleHeaderMissing,
            &["Header"],
        ),
        (
            "empty CWT claims",
            Box::new(|m| m[3].1 = Value::Map(vec![])),
            Error::BundleHeaderMissing,
            &["Header", "Claims"],
        ),
        (
            "content type application/cbor",
            Box::new(|m| m[1].1 = Value::Text("application/cbor".into())),
            Error::BundleContentType,
            &["Header"],
        ),
        (
            "unknown protected label 33",
            Box::new(|m| m.push((int(33), int(0)))),
            Error::BundleHeaderMisplaced,
            &["Header"],
        ),
        (
            "alg -8 (EdDSA, deprecated)",
            Box::new(|m| m[0].1 = int(-8)),
            Error::CoseAlgorithmDeprecated,
            &["Header", "Algorithm"],
        ),
        (
            "alg -7 (ES256, deprecated)",
            Box::new(|m| m[0].1 = int(-7)),
            Error::CoseAlgorithmDeprecated,
            &["Header", "Algorithm"],
        ),
        (
            "alg -35 (ES384, unsupported)",
            Box::new(|m| m[0].1 = int(-35)),
            Error::CoseAlgorithmUnsupported,
            &["Header", "Algorithm"],
        ),
        (
            "alg -9 with the kid of the Ed25519 anchor",
            Box::new(|m| m[0].1 = int(-9)),
            Error::BundleAlgorithmMismatch,
            &["Header", "Algorithm", "Anchor"],
        ),
    ];
    for (comment, edit, err, flags) in header_cases {
        g.simple(&w, comment, flags, &w.raw(&w.protected(edit), &payload), Some(err));
    }
    let kid = w.third_party.public_key().kid();
    let misplaced = with_unprotected(&b1, |u| u.insert(0, (int(4), Value::Bytes(kid.to_vec()))));
    g.simple(
        &w,
        "kid in the unprotected header",
        &["Header"],
        &misplaced,
        Some(Error::BundleHeaderMisplaced),
    );
    let one = p.unprotected[0].1.clone();
    let two = with_unprotected(&b1, |u| u[0].1 = Value::Array(vec![one.clone(), one.clone()]));
    g.simple(
        &w,
        "two countersignatures at label 11",
        &["Countersignature"],
        &two,
        Some(Error::BundleCountersignatureMultiple),
    );
    let junk = with_unprotected(&b1, |u| u[0].1 = int(5));
    g.simple(
        &w,
        "label 11 holds an integer",
        &["Countersignature"],
        &junk,
        Some(Error::BundleCountersignatureMalformed),
    );
    for (label, name) in [(9, "Countersignature0 (label 9)"), (12, "Countersignature0V2 (label 12)")] {
        let b = with_unprotected(&b1, |u| u.push((int(label), Value::Bytes(vec![0; 64]))));
        g.simple(
            &w,
            &format!("an abbreviated countersignature: {name}"),
            &["Countersignature"],
            &b,
            Some(Error::BundleCountersignatureForbiddenLabel),
        );
    }
    let v1 = Value::Array(vec![
        Value::Bytes(vec![0xa1, 0x01, 0x26]),
        Value::Map(vec![]),
        Value::Bytes(vec![0; 64]),
    ]);
    let seven = with_unprotected(&b1, |u| u.insert(0, (int(7), v1)));
    g.simple(
        &w,
        "a version-1 countersignature at label 7",
        &["Countersignature"],
        &seven,
        Some(Error::BundleCountersignatureForbiddenLabel),
    );

    // Steps 3-4: anchors.
    let mut a = w.anchors.clone();
    a.third_party = vec![anchor(THIRD_PARTY, Ed25519Signer::from_seed(&[9; 32]).public_key())];
    g.bundle_case(
        "signer is not a pinned third-party anchor",
        &["Anchor"],
        &b1,
        &a,
        None,
        &[],
        Some(Error::BundleSignerUnknown),
    );
    let mut a = w.anchors.clone();
    a.operator = vec![anchor(OPERATOR, Esp256Signer::from_scalar(&[9; 32]).expect("scalar").public_key())];
    g.bundle_case(
        "countersigner is not a pinned operator anchor",
        &["Anchor"],
        &b1,
        &a,
        None,
        &[],
        Some(Error::BundleCountersignerUnknown),
    );
    let mut a = w.anchors.clone();
    a.third_party[0].not_after = NOW - 1;
    g.bundle_case(
        "third-party anchor expired",
        &["Anchor"],
        &b1,
        &a,
        None,
        &[],
        Some(Error::BundleSignerExpired),
    );
    let mut a = w.anchors.clone();
    a.operator[0].not_before = NOW + 1;
    g.bundle_case(
        "operator anchor not yet valid",
        &["Anchor"],
        &b1,
        &a,
        None,
        &[],
        Some(Error::BundleCountersignerExpired),
    );

    // Steps 5-6: signatures.
    let mut bad = parts(&b1);
    bad.signature[0] ^= 1;
    let bad_sig = encode_sign1(&bad.protected, bad.unprotected, &bad.payload, &bad.signature);
    g.simple(
        &w,
        "third-party signature with a flipped bit",
        &["Signature"],
        &bad_sig,
        Some(Error::BundleSignatureInvalid),
    );
    let bad_cs = with_unprotected(&b1, |u| {
        if let Value::Array(items) = &mut u[0].1
            && let Value::Bytes(sig) = &mut items[2]
        {
            sig[5] ^= 1;
        }
    });
    g.simple(
        &w,
        "countersignature with a flipped bit",
        &["Signature", "Countersignature"],
        &bad_cs,
        Some(Error::BundleCountersignatureInvalid),
    );

    // Step 7: the FleetKeySet.
    let breakers: Vec<(&str, KeySetEdit)> = vec![
        ("quorum 2 of 5 is not a majority", Box::new(|k| k.quorum = 2)),
        ("quorum 5 of 5 is not floor(n/2)+1", Box::new(|k| k.quorum = 5)),
        ("guess limit 0", Box::new(|k| k.guess_limit = 0)),
        ("guess limit 101", Box::new(|k| k.guess_limit = 101)),
        ("epoch 0", Box::new(|k| k.epoch = 0)),
        ("epoch 1 with a previous bundle digest", Box::new(|k| k.prev = Some([1; 32]))),
        ("not_before after not_after", Box::new(|k| k.not_before = k.not_after + 1)),
        ("two nodes with one id", Box::new(|k| k.nodes[1].id = "node-1".into())),
        (
            "a node without a signing key",
            Box::new(|k| {
                k.nodes[1].keys.pop();
            }),
        ),
        ("nodes disagree on the OPAQUE key", Box::new(|k| k.nodes[1].keys[1].key = vec![0xbb; 32])),
        ("a session key used by two nodes", Box::new(|k| k.nodes[1].keys[0].key = vec![1; 32])),
        ("session key with suite 0x0010", Box::new(|k| k.nodes[1].keys[0].suite = 0x0010)),
        ("signing key of 31 bytes", Box::new(|k| k.nodes[1].keys[2].key = vec![0; 31])),
        ("no nodes", Box::new(|k| k.nodes.clear())),
        ("empty fleet id", Box::new(|k| k.fleet_id.clear())),
    ];
    for (comment, brk) in breakers {
        let mut ks = keyset(1, None);
        brk(&mut ks);
        g.simple(&w, comment, &["KeySet"], &w.bundle(&ks), Some(Error::BundleKeySetInvalid));
    }
    let not_a_keyset = bkv_protocol::cbor::to_vec(&std::collections::BTreeMap::from([("v", 1)]));
    g.simple(
        &w,
        "payload is not a FleetKeySet",
        &["KeySet"],
        &w.raw(&w.protected(|_| {}), &not_a_keyset),
        Some(Error::CborSchema),
    );
    {
        let mut ks = keyset(1, None);
        ks.fleet_id = "other-fleet".into();
        let c = Claims { sub: "other-fleet".into(), ..claims() };
        let b = countersign(&sign(&ks.to_bytes(), &c, &w.third_party), &w.operator).expect("countersign");
        g.simple(&w, "a valid bundle for another fleet", &["KeySet"], &b, Some(Error::BundleFleetMismatch));
    }

    // Step 8: claims.
    for (comment, c) in [
        ("iss is not the signer anchor's name", Claims { iss: "someone.else".into(), ..claims() }),
        ("sub is not the fleet id", Claims { sub: "other-fleet".into(), ..claims() }),
        ("iat after the signer anchor's window", Claims { iat: NOW + 5000, ..claims() }),
    ] {
        let b = countersign(&sign(&payload, &c, &w.third_party), &w.operator).expect("countersign");
        g.simple(&w, comment, &["Claims"], &b, Some(Error::BundleClaimsMismatch));
    }

    // Step 9: validity window.
    for (comment, shift, err) in
        [("not yet valid", 200i64, Error::BundleNotYetValid), ("expired", -200, Error::BundleExpired)]
    {
        let mut ks = keyset(1, None);
        ks.not_before = ks.not_before.saturating_add_signed(shift);
        ks.not_after = ks.not_after.saturating_add_signed(shift);
        g.simple(&w, comment, &["Validity"], &w.bundle(&ks), Some(err));
    }

    // Steps 10-11: rollback and chain.
    let d1 = sha256(&b1);
    let mut other1 = keyset(1, None);
    other1.guess_limit = 11;
    let b1x = w.bundle(&other1);
    let b2 = w.bundle(&keyset(2, Some(d1)));
    let d2 = sha256(&b2);
    let b2x = w.bundle(&keyset(2, Some(sha256(&b1x))));
    let b3 = w.bundle(&keyset(3, Some(d2)));
    let a = w.anchors.clone();
    g.bundle_case(
        "the bundle the client already holds",
        &["Valid", "Rollback"],
        &b1,
        &a,
        Some((1, d1)),
        &[],
        None,
    );
    g.bundle_case(
        "the next epoch chaining to the held bundle",
        &["Valid", "Rollback"],
        &b2,
        &a,
        Some((1, d1)),
        &[],
        None,
    );
    g.bundle_case(
        "epoch 1 while holding epoch 2",
        &["Rollback"],
        &b1,
        &a,
        Some((2, d2)),
        &[],
        Some(Error::BundleRollback),
    );
    g.bundle_case(
        "another bundle for the held epoch",
        &["Rollback"],
        &b1x,
        &a,
        Some((1, d1)),
        &[],
        Some(Error::BundleEquivocation),
    );
    g.bundle_case(
        "epoch 2 whose prev is not the held bundle",
        &["Rollback"],
        &b2x,
        &a,
        Some((1, d1)),
        &[],
        Some(Error::BundleChainBroken),
    );
    g.bundle_case(
        "epoch 3 while holding epoch 1, no intermediates",
        &["Rollback"],
        &b3,
        &a,
        Some((1, d1)),
        &[],
        Some(Error::BundleChainBroken),
    );
    g.bundle_case(
        "epoch 3 while holding epoch 1, with epoch 2 as intermediate",
        &["Valid", "Rollback"],
        &b3,
        &a,
        Some((1, d1)),
        &[&b2],
        None,
    );
    g.bundle_case(
        "epoch 3 with an intermediate that does not chain",
        &["Rollback"],
        &b3,
        &a,
        Some((1, d1)),
        &[&b2x],
        Some(Error::BundleChainBroken),
    );
    {
        let mut bad_anchors = w.anchors.clone();
        bad_anchors.operator[0].key.key[10] ^= 0xff;
        g.bundle_case(
            "trust anchors holding a key that is not a P-256 point",
            &["Anchor"],
            &b1,
            &bad_anchors,
            None,
            &[],
            Some(Error::CoseKeyInvalid),
        );
    }

    // §6: pinned mode.
    g.f.group("verify_pinned", "§6");
    let mut pinned = w.anchors.clone();
    pinned.pinned.push(serde_bytes::ByteBuf::from(sha256(&payload).to_vec()));
    let mut other_fleet = keyset(1, None);
    other_fleet.fleet_id = "other-fleet".into();
    pinned.pinned.push(serde_bytes::ByteBuf::from(sha256(&other_fleet.to_bytes()).to_vec()));
    let mut changed = keyset(1, None);
    changed.guess_limit = 9;
    let pinned_case = |g: &mut Gen, comment: &str, ks: &[u8], now: u64, err: Option<Error>| {
        let output = err
            .is_none()
            .then(|| map([("epoch", json!(1)), ("keyset_sha256", json!(hex::encode(sha256(ks))))]));
        let input = map([
            ("keyset", json!(hex::encode(ks))),
            ("anchors", json!(hex::encode(pinned.to_bytes()))),
            ("now", json!(now)),
        ]);
        g.f.case(comment, &["Pinned"], input, err, output);
    };
    pinned_case(&mut g, "the pinned FleetKeySet", &payload, NOW, None);
    pinned_case(
        &mut g,
        "a FleetKeySet that is not pinned",
        &changed.to_bytes(),
        NOW,
        Some(Error::PinnedMismatch),
    );
    pinned_case(
        &mut g,
        "the pinned FleetKeySet after not_after: retired",
        &payload,
        NOW + 101,
        Some(Error::PinnedFleetRetired),
    );
    pinned_case(
        &mut g,
        "the pinned FleetKeySet before not_before",
        &payload,
        NOW - 101,
        Some(Error::BundleNotYetValid),
    );
    pinned_case(
        &mut g,
        "a pinned FleetKeySet of another fleet",
        &other_fleet.to_bytes(),
        NOW,
        Some(Error::BundleFleetMismatch),
    );
    g.f.finish()
}
