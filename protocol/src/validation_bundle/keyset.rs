//! The FleetKeySet payload. spec/validation-bundle.md §3.

use crate::crypto::{Algorithm, Digest32, PublicKey};
use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

/// spec/validation-bundle.md §3.1: the HPKE KEM of node session keys, DHKEM(X25519, HKDF-SHA256).
pub const SESSION_SUITE_X25519: i64 = 0x0020;
/// spec/validation-bundle.md §3.1: the bkv OPAQUE suite 1 (spec/vault.md).
pub const OPAQUE_SUITE_1: i64 = 1;
/// spec/validation-bundle.md §3.2: the largest guess limit a FleetKeySet may set.
pub const MAX_GUESS_LIMIT: u32 = 100;
/// spec/validation-bundle.md §3.2: the default guess limit.
pub const DEFAULT_GUESS_LIMIT: u32 = 10;

/// The role of a node key. spec/validation-bundle.md §3.1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KeyRole {
    /// HPKE key that client requests are sealed to (spec/session.md).
    Session,
    /// The fleet's OPAQUE server public key (spec/vault.md); the same on every node.
    Opaque,
    /// Ed25519 node signing key (node-to-node authentication, attestations).
    Signing,
}

/// One key of a node. spec/validation-bundle.md §3.1.
///
/// ```cddl
/// NodeKey = { "role": "session" / "opaque" / "signing", "suite": int, "key": bstr }
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeKey {
    /// What the key is for.
    pub role: KeyRole,
    /// Algorithm of the key, in the registry of its role.
    pub suite: i64,
    /// Raw public key.
    #[serde(with = "serde_bytes")]
    pub key: Vec<u8>,
}

/// One HSM node. spec/validation-bundle.md §3.1.
///
/// ```cddl
/// Node = { "id": tstr, "datacenter": tstr, "keys": [+ NodeKey] }
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Node {
    /// Node identifier, unique in the fleet.
    pub id: String,
    /// Datacenter label.
    pub datacenter: String,
    /// Exactly one key per role.
    pub keys: Vec<NodeKey>,
}

impl Node {
    /// The node's key of `role`.
    pub fn key(&self, role: KeyRole) -> Option<&NodeKey> {
        self.keys.iter().find(|k| k.role == role)
    }

    /// The node signing key as a COSE public key.
    pub fn signing_key(&self) -> Option<PublicKey> {
        self.key(KeyRole::Signing).map(|k| PublicKey { alg: Algorithm::Ed25519, key: k.key.clone() })
    }
}

/// The payload of a validation bundle. spec/validation-bundle.md §3.1.
///
/// ```cddl
/// FleetKeySet = {
///   "v": 1,
///   "fleet_id": tstr,
///   "epoch": uint,
///   "not_before": uint,
///   "not_after": uint,
///   "guess_limit": uint,
///   "quorum": uint,
///   "nodes": [+ Node],
///   "prev": bstr .size 32 / null,
///   "evidence": bstr .size 32 / null,
/// }
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FleetKeySet {
    /// Protocol version, 1.
    pub v: u32,
    /// The fleet's stable identifier (the same across epochs).
    pub fleet_id: String,
    /// Deployment generation, starting at 1, +1 per new fleet.
    pub epoch: u64,
    /// Start of the validity window (POSIX seconds).
    pub not_before: u64,
    /// End of the validity window (POSIX seconds).
    pub not_after: u64,
    /// Wrong guesses allowed per record.
    pub guess_limit: u32,
    /// Nodes needed to commit: a strict majority of `nodes`.
    pub quorum: u32,
    /// The HSM nodes.
    pub nodes: Vec<Node>,
    /// SHA-256 of the previous epoch's bundle bytes; null exactly at epoch 1.
    #[serde(with = "opt_digest")]
    pub prev: Option<Digest32>,
    /// SHA-256 of the DeploymentEvidence bytes (spec/evidence.md); null until evidence exists.
    #[serde(with = "opt_digest")]
    pub evidence: Option<Digest32>,
}

