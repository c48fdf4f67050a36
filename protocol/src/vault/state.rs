//! The vault's deterministic replicated state.
//!
//! spec/vault.md §5 and §8: records, their guess counters, and the request ids applied
//! recently, changed only by committed [`VaultCommand`]s. No RNG, no clock, no I/O: every
//! node that applies the same commands in the same order holds the same state and gives
//! the same outputs ([`crate::state_machine::StateMachine`]).

use super::export::{ExportedRecord, ExportedState, check_records};
use super::{RECORD_ID_MAX, STORED_REGISTRATION_LEN, WRAPPED_KEY_LEN, check_record_id};
use crate::cbor;
use crate::error::{Error, Result};
use crate::session::{REQUEST_ID_LEN, REQUEST_WINDOW_SECS};
use crate::state_machine::StateMachine;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use zeroize::Zeroizing;

/// spec/vault.md §8.2: request ids are remembered while their time is within this many
/// seconds of the highest request time applied (twice the session window).
pub const SEEN_RETENTION_SECS: u64 = 2 * REQUEST_WINDOW_SECS;

/// spec/vault.md §8.1, `VaultCommand`: one entry of the replicated log.
///
/// Every command carries the session request id and the client's request time (already
/// checked by the node against its clock, spec/session.md §5 step S6).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum VaultCommand {
    /// Store a new record with a full counter.
    Register {
        /// Session request id (16 bytes).
        #[serde(with = "serde_bytes")]
        request_id: Vec<u8>,
        /// Client request time.
        time: u64,
        /// Record id.
        #[serde(with = "serde_bytes")]
        record: Vec<u8>,
        /// Serialized OPAQUE ServerRegistration.
        #[serde(with = "serde_bytes")]
        registration: Vec<u8>,
        /// Wrapped backup key (48 bytes).
        #[serde(with = "serde_bytes")]
        wrapped_key: Vec<u8>,
    },
    /// Count one guess before KE2 is computed (the decrement).
    AttemptStart {
        /// Session request id.
        #[serde(with = "serde_bytes")]
        request_id: Vec<u8>,
        /// Client request time.
        time: u64,
        /// Record id.
        #[serde(with = "serde_bytes")]
        record: Vec<u8>,
    },
    /// A KE3 verified for the attempt that saw `generation`: reset the counter.
    AttemptSuccess {
        /// Session request id.
        #[serde(with = "serde_bytes")]
        request_id: Vec<u8>,
        /// Client request time.
        time: u64,
        /// Record id.
        #[serde(with = "serde_bytes")]
        record: Vec<u8>,
        /// Generation returned by the AttemptStart.
        generation: u64,
    },
    /// A KE3 verified: replace the registration (code change) and reset the counter.
    Rekey {
        /// Session request id.
        #[serde(with = "serde_bytes")]
        request_id: Vec<u8>,
        /// Client request time.
        time: u64,
        /// Record id.
        #[serde(with = "serde_bytes")]
        record: Vec<u8>,
        /// Generation returned by the AttemptStart.
        generation: u64,
        /// New serialized OPAQUE ServerRegistration.
        #[serde(with = "serde_bytes")]
        registration: Vec<u8>,
        /// New wrapped backup key.
        #[serde(with = "serde_bytes")]
        wrapped_key: Vec<u8>,
    },
    /// A KE3 verified: destroy the record.
    Delete {
        /// Session request id.
        #[serde(with = "serde_bytes")]
        request_id: Vec<u8>,
        /// Client request time.
        time: u64,
        /// Record id.
        #[serde(with = "serde_bytes")]
        record: Vec<u8>,
        /// Generation returned by the AttemptStart.
        generation: u64,
    },
    /// spec/rotation.md §3: retire this fleet for a verified successor; output the export.
    Retire {
        /// Operator request id.
        #[serde(with = "serde_bytes")]
        request_id: Vec<u8>,
        /// Request time.
        time: u64,
        /// SHA-256 of the successor's bundle.
        #[serde(with = "serde_bytes")]
        successor: Vec<u8>,
    },
    /// spec/rotation.md §5: import the predecessor's records (a new fleet's first command).
    Import {
        /// Operator request id.
        #[serde(with = "serde_bytes")]
        request_id: Vec<u8>,
        /// Request time.
        time: u64,
        /// The predecessor's epoch.
        from_epoch: u64,
        /// The exported records, sorted by id.
        records: Vec<ExportedRecord>,
    },
    /// spec/rotation.md §6: drop every record of a retired fleet.
    Destroy {
        /// Operator request id.
        #[serde(with = "serde_bytes")]
        request_id: Vec<u8>,
        /// Request time.
        time: u64,
    },
}

