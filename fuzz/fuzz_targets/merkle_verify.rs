//! spec/audit-log.md §3.3, §3.4: Merkle inclusion and consistency proofs.
//! The properties are in `fuzz_checks.rs` (`fuzz_checks::merkle_verify`), shared with the
//! corpus replay of `protocol/tests/api/fuzz_corpus.rs`.
#![no_main]

#[path = "../fuzz_checks.rs"]
mod fuzz_checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| fuzz_checks::merkle_verify(data));
