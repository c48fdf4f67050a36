//! spec/validation-bundle.md §3: FleetKeySet decoding never panics, and whatever it
//! accepts re-encodes to the same bytes.
#![no_main]

use bkv_protocol::validation_bundle::FleetKeySet;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(ks) = FleetKeySet::from_bytes(data) {
        assert_eq!(ks.to_bytes(), data);
    }
});
