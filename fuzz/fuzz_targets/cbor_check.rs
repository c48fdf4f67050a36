//! spec/conventions.md §3.3: the strict deterministic-CBOR check.
//! The properties are in `fuzz_checks.rs` (`fuzz_checks::cbor_check`), shared with the
//! corpus replay of `protocol/tests/api/fuzz_corpus.rs`.
#![no_main]

#[path = "../fuzz_checks.rs"]
mod fuzz_checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| fuzz_checks::cbor_check(data));
