//! redb-backed Raft log store and state-machine store.
//!
//! spec/fleet-replication.md §3.1: an entry is acknowledged only after the redb write
//! transaction that stores it has committed with `Durability::Immediate` (fsync). Appends
//! are group-committed: [`LogStore::append`] puts the entries in memory, where readers see
//! them at once, and hands them to the node's log writer thread, which writes everything
//! queued in one transaction with one fsync and only then calls each flush callback, in
//! order. openraft submits one append per client write; without grouping every write paid
//! its own fsync and the core loop waited on it.
//! spec/fleet-replication.md §6.2: snapshots are `StateMachine::snapshot()` bytes, stored
//! durably; on start the state machine is restored from the stored snapshot and the
//! committed entries after it are re-applied by openraft.

// `StorageError` is openraft's error type, fixed by the storage traits.
#![allow(clippy::result_large_err)]

use std::io::Cursor;
use std::ops::RangeBounds;
use std::path::Path;
use std::sync::{Arc, Mutex};

use bkv_protocol::state_machine::StateMachine;
use openraft::storage::{LogFlushed, RaftLogStorage, RaftStateMachine};
use openraft::{
    Entry, EntryPayload, LogId, LogState, RaftLogReader, RaftSnapshotBuilder, Snapshot, SnapshotMeta,
    StorageError, StorageIOError, StoredMembership, Vote,
};
use redb::{Database, Durability, ReadableDatabase, ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};

use super::{Command, NodeId, Output, TypeConfig};

const LOG: TableDefinition<u64, &[u8]> = TableDefinition::new("raft_log");
const META: TableDefinition<&str, &[u8]> = TableDefinition::new("raft_meta");
const SNAPSHOT: TableDefinition<&str, &[u8]> = TableDefinition::new("raft_snapshot");

const KEY_VOTE: &str = "vote";
const KEY_PURGED: &str = "last_purged";
const KEY_COMMITTED: &str = "committed";
const KEY_CURRENT: &str = "current";

type SErr = StorageError<NodeId>;

fn enc<T: Serialize>(v: &T) -> Vec<u8> {
    let mut out = Vec::new();
    ciborium::into_writer(v, &mut out).expect("CBOR encoding into a Vec cannot fail");
    out
}

fn dec<T: serde::de::DeserializeOwned>(b: &[u8]) -> Result<T, std::io::Error> {
    ciborium::from_reader(b).map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e.to_string()))
}

/// Open (or create) a node's database and make sure every table exists.
pub(crate) fn open_db(path: &Path) -> Result<Arc<Database>, redb::Error> {
    let db = Database::create(path)?;
    let txn = db.begin_write()?;
    txn.open_table(LOG)?;
    txn.open_table(META)?;
    txn.open_table(SNAPSHOT)?;
    txn.commit()?;
    Ok(Arc::new(db))
}

/// The Raft log and vote, in redb, with appends group-committed by a writer thread.
#[derive(Clone)]
pub(crate) struct LogStore {
    db: Arc<Database>,
    id: NodeId,
    /// Entries appended but not yet in redb (readers overlay them on what redb holds).
    pending: Arc<Mutex<std::collections::BTreeMap<u64, Entry<TypeConfig>>>>,
    writer: std::sync::mpsc::Sender<WriteOp>,
}

/// What the log writer thread does, in the order it was asked.
enum WriteOp {
    /// Store entries; call the callback once they are durable.
    Append(Vec<(u64, LogId<NodeId>, Vec<u8>)>, LogFlushed<TypeConfig>),
    /// Remove entries from `index` on; answer once durable.
    Truncate(u64, std::sync::mpsc::SyncSender<Result<(), String>>),
    /// Remove entries up to `log_id` and record it as purged; answer once durable.
    Purge(LogId<NodeId>, std::sync::mpsc::SyncSender<Result<(), String>>),
    /// Record the committed log id (a restart hint, spec/fleet-replication.md §3 item 1).
    Committed(Option<LogId<NodeId>>),
}