impl VaultCommand {
    fn header(&self) -> (&[u8], u64, Option<&[u8]>) {
        match self {
            VaultCommand::Register { request_id, time, record, .. }
            | VaultCommand::AttemptStart { request_id, time, record }
            | VaultCommand::AttemptSuccess { request_id, time, record, .. }
            | VaultCommand::Rekey { request_id, time, record, .. }
            | VaultCommand::Delete { request_id, time, record, .. } => (request_id, *time, Some(record)),
            VaultCommand::Retire { request_id, time, .. }
            | VaultCommand::Import { request_id, time, .. }
            | VaultCommand::Destroy { request_id, time } => (request_id, *time, None),
        }
    }
}

/// spec/vault.md §8.1, `VaultOutput`: the result of applying one command.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum VaultOutput {
    /// Register: stored with `remaining` guesses.
    Registered {
        /// The guess limit.
        remaining: u32,
    },
    /// AttemptStart: the guess is counted. `registration`/`wrapped_key` are absent for an id
    /// that holds no registration (the node then answers with opaque-ke's fake response).
    Attempt {
        /// Serialized ServerRegistration, if the record is registered.
        #[serde(default, with = "serde_bytes", skip_serializing_if = "Option::is_none")]
        registration: Option<Vec<u8>>,
        /// Wrapped key, if the record is registered.
        #[serde(default, with = "serde_bytes", skip_serializing_if = "Option::is_none")]
        wrapped_key: Option<Vec<u8>>,
        /// Guesses left after this one.
        remaining: u32,
        /// The record's generation, named by the finish command.
        generation: u64,
    },
    /// AttemptSuccess: the counter is reset to `remaining`; 0 when the record no longer
    /// exists at that generation (the last guess destroyed it, or it changed).
    Released {
        /// Guesses the record now allows.
        remaining: u32,
    },
    /// Rekey: new registration stored with `remaining` guesses.
    Rekeyed {
        /// The guess limit.
        remaining: u32,
    },
    /// Delete: the record is gone.
    Deleted,
    /// Retire: the fleet is retired; every record, sorted by id (spec/rotation.md §3).
    Retired {
        /// The records to export.
        records: Vec<ExportedRecord>,
    },
    /// Import: this many records were imported (spec/rotation.md §5).
    Imported {
        /// Number of records.
        records: u64,
    },
    /// Destroy: every record of the retired fleet is gone (spec/rotation.md §6).
    Destroyed,
    /// The command failed with this code and changed nothing.
    Error {
        /// The spec code.
        code: String,
    },
}

impl VaultOutput {
    /// Decode an output; an `Error` output becomes `Err(code)`.
    pub fn decode(bytes: &[u8]) -> Result<VaultOutput> {
        match cbor::from_slice::<VaultOutput>(bytes)? {
            VaultOutput::Error { code } => Err(Error::from_code(&code).unwrap_or(Error::CborSchema)),
            out => Ok(out),
        }
    }
}

/// spec/vault.md §8.3, `VaultQuery`: read-only questions (operator tooling, tests).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum VaultQuery {
    /// The state of one record id.
    Record {
        /// Record id.
        #[serde(with = "serde_bytes")]
        record: Vec<u8>,
    },
}

