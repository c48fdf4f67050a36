//! Fleet rotation: the successor check, the record export and its sealing.
//!
//! spec/rotation.md. The old fleet checks its successor ([`check_successor`], §2),
//! commits `retire` (whose output is the records, [`crate::vault::VaultCommand::Retire`]),
//! seals the [`RecordExport`] to a successor node ([`seal_export`], §4); that node opens it
//! ([`open_export`]) and commits `import` ([`crate::vault::VaultCommand::Import`], §5).

use crate::cbor;
use crate::crypto::{ct_eq, sha256};
use crate::error::{Error, Result};
use crate::session::{SessionSecretKey, SessionTarget, hpke_open, hpke_seal};
use crate::validation_bundle::{FleetKeySet, KeyRole, VerifiedFleet};
use rand_core::{CryptoRng, RngCore};
use serde::{Deserialize, Serialize};

#[cfg(test)]
mod tests;

/// spec/rotation.md §4: the first element of the HPKE `info` array.
pub const INFO_LABEL: &str = "bkv rotation";

pub use crate::vault::export::{ExportedRecord, ExportedState, check_records};

/// spec/rotation.md §3, `RecordExport`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecordExport {
    /// Version, 1.
    pub v: u64,
    /// The fleet.
    pub fleet_id: String,
    /// The retired epoch.
    pub from_epoch: u64,
    /// The successor's epoch.
    pub to_epoch: u64,
    /// SHA-256 of the successor's bundle.
    #[serde(with = "serde_bytes")]
    pub successor: Vec<u8>,
    /// The guess limit of both fleets.
    pub guess_limit: u32,
    /// Every record, sorted by id.
    pub records: Vec<ExportedRecord>,
}

/// spec/rotation.md §4, `SealedExport`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SealedExport {
    /// Version, 1.
    pub v: u64,
    /// The fleet.
    pub fleet_id: String,
    /// The retired epoch.
    pub from_epoch: u64,
    /// The successor's epoch.
    pub to_epoch: u64,
    /// The successor node sealed to.
    pub node_id: String,
    /// HPKE encapsulated key.
    #[serde(with = "serde_bytes")]
    pub enc: Vec<u8>,
    /// HPKE ciphertext of the `RecordExport`.
    #[serde(with = "serde_bytes")]
    pub ct: Vec<u8>,
}

/// spec/rotation.md §4: `info = CBOR ["bkv rotation", 1, fleet_id, from_epoch, to_epoch, node_id]`.
pub fn info(fleet_id: &str, from_epoch: u64, to_epoch: u64, node_id: &str) -> Vec<u8> {
    info_with(INFO_LABEL, fleet_id, from_epoch, to_epoch, node_id)
}

fn info_with(label: &str, fleet_id: &str, from_epoch: u64, to_epoch: u64, node_id: &str) -> Vec<u8> {
    cbor::to_vec(&(label, 1u64, fleet_id, from_epoch, to_epoch, node_id))
}

/// spec/rotation.md §2 RS1–RS3: may the fleet `old` (whose bundle bytes are `old_bundle`)
/// export its records to `successor`? `successor` is proof that the old fleet verified the
/// new bundle as a client would (spec/validation-bundle.md §5.1).
pub fn check_successor(old: &FleetKeySet, old_bundle: &[u8], successor: &VerifiedFleet) -> Result<()> {
    let new = successor.keyset();
    let chained = new.prev.as_ref().is_some_and(|p| ct_eq(p, &sha256(old_bundle)));
    if new.fleet_id != old.fleet_id || new.epoch != old.epoch + 1 || !chained {
        return Err(Error::RotationSuccessorInvalid);
    }
    let opaque = |ks: &FleetKeySet| -> Vec<Option<Vec<u8>>> {
        ks.nodes.iter().map(|n| n.key(KeyRole::Opaque).map(|k| k.key.clone())).collect()
    };
    let old_key = opaque(old).first().cloned().flatten();
    if old_key.is_none() || opaque(new).iter().any(|k| *k != old_key) {
        return Err(Error::RotationOpaqueMismatch);
    }
    if new.guess_limit != old.guess_limit {
        return Err(Error::RotationPolicyMismatch);
    }
    Ok(())
}

/// spec/rotation.md §4: seal `export` to the successor node `target` (its `session` key
/// from the verified successor FleetKeySet).
pub fn seal_export<R: RngCore + CryptoRng>(
    rng: &mut R,
    export: &RecordExport,
    target: &SessionTarget,
) -> Result<Vec<u8>> {
    if target.fleet_id != export.fleet_id || target.epoch != export.to_epoch {
        return Err(Error::RotationExportMismatch);
    }
    if export.from_epoch.checked_add(1) != Some(export.to_epoch) {
        return Err(Error::RotationExportMismatch);
    }
    seal_envelope(rng, INFO_LABEL, target, &zeroize::Zeroizing::new(cbor::to_vec(export)))
}

