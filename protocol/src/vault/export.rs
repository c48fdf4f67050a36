//! spec/rotation.md §3: the records a fleet exports to its successor, as the vault's state
//! machine produces and imports them. Here, next to the state machine, so that the vault
//! does not depend on the rotation protocol that carries them (`crate::rotation`).

use super::{STORED_REGISTRATION_LEN, WRAPPED_KEY_LEN, check_record_id};
use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use zeroize::{Zeroize, ZeroizeOnDrop};

/// spec/rotation.md §3, the `state` of an [`ExportedRecord`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExportedState {
    /// A registration, wrapped key and counter.
    Registered,
    /// Only a counter (guesses against an id that holds no registration).
    Unregistered,
    /// Destroyed after its last guess.
    Locked,
}

/// spec/rotation.md §3, `ExportedRecord`. Its secrets are zeroized on drop.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, Zeroize, ZeroizeOnDrop)]
#[serde(deny_unknown_fields)]
pub struct ExportedRecord {
    /// Record id.
    #[serde(with = "serde_bytes")]
    pub id: Vec<u8>,
    /// Its state.
    #[zeroize(skip)]
    pub state: ExportedState,
    /// Stored registration (registered only).
    #[serde(default, with = "serde_bytes", skip_serializing_if = "Option::is_none")]
    pub registration: Option<Vec<u8>>,
    /// Wrapped backup key (registered only).
    #[serde(default, with = "serde_bytes", skip_serializing_if = "Option::is_none")]
    pub wrapped_key: Option<Vec<u8>>,
    /// Guesses left: 1..=guess_limit, 0 when locked.
    pub remaining: u32,
}

impl core::fmt::Debug for ExportedRecord {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("ExportedRecord")
            .field("id", &hex::encode(&self.id))
            .field("state", &self.state)
            .field("remaining", &self.remaining)
            .finish_non_exhaustive()
    }
}

impl ExportedRecord {
    /// spec/rotation.md §3: the shape rules of one record under `guess_limit`.
    pub fn check(&self, guess_limit: u32) -> Result<()> {
        let bad = Error::RotationExportMismatch;
        check_record_id(&self.id).map_err(|_| bad)?;
        let ok = match self.state {
            ExportedState::Registered => {
                self.registration.as_ref().is_some_and(|r| r.len() == STORED_REGISTRATION_LEN)
                    && self.wrapped_key.as_ref().is_some_and(|w| w.len() == WRAPPED_KEY_LEN)
                    && (1..=guess_limit).contains(&self.remaining)
            }
            ExportedState::Unregistered => {
                self.registration.is_none()
                    && self.wrapped_key.is_none()
                    && (1..=guess_limit).contains(&self.remaining)
            }
            ExportedState::Locked => {
                self.registration.is_none() && self.wrapped_key.is_none() && self.remaining == 0
            }
        };
        if ok { Ok(()) } else { Err(bad) }
    }
}

/// Check a list of records: each well formed, ids strictly increasing (sorted, unique).
pub fn check_records(records: &[ExportedRecord], guess_limit: u32) -> Result<()> {
    for (i, r) in records.iter().enumerate() {
        r.check(guess_limit)?;
        if i > 0 && records[i - 1].id >= r.id {
            return Err(Error::RotationExportMismatch);
        }
    }
    Ok(())
}