/// What the store holds for one record id (spec/vault.md §5.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RecordState {
    /// Nothing stored.
    Absent,
    /// Only a counter: guesses were made against an id that holds no registration.
    Unregistered,
    /// A registration, wrapped key and counter.
    Registered,
    /// Destroyed after its last guess.
    Locked,
}

/// Answer to [`VaultQuery::Record`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecordStatus {
    /// The state.
    pub state: RecordState,
    /// Guesses left (0 when absent or locked).
    pub remaining: u32,
}

/// One record id's entry (spec/vault.md §5.1), 24 bytes: an unregistered or locked entry
/// holds only its counter and generation, and a registration's secrets sit behind one box,
/// so a forged guess against an unknown id costs the map's key and these 24 bytes
/// (spec/vault.md §5.3, BENCHMARKS.md "Forged guesses"). Secrets are zeroized when dropped,
/// so replacing or removing an entry destroys them.
#[derive(Clone)]
enum Entry {
    Registered { secrets: Box<Secrets>, remaining: u32, generation: u64 },
    Unregistered { remaining: u32, generation: u64 },
    Locked { generation: u64 },
}

/// A registration's stored OPAQUE record and wrapped key (spec/vault.md §5.1).
#[derive(Clone)]
struct Secrets {
    registration: Zeroizing<[u8; STORED_REGISTRATION_LEN]>,
    wrapped_key: Zeroizing<[u8; WRAPPED_KEY_LEN]>,
}

impl Secrets {
    /// `None` unless both have their lengths (spec/vault.md §4).
    fn new(registration: &[u8], wrapped_key: &[u8]) -> Option<Box<Self>> {
        Some(Box::new(Secrets {
            registration: Zeroizing::new(registration.try_into().ok()?),
            wrapped_key: Zeroizing::new(wrapped_key.try_into().ok()?),
        }))
    }
}

impl Entry {
    fn generation(&self) -> u64 {
        match self {
            Entry::Registered { generation, .. }
            | Entry::Unregistered { generation, .. }
            | Entry::Locked { generation } => *generation,
        }
    }

    /// Guesses left (0 when locked).
    fn remaining(&self) -> u32 {
        match self {
            Entry::Registered { remaining, .. } | Entry::Unregistered { remaining, .. } => *remaining,
            Entry::Locked { .. } => 0,
        }
    }

    fn secrets(&self) -> Option<&Secrets> {
        match self {
            Entry::Registered { secrets, .. } => Some(secrets),
            _ => None,
        }
    }
}

/// Where a fleet's vault is in its life (spec/rotation.md).
#[derive(Debug, Clone, PartialEq, Eq)]
enum Phase {
    /// Serving (a first fleet, or a successor after its import).
    Open,
    /// A successor before its import: only `import` is accepted.
    AwaitingImport,
    /// Retired for the successor bundle with this digest; `destroyed` once records are dropped.
    Retired { successor: [u8; 32], destroyed: bool },
}

/// The vault state machine (spec/vault.md §8).
#[derive(Clone)]
pub struct VaultStateMachine {
    guess_limit: u32,
    phase: Phase,
    max_time: u64,
    records: BTreeMap<Box<[u8]>, Entry>,
    seen: BTreeMap<[u8; REQUEST_ID_LEN], u64>,
    /// The same ids ordered by time, so pruning costs only what it removes.
    seen_by_time: BTreeSet<(u64, [u8; REQUEST_ID_LEN])>,
}

impl core::fmt::Debug for VaultStateMachine {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("VaultStateMachine")
            .field("guess_limit", &self.guess_limit)
            .field("records", &self.records.len())
            .field("seen", &self.seen.len())
            .finish()
    }
}

