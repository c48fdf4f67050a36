//! spec/session.md §4.3, spec/vault.md §6: the client's response parsers.
//! The properties are in `fuzz_checks.rs` (`fuzz_checks::client_response`), shared with the
//! corpus replay of `protocol/tests/api/fuzz_corpus.rs`.
#![no_main]

#[path = "../fuzz_checks.rs"]
mod fuzz_checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| fuzz_checks::client_response(data));