/// spec/rotation.md §4 (and §4.1 with its label): `plaintext` HPKE-sealed to `target`, a
/// node of epoch `target.epoch`, from epoch `target.epoch - 1`, in a `SealedExport`.
fn seal_envelope<R: RngCore + CryptoRng>(
    rng: &mut R,
    label: &str,
    target: &SessionTarget,
    plaintext: &[u8],
) -> Result<Vec<u8>> {
    let from_epoch = target.epoch.checked_sub(1).ok_or(Error::RotationExportMismatch)?;
    let info = info_with(label, &target.fleet_id, from_epoch, target.epoch, &target.node_id);
    let (enc, ct) = hpke_seal(rng, &target.session_key, &info, plaintext)?;
    Ok(cbor::to_vec(&SealedExport {
        v: 1,
        fleet_id: target.fleet_id.clone(),
        from_epoch,
        to_epoch: target.epoch,
        node_id: target.node_id.clone(),
        enc,
        ct,
    }))
}

/// spec/rotation.md §4 steps 1 to 3 (§4.1 step 1 with its label): decode the envelope,
/// compare its public fields with the receiving node's, and open it. The plaintext is
/// zeroized when dropped.
fn open_envelope(
    sealed: &[u8],
    key: &SessionSecretKey,
    label: &str,
    (fleet_id, epoch, node_id): (&str, u64, &str),
) -> Result<(SealedExport, zeroize::Zeroizing<Vec<u8>>)> {
    let s: SealedExport = cbor::from_slice(sealed)?;
    // spec/conventions.md §6: a version this receiver does not implement.
    if s.v != 1 {
        return Err(Error::CborSchema);
    }
    if s.fleet_id != fleet_id
        || s.to_epoch != epoch
        || s.node_id != node_id
        || s.from_epoch.checked_add(1) != Some(s.to_epoch)
    {
        return Err(Error::RotationExportMismatch);
    }
    let info = info_with(label, &s.fleet_id, s.from_epoch, s.to_epoch, &s.node_id);
    let plaintext = hpke_open(key, &s.enc, &info, &s.ct).ok_or(Error::RotationOpenFailed)?;
    Ok((s, plaintext))
}

/// What the importing node knows about itself (spec/rotation.md §4).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Importer<'a> {
    /// Its fleet id.
    pub fleet_id: &'a str,
    /// Its epoch.
    pub epoch: u64,
    /// Its node id.
    pub node_id: &'a str,
    /// SHA-256 of its fleet's bundle.
    pub bundle_digest: [u8; 32],
    /// Its fleet's guess limit.
    pub guess_limit: u32,
}

/// spec/rotation.md §4: open a sealed export at the importing node, in the spec's order.
pub fn open_export(sealed: &[u8], key: &SessionSecretKey, me: &Importer<'_>) -> Result<RecordExport> {
    let (s, plaintext) = open_envelope(sealed, key, INFO_LABEL, (me.fleet_id, me.epoch, me.node_id))?;
    let export: RecordExport = cbor::from_slice(&plaintext)?;
    if export.v != 1 {
        return Err(Error::CborSchema);
    }
    if export.fleet_id != s.fleet_id
        || export.from_epoch != s.from_epoch
        || export.to_epoch != s.to_epoch
        || !ct_eq(&export.successor, &me.bundle_digest)
        || export.guess_limit != me.guess_limit
    {
        return Err(Error::RotationExportMismatch);
    }
    check_records(&export.records, me.guess_limit)?;
    Ok(export)
}

// ---- spec/rotation.md §4.1: the OPAQUE setup transfer -------------------------------------

/// spec/rotation.md §4.1: the first element of the HPKE `info` array of a setup transfer.
pub const SETUP_INFO_LABEL: &str = "bkv rotation setup";

/// spec/rotation.md §4.1, `SetupTransfer` (the plaintext; zeroized on drop).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SetupTransfer {
    /// Version, 1.
    pub v: u64,
    /// SHA-256 of the successor's bundle.
    #[serde(with = "serde_bytes")]
    pub successor: Vec<u8>,
    /// The fleet-wide OPAQUE ServerSetup (spec/vault.md §2.3).
    #[serde(with = "serde_bytes")]
    pub setup: Vec<u8>,
}

impl Drop for SetupTransfer {
    fn drop(&mut self) {
        use zeroize::Zeroize;
        self.setup.zeroize();
    }
}

/// spec/rotation.md §4.1: `info = CBOR ["bkv rotation setup", 1, fleet_id, from_epoch, to_epoch, node_id]`.
pub fn setup_info(fleet_id: &str, from_epoch: u64, to_epoch: u64, node_id: &str) -> Vec<u8> {
    info_with(SETUP_INFO_LABEL, fleet_id, from_epoch, to_epoch, node_id)
}

/// A successor the old fleet has checked (spec/rotation.md §2): the proof that
/// [`seal_setup`] requires, so the rules run once however many nodes it seals to.
pub struct Successor {
    verified: VerifiedFleet,
    bundle_digest: [u8; 32],
}

