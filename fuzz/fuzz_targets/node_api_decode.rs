//! spec/node-api.md §1, §2: the node's HTTP bodies a client decodes.
//! The properties are in `fuzz_checks.rs` (`fuzz_checks::node_api_decode`), shared with the
//! corpus replay of `protocol/tests/api/fuzz_corpus.rs`.
#![no_main]

#[path = "../fuzz_checks.rs"]
mod fuzz_checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| fuzz_checks::node_api_decode(data));
