//! Vectors for spec/conventions.md §3.3 (strict deterministic CBOR), operation
//! `cbor_check`. Each case is written by hand from the rule it tests; the expected code
//! comes from the spec's table, never from running the reference implementation.

use crate::format::{FileBuilder, VectorFile, map};
use bkv_protocol::Error;
use serde_json::json;

const NOTES: &[(&str, &str)] = &[
    ("Rfc8949Example", "an example from RFC 8949 Appendix A"),
    ("NonMinimal", "an integer, length or tag head longer than needed"),
    ("Indefinite", "an indefinite-length item"),
    ("MapOrder", "map keys out of bytewise order or duplicated"),
    ("LengthFirst", "sorted by RFC 7049 length-first order, which bkv does not use"),
    ("Float", "a floating-point number"),
    ("Simple", "a simple value"),
    ("Tag", "a tag"),
    ("Malformed", "not well-formed CBOR"),
    ("Depth", "nesting depth limit"),
];

/// (hex, expected error or None, comment, flags)
type Case = (&'static str, Option<Error>, &'static str, &'static [&'static str]);

const CASES: &[Case] = &[
    ("00", None, "zero", &["Rfc8949Example"]),
    ("17", None, "23, the largest immediate integer", &["Rfc8949Example"]),
    ("1818", None, "24, the smallest one-byte argument", &["Rfc8949Example"]),
    ("1903e8", None, "1000", &["Rfc8949Example"]),
    ("1a000f4240", None, "1000000", &["Rfc8949Example"]),
    ("1b000000e8d4a51000", None, "1000000000000", &["Rfc8949Example"]),
    ("1bffffffffffffffff", None, "2^64-1", &["Rfc8949Example"]),
    ("3bffffffffffffffff", None, "-2^64", &["Rfc8949Example"]),
    ("20", None, "-1", &["Rfc8949Example"]),
    ("4401020304", None, "byte string", &["Rfc8949Example"]),
    ("62c3bc", None, "text string with a 2-byte UTF-8 character", &["Rfc8949Example"]),
    ("83010203", None, "array", &["Rfc8949Example"]),
    ("a26161016162820203", None, "map with text keys in order", &["Rfc8949Example"]),
    ("a21818002000", None, "24 sorts before -1 bytewise (0x18 < 0x20)", &["MapOrder"]),
    ("f4", None, "false", &["Simple"]),
    ("f5", None, "true", &["Simple"]),
    ("f6", None, "null", &["Simple"]),
    ("1817", Some(Error::CborNonMinimal), "23 in a one-byte argument", &["NonMinimal"]),
    ("190017", Some(Error::CborNonMinimal), "23 in a two-byte argument", &["NonMinimal"]),
    ("1a0000ffff", Some(Error::CborNonMinimal), "65535 in a four-byte argument", &["NonMinimal"]),
    ("1b00000000ffffffff", Some(Error::CborNonMinimal), "2^32-1 in an eight-byte argument", &["NonMinimal"]),
    ("3817", Some(Error::CborNonMinimal), "-24 in a one-byte argument", &["NonMinimal"]),
    ("5801ff", Some(Error::CborNonMinimal), "byte string length 1 in a one-byte argument", &["NonMinimal"]),
    ("780161", Some(Error::CborNonMinimal), "text string length 1 in a one-byte argument", &["NonMinimal"]),
    ("980100", Some(Error::CborNonMinimal), "array length 1 in a one-byte argument", &["NonMinimal"]),
    ("b8010000", Some(Error::CborNonMinimal), "map length 1 in a one-byte argument", &["NonMinimal"]),
    ("5f4101ff", Some(Error::CborIndefiniteLength), "indefinite byte string", &["Indefinite"]),
    ("7f6161ff", Some(Error::CborIndefiniteLength), "indefinite text string", &["Indefinite"]),
    ("9f01ff", Some(Error::CborIndefiniteLength), "indefinite array", &["Indefinite"]),
    ("bf0102ff", Some(Error::CborIndefiniteLength), "indefinite map", &["Indefinite"]),
    ("a203040102", Some(Error::CborMapUnsorted), "integer keys 3, 1", &["MapOrder"]),
    ("a2616201616101", Some(Error::CborMapUnsorted), "text keys \"b\", \"a\"", &["MapOrder"]),
    (
        "a22000181800",
        Some(Error::CborMapUnsorted),
        "-1 before 24: length-first order",
        &["MapOrder", "LengthFirst"],
    ),
    ("a201020103", Some(Error::CborMapDuplicateKey), "key 1 twice", &["MapOrder"]),
    ("f93c00", Some(Error::CborFloat), "half-precision 1.0", &["Float"]),
    ("fa47c35000", Some(Error::CborFloat), "single-precision 100000.0", &["Float"]),
    ("fb3ff199999999999a", Some(Error::CborFloat), "double-precision 1.1", &["Float"]),
    ("f7", Some(Error::CborSimpleUnsupported), "undefined", &["Simple"]),
    ("f0", Some(Error::CborSimpleUnsupported), "simple(16)", &["Simple"]),
    ("f820", Some(Error::CborSimpleUnsupported), "simple(32) in two bytes", &["Simple"]),
    ("c249010000000000000000", Some(Error::CborTagUnknown), "tag 2 (bignum)", &["Tag"]),
    ("c11a514b67b0", Some(Error::CborTagUnknown), "tag 1 (epoch time)", &["Tag"]),
    ("d28440a0f640", Some(Error::CborTagUnknown), "tag 18 outside a bundle", &["Tag"]),
    ("d81200", Some(Error::CborNonMinimal), "tag 18 in a one-byte argument", &["Tag", "NonMinimal"]),
    ("", Some(Error::CborMalformed), "empty input", &["Malformed"]),
    ("18", Some(Error::CborMalformed), "truncated argument", &["Malformed"]),
    ("62c3", Some(Error::CborMalformed), "truncated text string", &["Malformed"]),
    ("62c328", Some(Error::CborMalformed), "invalid UTF-8", &["Malformed"]),
    ("1c", Some(Error::CborMalformed), "reserved additional information 28", &["Malformed"]),
    ("ff", Some(Error::CborMalformed), "lone break", &["Malformed"]),
    ("f818", Some(Error::CborMalformed), "two-byte simple value below 32", &["Malformed", "Simple"]),
    ("830102", Some(Error::CborMalformed), "array missing an element", &["Malformed"]),
    ("9bffffffffffffffff", Some(Error::CborMalformed), "array length beyond the input", &["Malformed"]),
    ("0000", Some(Error::CborTrailingBytes), "two items", &[]),
    ("a1006161a10102", Some(Error::CborTrailingBytes), "map followed by another map", &[]),
];

/// Arrays nested `depth` deep around a zero.
fn nested(depth: usize) -> String {
    format!("{}00", "81".repeat(depth))
}

/// The `cbor` vector file.
pub fn generate() -> VectorFile {
    let mut f = FileBuilder::new("cbor", "spec/conventions.md", NOTES);
    f.group("cbor_check", "§3.3");
    for (hex_in, err, comment, flags) in CASES {
        f.case(comment, flags, map([("data", json!(hex_in))]), *err, None);
    }
    let max = bkv_protocol::cbor::MAX_DEPTH;
    f.case(&format!("arrays nested {max} deep"), &["Depth"], map([("data", json!(nested(max)))]), None, None);
    f.case(
        &format!("arrays nested {} deep", max + 1),
        &["Depth"],
        map([("data", json!(nested(max + 1)))]),
        Some(Error::CborDepthExceeded),
        None,
    );
    f.finish()
}
