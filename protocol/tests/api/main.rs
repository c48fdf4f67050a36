//! The integration tests of `bkv-protocol`, one binary (one link step) with a module per
//! area, as rustls does with `tests/api.rs`; shared helpers in [`common`].

mod common;

mod audit_log_vectors;
mod azul;
mod fuzz_corpus;
mod hpke_kat;
mod registry;
mod rfc9338;
mod session;
mod validation_bundle;
mod vault_flow;
