//! spec/node-api.md: the node's HTTP binding as wire types, and the node's request
//! pipeline as one sans-I/O step ([`step`]).
//!
//! The node server only moves bytes: it hands a sealed request to [`NodeStep::begin`],
//! commits the command a [`PendingCommit`] names through its replicated log, and resumes
//! the step with the evidence of that commit. Nothing outside [`step`] calls the vault's
//! front end or its commit step.

pub mod step;

pub use step::{Begun, CommitEvidence, NodeStep, PendingCommit, VaultBegun, VaultPending, VaultStep};

use crate::audit_log::merkle::Hash;
use crate::cbor;
use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};

/// Media type of every body (spec/node-api.md §1).
pub const CBOR: &str = "application/cbor";

/// Largest `POST /v1/session` body a node reads (spec/node-api.md §1 rule 2).
pub const MAX_REQUEST: usize = 16 * 1024;

/// spec/node-api.md §2: `GET /v1/node`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeInfo {
    /// Version, 1.
    pub v: u64,
    /// Fleet id.
    pub fleet_id: String,
    /// Epoch.
    pub epoch: u64,
    /// This node's id in the FleetKeySet.
    pub node_id: String,
    /// Datacenter label.
    pub datacenter: String,
}

/// spec/node-api.md §1: the body of `GET /v1/log/consistency/<size1>/<size2>`,
/// `[* bstr .size 32]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsistencyPath;

impl ConsistencyPath {
    /// Encode a consistency proof as deterministic CBOR.
    pub fn encode(path: &[Hash]) -> Vec<u8> {
        let list: Vec<serde_bytes::ByteBuf> =
            path.iter().map(|h| serde_bytes::ByteBuf::from(h.to_vec())).collect();
        cbor::to_vec(&list)
    }

    /// Decode it strictly: `cbor.*` for bad CBOR, `log.consistency.invalid` for a hash
    /// that is not 32 bytes.
    pub fn decode(bytes: &[u8]) -> Result<Vec<Hash>> {
        let list: Vec<serde_bytes::ByteBuf> = cbor::from_slice(bytes)?;
        list.iter().map(|h| h.as_slice().try_into().map_err(|_| Error::LogConsistencyInvalid)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn consistency_path_round_trips_and_refuses_short_hashes() {
        let path = vec![[1u8; 32], [2u8; 32]];
        assert_eq!(ConsistencyPath::decode(&ConsistencyPath::encode(&path)).unwrap(), path);
        let short = cbor::to_vec(&vec![serde_bytes::ByteBuf::from(vec![0u8; 31])]);
        assert_eq!(ConsistencyPath::decode(&short), Err(Error::LogConsistencyInvalid));
    }
}
