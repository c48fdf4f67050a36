//! `bkv-fleet`: the reference fleet (HSM nodes, third-party signer and audit log,
//! witness, client) and the `bkv` CLI. All I/O of bkv lives here; protocol logic
//! lives in `bkv-protocol`, and this crate only moves bytes in and out of it.
#![forbid(unsafe_code)]

pub mod audit_log;
pub mod cli;
pub mod client;
pub mod demo;
pub mod error;
pub mod fleet;
pub mod hsm;
pub mod node;
pub mod replication;

pub use error::{Error, Result};