impl Successor {
    /// spec/rotation.md §2 RS1–RS3 on `bundle`, which the old fleet `old` (bundle bytes
    /// `old_bundle`) has verified as `verified` (spec/validation-bundle.md §5.1 steps 1 to
    /// 9; step 12, log inclusion, is [`verify_successor`]'s or the caller's).
    pub fn check(
        old: &FleetKeySet,
        old_bundle: &[u8],
        verified: VerifiedFleet,
        bundle: &[u8],
    ) -> Result<Self> {
        check_successor(old, old_bundle, &verified)?;
        Ok(Successor { verified, bundle_digest: sha256(bundle) })
    }

    /// The successor's verified FleetKeySet.
    pub fn keyset(&self) -> &FleetKeySet {
        self.verified.keyset()
    }

    /// SHA-256 of the successor's bundle.
    pub fn bundle_digest(&self) -> [u8; 32] {
        self.bundle_digest
    }
}

/// spec/rotation.md §2, everything but the Audit procedure: the old fleet `old` (bundle
/// bytes `old_bundle`) verifies `successor` as a client holding its own bundle would
/// (spec/validation-bundle.md §5.1 steps 1 to 11 against `anchors` at `now`, step 12
/// against `log`), then RS1–RS3.
pub fn verify_successor(
    old: &FleetKeySet,
    old_bundle: &[u8],
    successor: &crate::audit_log::LoggedBundle,
    anchors: &crate::validation_bundle::TrustAnchors,
    log: &crate::audit_log::LogAnchors,
    now: u64,
) -> Result<Successor> {
    let held = crate::validation_bundle::ClientState { highest: Some((old.epoch, sha256(old_bundle))) };
    let verified = crate::validation_bundle::verify_bundle(&successor.bundle, anchors, &held, now)?;
    let ks = verified.keyset();
    crate::audit_log::verify_logged_bundle(
        &successor.bundle,
        &ks.fleet_id,
        ks.epoch,
        &successor.proof,
        log,
        &crate::audit_log::LogState::default(),
        None,
    )?;
    Successor::check(old, old_bundle, verified, &successor.bundle)
}

/// spec/rotation.md §4.1: seal the OPAQUE `setup` to node `node_id` of `successor`. The
/// target must be a node of the successor's verified FleetKeySet: the setup goes only to
/// HSMs that bundle attests (`rotation.export.mismatch` otherwise). The output is a
/// `SealedExport`-shaped envelope (`SealedSetup`).
pub fn seal_setup<R: RngCore + CryptoRng>(
    rng: &mut R,
    setup: &crate::vault::VaultServerSetup,
    successor: &Successor,
    node_id: &str,
) -> Result<Vec<u8>> {
    let target = successor.keyset().session_target(node_id).ok_or(Error::RotationExportMismatch)?;
    let transfer =
        SetupTransfer { v: 1, successor: successor.bundle_digest.to_vec(), setup: setup.to_bytes().to_vec() };
    seal_setup_transfer(rng, &transfer, &target)
}

/// spec/rotation.md §4.1, the sealing alone: `transfer` sealed to `target` (a node of
/// epoch `target.epoch`, from epoch `target.epoch - 1`), with no successor check. Only
/// [`seal_setup`] decides whom to seal to; this is its last step, public for vectors.
pub fn seal_setup_transfer<R: RngCore + CryptoRng>(
    rng: &mut R,
    transfer: &SetupTransfer,
    target: &SessionTarget,
) -> Result<Vec<u8>> {
    seal_envelope(rng, SETUP_INFO_LABEL, target, &zeroize::Zeroizing::new(cbor::to_vec(transfer)))
}

/// What a successor HSM awaiting its setup knows about itself (spec/rotation.md §4.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetupReceiver<'a> {
    /// Its fleet id.
    pub fleet_id: &'a str,
    /// Its epoch.
    pub epoch: u64,
    /// Its node id.
    pub node_id: &'a str,
    /// SHA-256 of its fleet's bundle.
    pub bundle_digest: [u8; 32],
    /// The OPAQUE public key it was generated to await (its node entry's `opaque` key).
    pub opaque: [u8; 32],
}

/// spec/rotation.md §4.1: open a sealed setup at the receiving HSM, in the spec's order.
pub fn open_setup(
    sealed: &[u8],
    key: &SessionSecretKey,
    me: &SetupReceiver<'_>,
) -> Result<crate::vault::VaultServerSetup> {
    let (_, plaintext) = open_envelope(sealed, key, SETUP_INFO_LABEL, (me.fleet_id, me.epoch, me.node_id))?;
    let t: SetupTransfer = cbor::from_slice(&plaintext)?;
    if t.v != 1 {
        return Err(Error::CborSchema);
    }
    if !ct_eq(&t.successor, &me.bundle_digest) {
        return Err(Error::RotationExportMismatch);
    }
    let setup = crate::vault::VaultServerSetup::from_bytes(&t.setup)?;
    if !ct_eq(&setup.public_key(), &me.opaque) {
        return Err(Error::RotationOpaqueMismatch);
    }
    Ok(setup)
}
