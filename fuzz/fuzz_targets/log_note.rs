//! spec/audit-log.md §4: signed notes, checkpoint bodies, verifier keys.
//! The properties are in `fuzz_checks.rs` (`fuzz_checks::log_note`), shared with the
//! corpus replay of `protocol/tests/api/fuzz_corpus.rs`.
#![no_main]

#[path = "../fuzz_checks.rs"]
mod fuzz_checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| fuzz_checks::log_note(data));
