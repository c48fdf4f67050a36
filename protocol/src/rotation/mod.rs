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
    cbor::to_vec(&(INFO_LABEL, 1u64, fleet_id, from_epoch, to_epoch, node_id))
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
    let plaintext = zeroize::Zeroizing::new(cbor::to_vec(export));
    let info = info(&export.fleet_id, export.from_epoch, export.to_epoch, &target.node_id);
    let (enc, ct) = hpke_seal(rng, &target.session_key, &info, &plaintext)?;
    Ok(cbor::to_vec(&SealedExport {
        v: 1,
        fleet_id: export.fleet_id.clone(),
        from_epoch: export.from_epoch,
        to_epoch: export.to_epoch,
        node_id: target.node_id.clone(),
        enc,
        ct,
    }))
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
    let s: SealedExport = cbor::from_slice(sealed)?;
    // spec/conventions.md §6: a version this receiver does not implement.
    if s.v != 1 {
        return Err(Error::CborSchema);
    }
    if s.fleet_id != me.fleet_id
        || s.to_epoch != me.epoch
        || s.node_id != me.node_id
        || s.from_epoch.checked_add(1) != Some(s.to_epoch)
    {
        return Err(Error::RotationExportMismatch);
    }
    let info = info(&s.fleet_id, s.from_epoch, s.to_epoch, &s.node_id);
    let plaintext = hpke_open(key, &s.enc, &info, &s.ct).ok_or(Error::RotationOpenFailed)?;
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
