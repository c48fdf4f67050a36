//! Trust anchors and the client's rollback state. spec/validation-bundle.md §4.4 and §5.

use crate::crypto::{Digest32, PublicKey, ct_eq};
use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};

/// A pinned signing key with its validity window. spec/validation-bundle.md §4.4.
///
/// ```cddl
/// Anchor = { "name": tstr, "key": PublicKey, "not_before": uint, "not_after": uint }
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Anchor {
    /// The party's name; for the third party it is the CWT `iss` of its bundles.
    pub name: String,
    /// The public key.
    pub key: PublicKey,
    /// First second at which signatures by this key are accepted.
    pub not_before: u64,
    /// Last second at which signatures by this key are accepted.
    pub not_after: u64,
}

impl Anchor {
    /// Whether `now` is inside the anchor's window.
    pub fn valid_at(&self, now: u64) -> bool {
        self.not_before <= now && now <= self.not_after
    }
}

/// What a client ships with. spec/validation-bundle.md §4.4.
///
/// ```cddl
/// TrustAnchors = {
///   "v": 1,
///   "fleet_id": tstr,
///   "third_party": [+ Anchor],
///   "operator": [+ Anchor],
///   "pinned": [* bstr .size 32],
/// }
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrustAnchors {
    /// Protocol version, 1.
    pub v: u32,
    /// The fleet this client talks to.
    pub fleet_id: String,
    /// Third-party signer keys (overlapping windows during a key rotation).
    pub third_party: Vec<Anchor>,
    /// Operator countersigning keys.
    pub operator: Vec<Anchor>,
    /// Pinned-mode FleetKeySet digests (spec/validation-bundle.md §6).
    pub pinned: Vec<serde_bytes::ByteBuf>,
}

impl TrustAnchors {
    /// Encode as deterministic CBOR.
    pub fn to_bytes(&self) -> Vec<u8> {
        crate::cbor::to_vec(self)
    }

    /// Strict decode.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        let a: TrustAnchors = crate::cbor::from_slice(bytes)?;
        if a.v != 1 || a.pinned.iter().any(|d| d.len() != 32) {
            return Err(Error::CborSchema);
        }
        for anchor in a.third_party.iter().chain(&a.operator) {
            anchor.key.validate()?;
        }
        Ok(a)
    }

    /// The third-party anchor whose key has this kid.
    pub fn third_party_by_kid(&self, kid: &[u8]) -> Option<&Anchor> {
        self.third_party.iter().find(|a| ct_eq(&a.key.kid(), kid))
    }

    /// The operator anchor whose key has this kid.
    pub fn operator_by_kid(&self, kid: &[u8]) -> Option<&Anchor> {
        self.operator.iter().find(|a| ct_eq(&a.key.kid(), kid))
    }
}

/// The highest bundle a client has accepted for its fleet: its rollback state.
/// spec/validation-bundle.md §5 steps 10 and 11. Clients persist it; its encoding is
/// local to the client, not part of the protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ClientState {
    /// `(epoch, SHA-256 of the bundle bytes)` of the highest accepted bundle.
    pub highest: Option<(u64, Digest32)>,
}