impl VaultStateMachine {
    /// An empty vault for a fleet whose FleetKeySet says `guess_limit` (1..=100).
    ///
    /// # Panics
    /// If `guess_limit` is outside 1..=100, which a verified FleetKeySet never has
    /// (spec/validation-bundle.md §3.2 rule 4).
    pub fn new(guess_limit: u32) -> Self {
        assert!((1..=100).contains(&guess_limit), "guess_limit is 1..=100 (spec/validation-bundle.md §3.2)");
        Self {
            guess_limit,
            phase: Phase::Open,
            max_time: 0,
            records: BTreeMap::new(),
            seen: BTreeMap::new(),
            seen_by_time: BTreeSet::new(),
        }
    }

    /// The empty vault of a successor fleet: it accepts only the import of its
    /// predecessor's records (spec/rotation.md §5).
    pub fn awaiting_import(guess_limit: u32) -> Self {
        Self { phase: Phase::AwaitingImport, ..Self::new(guess_limit) }
    }

    /// Whether this fleet has been retired (spec/rotation.md §3).
    pub fn is_retired(&self) -> bool {
        matches!(self.phase, Phase::Retired { .. })
    }

    /// The fleet's guess limit.
    pub fn guess_limit(&self) -> u32 {
        self.guess_limit
    }

    /// The state of one record id.
    pub fn status(&self, record: &[u8]) -> RecordStatus {
        let entry = self.records.get(record);
        let state = match entry {
            None => RecordState::Absent,
            Some(Entry::Locked { .. }) => RecordState::Locked,
            Some(Entry::Unregistered { .. }) => RecordState::Unregistered,
            Some(Entry::Registered { .. }) => RecordState::Registered,
        };
        RecordStatus { state, remaining: entry.map_or(0, Entry::remaining) }
    }

    /// Apply a decoded command (spec/vault.md §8.2 steps A1–A4).
    pub fn apply_command(&mut self, command: &VaultCommand) -> Result<VaultOutput> {
        let (request_id, time, record) = command.header();
        // A1: shape.
        let id: [u8; REQUEST_ID_LEN] = request_id.try_into().map_err(|_| Error::CborSchema)?;
        if let Some(record) = record {
            check_record_id(record)?;
        }
        // spec/rotation.md §3 RT3, §5: the phase admits the command.
        self.admit(command)?;
        // A2: replay.
        let horizon = self.max_time.saturating_sub(SEEN_RETENTION_SECS);
        if time < horizon {
            return Err(Error::SessionRequestStale);
        }
        if self.seen.contains_key(&id) {
            return Err(Error::SessionRequestReplayed);
        }
        // A3: the operation; on error nothing has changed.
        let out = self.execute(command)?;
        // A4: remember the id, advance the clock of the log, forget old ids.
        self.remember(id, time);
        self.max_time = self.max_time.max(time);
        self.prune();
        Ok(out)
    }

    /// spec/rotation.md: which commands each phase accepts.
    fn admit(&self, command: &VaultCommand) -> Result<()> {
        match (&self.phase, command) {
            (Phase::AwaitingImport, VaultCommand::Import { .. }) => Ok(()),
            (Phase::AwaitingImport, _) => Err(Error::RotationImportPending),
            (Phase::Open, VaultCommand::Import { .. } | VaultCommand::Destroy { .. }) => {
                Err(Error::RotationImportRefused)
            }
            (Phase::Open, _) => Ok(()),
            (Phase::Retired { successor, destroyed: false }, VaultCommand::Retire { successor: s, .. })
                if successor.as_slice() == s.as_slice() =>
            {
                Ok(())
            }
            (Phase::Retired { .. }, VaultCommand::Destroy { .. }) => Ok(()),
            (Phase::Retired { .. }, _) => Err(Error::RotationFleetRetired),
        }
    }

