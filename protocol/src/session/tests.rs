//! Unit tests of the session envelope (spec/session.md).

use super::*;

/// spec/session.md §3.2: `info` is the deterministic CBOR array, written out by hand here.
#[test]
fn info_is_the_cbor_array_of_section_3_2() {
    let mut expected = vec![0x85, 0x6b];
    expected.extend_from_slice(b"bkv session");
    expected.extend_from_slice(&[0x01, 0x61, b'f', 0x07, 0x61, b'n']);
    assert_eq!(info("f", 7, "n"), expected);
    // A large epoch uses the shortest integer form.
    assert_eq!(&info("f", 256, "n")[16..19], &[0x19, 0x01, 0x00]);
}

#[test]
fn only_session_and_cbor_codes_may_arrive_unsealed() {
    for e in Error::ALL {
        let allowed = unsealed_code_allowed(*e);
        let area = e.spec_area();
        assert_eq!(
            allowed,
            (area == "session" || area == "cbor") && *e != Error::SessionResponseInvalid,
            "{e:?}"
        );
    }
}

#[test]
fn secret_key_round_trip_and_debug_hides_it() {
    let k = SessionSecretKey::derive(b"some input keying material of 32b");
    let again = SessionSecretKey::from_bytes(&k.to_bytes()).unwrap();
    assert_eq!(again.public_key(), k.public_key());
    assert_eq!(format!("{k:?}"), "SessionSecretKey(..)");
}
