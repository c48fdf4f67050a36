//! The bundle envelope: a tagged COSE_Sign1 by the third party carrying one operator
//! countersignature (RFC 9338 V2) at unprotected label 11. spec/validation-bundle.md §4.

use super::countersignature::{Context, CoseCountersignature, CountersignatureValue, countersign_structure};
use crate::cbor;
use crate::crypto::{Algorithm, Signer};
use crate::error::{Error, Result};
use ciborium::Value;
use coset::iana::EnumI64;
use coset::{CborSerializable, ContentType, Label, RegisteredLabelWithPrivate, TaggedCborSerializable};

/// spec/validation-bundle.md §4.1: the content type of a FleetKeySet payload.
pub const CONTENT_TYPE: &str = "application/bkv-fleet-key-set+cbor";
/// COSE_Sign1 tag (RFC 9052 §4.2).
pub const COSE_SIGN1_TAG: u64 = 18;
/// RFC 9338 §3.1: label of the full countersignature, version 2.
pub const LABEL_COUNTERSIGNATURE_V2: i64 = 11;
/// RFC 9052 §3.1: label of the (obsolete) version-1 countersignature.
pub const LABEL_COUNTERSIGNATURE_V1: i64 = 7;
/// RFC 8152 label of the abbreviated version-1 countersignature (Countersignature0).
pub const LABEL_COUNTERSIGNATURE0_V1: i64 = 9;
/// RFC 9338 §3.2: label of the abbreviated version-2 countersignature.
pub const LABEL_COUNTERSIGNATURE0_V2: i64 = 12;
/// RFC 9597: label of the CWT claims header parameter.
pub const LABEL_CWT_CLAIMS: i64 = 15;

const CWT_ISS: i64 = 1;
const CWT_SUB: i64 = 2;
const CWT_IAT: i64 = 6;

/// CWT claims in the protected header. spec/validation-bundle.md §4.1.
///
/// ```cddl
/// CwtClaims = { 1 => tstr,   ; iss: the third party's anchor name
///               2 => tstr,   ; sub: the fleet id
///               6 => uint }  ; iat: signing time
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claims {
    /// Issuer: the third-party signer's anchor name.
    pub iss: String,
    /// Subject: the fleet id.
    pub sub: String,
    /// Issued at (POSIX seconds).
    pub iat: u64,
}

fn int(i: i64) -> Value {
    Value::Integer(i.into())
}

/// spec/validation-bundle.md §4.1: the third party signs a FleetKeySet. The result
/// has no countersignature yet and is only ever handed to the operator.
pub fn sign(keyset_bytes: &[u8], claims: &Claims, signer: &dyn Signer) -> Vec<u8> {
    let pk = signer.public_key();
    let protected = cbor::value_to_vec(&Value::Map(vec![
        (int(1), int(pk.alg.cose_id())),
        (int(3), Value::Text(CONTENT_TYPE.into())),
        (int(4), Value::Bytes(pk.kid().to_vec())),
        (
            int(LABEL_CWT_CLAIMS),
            Value::Map(vec![
                (int(CWT_ISS), Value::Text(claims.iss.clone())),
                (int(CWT_SUB), Value::Text(claims.sub.clone())),
                (int(CWT_IAT), Value::Integer(claims.iat.into())),
            ]),
        ),
    ]));
    let tbs = sig_structure(&protected, keyset_bytes);
    let signature = signer.sign(&tbs);
    encode_sign1(&protected, Vec::new(), keyset_bytes, &signature)
}

/// spec/validation-bundle.md §4.3: the operator countersigns the third party's
/// signature (V2 form, `other_fields = [signature]`) and places it at label 11.
/// The operator MUST check the payload is the FleetKeySet it submitted before calling
/// this (see [`Parsed::payload`]).
pub fn countersign(bundle: &[u8], operator: &dyn Signer) -> Result<Vec<u8>> {
    let parsed = Parsed::parse(bundle)?;
    if !parsed.unprotected_is_empty {
        return Err(Error::BundleCountersignatureMultiple);
    }
    let pk = operator.public_key();
    let cs_protected = cbor::value_to_vec(&Value::Map(vec![
        (int(1), int(pk.alg.cose_id())),
        (int(4), Value::Bytes(pk.kid().to_vec())),
    ]));
    let tbs = countersign_structure(
        Context::V2,
        &parsed.protected,
        &cs_protected,
        &[],
        &parsed.payload,
        &[&parsed.signature],
    );
    let cs = CoseCountersignature {
        protected: cs_protected,
        unprotected: Vec::new(),
        signature: operator.sign(&tbs),
    };
    Ok(encode_sign1(
        &parsed.protected,
        vec![(int(LABEL_COUNTERSIGNATURE_V2), cs.to_value())],
        &parsed.payload,
        &parsed.signature,
    ))
}

