//! spec/audit-log.md §8.1: the tile paths and bodies a client reads.
//! The properties are in `fuzz_checks.rs` (`fuzz_checks::tile_parse`), shared with the
//! corpus replay of `protocol/tests/api/fuzz_corpus.rs`.
#![no_main]

#[path = "../fuzz_checks.rs"]
mod fuzz_checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| fuzz_checks::tile_parse(data));