    /// spec/rotation.md §3 RT2: every record, sorted by id.
    fn export(&self) -> Vec<ExportedRecord> {
        self.records
            .iter()
            .map(|(id, e)| ExportedRecord {
                id: id.to_vec(),
                state: match e {
                    Entry::Registered { .. } => ExportedState::Registered,
                    Entry::Unregistered { .. } => ExportedState::Unregistered,
                    Entry::Locked { .. } => ExportedState::Locked,
                },
                registration: e.secrets().map(|s| s.registration.to_vec()),
                wrapped_key: e.secrets().map(|s| s.wrapped_key.to_vec()),
                remaining: e.remaining(),
            })
            .collect()
    }

    fn remember(&mut self, id: [u8; REQUEST_ID_LEN], time: u64) {
        self.seen.insert(id, time);
        self.seen_by_time.insert((time, id));
    }

    /// Forget ids older than the retention horizon (spec/vault.md §8.2 step A4).
    fn prune(&mut self) {
        let horizon = self.max_time.saturating_sub(SEEN_RETENTION_SECS);
        while let Some(&(t, id)) = self.seen_by_time.first() {
            if t >= horizon {
                break;
            }
            self.seen_by_time.pop_first();
            self.seen.remove(&id);
        }
    }

    fn execute(&mut self, command: &VaultCommand) -> Result<VaultOutput> {
        let limit = self.guess_limit;
        match command {
            VaultCommand::Register { record, registration, wrapped_key, .. } => {
                check_wrapped(wrapped_key)?;
                check_registration(registration)?;
                let generation = match self.records.get(record.as_slice()) {
                    Some(Entry::Registered { .. }) => return Err(Error::VaultRecordExists),
                    Some(e) => e.generation() + 1,
                    None => 1,
                };
                let secrets = Secrets::new(registration, wrapped_key).ok_or(Error::VaultMessageInvalid)?;
                self.records.insert(
                    record.as_slice().into(),
                    Entry::Registered { secrets, remaining: limit, generation },
                );
                Ok(VaultOutput::Registered { remaining: limit })
            }
            VaultCommand::AttemptStart { record, .. } => {
                // spec/vault.md §5.3: an unknown id gets a counter like any record.
                let entry = self
                    .records
                    .entry(record.as_slice().into())
                    .or_insert(Entry::Unregistered { remaining: limit, generation: 0 });
                let (remaining, generation) = match entry {
                    Entry::Registered { remaining, generation, .. }
                    | Entry::Unregistered { remaining, generation } => (remaining, *generation),
                    Entry::Locked { .. } => return Err(Error::VaultRecordLocked),
                };
                // Invariant: a registered or unregistered entry has remaining >= 1.
                *remaining -= 1;
                let remaining = *remaining;
                let out = VaultOutput::Attempt {
                    registration: entry.secrets().map(|s| s.registration.to_vec()),
                    wrapped_key: entry.secrets().map(|s| s.wrapped_key.to_vec()),
                    remaining,
                    generation,
                };
                if remaining == 0 {
                    // The last allowed guess: destroy now (dropping zeroizes).
                    *entry = Entry::Locked { generation };
                }
                Ok(out)
            }
            VaultCommand::AttemptSuccess { record, generation, .. } => {
                match self.records.get_mut(record.as_slice()) {
                    Some(Entry::Registered { remaining, generation: g, .. }) if *g == *generation => {
                        *remaining = limit;
                        Ok(VaultOutput::Released { remaining: limit })
                    }
                    _ => Ok(VaultOutput::Released { remaining: 0 }),
                }
            }
            VaultCommand::Rekey { record, generation, registration, wrapped_key, .. } => {
                check_wrapped(wrapped_key)?;
                check_registration(registration)?;
                match self.records.get(record.as_slice()) {
                    Some(Entry::Registered { generation: g, .. }) if *g == *generation => {}
                    _ => return Err(Error::VaultRecordChanged),
                }
                let secrets = Secrets::new(registration, wrapped_key).ok_or(Error::VaultMessageInvalid)?;
                self.records.insert(
                    record.as_slice().into(),
                    Entry::Registered { secrets, remaining: limit, generation: generation + 1 },
                );
                Ok(VaultOutput::Rekeyed { remaining: limit })
            }
            VaultCommand::Delete { record, generation, .. } => {
                match self.records.get(record.as_slice()) {
                    Some(Entry::Registered { generation: g, .. }) if *g == *generation => {}
                    _ => return Err(Error::VaultRecordChanged),
                }
                self.records.remove(record.as_slice());
                Ok(VaultOutput::Deleted)
            }
            VaultCommand::Retire { successor, .. } => {
                let successor: [u8; 32] = successor.as_slice().try_into().map_err(|_| Error::CborSchema)?;
                self.phase = Phase::Retired { successor, destroyed: false };
                Ok(VaultOutput::Retired { records: self.export() })
            }
            VaultCommand::Import { records, .. } => {
                check_records(records, limit)?;
                for r in records {
                    let entry = match r.state {
                        ExportedState::Locked => Entry::Locked { generation: 0 },
                        ExportedState::Unregistered => {
                            Entry::Unregistered { remaining: r.remaining, generation: 0 }
                        }
                        ExportedState::Registered => Entry::Registered {
                            // check_records: a registered record has both, of their lengths.
                            secrets: Secrets::new(
                                r.registration.as_deref().unwrap_or_default(),
                                r.wrapped_key.as_deref().unwrap_or_default(),
                            )
                            .ok_or(Error::RotationExportMismatch)?,
                            remaining: r.remaining,
                            generation: 1,
                        },
                    };
                    self.records.insert(r.id.as_slice().into(), entry);
                }
                self.phase = Phase::Open;
                Ok(VaultOutput::Imported { records: records.len() as u64 })
            }
            VaultCommand::Destroy { .. } => {
                // Dropping the entries zeroizes their secrets.
                self.records.clear();
                if let Phase::Retired { destroyed, .. } = &mut self.phase {
                    *destroyed = true;
                }
                Ok(VaultOutput::Destroyed)
            }
        }
    }
}

