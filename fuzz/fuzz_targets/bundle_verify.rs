//! spec/validation-bundle.md §5: parsing and verification never panic on any bytes,
//! any rollback state and any time.
#![no_main]

use arbitrary::Arbitrary;
use bkv_protocol::validation_bundle::{ClientState, Parsed, TrustAnchors, verify_bundle};
use libfuzzer_sys::fuzz_target;

#[derive(Debug, Arbitrary)]
struct Input<'a> {
    bundle: &'a [u8],
    anchors: &'a [u8],
    state: Option<(u64, [u8; 32])>,
    now: u64,
}

fuzz_target!(|input: Input<'_>| {
    let _ = Parsed::parse(input.bundle);
    if let Ok(anchors) = TrustAnchors::from_bytes(input.anchors) {
        let _ = verify_bundle(input.bundle, &anchors, &ClientState { highest: input.state }, input.now);
    }
});