/// RFC 9052 §4.4 Sig_structure for a COSE_Sign1 with empty external AAD.
pub fn sig_structure(protected: &[u8], payload: &[u8]) -> Vec<u8> {
    cbor::value_to_vec(&Value::Array(vec![
        Value::Text("Signature1".into()),
        Value::Bytes(protected.to_vec()),
        Value::Bytes(Vec::new()),
        Value::Bytes(payload.to_vec()),
    ]))
}

/// Encode a tagged COSE_Sign1 from its parts (protected bytes used verbatim).
pub fn encode_sign1(
    protected: &[u8],
    unprotected: Vec<(Value, Value)>,
    payload: &[u8],
    signature: &[u8],
) -> Vec<u8> {
    cbor::value_to_vec(&Value::Tag(
        COSE_SIGN1_TAG,
        Box::new(Value::Array(vec![
            Value::Bytes(protected.to_vec()),
            Value::Map(unprotected),
            Value::Bytes(payload.to_vec()),
            Value::Bytes(signature.to_vec()),
        ])),
    ))
}

/// A bundle parsed by spec/validation-bundle.md §5 steps 1 and 2, before any key or
/// signature is looked at. All byte strings are exactly as received.
#[derive(Debug, Clone)]
pub struct Parsed {
    /// The serialized protected header as received.
    pub protected: Vec<u8>,
    /// The FleetKeySet bytes as received.
    pub payload: Vec<u8>,
    /// The third party's signature.
    pub signature: Vec<u8>,
    /// Signature algorithm.
    pub alg: Algorithm,
    /// Signer key id.
    pub kid: Vec<u8>,
    /// CWT claims.
    pub claims: Claims,
    /// The operator countersignature (None only for a not-yet-countersigned bundle).
    pub countersignature: Option<ParsedCountersignature>,
    unprotected_is_empty: bool,
    coset: coset::CoseSign1,
}

/// The countersignature of a bundle, parsed by spec/validation-bundle.md §5 step 2.
#[derive(Debug, Clone)]
pub struct ParsedCountersignature {
    /// The countersignature's protected header bytes as received.
    pub protected: Vec<u8>,
    /// Countersignature algorithm.
    pub alg: Algorithm,
    /// Operator key id.
    pub kid: Vec<u8>,
    /// The countersignature bytes.
    pub signature: Vec<u8>,
}

fn label_int(l: &Label) -> Option<i64> {
    match l {
        Label::Int(i) => Some(*i),
        Label::Text(_) => None,
    }
}

fn alg_of(h: &coset::Header) -> Result<Option<Algorithm>> {
    match &h.alg {
        None => Ok(None),
        Some(RegisteredLabelWithPrivate::Assigned(a)) => Algorithm::from_cose_id(a.to_i64()).map(Some),
        Some(RegisteredLabelWithPrivate::PrivateUse(i)) => Algorithm::from_cose_id(*i).map(Some),
        Some(RegisteredLabelWithPrivate::Text(_)) => Err(Error::CoseAlgorithmUnsupported),
    }
}

fn parse_claims(v: &Value) -> Option<Claims> {
    let Value::Map(entries) = v else { return None };
    let (mut iss, mut sub, mut iat) = (None, None, None);
    for (k, val) in entries {
        let k: i64 = k.as_integer()?.try_into().ok()?;
        match (k, val) {
            (CWT_ISS, Value::Text(s)) => iss = Some(s.clone()),
            (CWT_SUB, Value::Text(s)) => sub = Some(s.clone()),
            (CWT_IAT, Value::Integer(i)) => iat = Some(u64::try_from(*i).ok()?),
            _ => return None,
        }
    }
    Some(Claims { iss: iss?, sub: sub?, iat: iat? })
}

