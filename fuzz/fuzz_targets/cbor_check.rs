//! spec/conventions.md §3.3: the strict check never panics, and whatever it accepts
//! ciborium can decode and the deterministic encoder reproduces byte for byte.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if bkv_protocol::cbor::check(data, &[18]).is_ok() {
        let v: ciborium::Value = bkv_protocol::cbor::value_from_slice(data, &[18]).expect("checked input decodes");
        assert_eq!(bkv_protocol::cbor::value_to_vec(&v), data, "accepted input is canonical");
    }
});
