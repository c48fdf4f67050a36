//! The replicated command log every vault request goes through.
//!
//! spec/fleet-replication.md: a [`CommandLog`] durably commits a command (on a majority
//! of the fleet's nodes when replicated) before returning the output of applying it to
//! the node's [`bkv_protocol::state_machine::StateMachine`]. The single-node log and the
//! Raft log implement the same trait, so the vault code does not know which it runs on.

pub mod raft;

use std::future::Future;

/// The fleet cannot commit or read right now (no majority reachable, shutting down).
/// Clients see `fleet.unavailable`; never a stale answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("fleet.unavailable: {0}")]
pub struct Unavailable(pub String);

/// A durable, ordered log of state-machine commands.
pub trait CommandLog: Send + Sync + 'static {
    /// Commit `command` durably and return the output of applying it. When this returns
    /// `Ok`, the command survives any crash the log is designed to tolerate.
    fn propose(&self, command: Vec<u8>) -> impl Future<Output = Result<Vec<u8>, Unavailable>> + Send;
    /// Linearizable read: answer `query` after every command committed before this call
    /// has been applied.
    fn read(&self, query: Vec<u8>) -> impl Future<Output = Result<Vec<u8>, Unavailable>> + Send;
    /// spec/hsm.md §5: once this node has applied `position`, the `SignedAck`s of it the
    /// other nodes' HSMs give (a log without other nodes gives none).
    fn acks(&self, position: u64) -> impl Future<Output = Result<Vec<Vec<u8>>, Unavailable>> + Send;
}