fn check_registration(registration: &[u8]) -> Result<()> {
    if registration.len() == STORED_REGISTRATION_LEN { Ok(()) } else { Err(Error::VaultMessageInvalid) }
}

fn check_wrapped(wrapped: &[u8]) -> Result<()> {
    if wrapped.len() == WRAPPED_KEY_LEN { Ok(()) } else { Err(Error::VaultWrappedKeyInvalid) }
}

/// spec/vault.md §8.4, `VaultSnapshot`. Every struct here declares its fields in the
/// deterministic order of their keys (spec/conventions.md §3.2), so a snapshot is written
/// straight from the state ([`cbor::to_vec_in_declared_order`]) with the bytes
/// [`cbor::to_vec`] would give: `R` and `S` are the records and request ids, borrowed
/// iterators when written and vectors when read.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Snapshot<R, S> {
    v: u64,
    seen: S,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    phase: Option<SnapshotPhase>,
    records: R,
    max_time: u64,
    guess_limit: u32,
}

#[derive(Serialize, Deserialize)]
#[serde(
    deny_unknown_fields,
    bound(serialize = "B: serde_bytes::Serialize", deserialize = "B: serde_bytes::Deserialize<'de>")
)]
struct SnapshotRecord<B> {
    #[serde(with = "serde_bytes")]
    id: B,
    locked: bool,
    remaining: u32,
    generation: u64,
    #[serde(default, with = "serde_bytes", skip_serializing_if = "Option::is_none")]
    wrapped_key: Option<B>,
    #[serde(default, with = "serde_bytes", skip_serializing_if = "Option::is_none")]
    registration: Option<B>,
}

/// spec/vault.md §8.4 `phase` (absent: open).
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
enum SnapshotPhase {
    AwaitingImport,
    Retired {
        destroyed: bool,
        #[serde(with = "serde_bytes")]
        successor: Vec<u8>,
    },
}