impl FleetKeySet {
    /// Encode as deterministic CBOR (the bytes the third party signs).
    pub fn to_bytes(&self) -> Vec<u8> {
        crate::cbor::to_vec(self)
    }

    /// spec/validation-bundle.md §3.2: strict decode and structural validation.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        let ks: FleetKeySet = crate::cbor::from_slice(bytes)?;
        if ks.v != 1 {
            return Err(Error::CborSchema);
        }
        ks.validate()?;
        Ok(ks)
    }

    /// spec/validation-bundle.md §3.2: the structural rules, all `bundle.keyset.invalid`.
    pub fn validate(&self) -> Result<()> {
        let bad = Err(Error::BundleKeySetInvalid);
        let n = self.nodes.len();
        if self.fleet_id.is_empty() || self.fleet_id.len() > 255 {
            return bad;
        }
        if self.epoch == 0 || (self.epoch == 1) != self.prev.is_none() {
            return bad;
        }
        if self.not_before > self.not_after {
            return bad;
        }
        if self.guess_limit == 0 || self.guess_limit > MAX_GUESS_LIMIT {
            return bad;
        }
        if n == 0 || self.quorum as usize != n / 2 + 1 {
            return bad;
        }
        let mut ids = BTreeSet::new();
        let mut keys = BTreeSet::new();
        let mut opaque_key: Option<&[u8]> = None;
        for node in &self.nodes {
            if node.id.is_empty() || node.datacenter.is_empty() || !ids.insert(node.id.as_str()) {
                return bad;
            }
            let roles: BTreeSet<KeyRole> = node.keys.iter().map(|k| k.role).collect();
            if node.keys.len() != 3 || roles.len() != 3 {
                return bad;
            }
            for k in &node.keys {
                let ok = match k.role {
                    KeyRole::Session => k.suite == SESSION_SUITE_X25519 && k.key.len() == 32,
                    KeyRole::Opaque => k.suite == OPAQUE_SUITE_1 && k.key.len() == 32,
                    KeyRole::Signing => {
                        k.suite == Algorithm::Ed25519.cose_id()
                            && PublicKey::new(Algorithm::Ed25519, k.key.clone()).is_ok()
                    }
                };
                if !ok {
                    return bad;
                }
                match k.role {
                    // The OPAQUE server key is fleet-wide: equal on every node.
                    KeyRole::Opaque => match opaque_key {
                        None => opaque_key = Some(&k.key),
                        Some(o) if o == k.key.as_slice() => {}
                        Some(_) => return bad,
                    },
                    // Session and signing keys are per node: never reused.
                    _ => {
                        if !keys.insert(k.key.as_slice()) {
                            return bad;
                        }
                    }
                }
            }
        }
        Ok(())
    }

    /// The node with this id.
    pub fn node(&self, id: &str) -> Option<&Node> {
        self.nodes.iter().find(|n| n.id == id)
    }

    /// Where to seal to node `id`: its `session` key (spec/session.md §3) with this
    /// keyset's fleet and epoch. `None` when the keyset has no such node (or, in a keyset
    /// that did not pass §3.2, no 32-byte session key for it).
    pub fn session_target(&self, id: &str) -> Option<crate::session::SessionTarget> {
        let key = self.node(id)?.key(KeyRole::Session)?.key.clone().try_into().ok()?;
        Some(crate::session::SessionTarget {
            fleet_id: self.fleet_id.clone(),
            epoch: self.epoch,
            node_id: id.to_owned(),
            session_key: key,
        })
    }
}

mod opt_digest {
    use super::Digest32;
    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(v: &Option<Digest32>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(d) => s.serialize_bytes(d),
            None => s.serialize_none(),
        }
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Digest32>, D::Error> {
        let v: Option<serde_bytes::ByteBuf> = Option::deserialize(d)?;
        v.map(|b| {
            <[u8; 32]>::try_from(b.as_slice())
                .map_err(|_| serde::de::Error::custom("digest must be 32 bytes"))
        })
        .transpose()
    }
}
