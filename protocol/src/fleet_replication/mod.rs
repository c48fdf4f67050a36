//! The sans-I/O part of fleet replication: the authenticated node-to-node envelope.
//!
//! spec/fleet-replication.md. Raft itself (openraft, storage, the HTTP transport, the vote
//! gate of §6.3) is I/O and lives in `reference-fleet`; what a node puts on the wire to
//! another node, and how the receiver checks it (§4), is here, so that the vector generator
//! and other implementations can reach it.

pub mod rpc;

#[cfg(test)]
mod tests;