#[derive(Serialize, Deserialize)]
#[serde(
    deny_unknown_fields,
    bound(serialize = "B: serde_bytes::Serialize", deserialize = "B: serde_bytes::Deserialize<'de>")
)]
struct SnapshotSeen<B> {
    #[serde(with = "serde_bytes")]
    id: B,
    time: u64,
}

/// A snapshot as read: owned records and request ids.
type SnapshotIn = Snapshot<Vec<SnapshotRecord<Vec<u8>>>, Vec<SnapshotSeen<Vec<u8>>>>;

/// The records of a state, written one by one as [`SnapshotRecord`]s.
struct RecordsOut<'a>(&'a BTreeMap<Box<[u8]>, Entry>);

impl Serialize for RecordsOut<'_> {
    fn serialize<Z: serde::Serializer>(&self, z: Z) -> core::result::Result<Z::Ok, Z::Error> {
        z.collect_seq(self.0.iter().map(|(id, e)| SnapshotRecord::<&[u8]> {
            id,
            locked: matches!(e, Entry::Locked { .. }),
            remaining: e.remaining(),
            generation: e.generation(),
            wrapped_key: e.secrets().map(|s| &s.wrapped_key[..]),
            registration: e.secrets().map(|s| &s.registration[..]),
        }))
    }
}

/// The remembered request ids, written one by one as [`SnapshotSeen`]s.
struct SeenOut<'a>(&'a BTreeMap<[u8; REQUEST_ID_LEN], u64>);

impl Serialize for SeenOut<'_> {
    fn serialize<Z: serde::Serializer>(&self, z: Z) -> core::result::Result<Z::Ok, Z::Error> {
        z.collect_seq(self.0.iter().map(|(id, time)| SnapshotSeen::<&[u8]> { id, time: *time }))
    }
}

fn error_output(e: Error) -> Vec<u8> {
    cbor::to_vec(&VaultOutput::Error { code: e.code().to_owned() })
}

impl StateMachine for VaultStateMachine {
    /// spec/vault.md §8.2. A malformed command gives an `Error` output and changes nothing.
    fn apply(&mut self, command: &[u8]) -> Vec<u8> {
        let result = cbor::from_slice::<VaultCommand>(command).and_then(|c| self.apply_command(&c));
        match result {
            Ok(out) => cbor::to_vec(&out),
            Err(e) => error_output(e),
        }
    }

    /// spec/vault.md §8.3: answers a [`VaultQuery`] with a [`RecordStatus`].
    fn query(&self, query: &[u8]) -> Vec<u8> {
        match cbor::from_slice::<VaultQuery>(query) {
            Ok(VaultQuery::Record { record }) => cbor::to_vec(&self.status(&record)),
            Err(e) => error_output(e),
        }
    }

    fn snapshot(&self) -> Vec<u8> {
        let phase = match &self.phase {
            Phase::Open => None,
            Phase::AwaitingImport => Some(SnapshotPhase::AwaitingImport),
            Phase::Retired { successor, destroyed } => {
                Some(SnapshotPhase::Retired { successor: successor.to_vec(), destroyed: *destroyed })
            }
        };
        cbor::to_vec_in_declared_order(&Snapshot {
            v: 1,
            seen: SeenOut(&self.seen),
            phase,
            records: RecordsOut(&self.records),
            max_time: self.max_time,
            guess_limit: self.guess_limit,
        })
    }