impl Parsed {
    /// spec/validation-bundle.md §5 steps 1 and 2: strict decoding of the envelope and
    /// its headers. Does not look at keys, signatures or the payload's contents.
    pub fn parse(bytes: &[u8]) -> Result<Self> {
        // Step 1: deterministic CBOR, tag 18 only, then a COSE_Sign1 with a payload.
        cbor::check(bytes, &[COSE_SIGN1_TAG])?;
        let sign1 = coset::CoseSign1::from_tagged_slice(bytes).map_err(|_| Error::BundleNotSign1)?;
        let payload = sign1.payload.clone().ok_or(Error::BundleNotSign1)?;
        let protected = sign1.protected.original_data.clone().unwrap_or_default();

        // Step 2a: forbidden countersignature forms, in either bucket.
        for h in [&sign1.protected.header, &sign1.unprotected] {
            let forbidden = h.rest.iter().filter_map(|(l, _)| label_int(l)).any(|l| {
                l == LABEL_COUNTERSIGNATURE_V1
                    || l == LABEL_COUNTERSIGNATURE0_V1
                    || l == LABEL_COUNTERSIGNATURE0_V2
            });
            if forbidden || !h.counter_signatures.is_empty() {
                return Err(Error::BundleCountersignatureForbiddenLabel);
            }
        }

        // Step 2b: protected header = exactly alg, content type, kid, CWT claims.
        cbor::check(&protected, cbor::NO_TAGS)?;
        let ph = &sign1.protected.header;
        let alg = alg_of(ph)?.ok_or(Error::BundleHeaderMissing)?;
        if ph.key_id.len() != 32 {
            return Err(Error::BundleHeaderMissing);
        }
        match &ph.content_type {
            None => return Err(Error::BundleHeaderMissing),
            Some(ContentType::Text(t)) if t == CONTENT_TYPE => {}
            Some(_) => return Err(Error::BundleContentType),
        }
        let mut claims = None;
        for (label, value) in &ph.rest {
            // Anything else, including a countersignature, has no place here.
            if label_int(label) != Some(LABEL_CWT_CLAIMS) {
                return Err(Error::BundleHeaderMisplaced);
            }
            claims = Some(parse_claims(value).ok_or(Error::BundleHeaderMissing)?);
        }
        let claims = claims.ok_or(Error::BundleHeaderMissing)?;
        if !ph.crit.is_empty() || !ph.iv.is_empty() || !ph.partial_iv.is_empty() {
            return Err(Error::BundleHeaderMisplaced);
        }

        // Step 2c: unprotected header = only label 11, holding exactly one countersignature.
        let uh = &sign1.unprotected;
        if uh.alg.is_some()
            || uh.content_type.is_some()
            || !uh.key_id.is_empty()
            || !uh.crit.is_empty()
            || !uh.iv.is_empty()
            || !uh.partial_iv.is_empty()
            || uh.rest.iter().any(|(l, _)| label_int(l) != Some(LABEL_COUNTERSIGNATURE_V2))
        {
            return Err(Error::BundleHeaderMisplaced);
        }
        let countersignature = match uh.rest.first() {
            None => None,
            Some((_, v)) => Some(Self::parse_countersignature(v)?),
        };

        Ok(Parsed {
            protected,
            payload,
            signature: sign1.signature.clone(),
            alg,
            kid: ph.key_id.clone(),
            claims,
            countersignature,
            unprotected_is_empty: uh.rest.is_empty(),
            coset: sign1,
        })
    }

    fn parse_countersignature(v: &Value) -> Result<ParsedCountersignature> {
        let cs = match CoseCountersignature::parse_label_value(v) {
            Some(CountersignatureValue::One(cs)) => cs,
            Some(CountersignatureValue::Many(_)) => return Err(Error::BundleCountersignatureMultiple),
            None => return Err(Error::BundleCountersignatureMalformed),
        };
        cbor::check(&cs.protected, cbor::NO_TAGS)?;
        let h =
            coset::Header::from_slice(&cs.protected).map_err(|_| Error::BundleCountersignatureMalformed)?;
        let alg = alg_of(&h)?.ok_or(Error::BundleCountersignatureMalformed)?;
        if h.key_id.len() != 32
            || h.content_type.is_some()
            || !h.crit.is_empty()
            || !h.iv.is_empty()
            || !h.partial_iv.is_empty()
            || !h.counter_signatures.is_empty()
            || !h.rest.is_empty()
            || !cs.unprotected.is_empty()
        {
            return Err(Error::BundleCountersignatureMalformed);
        }
        Ok(ParsedCountersignature { protected: cs.protected, alg, kid: h.key_id, signature: cs.signature })
    }

    /// The RFC 9052 Sig_structure bytes the third party signed (computed by `coset`
    /// from the protected bytes as received).
    pub fn to_be_signed(&self) -> Vec<u8> {
        self.coset.tbs_data(&[])
    }

    /// The RFC 9338 V2 Countersign_structure bytes the operator signed.
    pub fn countersign_to_be_signed(&self, cs: &ParsedCountersignature) -> Vec<u8> {
        countersign_structure(
            Context::V2,
            &self.protected,
            &cs.protected,
            &[],
            &self.payload,
            &[&self.signature],
        )
    }
}
