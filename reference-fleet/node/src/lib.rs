//! `bkv-node`: one node of a bkv fleet.
//!
//! - [`service`]: the client-facing HTTP service (spec/node-api.md §1), which only moves
//!   bytes in and out of the node step of `bkv-protocol` (spec/node-api.md §5);
//! - [`hsm`]: the software HSM that holds the node's keys (spec/node-api.md §4);
//! - [`replication`]: the replicated command log (spec/fleet-replication.md), openraft over
//!   redb, and the unreplicated log used as a benchmark baseline;
//! - [`config`] and [`run`]: one node as its own process (`bkv-node run --config`), with
//!   `/healthz`, `/readyz` and `/metrics` ([`metrics`]).
#![forbid(unsafe_code)]

pub mod config;
#[cfg(feature = "fault-injection")]
pub mod fault_injection;
pub mod hsm;
pub mod metrics;
pub mod rate;
pub mod replication;
pub mod run;
pub mod service;

pub use hsm::HsmError;
pub use replication::raft::StartError;

/// The one error type of `bkv-node`: who failed, with its stable code
/// (spec/conventions.md §8).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A protocol failure; carries the spec code.
    #[error(transparent)]
    Protocol(#[from] bkv_protocol::Error),
    /// The software HSM failed (`hsm.*`).
    #[error(transparent)]
    Hsm(#[from] HsmError),
    /// The node could not start (`node.start.*`).
    #[error(transparent)]
    Start(#[from] StartError),
    /// The node's configuration cannot be used (`node.config.invalid`).
    #[error(transparent)]
    Config(#[from] config::ConfigError),
}

impl Error {
    /// The stable code.
    pub fn code(&self) -> &'static str {
        match self {
            Error::Protocol(e) => e.code(),
            Error::Hsm(e) => e.code(),
            Error::Start(e) => e.code(),
            Error::Config(e) => e.code(),
        }
    }
}
