//! spec/audit-log.md §8.1: durable storage of the log in redb. An append batch returns only
//! after a commit with `Durability::Immediate`, so an acknowledged entry survives a crash.

use crate::{Error, Result};
use bkv_protocol::audit_log::merkle::Tree;
use redb::{Database, Durability, ReadableDatabase, ReadableTable, TableDefinition};
use std::path::Path;

const ENTRIES: TableDefinition<u64, &[u8]> = TableDefinition::new("entries");
const CHECKPOINTS: TableDefinition<u64, &str> = TableDefinition::new("checkpoints");

/// The log's entries and published checkpoints, with the Merkle tree rebuilt in memory.
pub struct LogStore {
    db: Database,
    tree: Tree,
}

impl LogStore {
    /// Open (or create) the log at `path` and rebuild the tree from the stored entries.
    pub fn open(path: &Path) -> Result<Self> {
        let db = Database::create(path)?;
        let txn = db.begin_write()?;
        txn.open_table(ENTRIES)?;
        txn.open_table(CHECKPOINTS)?;
        txn.commit()?;
        let mut tree = Tree::new();
        {
            let read = db.begin_read()?;
            let table = read.open_table(ENTRIES)?;
            for (expect, row) in table.iter()?.enumerate() {
                let (k, v) = row?;
                if k.value() != expect as u64 {
                    return Err(Error::Storage(format!("entry {expect} missing")));
                }
                tree.push(v.value());
            }
        }
        Ok(LogStore { db, tree })
    }

    /// Durably append `entries` in order, in one transaction with one fsync; returns the
    /// index of the first only after the commit. On error nothing was appended.
    pub fn append_batch<E: AsRef<[u8]>>(&mut self, entries: &[E]) -> Result<u64> {
        let first = self.tree.size();
        let mut txn = self.db.begin_write()?;
        txn.set_durability(Durability::Immediate)?;
        {
            let mut table = txn.open_table(ENTRIES)?;
            for (i, e) in entries.iter().enumerate() {
                table.insert(first + i as u64, e.as_ref())?;
            }
        }
        txn.commit()?;
        for e in entries {
            self.tree.push(e.as_ref());
        }
        Ok(first)
    }

    /// The Merkle tree of all stored entries.
    pub fn tree(&self) -> &Tree {
        &self.tree
    }

    /// The entry at `index`.
    pub fn entry(&self, index: u64) -> Result<Option<Vec<u8>>> {
        let read = self.db.begin_read()?;
        Ok(read.open_table(ENTRIES)?.get(index)?.map(|v| v.value().to_vec()))
    }

    /// Entries `start..end`.
    pub fn entries(&self, start: u64, end: u64) -> Result<Vec<Vec<u8>>> {
        let read = self.db.begin_read()?;
        let table = read.open_table(ENTRIES)?;
        let mut out = Vec::new();
        for row in table.range(start..end)? {
            out.push(row?.1.value().to_vec());
        }
        Ok(out)
    }

    /// Durably store the published checkpoint note of `size`.
    pub fn put_checkpoint(&self, size: u64, note: &str) -> Result<()> {
        let mut txn = self.db.begin_write()?;
        txn.set_durability(Durability::Immediate)?;
        txn.open_table(CHECKPOINTS)?.insert(size, note)?;
        txn.commit()?;
        Ok(())
    }

    /// The published checkpoint note of `size`, or the latest one when `size` is `None`.
    pub fn checkpoint(&self, size: Option<u64>) -> Result<Option<String>> {
        let read = self.db.begin_read()?;
        let table = read.open_table(CHECKPOINTS)?;
        Ok(match size {
            Some(s) => table.get(s)?.map(|v| v.value().to_owned()),
            None => table.last()?.map(|(_, v)| v.value().to_owned()),
        })
    }
}
