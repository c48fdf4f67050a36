//! spec/validation-bundle.md §3: FleetKeySet decoding.
//! The properties are in `fuzz_checks.rs` (`fuzz_checks::keyset_decode`), shared with the
//! corpus replay of `protocol/tests/api/fuzz_corpus.rs`.
#![no_main]

#[path = "../fuzz_checks.rs"]
mod fuzz_checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| fuzz_checks::keyset_decode(data));
