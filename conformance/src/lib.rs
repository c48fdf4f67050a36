//! `bkv-conformance`: the conformance runner and the harness contract. spec/conformance.md.
//!
//! `cargo run -p bkv-conformance -- --harness CMD` runs every committed vector through
//! the harness `CMD`. One folder per implementation under `conformance/harnesses/`:
//! `rust/` (`bkv-reference-harness`, this implementation) and `python/`, an independent
//! one written from the spec alone. Live mode (`--live`) needs the `live` feature.
#![forbid(unsafe_code)]

pub mod contract;
#[cfg(feature = "live")]
pub mod live;
pub mod produce;
pub mod profiles;
pub mod report;
pub mod runner;
