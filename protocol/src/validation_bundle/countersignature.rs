//! RFC 9338 countersignatures: the structure `coset` lacks.
//!
//! spec/validation-bundle.md §4.3. The operator countersigns the third party's
//! signature with the full V2 form (RFC 9338 §3.1) carried at unprotected label 11.
//! The to-be-signed bytes are the Countersign_structure (RFC 9338 §3.3):
//!
//! ```cddl
//! Countersign_structure = [
//!     context : "CounterSignature" / "CounterSignature0" /
//!               "CounterSignatureV2" / "CounterSignature0V2" /,
//!     body_protected : empty_or_serialized_map,
//!     ? sign_protected : empty_or_serialized_map,
//!     external_aad : bstr,
//!     payload : bstr,
//!     ? other_fields : [+ bstr ]
//! ]
//! ```
//!
//! For a COSE_Sign1 the V2 form has `other_fields = [signature]`, so the countersigner
//! commits to the exact signature bytes of the first signer. All byte strings come from
//! the message as received: nothing is re-encoded before verification.

use crate::cbor;
use ciborium::Value;

/// The context string of a Countersign_structure (RFC 9338 §3.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Context {
    /// "CounterSignature": full form, version 1 (5 elements, no `other_fields`).
    V1,
    /// "CounterSignatureV2": full form, version 2 (6 elements with `other_fields`).
    V2,
}

impl Context {
    fn text(self) -> &'static str {
        match self {
            Context::V1 => "CounterSignature",
            Context::V2 => "CounterSignatureV2",
        }
    }
}

/// RFC 9338 §3.3: encode a Countersign_structure.
///
/// `other_fields` is used for [`Context::V2`] only (for a COSE_Sign1 it is
/// `[signature]`); it is ignored for [`Context::V1`].
pub fn countersign_structure(
    context: Context,
    body_protected: &[u8],
    sign_protected: &[u8],
    external_aad: &[u8],
    payload: &[u8],
    other_fields: &[&[u8]],
) -> Vec<u8> {
    let mut items = vec![
        Value::Text(context.text().into()),
        Value::Bytes(body_protected.to_vec()),
        Value::Bytes(sign_protected.to_vec()),
        Value::Bytes(external_aad.to_vec()),
        Value::Bytes(payload.to_vec()),
    ];
    if context == Context::V2 {
        items.push(Value::Array(other_fields.iter().map(|f| Value::Bytes(f.to_vec())).collect()));
    }
    cbor::value_to_vec(&Value::Array(items))
}

/// A COSE_Countersignature as received: `[protected: bstr, unprotected: map, signature: bstr]`
/// (RFC 9338 §3.1), with the protected bytes exactly as they arrived.
#[derive(Debug, Clone, PartialEq)]
pub struct CoseCountersignature {
    /// The serialized protected header map (the bstr contents as received).
    pub protected: Vec<u8>,
    /// The unprotected header map.
    pub unprotected: Vec<(Value, Value)>,
    /// The signature bytes.
    pub signature: Vec<u8>,
}

/// How label 11 was filled.
#[derive(Debug, Clone, PartialEq)]
pub enum CountersignatureValue {
    /// One countersignature.
    One(CoseCountersignature),
    /// An array of countersignatures (RFC 9338 allows several; bkv does not).
    Many(Vec<CoseCountersignature>),
}

impl CoseCountersignature {
    fn from_array(items: &[Value]) -> Option<Self> {
        match items {
            [Value::Bytes(p), Value::Map(u), Value::Bytes(s)] => Some(CoseCountersignature {
                protected: p.clone(),
                unprotected: u.clone(),
                signature: s.clone(),
            }),
            _ => None,
        }
    }

    /// Parse the value at label 11: either one COSE_Countersignature or an array of them.
    /// Returns `None` when it is neither.
    pub fn parse_label_value(value: &Value) -> Option<CountersignatureValue> {
        let Value::Array(items) = value else { return None };
        match items.first() {
            Some(Value::Array(_)) => items
                .iter()
                .map(|i| match i {
                    Value::Array(inner) => Self::from_array(inner),
                    _ => None,
                })
                .collect::<Option<Vec<_>>>()
                .map(CountersignatureValue::Many),
            _ => Self::from_array(items).map(CountersignatureValue::One),
        }
    }

    /// Encode as the CBOR value carried at label 11.
    pub fn to_value(&self) -> Value {
        Value::Array(vec![
            Value::Bytes(self.protected.clone()),
            Value::Map(self.unprotected.clone()),
            Value::Bytes(self.signature.clone()),
        ])
    }
}
