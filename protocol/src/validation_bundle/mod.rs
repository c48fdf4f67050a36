//! Validation bundles: how a client learns that a fleet's public keys are genuine.
//!
//! spec/validation-bundle.md. A bundle is a tagged COSE_Sign1 over a [`FleetKeySet`],
//! signed by an independent third party and countersigned by the operator with one RFC
//! 9338 V2 countersignature; a client accepts it only if both keys are pinned anchors
//! ([`TrustAnchors`]), so neither organisation alone can introduce a fleet. Pinned mode
//! (§6) accepts exactly the FleetKeySet whose digest ships in the app.

pub mod anchors;
pub mod countersignature;
pub mod envelope;
pub mod keyset;
pub mod verify;

pub use anchors::{Anchor, ClientState, TrustAnchors};
pub use envelope::{
    Claims, Parsed, attach_countersignature, countersign, countersignature, encode_sign1, sig_structure, sign,
};
pub use keyset::{FleetKeySet, KeyRole, Node, NodeKey};
pub use verify::{TrustMode, VerifiedFleet, verify_bundle, verify_bundle_update, verify_pinned};
