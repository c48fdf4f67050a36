//! Client verification of a validation bundle (spec/validation-bundle.md §5) and of a
//! pinned FleetKeySet (§6).

use super::anchors::{ClientState, TrustAnchors};
use super::envelope::Parsed;
use super::keyset::FleetKeySet;
use crate::crypto::{Digest32, ct_eq, sha256};
use crate::error::{Error, Result};

/// How the fleet's keys were established.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrustMode {
    /// From a validation bundle signed by the third party and countersigned by the operator.
    OverTheAir,
    /// From a FleetKeySet whose digest ships in the app.
    Pinned,
}

/// A fleet whose keys passed verification. Only the functions of this module make one,
/// so holding a `VerifiedFleet` is proof that §5 or §6 succeeded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedFleet {
    keyset: FleetKeySet,
    keyset_digest: Digest32,
    bundle_digest: Option<Digest32>,
    mode: TrustMode,
    next_state: ClientState,
}

impl VerifiedFleet {
    /// The verified FleetKeySet.
    pub fn keyset(&self) -> &FleetKeySet {
        &self.keyset
    }
    /// SHA-256 of the FleetKeySet bytes.
    pub fn keyset_digest(&self) -> Digest32 {
        self.keyset_digest
    }
    /// SHA-256 of the bundle bytes (over-the-air mode only).
    pub fn bundle_digest(&self) -> Option<Digest32> {
        self.bundle_digest
    }
    /// How the keys were established.
    pub fn mode(&self) -> TrustMode {
        self.mode
    }
    /// The rollback state the client must persist before using the fleet.
    pub fn next_state(&self) -> ClientState {
        self.next_state
    }
}

/// spec/validation-bundle.md §5: verify an over-the-air bundle at time `now` against
/// the client's pinned `anchors` and its persisted rollback `state`. On error nothing
/// changes; on success the caller persists [`VerifiedFleet::next_state`].
pub fn verify_bundle(
    bundle: &[u8],
    anchors: &TrustAnchors,
    state: &ClientState,
    now: u64,
) -> Result<VerifiedFleet> {
    verify_bundle_update(bundle, &[], anchors, state, now)
}

/// spec/validation-bundle.md §5.2: as [`verify_bundle`], for a client that skipped
/// epochs. `intermediates` are the bundles of every epoch between the client's highest
/// accepted epoch and `bundle`, in order; each is verified with every step except the
/// validity window (step 9), and the chain is checked link by link.
pub fn verify_bundle_update(
    bundle: &[u8],
    intermediates: &[&[u8]],
    anchors: &TrustAnchors,
    state: &ClientState,
    now: u64,
) -> Result<VerifiedFleet> {
    let mut st = *state;
    for b in intermediates {
        st = verify_one(b, anchors, &st, now, false)?.next_state;
    }
    verify_one(bundle, anchors, &st, now, true)
}

fn verify_one(
    bundle: &[u8],
    anchors: &TrustAnchors,
    state: &ClientState,
    now: u64,
    check_validity: bool,
) -> Result<VerifiedFleet> {
    // Steps 1-2: strict decoding of the envelope and headers.
    let parsed = Parsed::parse(bundle)?;
    let cs = parsed.countersignature.as_ref().ok_or(Error::BundleCountersignatureMissing)?;

    // Step 3: the signer is a pinned third-party anchor, valid now.
    let signer = anchors.third_party_by_kid(&parsed.kid).ok_or(Error::BundleSignerUnknown)?;
    if signer.key.alg != parsed.alg {
        return Err(Error::BundleAlgorithmMismatch);
    }
    if !signer.valid_at(now) {
        return Err(Error::BundleSignerExpired);
    }

    // Step 4: the countersigner is a pinned operator anchor, valid now.
    let operator = anchors.operator_by_kid(&cs.kid).ok_or(Error::BundleCountersignerUnknown)?;
    if operator.key.alg != cs.alg {
        return Err(Error::BundleAlgorithmMismatch);
    }
    if !operator.valid_at(now) {
        return Err(Error::BundleCountersignerExpired);
    }

    // Step 5: the third-party signature over the Sig_structure of the received bytes.
    if !signer.key.verify(&parsed.to_be_signed(), &parsed.signature) {
        return Err(Error::BundleSignatureInvalid);
    }

    // Step 6: the operator countersignature over the V2 Countersign_structure.
    if !operator.key.verify(&parsed.countersign_to_be_signed(cs), &cs.signature) {
        return Err(Error::BundleCountersignatureInvalid);
    }

    // Step 7: the payload is a valid FleetKeySet for the client's fleet.
    let keyset = FleetKeySet::from_bytes(&parsed.payload)?;
    if keyset.fleet_id != anchors.fleet_id {
        return Err(Error::BundleFleetMismatch);
    }

    // Step 8: the CWT claims name the signer, the fleet, and a signing time inside
    // the signer anchor's window.
    if parsed.claims.iss != signer.name
        || parsed.claims.sub != keyset.fleet_id
        || !signer.valid_at(parsed.claims.iat)
    {
        return Err(Error::BundleClaimsMismatch);
    }

    // Step 9: validity window.
    if check_validity {
        if now < keyset.not_before {
            return Err(Error::BundleNotYetValid);
        }
        if now > keyset.not_after {
            return Err(Error::BundleExpired);
        }
    }

    // Steps 10-11: rollback, equivocation and the hash chain.
    let bundle_digest = sha256(bundle);
    check_epoch(&keyset, &bundle_digest, state)?;

    Ok(VerifiedFleet {
        keyset_digest: sha256(&parsed.payload),
        next_state: ClientState { highest: Some((keyset.epoch, bundle_digest)) },
        keyset,
        bundle_digest: Some(bundle_digest),
        mode: TrustMode::OverTheAir,
    })
}

/// spec/validation-bundle.md §5 steps 10 and 11.
fn check_epoch(keyset: &FleetKeySet, bundle_digest: &Digest32, state: &ClientState) -> Result<()> {
    let Some((held_epoch, held_digest)) = state.highest else {
        return Ok(()); // first contact: nothing to roll back from or chain to
    };
    if keyset.epoch < held_epoch {
        return Err(Error::BundleRollback);
    }
    if keyset.epoch == held_epoch {
        return if ct_eq(bundle_digest, &held_digest) { Ok(()) } else { Err(Error::BundleEquivocation) };
    }
    if keyset.epoch != held_epoch + 1 || !keyset.prev.is_some_and(|p| ct_eq(&p, &held_digest)) {
        return Err(Error::BundleChainBroken);
    }
    Ok(())
}

/// spec/validation-bundle.md §6: verify a pinned FleetKeySet at time `now`.
pub fn verify_pinned(keyset_bytes: &[u8], anchors: &TrustAnchors, now: u64) -> Result<VerifiedFleet> {
    let digest = sha256(keyset_bytes);
    if !anchors.pinned.iter().any(|p| ct_eq(p, &digest)) {
        return Err(Error::PinnedMismatch);
    }
    let keyset = FleetKeySet::from_bytes(keyset_bytes)?;
    if keyset.fleet_id != anchors.fleet_id {
        return Err(Error::BundleFleetMismatch);
    }
    if now < keyset.not_before {
        return Err(Error::BundleNotYetValid);
    }
    if now > keyset.not_after {
        return Err(Error::PinnedFleetRetired);
    }
    Ok(VerifiedFleet {
        keyset,
        keyset_digest: digest,
        bundle_digest: None,
        mode: TrustMode::Pinned,
        next_state: ClientState::default(),
    })
}
