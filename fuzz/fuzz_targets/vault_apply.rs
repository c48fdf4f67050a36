//! spec/vault.md §8: the vault state machine.
//! The properties are in `fuzz_checks.rs` (`fuzz_checks::vault_apply`), shared with the
//! corpus replay of `protocol/tests/api/fuzz_corpus.rs`.
#![no_main]

#[path = "../fuzz_checks.rs"]
mod fuzz_checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| fuzz_checks::vault_apply(data));
