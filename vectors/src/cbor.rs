//! Vectors for spec/conventions.md §3.3 (strict deterministic CBOR), operation
//! `cbor_check`. Each case is written by hand from the rule it tests; the expected code
//! comes from the spec's table, never from running the reference implementation.

use crate::cases;
use crate::format::{Case, FileBuilder, VectorFile, map};
use bkv_protocol::Error;
use bkv_protocol::cbor::MAX_DEPTH;
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

/// Arrays nested `depth` deep around a zero.
fn nested(depth: usize) -> String {
    format!("{}00", "81".repeat(depth))
}

/// A `cbor_check` case of the bytes `hex_in`.
fn data(flags: &'static [&'static str], hex_in: &str, error: Option<Error>) -> Case {
    Case { flags, input: map([("data", json!(hex_in))]), error, output: None }
}

/// The inputs of this file are written out in full; there is nothing to share.
struct World;

cases! { World, CASES;
    /// zero
    fn zero(_w) {
        data(&["Rfc8949Example"], "00", None)
    }
    /// 23, the largest immediate integer
    fn int_23_the_largest_immediate_integer(_w) {
        data(&["Rfc8949Example"], "17", None)
    }
    /// 24, the smallest one-byte argument
    fn int_24_the_smallest_one_byte_argument(_w) {
        data(&["Rfc8949Example"], "1818", None)
    }
    /// 1000
    fn int_1000(_w) {
        data(&["Rfc8949Example"], "1903e8", None)
    }
    /// 1000000
    fn int_1000000(_w) {
        data(&["Rfc8949Example"], "1a000f4240", None)
    }
    /// 1000000000000
    fn int_1000000000000(_w) {
        data(&["Rfc8949Example"], "1b000000e8d4a51000", None)
    }
    /// 2^64-1
    fn int_2_64_minus_1(_w) {
        data(&["Rfc8949Example"], "1bffffffffffffffff", None)
    }
    /// -2^64
    fn minus_2_64(_w) {
        data(&["Rfc8949Example"], "3bffffffffffffffff", None)
    }
    /// -1
    fn minus_1(_w) {
        data(&["Rfc8949Example"], "20", None)
    }
    /// byte string
    fn byte_string(_w) {
        data(&["Rfc8949Example"], "4401020304", None)
    }
    /// text string with a 2-byte UTF-8 character
    fn text_string_with_a_2_byte_utf_8_character(_w) {
        data(&["Rfc8949Example"], "62c3bc", None)
    }
    /// array
    fn array(_w) {
        data(&["Rfc8949Example"], "83010203", None)
    }
    /// map with text keys in order
    fn map_with_text_keys_in_order(_w) {
        data(&["Rfc8949Example"], "a26161016162820203", None)
    }
    /// 24 sorts before -1 bytewise (0x18 < 0x20)
    fn int_24_sorts_before_minus_1_bytewise_0x18_0x20(_w) {
        data(&["MapOrder"], "a21818002000", None)
    }
    /// false
    fn simple_false(_w) {
        data(&["Simple"], "f4", None)
    }
    /// true
    fn simple_true(_w) {
        data(&["Simple"], "f5", None)
    }
    /// null
    fn simple_null(_w) {
        data(&["Simple"], "f6", None)
    }
    /// 23 in a one-byte argument
    fn int_23_in_a_one_byte_argument(_w) {
        data(&["NonMinimal"], "1817", Some(Error::CborNonMinimal))
    }
    /// 23 in a two-byte argument
    fn int_23_in_a_two_byte_argument(_w) {
        data(&["NonMinimal"], "190017", Some(Error::CborNonMinimal))
    }
    /// 65535 in a four-byte argument
    fn int_65535_in_a_four_byte_argument(_w) {
        data(&["NonMinimal"], "1a0000ffff", Some(Error::CborNonMinimal))
    }
    /// 2^32-1 in an eight-byte argument
    fn int_2_32_minus_1_in_an_eight_byte_argument(_w) {
        data(&["NonMinimal"], "1b00000000ffffffff", Some(Error::CborNonMinimal))
    }
    /// -24 in a one-byte argument
    fn minus_24_in_a_one_byte_argument(_w) {
        data(&["NonMinimal"], "3817", Some(Error::CborNonMinimal))
    }
    /// byte string length 1 in a one-byte argument
    fn byte_string_length_1_in_a_one_byte_argument(_w) {
        data(&["NonMinimal"], "5801ff", Some(Error::CborNonMinimal))
    }
    /// text string length 1 in a one-byte argument
    fn text_string_length_1_in_a_one_byte_argument(_w) {
        data(&["NonMinimal"], "780161", Some(Error::CborNonMinimal))
    }
    /// array length 1 in a one-byte argument
    fn array_length_1_in_a_one_byte_argument(_w) {
        data(&["NonMinimal"], "980100", Some(Error::CborNonMinimal))
    }
    /// map length 1 in a one-byte argument
    fn map_length_1_in_a_one_byte_argument(_w) {
        data(&["NonMinimal"], "b8010000", Some(Error::CborNonMinimal))
    }
    /// indefinite byte string
    fn indefinite_byte_string(_w) {
        data(&["Indefinite"], "5f4101ff", Some(Error::CborIndefiniteLength))
    }
    /// indefinite text string
    fn indefinite_text_string(_w) {
        data(&["Indefinite"], "7f6161ff", Some(Error::CborIndefiniteLength))
    }
    /// indefinite array
    fn indefinite_array(_w) {
        data(&["Indefinite"], "9f01ff", Some(Error::CborIndefiniteLength))
    }
    /// indefinite map
    fn indefinite_map(_w) {
        data(&["Indefinite"], "bf0102ff", Some(Error::CborIndefiniteLength))
    }
    /// integer keys 3, 1
    fn integer_keys_3_1(_w) {
        data(&["MapOrder"], "a203040102", Some(Error::CborMapUnsorted))
    }
    /// text keys "b", "a"
    fn text_keys_b_a(_w) {
        data(&["MapOrder"], "a2616201616101", Some(Error::CborMapUnsorted))
    }
    /// -1 before 24: length-first order
    fn minus_1_before_24_length_first_order(_w) {
        data(&["MapOrder", "LengthFirst"], "a22000181800", Some(Error::CborMapUnsorted))
    }
    /// key 1 twice
    fn key_1_twice(_w) {
        data(&["MapOrder"], "a201020103", Some(Error::CborMapDuplicateKey))
    }
    /// half-precision 1.0
    fn half_precision_1_0(_w) {
        data(&["Float"], "f93c00", Some(Error::CborFloat))
    }
    /// single-precision 100000.0
    fn single_precision_100000_0(_w) {
        data(&["Float"], "fa47c35000", Some(Error::CborFloat))
    }
    /// double-precision 1.1
    fn double_precision_1_1(_w) {
        data(&["Float"], "fb3ff199999999999a", Some(Error::CborFloat))
    }
    /// undefined
    fn undefined(_w) {
        data(&["Simple"], "f7", Some(Error::CborSimpleUnsupported))
    }
    /// simple(16)
    fn simple_16(_w) {
        data(&["Simple"], "f0", Some(Error::CborSimpleUnsupported))
    }
    /// simple(32) in two bytes
    fn simple_32_in_two_bytes(_w) {
        data(&["Simple"], "f820", Some(Error::CborSimpleUnsupported))
    }
    /// tag 2 (bignum)
    fn tag_2_bignum(_w) {
        data(&["Tag"], "c249010000000000000000", Some(Error::CborTagUnknown))
    }
    /// tag 1 (epoch time)
    fn tag_1_epoch_time(_w) {
        data(&["Tag"], "c11a514b67b0", Some(Error::CborTagUnknown))
    }
    /// tag 18 outside a bundle
    fn tag_18_outside_a_bundle(_w) {
        data(&["Tag"], "d28440a0f640", Some(Error::CborTagUnknown))
    }
    /// tag 18 in a one-byte argument
    fn tag_18_in_a_one_byte_argument(_w) {
        data(&["Tag", "NonMinimal"], "d81200", Some(Error::CborNonMinimal))
    }
    /// empty input
    fn empty_input(_w) {
        data(&["Malformed"], "", Some(Error::CborMalformed))
    }
    /// truncated argument
    fn truncated_argument(_w) {
        data(&["Malformed"], "18", Some(Error::CborMalformed))
    }
    /// truncated text string
    fn truncated_text_string(_w) {
        data(&["Malformed"], "62c3", Some(Error::CborMalformed))
    }
    /// invalid UTF-8
    fn invalid_utf_8(_w) {
        data(&["Malformed"], "62c328", Some(Error::CborMalformed))
    }
    /// reserved additional information 28
    fn reserved_additional_information_28(_w) {
        data(&["Malformed"], "1c", Some(Error::CborMalformed))
    }
    /// lone break
    fn lone_break(_w) {
        data(&["Malformed"], "ff", Some(Error::CborMalformed))
    }
    /// two-byte simple value below 32
    fn two_byte_simple_value_below_32(_w) {
        data(&["Malformed", "Simple"], "f818", Some(Error::CborMalformed))
    }
    /// array missing an element
    fn array_missing_an_element(_w) {
        data(&["Malformed"], "830102", Some(Error::CborMalformed))
    }
    /// array length beyond the input
    fn array_length_beyond_the_input(_w) {
        data(&["Malformed"], "9bffffffffffffffff", Some(Error::CborMalformed))
    }
    /// a map of 3 pairs with 4 bytes left: n counts pairs, not items (3 <= 4), so reading
    /// goes on and the repeated key is met before the input ends
    fn map_pair_count_within_the_input(_w) {
        data(&["MapOrder", "Malformed"], "a301000100", Some(Error::CborMapDuplicateKey))
    }
    /// a map of 5 pairs with 4 bytes left: truncated at once, before any key is read
    fn map_pair_count_beyond_the_input(_w) {
        data(&["Malformed"], "a501000100", Some(Error::CborMalformed))
    }
    /// two items
    fn two_items(_w) {
        data(&[], "0000", Some(Error::CborTrailingBytes))
    }
    /// map followed by another map
    fn map_followed_by_another_map(_w) {
        data(&[], "a1006161a10102", Some(Error::CborTrailingBytes))
    }
    /// arrays nested 32 deep
    fn nested_at_the_limit(_w) {
        data(&["Depth"], &nested(MAX_DEPTH), None)
    }
    /// arrays nested 33 deep
    fn nested_beyond_the_limit(_w) {
        data(&["Depth"], &nested(MAX_DEPTH + 1), Some(Error::CborDepthExceeded))
    }
}

/// The `cbor` vector file.
pub fn generate() -> VectorFile {
    assert_eq!(MAX_DEPTH, 32, "the doc lines of the depth cases name the limit");
    let mut f = FileBuilder::new("cbor", "spec/conventions.md", NOTES);
    f.group("cbor_check", "§3.3");
    f.cases(&mut World, CASES);
    f.finish()
}
