//! `bkv-protocol`: the sans-I/O core of the bkv Backup Key Vault protocol.
//!
//! Every module implements one file of `spec/` and is named after it; nothing in
//! this crate touches a socket, a file or a clock: bytes, keys, random number
//! generators and the current time come in as parameters.
#![forbid(unsafe_code)]

pub mod audit;
pub mod audit_log;
pub mod backup_envelope;
pub mod cbor;
pub mod crypto;
pub mod error;
pub mod evidence;
#[cfg(any(test, feature = "fixtures"))]
pub mod fixtures;
pub mod fleet_replication;
pub mod hsm;
pub mod node_api;
pub mod rotation;
pub mod session;
pub mod signer_api;
pub mod state_machine;
pub mod validation_bundle;
pub mod vault;

pub use error::{Error, Result};
