//! spec/evidence.md §1, spec/rotation.md §4: evidence objects and rotation exports.
//! The properties are in `fuzz_checks.rs` (`fuzz_checks::evidence_parse`), shared with the
//! corpus replay of `protocol/tests/api/fuzz_corpus.rs`.
#![no_main]

#[path = "../fuzz_checks.rs"]
mod fuzz_checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| fuzz_checks::evidence_parse(data));
