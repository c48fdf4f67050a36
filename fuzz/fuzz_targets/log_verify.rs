//! spec/audit-log.md §6–§8: logged bundles, log anchors, checkpoint and cosignature verification, the client rule, the witness rule.
//! The properties are in `fuzz_checks.rs` (`fuzz_checks::log_verify`), shared with the
//! corpus replay of `protocol/tests/api/fuzz_corpus.rs`.
#![no_main]

#[path = "../fuzz_checks.rs"]
mod fuzz_checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| fuzz_checks::log_verify(data));
