//! spec/validation-bundle.md §4.4: TrustAnchors decoding never panics, and whatever it
//! accepts re-encodes to the same bytes.
#![no_main]

use bkv_protocol::validation_bundle::TrustAnchors;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(a) = TrustAnchors::from_bytes(data) {
        assert_eq!(a.to_bytes(), data);
    }
});