/// The log writer: takes every queued operation, applies them in order in one write
/// transaction, commits it (with fsync when it holds log changes), then acknowledges each.
/// It ends when every [`LogStore`] handle is gone, releasing the database.
fn log_writer(
    db: Arc<Database>,
    rx: std::sync::mpsc::Receiver<WriteOp>,
    pending: Arc<Mutex<std::collections::BTreeMap<u64, Entry<TypeConfig>>>>,
    stages: &super::stages::Stages,
) {
    while let Ok(first) = rx.recv() {
        let mut ops = vec![first];
        while let Ok(op) = rx.try_recv() {
            ops.push(op);
        }
        let durable = ops.iter().any(|op| !matches!(op, WriteOp::Committed(_)));
        let result = (|| -> Result<(), String> {
            let mut txn = db.begin_write().map_err(|e| e.to_string())?;
            let durability = if durable { Durability::Immediate } else { Durability::None };
            txn.set_durability(durability).map_err(|e| e.to_string())?;
            {
                let mut log = txn.open_table(LOG).map_err(|e| e.to_string())?;
                let mut meta = txn.open_table(META).map_err(|e| e.to_string())?;
                for op in &ops {
                    match op {
                        WriteOp::Append(entries, _) => {
                            for (index, _, bytes) in entries {
                                log.insert(*index, bytes.as_slice()).map_err(|e| e.to_string())?;
                            }
                        }
                        WriteOp::Truncate(index, _) => {
                            log.retain_in(*index.., |_, _| false).map_err(|e| e.to_string())?;
                        }
                        WriteOp::Purge(log_id, _) => {
                            meta.insert(KEY_PURGED, enc(&Some(*log_id)).as_slice())
                                .map_err(|e| e.to_string())?;
                            log.retain_in(..=log_id.index, |_, _| false).map_err(|e| e.to_string())?;
                        }
                        WriteOp::Committed(c) => {
                            meta.insert(KEY_COMMITTED, enc(c).as_slice()).map_err(|e| e.to_string())?;
                        }
                    }
                }
            }
            let started = std::time::Instant::now();
            txn.commit().map_err(|e| e.to_string())?;
            if durable {
                stages.record(super::stages::Stage::LogFlush, started);
            }
            Ok(())
        })();
        if result.is_ok() {
            // In redb now: readers find them there (an entry replaced in memory since, by a
            // truncation and a new append, stays in memory until its own write).
            let mut p = pending.lock().expect("pending log lock");
            for op in &ops {
                if let WriteOp::Append(entries, _) = op {
                    for (index, log_id, _) in entries {
                        if p.get(index).is_some_and(|e| e.log_id == *log_id) {
                            p.remove(index);
                        }
                    }
                }
            }
        }
        for op in ops {
            let r = result.clone();
            match op {
                WriteOp::Append(_, callback) => callback.log_io_completed(r.map_err(std::io::Error::other)),
                WriteOp::Truncate(_, tx) | WriteOp::Purge(_, tx) => {
                    let _ = tx.send(r);
                }
                WriteOp::Committed(_) => {}
            }
        }
    }
}

impl LogStore {
    pub(crate) fn new(db: Arc<Database>, id: NodeId, stages: Arc<super::stages::Stages>) -> Self {
        let pending = Arc::new(Mutex::new(std::collections::BTreeMap::new()));
        let (writer, rx) = std::sync::mpsc::channel();
        let (thread_db, thread_pending) = (db.clone(), pending.clone());
        std::thread::Builder::new()
            .name(format!("raft-log-writer-{id}"))
            .spawn(move || log_writer(thread_db, rx, thread_pending, &stages))
            .expect("spawn the log writer thread");
        Self { db, id, pending, writer }
    }

    /// Ask the writer for `op` (made with the answer's sender) and wait for it.
    fn write_and_wait(
        &self,
        op: impl FnOnce(std::sync::mpsc::SyncSender<Result<(), String>>) -> WriteOp,
    ) -> Result<(), SErr> {
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        let gone = || StorageIOError::write_logs(&std::io::Error::other("the log writer stopped"));
        self.writer.send(op(tx)).map_err(|_| gone())?;
        rx.recv().map_err(|_| gone())?.map_err(|e| StorageIOError::write_logs(&std::io::Error::other(e)))?;
        Ok(())
    }

    fn meta_get<T: serde::de::DeserializeOwned>(&self, key: &str) -> Result<Option<T>, SErr> {
        let txn = self.db.begin_read().map_err(|e| StorageIOError::read(&e))?;
        let t = txn.open_table(META).map_err(|e| StorageIOError::read(&e))?;
        match t.get(key).map_err(|e| StorageIOError::read(&e))? {
            None => Ok(None),
            Some(v) => Ok(Some(dec(v.value()).map_err(|e| StorageIOError::read(&e))?)),
        }
    }

