//! spec/hsm.md §2, §3, §4.3 and §6: the structures of the HSM boundary.

use crate::cbor;
use crate::crypto::{PublicKey, Signer, sha256};
use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};

/// The `purpose` of an [`Ack`] (spec/hsm.md §4.3).
pub const ACK_PURPOSE: &str = "bkv hsm ack";
/// The `purpose` of an [`HsmSnapshot`] (spec/hsm.md §6).
pub const SNAPSHOT_PURPOSE: &str = "bkv hsm snapshot";

/// spec/hsm.md §2 `Mark`: a position of an HSM's chain and its chain hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Mark {
    /// The position (number of entries applied).
    pub position: u64,
    /// The chain hash at that position.
    #[serde(with = "serde_bytes")]
    pub chain: [u8; 32],
}

/// spec/hsm.md §2 `HsmState`: what an HSM keeps across restarts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HsmState {
    /// Version, 1.
    pub v: u64,
    /// Fleet id.
    pub fleet: String,
    /// Epoch.
    pub epoch: u64,
    /// Node position in the FleetKeySet.
    pub node: u64,
    /// The highest position acknowledged.
    pub mark: Mark,
    /// The successor bundle's digest once the fleet is retired (spec/hsm.md §8).
    #[serde(default, with = "serde_bytes", skip_serializing_if = "Option::is_none")]
    pub retired: Option<[u8; 32]>,
    /// Whether the records were dropped (spec/hsm.md §8).
    pub destroyed: bool,
}

impl HsmState {
    /// The state of a fresh HSM of node `node` of fleet `fleet`, epoch `epoch` (§2 rule 2).
    pub fn fresh(fleet: &str, epoch: u64, node: u64) -> Self {
        HsmState {
            v: 1,
            fleet: fleet.to_owned(),
            epoch,
            node,
            mark: Mark { position: 0, chain: genesis(fleet, epoch) },
            retired: None,
            destroyed: false,
        }
    }

    /// Decode a state (deterministic CBOR, `v` 1); `hsm.state.invalid` otherwise.
    pub fn decode(bytes: &[u8]) -> Result<Self> {
        let s: HsmState = cbor::from_slice(bytes).map_err(|_| Error::HsmStateInvalid)?;
        if s.v != 1 {
            return Err(Error::HsmStateInvalid);
        }
        Ok(s)
    }
}

/// spec/hsm.md §3.1 `LogEntry`: what the Raft log carries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogEntry {
    /// Version, 1.
    pub v: u64,
    /// The node whose HSM answers for this entry.
    pub node: u64,
    /// The `VaultCommand` (spec/vault.md §8.1).
    #[serde(with = "serde_bytes")]
    pub command: Vec<u8>,
}

impl LogEntry {
    /// The deterministic CBOR of an entry for `node` carrying `command`.
    pub fn encode(node: u64, command: &[u8]) -> Vec<u8> {
        cbor::to_vec(&LogEntry { v: 1, node, command: command.to_vec() })
    }

    /// Decode an entry of version 1 (`cbor.schema` for another version).
    pub fn decode(bytes: &[u8]) -> Result<Self> {
        let e: LogEntry = cbor::from_slice(bytes)?;
        if e.v != 1 {
            return Err(Error::CborSchema);
        }
        Ok(e)
    }
}

/// spec/hsm.md §3.1 `AppliedOutput`: what applying an entry returns to the host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AppliedOutput {
    /// The entry's position.
    pub position: u64,
    /// The `VaultOutput` (spec/vault.md §8.1).
    #[serde(with = "serde_bytes")]
    pub output: Vec<u8>,
}

impl AppliedOutput {
    /// Decode the bytes a log returned for a proposed entry.
    pub fn decode(bytes: &[u8]) -> Result<Self> {
        cbor::from_slice(bytes)
    }
}

/// spec/hsm.md §3.2: `h_0`, bound to the fleet and epoch.
pub fn genesis(fleet: &str, epoch: u64) -> [u8; 32] {
    let mut m = b"bkv hsm chain v1".to_vec();
    m.extend_from_slice(&(fleet.len() as u32).to_be_bytes());
    m.extend_from_slice(fleet.as_bytes());
    m.extend_from_slice(&epoch.to_be_bytes());
    sha256(&m)
}

/// spec/hsm.md §3.2: `h_k = SHA-256(h_(k-1) || u64(k) || SHA-256(entry_k))`.
pub fn chain_next(prev: &[u8; 32], position: u64, entry: &[u8]) -> [u8; 32] {
    let mut m = Vec::with_capacity(72);
    m.extend_from_slice(prev);
    m.extend_from_slice(&position.to_be_bytes());
    m.extend_from_slice(&sha256(entry));
    sha256(&m)
}

