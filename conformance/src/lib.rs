//! `bkv-conformance`: the conformance runner, the harness contract and the reference
//! harness over `bkv-protocol`. spec/conformance.md.
//!
//! `cargo run -p bkv-conformance -- --harness CMD` runs every committed vector through
//! the harness `CMD`; `bkv-reference-harness` is the harness of this implementation and
//! `conformance/harnesses/python/` an independent one written from the spec alone.
#![forbid(unsafe_code)]

pub mod contract;
pub mod live;
pub mod reference;
pub mod report;
pub mod runner;
