//! `node.toml`, the configuration of one fleet node (`reference-fleet/README.md`).
//! The property is `bkv_node::config::fuzz_check`; `bkv-node`'s tests replay the corpus.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| bkv_node::config::fuzz_check(data));
