//! The bundle envelope: a tagged COSE_Sign1 by the third party carrying one operator
//! countersignature (RFC 9338 V2) at unprotected label 11. spec/validation-bundle.md §4.

use super::countersignature::{Context, CoseCountersignature, CountersignatureValue, countersign_structure};
use crate::cbor;
use crate::crypto::{Algorithm, Signer};
use crate::error::{Error, Result};
use ciborium::Value;

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
    attach_countersignature(bundle, &countersignature(bundle, operator)?)
}

/// spec/validation-bundle.md §4.3: the operator's COSE_Countersignature over the
/// not-yet-countersigned `bundle` (RFC 9338 V2), as deterministic CBOR: what the operator
/// sends the signer (spec/signer-api.md §2.3). The operator MUST check the payload first.
pub fn countersignature(bundle: &[u8], operator: &dyn Signer) -> Result<Vec<u8>> {
    let parsed = Parsed::parse(bundle)?;
    if parsed.countersignature.is_some() {
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
    Ok(cbor::value_to_vec(&cs.to_value()))
}

/// Place the COSE_Countersignature `countersignature` (deterministic CBOR) at unprotected
/// label 11 of the not-yet-countersigned `bundle`, giving the final bundle bytes. Nothing
/// is verified here: verify the result (spec/validation-bundle.md §5.1).
pub fn attach_countersignature(bundle: &[u8], countersignature: &[u8]) -> Result<Vec<u8>> {
    let parsed = Parsed::parse(bundle)?;
    if parsed.countersignature.is_some() {
        return Err(Error::BundleCountersignatureMultiple);
    }
    let cs = cbor::value_from_slice(countersignature, &[])?;
    Ok(encode_sign1(
        &parsed.protected,
        vec![(int(LABEL_COUNTERSIGNATURE_V2), cs)],
        &parsed.payload,
        &parsed.signature,
    ))
}

/// RFC 9052 §4.4 Sig_structure for a COSE_Sign1 with empty external AAD, built by
/// `coset` over the protected header bytes exactly as given (never re-encoded).
pub fn sig_structure(protected: &[u8], payload: &[u8]) -> Vec<u8> {
    let header =
        coset::ProtectedHeader { original_data: Some(protected.to_vec()), header: Default::default() };
    coset::sig_structure_data(coset::SignatureContext::CoseSign1, header, None, &[], payload)
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
}

/// The countersignature of a bundle, parsed by spec/validation-bundle.md §5 step 2.5.
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

type HeaderMap = [(Value, Value)];

/// The integer value of a label, if it is an integer.
fn int_label(v: &Value) -> Option<i128> {
    match v {
        Value::Integer(i) => Some(i128::from(*i)),
        _ => None,
    }
}

/// The value at integer label `label`.
fn get(m: &HeaderMap, label: i64) -> Option<&Value> {
    m.iter().find(|(k, _)| int_label(k) == Some(i128::from(label))).map(|(_, v)| v)
}

fn is_label(v: &Value) -> bool {
    matches!(v, Value::Integer(_) | Value::Text(_))
}

/// spec/validation-bundle.md §5.1 step 1: an RFC 9052 §3 `header_map` (label types and
/// the Generic_Headers value types), else `bundle.envelope.not_sign1`.
fn check_header_map(m: &HeaderMap) -> Result<()> {
    for (k, v) in m {
        let ok = is_label(k)
            && match int_label(k) {
                Some(1) | Some(3) => matches!(v, Value::Integer(_) | Value::Text(_)),
                Some(2) => matches!(v, Value::Array(a) if !a.is_empty() && a.iter().all(is_label)),
                Some(4..=6) => matches!(v, Value::Bytes(_)),
                _ => true,
            };
        if !ok {
            return Err(Error::BundleNotSign1);
        }
    }
    if get(m, 5).is_some() && get(m, 6).is_some() {
        return Err(Error::BundleNotSign1);
    }
    Ok(())
}

/// Step 1: the protected header bytes hold one well-formed CBOR map (any encoding; the
/// encoding is step 2.2) with no label twice; zero bytes stand for the empty map.
fn read_protected(bytes: &[u8]) -> Result<Vec<(Value, Value)>> {
    if bytes.is_empty() {
        return Ok(Vec::new());
    }
    let mut cursor = std::io::Cursor::new(bytes);
    let v: Value = match ciborium::from_reader(&mut cursor) {
        Ok(v) => v,
        // ciborium cannot represent some well-formed items (unassigned simple values).
        // If the strict check finds the bytes well-formed, its finding is what step 2.2
        // reports; only a forbidden label next to such an item would be reported later
        // than the spec's order says.
        Err(_) => {
            return Err(match cbor::check(bytes, cbor::NO_TAGS) {
                Err(Error::CborMalformed | Error::CborTrailingBytes) | Ok(()) => Error::BundleNotSign1,
                Err(e) => e,
            });
        }
    };
    let Value::Map(m) = v else { return Err(Error::BundleNotSign1) };
    if cursor.position() != bytes.len() as u64 {
        return Err(Error::BundleNotSign1);
    }
    for (i, (k, _)) in m.iter().enumerate() {
        if m[..i].iter().any(|(k2, _)| k2 == k) {
            return Err(Error::BundleNotSign1);
        }
    }
    Ok(m)
}

/// An `alg` value: allowed (spec/conventions.md §4.1) or its `cose.algorithm.*` code.
fn algorithm(v: &Value) -> Result<Algorithm> {
    match v {
        Value::Integer(i) => {
            Algorithm::from_cose_id(i64::try_from(*i).map_err(|_| Error::CoseAlgorithmUnsupported)?)
        }
        _ => Err(Error::CoseAlgorithmUnsupported),
    }
}

/// A 32-byte kid.
fn kid32(v: Option<&Value>) -> Option<Vec<u8>> {
    match v {
        Some(Value::Bytes(b)) if b.len() == 32 => Some(b.clone()),
        _ => None,
    }
}

fn parse_claims(v: &Value) -> Option<Claims> {
    let Value::Map(entries) = v else { return None };
    if entries.len() != 3 {
        return None;
    }
    let text = |l| match get(entries, l) {
        Some(Value::Text(s)) => Some(s.clone()),
        _ => None,
    };
    let iat = match get(entries, CWT_IAT) {
        Some(Value::Integer(i)) => u64::try_from(*i).ok()?,
        _ => return None,
    };
    Some(Claims { iss: text(CWT_ISS)?, sub: text(CWT_SUB)?, iat })
}

/// `[bstr, map, bstr]`: the shape of a COSE_Countersignature.
fn countersignature_shape(v: &Value) -> Option<CoseCountersignature> {
    match v {
        Value::Array(items) => CoseCountersignature::parse_label_value(v).and_then(|c| match c {
            CountersignatureValue::One(cs) if items.len() == 3 => Some(cs),
            _ => None,
        }),
        _ => None,
    }
}

impl Parsed {
    /// spec/validation-bundle.md §5.1 steps 1 and 2: strict decoding of the envelope and
    /// its headers, in the order and with the codes the spec gives. Does not look at
    /// keys, signatures or the payload's contents.
    pub fn parse(bytes: &[u8]) -> Result<Self> {
        // Step 1: deterministic CBOR with tag 18 only, then the COSE_Sign1 shape.
        cbor::check(bytes, &[COSE_SIGN1_TAG])?;
        let top: Value = ciborium::from_reader(bytes).map_err(|_| Error::CborMalformed)?;
        let Value::Tag(COSE_SIGN1_TAG, inner) = top else { return Err(Error::BundleNotSign1) };
        let Value::Array(items) = *inner else { return Err(Error::BundleNotSign1) };
        let [
            Value::Bytes(protected),
            Value::Map(unprotected),
            Value::Bytes(payload),
            Value::Bytes(signature),
        ] = <[Value; 4]>::try_from(items).map_err(|_| Error::BundleNotSign1)?
        else {
            return Err(Error::BundleNotSign1);
        };
        let prot = read_protected(&protected)?;
        check_header_map(&prot)?;
        check_header_map(&unprotected)?;

        // Step 2.1: no countersignature in a forbidden form, in either header.
        for m in [&prot[..], &unprotected[..]] {
            if [LABEL_COUNTERSIGNATURE_V1, LABEL_COUNTERSIGNATURE0_V1, LABEL_COUNTERSIGNATURE0_V2]
                .iter()
                .any(|l| get(m, *l).is_some())
            {
                return Err(Error::BundleCountersignatureForbiddenLabel);
            }
        }

        // Step 2.2: the protected header is deterministic CBOR.
        cbor::check(&protected, cbor::NO_TAGS)?;

        // Step 2.3: alg, kid, content type, CWT claims, in this order.
        let alg = algorithm(get(&prot, 1).ok_or(Error::BundleHeaderMissing)?)?;
        let kid = kid32(get(&prot, 4)).ok_or(Error::BundleHeaderMissing)?;
        match get(&prot, 3) {
            None => return Err(Error::BundleHeaderMissing),
            Some(Value::Text(t)) if t == CONTENT_TYPE => {}
            Some(_) => return Err(Error::BundleContentType),
        }
        let claims = get(&prot, LABEL_CWT_CLAIMS).and_then(parse_claims).ok_or(Error::BundleHeaderMissing)?;

        // Step 2.4: nothing else in the protected header; only label 11 unprotected.
        if prot.len() != 4 || unprotected.iter().any(|(k, _)| int_label(k) != Some(11)) {
            return Err(Error::BundleHeaderMisplaced);
        }

        // Step 2.5: exactly one well-formed countersignature at label 11 (absent only
        // before the operator countersigned; verification then stops with `missing`).
        let countersignature =
            get(&unprotected, LABEL_COUNTERSIGNATURE_V2).map(Self::parse_countersignature).transpose()?;

        Ok(Parsed { protected, payload, signature, alg, kid, claims, countersignature })
    }

    fn parse_countersignature(v: &Value) -> Result<ParsedCountersignature> {
        if let Value::Array(items) = v
            && !items.is_empty()
            && items.iter().all(|x| countersignature_shape(x).is_some())
        {
            return Err(Error::BundleCountersignatureMultiple);
        }
        let cs = countersignature_shape(v).ok_or(Error::BundleCountersignatureMalformed)?;
        cbor::check(&cs.protected, cbor::NO_TAGS)?;
        let Ok(Value::Map(m)) = ciborium::from_reader::<Value, _>(cs.protected.as_slice()) else {
            return Err(Error::BundleCountersignatureMalformed);
        };
        if m.iter().any(|(k, _)| !matches!(int_label(k), Some(1) | Some(4))) {
            return Err(Error::BundleCountersignatureMalformed);
        }
        let alg = algorithm(get(&m, 1).ok_or(Error::BundleCountersignatureMalformed)?)?;
        let kid = kid32(get(&m, 4)).ok_or(Error::BundleCountersignatureMalformed)?;
        if !cs.unprotected.is_empty() {
            return Err(Error::BundleCountersignatureMalformed);
        }
        Ok(ParsedCountersignature { protected: cs.protected, alg, kid, signature: cs.signature })
    }

    /// The RFC 9052 §4.4 Sig_structure bytes the third party signed, built by `coset`
    /// from the protected bytes as received.
    pub fn to_be_signed(&self) -> Vec<u8> {
        sig_structure(&self.protected, &self.payload)
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