/// spec/hsm.md §4.3 `Ack`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Ack {
    /// Version, 1.
    pub v: u64,
    /// [`ACK_PURPOSE`].
    pub purpose: String,
    /// Fleet id.
    pub fleet: String,
    /// Epoch.
    pub epoch: u64,
    /// The acknowledging node.
    pub node: u64,
    /// The acknowledged position.
    pub position: u64,
    /// Its chain hash.
    #[serde(with = "serde_bytes")]
    pub chain: [u8; 32],
}

/// spec/hsm.md §4.3 `SignedAck` and §6 `SignedSnapshot`: `msg` (deterministic CBOR of an
/// [`Ack`] or an [`HsmSnapshot`]) and its Ed25519 signature by a node's signing key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Signed {
    /// Deterministic CBOR of the signed structure.
    #[serde(with = "serde_bytes")]
    pub msg: Vec<u8>,
    /// Ed25519 signature of `msg` by the node's signing key.
    #[serde(with = "serde_bytes")]
    pub sig: Vec<u8>,
}

/// spec/hsm.md §4.3.
pub type SignedAck = Signed;
/// spec/hsm.md §6.
pub type SignedSnapshot = Signed;

impl Signed {
    /// Sign `value` (HSM-internal: only [`super::Boundary`] calls this with its key).
    pub(crate) fn sign<T: Serialize>(value: &T, signer: &dyn Signer) -> Vec<u8> {
        Self::sign_bytes(cbor::to_vec(value), signer)
    }

    /// Sign `msg`, the deterministic CBOR of a structure. `Signed`'s fields are declared in
    /// their deterministic key order, so it is written without copying `msg` again.
    pub(crate) fn sign_bytes(msg: Vec<u8>, signer: &dyn Signer) -> Vec<u8> {
        let sig = signer.sign(&msg);
        cbor::to_vec_in_declared_order(&Signed { msg, sig })
    }

    /// Decode `bytes` and its `msg` as a `T`; `key(&T)` is the key that must have signed
    /// it (`None`: the structure is refused). The structure, when the signature verifies
    /// over the received `msg` bytes.
    fn open<T: serde::de::DeserializeOwned>(
        bytes: &[u8],
        key: impl Fn(&T) -> Option<PublicKey>,
    ) -> Option<T> {
        let signed: Signed = cbor::from_slice(bytes).ok()?;
        let value: T = cbor::from_slice(&signed.msg).ok()?;
        key(&value)?.verify(&signed.msg, &signed.sig).then_some(value)
    }
}

impl Ack {
    /// spec/hsm.md §4.3: decode and verify a `SignedAck` of fleet `fleet`, epoch `epoch`,
    /// with `key_of(node)` the node's signing key. `None` when anything fails.
    pub fn open(
        bytes: &[u8],
        fleet: &str,
        epoch: u64,
        key_of: impl Fn(u64) -> Option<PublicKey>,
    ) -> Option<Ack> {
        Signed::open(bytes, |a: &Ack| {
            (a.v == 1 && a.purpose == ACK_PURPOSE && a.fleet == fleet && a.epoch == epoch)
                .then(|| key_of(a.node))
                .flatten()
        })
    }
}

/// spec/hsm.md §6 `HsmSnapshot`. Its fields are declared in the deterministic order of
/// their keys (spec/conventions.md §3.2), so its bytes are written straight from it
/// ([`HsmSnapshot::to_bytes`]): a snapshot is as large as the vault.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HsmSnapshot {
    /// Version, 1.
    pub v: u64,
    /// The HSM that made it.
    pub node: u64,
    /// Its chain hash.
    #[serde(with = "serde_bytes")]
    pub chain: [u8; 32],
    /// Epoch.
    pub epoch: u64,
    /// Fleet id.
    pub fleet: String,
    /// The `VaultSnapshot` (spec/vault.md §8.4).
    #[serde(with = "serde_bytes")]
    pub state: Vec<u8>,
    /// [`SNAPSHOT_PURPOSE`].
    pub purpose: String,
    /// Its position.
    pub position: u64,
}

impl HsmSnapshot {
    /// Its deterministic CBOR (spec/conventions.md §3.2), without a copy of `state`.
    pub fn to_bytes(&self) -> Vec<u8> {
        cbor::to_vec_in_declared_order(self)
    }

    /// spec/hsm.md §6 rule 2: decode and verify a `SignedSnapshot`; `hsm.snapshot.invalid`
    /// when anything fails.
    pub fn open(
        bytes: &[u8],
        fleet: &str,
        epoch: u64,
        key_of: impl Fn(u64) -> Option<PublicKey>,
    ) -> Result<Self> {
        Signed::open(bytes, |s: &HsmSnapshot| {
            (s.v == 1 && s.purpose == SNAPSHOT_PURPOSE && s.fleet == fleet && s.epoch == epoch)
                .then(|| key_of(s.node))
                .flatten()
        })
        .ok_or(Error::HsmSnapshotInvalid)
    }
}