    fn meta_put<T: Serialize>(&self, key: &str, value: &T) -> Result<(), SErr> {
        let mut txn = self.db.begin_write().map_err(|e| StorageIOError::write(&e))?;
        txn.set_durability(Durability::Immediate).map_err(|e| StorageIOError::write(&e))?;
        {
            let mut t = txn.open_table(META).map_err(|e| StorageIOError::write(&e))?;
            t.insert(key, enc(value).as_slice()).map_err(|e| StorageIOError::write(&e))?;
        }
        txn.commit().map_err(|e| StorageIOError::write(&e))?;
        Ok(())
    }

    /// The committed log id openraft last saved (`save_committed`), for status reports.
    pub(crate) fn committed_log_id(&self) -> Result<Option<LogId<NodeId>>, SErr> {
        Ok(self.meta_get::<Option<LogId<NodeId>>>(KEY_COMMITTED)?.flatten())
    }

    /// The last log id in the store (or the last purged one), for `status` replies (§6.3):
    /// only what is durable counts ("what it has stored"), not entries still in memory.
    pub(crate) fn last_log_id(&self) -> Result<Option<LogId<NodeId>>, SErr> {
        let txn = self.db.begin_read().map_err(|e| StorageIOError::read_logs(&e))?;
        let t = txn.open_table(LOG).map_err(|e| StorageIOError::read_logs(&e))?;
        let last = t.last().map_err(|e| StorageIOError::read_logs(&e))?;
        match last {
            Some((_, v)) => {
                let e: Entry<TypeConfig> = dec(v.value()).map_err(|e| StorageIOError::read_logs(&e))?;
                Ok(Some(e.log_id))
            }
            None => self.meta_get(KEY_PURGED),
        }
    }
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + std::fmt::Debug + Send>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry<TypeConfig>>, SErr> {
        // The entries still in memory first: the writer removes them only after redb holds
        // them, so between the two reads every entry is in one or the other.
        let pending: Vec<Entry<TypeConfig>> = self
            .pending
            .lock()
            .expect("pending log lock")
            .range(range.clone())
            .map(|(_, e)| e.clone())
            .collect();
        let txn = self.db.begin_read().map_err(|e| StorageIOError::read_logs(&e))?;
        let t = txn.open_table(LOG).map_err(|e| StorageIOError::read_logs(&e))?;
        let mut out = std::collections::BTreeMap::new();
        for item in t.range::<u64>(range).map_err(|e| StorageIOError::read_logs(&e))? {
            let (k, v) = item.map_err(|e| StorageIOError::read_logs(&e))?;
            out.insert(k.value(), dec(v.value()).map_err(|e| StorageIOError::read_logs(&e))?);
        }
        out.extend(pending.into_iter().map(|e| (e.log_id.index, e)));
        Ok(out.into_values().collect())
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogStore;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, SErr> {
        let last_purged_log_id: Option<LogId<NodeId>> = self.meta_get(KEY_PURGED)?;
        let txn = self.db.begin_read().map_err(|e| StorageIOError::read_logs(&e))?;
        let t = txn.open_table(LOG).map_err(|e| StorageIOError::read_logs(&e))?;
        let last = match t.last().map_err(|e| StorageIOError::read_logs(&e))? {
            Some((_, v)) => {
                let e: Entry<TypeConfig> = dec(v.value()).map_err(|e| StorageIOError::read_logs(&e))?;
                Some(e.log_id)
            }
            None => last_purged_log_id,
        };
        let in_memory =
            self.pending.lock().expect("pending log lock").last_key_value().map(|(_, e)| e.log_id);
        Ok(LogState { last_purged_log_id, last_log_id: in_memory.or(last) })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote<NodeId>) -> Result<(), SErr> {
        self.meta_put(KEY_VOTE, vote)
    }

    /// spec/fleet-replication.md §6.3 step 0: a node never resumes leadership after a
    /// restart. openraft would restore a committed vote for this node as an established
    /// leadership; after a restart from an older disk that leader would reuse (term, index)
    /// pairs it had already given to other entries. The vote is returned uncommitted: it still
    /// binds this node's vote in that term, and leadership needs a new election.
    async fn read_vote(&mut self) -> Result<Option<Vote<NodeId>>, SErr> {
        let vote: Option<Vote<NodeId>> = self.meta_get(KEY_VOTE)?;
        Ok(vote.map(|v| {
            if v.is_committed() && v.leader_id.node_id == self.id {
                Vote::new(v.leader_id.term, self.id)
            } else {
                v
            }
        }))
    }

    /// A restart hint (spec/fleet-replication.md §3 item 1): queued with the next group,
    /// durable with it.
    async fn save_committed(&mut self, committed: Option<LogId<NodeId>>) -> Result<(), SErr> {
        self.writer
            .send(WriteOp::Committed(committed))
            .map_err(|_| StorageIOError::write(&std::io::Error::other("the log writer stopped")).into())
    }

    async fn read_committed(&mut self) -> Result<Option<LogId<NodeId>>, SErr> {
        Ok(self.meta_get::<Option<LogId<NodeId>>>(KEY_COMMITTED)?.flatten())
    }

    /// spec/fleet-replication.md §3.1: durable (fsync) before the flush callback fires; the
    /// entries are readable when this returns, and written with every other append queued
    /// meanwhile (group commit).
    async fn append<I>(&mut self, entries: I, callback: LogFlushed<TypeConfig>) -> Result<(), SErr>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + Send,
        I::IntoIter: Send,
    {
        let entries: Vec<Entry<TypeConfig>> = entries.into_iter().collect();
        let encoded = entries.iter().map(|e| (e.log_id.index, e.log_id, enc(e))).collect();
        {
            let mut p = self.pending.lock().expect("pending log lock");
            for e in entries {
                p.insert(e.log_id.index, e);
            }
        }
        self.writer
            .send(WriteOp::Append(encoded, callback))
            .map_err(|_| StorageIOError::write_logs(&std::io::Error::other("the log writer stopped")))?;
        Ok(())
    }

    async fn truncate(&mut self, log_id: LogId<NodeId>) -> Result<(), SErr> {
        self.pending.lock().expect("pending log lock").retain(|index, _| *index < log_id.index);
        self.write_and_wait(|tx| WriteOp::Truncate(log_id.index, tx))
    }

    async fn purge(&mut self, log_id: LogId<NodeId>) -> Result<(), SErr> {
        self.pending.lock().expect("pending log lock").retain(|index, _| *index > log_id.index);
        self.write_and_wait(|tx| WriteOp::Purge(log_id, tx))
    }
}

/// The applied state shared between the Raft state-machine worker and readers (§5).
pub(crate) struct Applied<S> {
    pub(crate) sm: S,
    pub(crate) last_applied: Option<LogId<NodeId>>,
    pub(crate) membership: StoredMembership<NodeId, openraft::BasicNode>,
}

/// A stored snapshot: read as owned bytes, written from borrowed ones (the state's bytes
/// are not copied once more to be stored).
#[derive(Serialize, Deserialize)]
#[serde(bound(serialize = "D: serde_bytes::Serialize", deserialize = "D: serde_bytes::Deserialize<'de>"))]
struct StoredSnapshot<D = Vec<u8>> {
    meta: SnapshotMeta<NodeId, openraft::BasicNode>,
    #[serde(with = "serde_bytes")]
    data: D,
}

/// The state-machine store: an in-memory [`StateMachine`] plus its durable snapshot.
pub(crate) struct SmStore<S> {
    db: Arc<Database>,
    pub(crate) applied: Arc<Mutex<Applied<S>>>,
    snapshot_seq: u64,
}

impl<S: StateMachine> SmStore<S> {
    /// Restore from the stored snapshot if there is one, else start from `initial`.
    pub(crate) fn open(db: Arc<Database>, mut initial: S) -> Result<Self, String> {
        let stored = read_snapshot(&db).map_err(|e| e.to_string())?;
        let applied = match stored {
            Some(s) => {
                initial.install(&s.data).map_err(|e| format!("stored snapshot does not restore: {e}"))?;
                Applied { sm: initial, last_applied: s.meta.last_log_id, membership: s.meta.last_membership }
            }
            None => Applied { sm: initial, last_applied: None, membership: StoredMembership::default() },
        };
        Ok(Self { db, applied: Arc::new(Mutex::new(applied)), snapshot_seq: 0 })
    }
}

fn read_snapshot(db: &Database) -> Result<Option<StoredSnapshot>, SErr> {
    let txn = db.begin_read().map_err(|e| StorageIOError::read_snapshot(None, &e))?;
    let t = txn.open_table(SNAPSHOT).map_err(|e| StorageIOError::read_snapshot(None, &e))?;
    match t.get(KEY_CURRENT).map_err(|e| StorageIOError::read_snapshot(None, &e))? {
        None => Ok(None),
        Some(v) => Ok(Some(dec(v.value()).map_err(|e| StorageIOError::read_snapshot(None, &e))?)),
    }
}

fn write_snapshot(db: &Database, s: &StoredSnapshot<&[u8]>) -> Result<(), SErr> {
    let mut txn = db.begin_write().map_err(|e| StorageIOError::write_snapshot(None, &e))?;
    txn.set_durability(Durability::Immediate).map_err(|e| StorageIOError::write_snapshot(None, &e))?;
    {
        let mut t = txn.open_table(SNAPSHOT).map_err(|e| StorageIOError::write_snapshot(None, &e))?;
        t.insert(KEY_CURRENT, enc(s).as_slice()).map_err(|e| StorageIOError::write_snapshot(None, &e))?;
    }
    txn.commit().map_err(|e| StorageIOError::write_snapshot(None, &e))?;
    Ok(())
}

/// Builds a snapshot from [`StateMachine::snapshot`] and stores it (§6.2).
pub(crate) struct SnapshotBuilder<S> {
    db: Arc<Database>,
    applied: Arc<Mutex<Applied<S>>>,
    seq: u64,
}

impl<S: StateMachine> RaftSnapshotBuilder<TypeConfig> for SnapshotBuilder<S> {
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>, SErr> {
        let (data, last_log_id, membership) = {
            let a = self.applied.lock().expect("state machine lock");
            (a.sm.snapshot(), a.last_applied, a.membership.clone())
        };
        let snapshot_id = match last_log_id {
            Some(l) => format!("{}-{}-{}", l.leader_id.term, l.index, self.seq),
            None => format!("none-{}", self.seq),
        };
        let meta = SnapshotMeta { last_log_id, last_membership: membership, snapshot_id };
        write_snapshot(&self.db, &StoredSnapshot { meta: meta.clone(), data: data.as_slice() })?;
        tracing::info!(
            snapshot = %meta.snapshot_id,
            last_index = ?meta.last_log_id.map(|l| l.index),
            bytes = data.len(),
            "snapshot built"
        );
        Ok(Snapshot { meta, snapshot: Box::new(Cursor::new(data)) })
    }
}

impl<S: StateMachine> RaftStateMachine<TypeConfig> for SmStore<S> {
    type SnapshotBuilder = SnapshotBuilder<S>;