    fn restore(snapshot: &[u8]) -> Result<Self> {
        let s: SnapshotIn = cbor::from_slice(snapshot)?;
        if s.v != 1 || !(1..=100).contains(&s.guess_limit) {
            return Err(Error::CborSchema);
        }
        let mut sm = VaultStateMachine::new(s.guess_limit);
        sm.phase = match s.phase {
            None => Phase::Open,
            Some(SnapshotPhase::AwaitingImport) => Phase::AwaitingImport,
            Some(SnapshotPhase::Retired { successor, destroyed }) => Phase::Retired {
                successor: successor.as_slice().try_into().map_err(|_| Error::CborSchema)?,
                destroyed,
            },
        };
        sm.max_time = s.max_time;
        for r in s.records {
            if r.id.len() > RECORD_ID_MAX || sm.records.contains_key(r.id.as_slice()) {
                return Err(Error::CborSchema);
            }
            let entry = if r.locked {
                Entry::Locked { generation: r.generation }
            } else {
                if r.remaining == 0 || r.remaining > s.guess_limit {
                    return Err(Error::CborSchema);
                }
                match (r.registration, r.wrapped_key) {
                    (None, None) => Entry::Unregistered { remaining: r.remaining, generation: r.generation },
                    (Some(registration), Some(wrapped_key)) => Entry::Registered {
                        secrets: Secrets::new(&registration, &wrapped_key).ok_or(Error::CborSchema)?,
                        remaining: r.remaining,
                        generation: r.generation,
                    },
                    _ => return Err(Error::CborSchema),
                }
            };
            sm.records.insert(r.id.into_boxed_slice(), entry);
        }
        for seen in s.seen {
            let id: [u8; REQUEST_ID_LEN] = seen.id.as_slice().try_into().map_err(|_| Error::CborSchema)?;
            if sm.seen.contains_key(&id) {
                return Err(Error::CborSchema);
            }
            sm.remember(id, seen.time);
        }
        Ok(sm)
    }
}

#[cfg(test)]
mod size {
    /// spec/vault.md §5.3: an unregistered or locked entry is its key and 24 bytes; the
    /// secrets of a registration are boxed, so they do not widen every entry.
    #[test]
    fn an_entry_is_24_bytes_and_holds_secrets_behind_a_box() {
        assert_eq!(size_of::<super::Entry>(), 24);
        assert_eq!(size_of::<Option<Box<super::Secrets>>>(), 8);
    }
}

#[cfg(test)]
mod snapshot_encoding {
    use super::*;

    fn command(n: u8, record: u8, kind: u8) -> VaultCommand {
        let (request_id, time, record) = (vec![n; REQUEST_ID_LEN], 100 + u64::from(n), vec![record; 20]);
        match kind {
            0 => VaultCommand::Register {
                request_id,
                time,
                record,
                registration: vec![n; STORED_REGISTRATION_LEN],
                wrapped_key: vec![n; WRAPPED_KEY_LEN],
            },
            _ => VaultCommand::AttemptStart { request_id, time, record },
        }
    }

    /// spec/vault.md §8.4, spec/conventions.md §3.2: the snapshot written straight from the
    /// state is the deterministic encoding of its structure, byte for byte, in every phase
    /// and with every kind of entry (registered, unregistered, locked).
    #[test]
    fn a_snapshot_written_directly_is_its_deterministic_encoding() {
        let mut sm = VaultStateMachine::new(2);
        let commands =
            [command(1, 1, 0), command(2, 1, 1), command(3, 2, 1), command(4, 3, 1), command(5, 3, 1)];
        for c in &commands {
            sm.apply_command(c).unwrap();
        }
        let kinds: Vec<RecordState> = [1, 2, 3].map(|r| sm.status(&[r; 20]).state).to_vec();
        assert_eq!(kinds, [RecordState::Registered, RecordState::Unregistered, RecordState::Locked]);
        let mut states = vec![sm.clone(), VaultStateMachine::awaiting_import(2)];
        sm.phase = Phase::Retired { successor: [9; 32], destroyed: false };
        states.push(sm);
        for sm in states {
            let bytes = sm.snapshot();
            let owned: SnapshotIn = cbor::from_slice(&bytes).unwrap();
            assert_eq!(cbor::to_vec(&owned), bytes);
            assert_eq!(VaultStateMachine::restore(&bytes).unwrap().snapshot(), bytes);
        }
    }
}
