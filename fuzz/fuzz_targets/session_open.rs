//! spec/session.md §5: a node opening a SealedRequest.
//! The properties are in `fuzz_checks.rs` (`fuzz_checks::session_open`), shared with the
//! corpus replay of `protocol/tests/api/fuzz_corpus.rs`.
#![no_main]

#[path = "../fuzz_checks.rs"]
mod fuzz_checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| fuzz_checks::session_open(data));