    async fn applied_state(
        &mut self,
    ) -> Result<(Option<LogId<NodeId>>, StoredMembership<NodeId, openraft::BasicNode>), SErr> {
        let a = self.applied.lock().expect("state machine lock");
        Ok((a.last_applied, a.membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<Output>, SErr>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + Send,
        I::IntoIter: Send,
    {
        let mut a = self.applied.lock().expect("state machine lock");
        let mut out = Vec::new();
        for e in entries {
            a.last_applied = Some(e.log_id);
            match e.payload {
                EntryPayload::Blank => out.push(Output(Vec::new())),
                // spec/fleet-replication.md §1 item 4: each command in order, each its own output.
                EntryPayload::Normal(Command(commands)) => {
                    let outputs =
                        commands.iter().map(|c| serde_bytes::ByteBuf::from(a.sm.apply(c))).collect();
                    out.push(Output(outputs))
                }
                EntryPayload::Membership(m) => {
                    a.membership = StoredMembership::new(Some(e.log_id), m);
                    out.push(Output(Vec::new()));
                }
            }
        }
        Ok(out)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.snapshot_seq += 1;
        SnapshotBuilder { db: self.db.clone(), applied: self.applied.clone(), seq: self.snapshot_seq }
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<Cursor<Vec<u8>>>, SErr> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta<NodeId, openraft::BasicNode>,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), SErr> {
        let data = snapshot.into_inner();
        let mut a = self.applied.lock().expect("state machine lock");
        a.sm.install(&data).map_err(|e| StorageIOError::read_snapshot(Some(meta.signature()), &e))?;
        drop(a);
        let bytes = data.len();
        write_snapshot(&self.db, &StoredSnapshot { meta: meta.clone(), data: data.as_slice() })?;
        tracing::info!(
            snapshot = %meta.snapshot_id,
            last_index = ?meta.last_log_id.map(|l| l.index),
            bytes,
            "snapshot installed from the leader"
        );
        let mut a = self.applied.lock().expect("state machine lock");
        a.last_applied = meta.last_log_id;
        a.membership = meta.last_membership.clone();
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot<TypeConfig>>, SErr> {
        Ok(read_snapshot(&self.db)?
            .map(|s| Snapshot { meta: s.meta, snapshot: Box::new(Cursor::new(s.data)) }))
    }
}
