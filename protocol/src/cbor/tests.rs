use super::*;
use serde::Deserialize;

fn h(s: &str) -> Vec<u8> {
    hex::decode(s.replace(' ', "")).unwrap()
}

#[derive(Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
struct Sample {
    zeta: u64,
    a: String,
    #[serde(with = "serde_bytes")]
    bytes: Vec<u8>,
    list: Vec<i64>,
    opt: Option<bool>,
}

#[test]
fn encoder_sorts_keys_and_round_trips() {
    let s = Sample { zeta: 500, a: "x".into(), bytes: vec![1, 2], list: vec![-1, 24, 65536], opt: None };
    let b = to_vec(&s);
    // Keys sorted by encoded bytes: "a" (61 61) < "opt" (63..) < "list" (64..) < "zeta" < "bytes" (65..).
    assert_eq!(
        b,
        h("a5 6161 6178 636f7074 f6 646c697374 83 20 1818 1a00010000 647a657461 1901f4 656279746573 420102")
    );
    check(&b, NO_TAGS).unwrap();
    assert_eq!(from_slice::<Sample>(&b).unwrap(), s);
}

#[test]
fn rfc8949_appendix_a_shortest_forms_are_accepted() {
    // RFC 8949 Appendix A examples (integers, strings, arrays, maps, simple values).
    for ok in [
        "00",
        "17",
        "1818",
        "1903e8",
        "1a000f4240",
        "1b000000e8d4a51000",
        "1bffffffffffffffff",
        "20",
        "3863",
        "3bffffffffffffffff",
        "40",
        "4401020304",
        "60",
        "6161",
        "62c3bc",
        "80",
        "83010203",
        "a0",
        "a201020304",
        "a21818002000",
        "a26161016162820203",
        "f4",
        "f5",
        "f6",
    ] {
        assert_eq!(check(&h(ok), NO_TAGS), Ok(()), "{ok}");
    }
}

#[test]
fn rejects_each_non_deterministic_form() {
    let cases: &[(&str, Error)] = &[
        // non-minimal integers and lengths
        ("1817", Error::CborNonMinimal),
        ("190017", Error::CborNonMinimal),
        ("1a0000ffff", Error::CborNonMinimal),
        ("1b00000000ffffffff", Error::CborNonMinimal),
        ("3817", Error::CborNonMinimal),
        ("5801ff", Error::CborNonMinimal),
        ("780161", Error::CborNonMinimal),
        ("980100", Error::CborNonMinimal),
        ("b8010000", Error::CborNonMinimal),
        ("d81200", Error::CborNonMinimal),
        // indefinite lengths
        ("5f4101ff", Error::CborIndefiniteLength),
        ("7f6161ff", Error::CborIndefiniteLength),
        ("9f01ff", Error::CborIndefiniteLength),
        ("bf0102ff", Error::CborIndefiniteLength),
        // map key order and duplicates
        ("a203040102", Error::CborMapUnsorted),
        ("a2616201616101", Error::CborMapUnsorted),
        // RFC 7049 length-first order is not RFC 8949 bytewise order: 24 (18 18) sorts before -1 (20)
        ("a22000181800", Error::CborMapUnsorted),
        ("a201020103", Error::CborMapDuplicateKey),
        // floats of every width
        ("f93c00", Error::CborFloat),
        ("fa47c35000", Error::CborFloat),
        ("fb3ff199999999999a", Error::CborFloat),
        // simple values other than false/true/null
        ("f7", Error::CborSimpleUnsupported),
        ("f0", Error::CborSimpleUnsupported),
        ("f820", Error::CborSimpleUnsupported),
        // tags not allowed here (bignum, epoch time, COSE_Sign1)
        ("c249010000000000000000", Error::CborTagUnknown),
        ("c11a514b67b0", Error::CborTagUnknown),
        ("d28440a0f640", Error::CborTagUnknown),
        // malformed
        ("", Error::CborMalformed),
        ("18", Error::CborMalformed),
        ("62c3", Error::CborMalformed),
        ("62c328", Error::CborMalformed),
        ("1c", Error::CborMalformed),
        ("ff", Error::CborMalformed),
        ("f818", Error::CborMalformed),
        ("830102", Error::CborMalformed),
        ("9bffffffffffffffff", Error::CborMalformed),
        // trailing bytes
        ("0000", Error::CborTrailingBytes),
    ];
    for (hex_in, want) in cases {
        assert_eq!(check(&h(hex_in), NO_TAGS), Err(*want), "{hex_in}");
    }
}

#[test]
fn allowed_tags_pass_and_depth_is_bounded() {
    assert_eq!(check(&h("d28440a0f640"), &[18]), Ok(()));
    let mut deep = vec![0x81u8; MAX_DEPTH];
    deep.push(0x00);
    assert_eq!(check(&deep, NO_TAGS), Ok(()));
    let mut deeper = vec![0x81u8; MAX_DEPTH + 1];
    deeper.push(0x00);
    assert_eq!(check(&deeper, NO_TAGS), Err(Error::CborDepthExceeded));
}

#[test]
fn schema_mismatch_is_cbor_schema() {
    // Deterministic, but "zeta" is missing.
    let b = to_vec(&std::collections::BTreeMap::from([("a", 1)]));
    assert_eq!(from_slice::<Sample>(&b), Err(Error::CborSchema));
    // Unknown field.
    #[derive(Serialize)]
    struct Extra {
        zeta: u64,
        a: String,
        #[serde(with = "serde_bytes")]
        bytes: Vec<u8>,
        list: Vec<i64>,
        opt: Option<bool>,
        more: u8,
    }
    let b = to_vec(&Extra { zeta: 1, a: "".into(), bytes: vec![], list: vec![], opt: None, more: 1 });
    assert_eq!(from_slice::<Sample>(&b), Err(Error::CborSchema));
}

#[test]
#[should_panic(expected = "never contain floats")]
fn encoder_refuses_floats() {
    let _ = to_vec(&1.5f64);
}

#[test]
fn only_text_keys_match_fields() {
    // {"a": "x", "opt": null, "list": [], "zeta": 1, "bytes": h''} but with the key "a"
    // as the byte string h'61', and then as the field index 1: serde would match both.
    let good = h("a5 6161 6178 636f7074 f6 646c697374 80 647a657461 01 656279746573 40");
    assert!(from_slice::<Sample>(&good).is_ok());
    let bytes_key = h("a5 4161 6178 636f7074 f6 646c697374 80 647a657461 01 656279746573 40");
    assert_eq!(check(&bytes_key, NO_TAGS), Ok(()));
    assert_eq!(from_slice::<Sample>(&bytes_key), Err(Error::CborSchema));
    let index_key = h("a5 01 6178 636f7074 f6 646c697374 80 647a657461 01 656279746573 40");
    assert_eq!(check(&index_key, NO_TAGS), Ok(()));
    assert_eq!(from_slice::<Sample>(&index_key), Err(Error::CborSchema));
}
