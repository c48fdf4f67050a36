//! Deterministic CBOR: encoder and strict decoder.
//!
//! spec/conventions.md §3. Every byte bkv signs or hashes is RFC 8949 §4.2.1 core
//! deterministic CBOR, and receivers reject anything else. `ciborium` neither sorts
//! map keys nor checks determinism on input, so this module adds both:
//!
//! * [`to_vec`] serializes through `ciborium::Value`, sorts every map by the bytewise
//!   order of its encoded keys, refuses floats, and writes shortest-form heads.
//! * [`check`] walks raw bytes and rejects every non-deterministic form with its own
//!   code before any structure is decoded; [`from_slice`] runs it, then decodes.

mod check;

pub use check::{MAX_DEPTH, check};

use crate::error::{Error, Result};
use ciborium::Value;
use serde::{Serialize, de::DeserializeOwned};

/// CBOR tags allowed anywhere in a plain bkv structure: none.
pub const NO_TAGS: &[u64] = &[];

/// spec/conventions.md §3.2: encode `value` as deterministic CBOR.
///
/// Panics only if `value` contains a float or a type `ciborium` cannot serialize,
/// which is a programming error in a bkv wire type, never a property of input.
pub fn to_vec<T: Serialize + ?Sized>(value: &T) -> Vec<u8> {
    let v = Value::serialized(value).expect("bkv wire types always serialize to CBOR");
    value_to_vec(&v)
}

/// spec/conventions.md §3.2: encode `value` straight to bytes, without the `Value` tree of
/// [`to_vec`] (which for a large state is many times the state's size and time).
///
/// The bytes are deterministic only for types whose maps are all structs declared in the
/// deterministic order of their keys (shorter key first, then bytewise), whose sequences
/// know their length, and that hold no float. Each type written with it has a test that
/// compares the two encoders.
pub fn to_vec_in_declared_order<T: Serialize + ?Sized>(value: &T) -> Vec<u8> {
    let mut out = Vec::new();
    ciborium::into_writer(value, &mut out).expect("writing to a Vec cannot fail");
    out
}

/// spec/conventions.md §3.2: encode a `ciborium::Value` deterministically.
pub fn value_to_vec(value: &Value) -> Vec<u8> {
    let mut v = value.clone();
    canonicalize(&mut v);
    let mut out = Vec::new();
    ciborium::into_writer(&v, &mut out).expect("writing to a Vec cannot fail");
    out
}

/// Sort every map (recursively) by the deterministic encoding of its keys.
fn canonicalize(v: &mut Value) {
    match v {
        Value::Array(items) => items.iter_mut().for_each(canonicalize),
        Value::Map(entries) => {
            for (k, val) in entries.iter_mut() {
                canonicalize(k);
                canonicalize(val);
            }
            entries.sort_by_cached_key(|(k, _)| {
                let mut kb = Vec::new();
                ciborium::into_writer(k, &mut kb).expect("writing to a Vec cannot fail");
                kb
            });
        }
        Value::Tag(_, inner) => canonicalize(inner),
        Value::Float(_) => panic!("bkv wire types never contain floats (spec/conventions.md §3.1)"),
        _ => {}
    }
}

/// spec/conventions.md §3.3: check `bytes` is deterministic CBOR with no tags, then
/// decode it as `T`. Structural mismatches are `cbor.schema`, including a map key that
/// is not a text string (spec/conventions.md §2: a key matches a field only if it is the
/// text string of the field's name; serde would also match a byte string or an index).
pub fn from_slice<T: DeserializeOwned>(bytes: &[u8]) -> Result<T> {
    check(bytes, NO_TAGS)?;
    let value: Value = ciborium::from_reader(bytes).map_err(|_| Error::CborMalformed)?;
    if !text_keys_only(&value) {
        return Err(Error::CborSchema);
    }
    value.deserialized().map_err(|_| Error::CborSchema)
}

/// Whether every map in `v` has only text-string keys.
fn text_keys_only(v: &Value) -> bool {
    match v {
        Value::Map(entries) => {
            entries.iter().all(|(k, val)| matches!(k, Value::Text(_)) && text_keys_only(val))
        }
        Value::Array(items) => items.iter().all(text_keys_only),
        Value::Tag(_, inner) => text_keys_only(inner),
        _ => true,
    }
}

/// Decode already-checked bytes into a `ciborium::Value`, allowing `tags`.
pub fn value_from_slice(bytes: &[u8], tags: &[u64]) -> Result<Value> {
    check(bytes, tags)?;
    ciborium::from_reader(bytes).map_err(|_| Error::CborMalformed)
}

#[cfg(test)]
mod tests;
