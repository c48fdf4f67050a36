//! spec/audit-log.md §8.3: a witness service. It cosigns a checkpoint only after
//! `bkv_protocol::audit_log::witness_check` accepted it (log signature, no fork,
//! consistency with the last cosigned checkpoint) and the new tree head is durably stored.

use super::{Error, Result};
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use bkv_protocol::audit_log::merkle::Hash;
use bkv_protocol::audit_log::note::{self, SIG_TYPE_COSIGNATURE, VerifierKey};
use bkv_protocol::audit_log::{Checkpoint, TreeHead, witness_check};
use bkv_protocol::crypto::Ed25519Signer;
use redb::{Database, Durability, ReadableDatabase, TableDefinition};
use serde::{Deserialize, Serialize};
use std::path::Path;
use std::sync::{Arc, Mutex};

const HEADS: TableDefinition<&str, &[u8]> = TableDefinition::new("heads");

/// Why a witness did not cosign.
#[derive(Debug, thiserror::Error)]
pub enum AddError {
    /// The log's `old_size` is not the size this witness holds; retry from `0`.
    #[error("log.witness.conflict: witness holds size {0}")]
    Conflict(u64),
    /// Verification or storage failed.
    #[error(transparent)]
    Failed(#[from] Error),
}

/// A witness for one log.
pub struct Witness {
    name: String,
    signer: Ed25519Signer,
    log_key: VerifierKey,
    db: Database,
    lock: Mutex<()>,
}

/// The body of `POST /add-checkpoint` (a JSON form of C2SP tlog-witness's request).
#[derive(Debug, Serialize, Deserialize)]
pub struct AddCheckpoint {
    /// The size the log believes this witness holds.
    pub old_size: u64,
    /// Consistency proof from `old_size` to the new checkpoint, hex hashes.
    pub proof: Vec<String>,
    /// The checkpoint note signed by the log.
    pub checkpoint: String,
}

impl Witness {
    /// Open (or create) the witness state at `path`.
    pub fn open(path: &Path, name: &str, signer: Ed25519Signer, log_key: VerifierKey) -> Result<Self> {
        let db = Database::create(path)?;
        let txn = db.begin_write()?;
        txn.open_table(HEADS)?;
        txn.commit()?;
        note::verifier_key(name, SIG_TYPE_COSIGNATURE, &signer)?;
        Ok(Witness { name: name.to_owned(), signer, log_key, db, lock: Mutex::new(()) })
    }

    /// This witness's verifier key (type 0x04).
    pub fn vkey(&self) -> VerifierKey {
        note::verifier_key(&self.name, SIG_TYPE_COSIGNATURE, &self.signer).expect("checked in open")
    }

    /// The tree head last cosigned.
    pub fn held(&self) -> Result<Option<TreeHead>> {
        let read = self.db.begin_read()?;
        let table = read.open_table(HEADS)?;
        let Some(v) = table.get(self.log_key.name.as_str())? else {
            return Ok(None);
        };
        let v = v.value();
        if v.len() != 40 {
            return Err(Error::Storage("corrupt witness head".into()));
        }
        Ok(Some(TreeHead {
            size: u64::from_be_bytes(v[..8].try_into().expect("8 bytes")),
            root: v[8..].try_into().expect("32 bytes"),
        }))
    }

    /// spec/audit-log.md §8.3: verify, persist, then cosign at time `now`; returns the
    /// cosignature line.
    pub fn add_checkpoint(
        &self,
        old_size: u64,
        proof: &[Hash],
        checkpoint: &str,
        now: u64,
    ) -> Result<String, AddError> {
        let _guard = self.lock.lock().unwrap_or_else(|p| p.into_inner());
        let held = self.held()?;
        let held_size = held.map_or(0, |h| h.size);
        if old_size != held_size {
            return Err(AddError::Conflict(held_size));
        }
        let (note, head) = witness_check(&self.log_key, held, checkpoint, proof).map_err(Error::from)?;
        let mut value = head.size.to_be_bytes().to_vec();
        value.extend_from_slice(&head.root);
        let mut txn = self.db.begin_write().map_err(Error::from)?;
        txn.set_durability(Durability::Immediate).map_err(Error::from)?;
        txn.open_table(HEADS)
            .map_err(Error::from)?
            .insert(self.log_key.name.as_str(), value.as_slice())
            .map_err(Error::from)?;
        txn.commit().map_err(Error::from)?;
        debug_assert!(Checkpoint::parse_body(&note.text).is_ok());
        let sig = note::cosign(&note.text, &self.name, &self.signer, now).map_err(Error::from)?;
        Ok(sig.to_line())
    }
}

/// The witness's HTTP API: `POST /add-checkpoint` (JSON [`AddCheckpoint`]) answers 200 with
/// the cosignature line, 409 with JSON `{"size"}` on a size conflict, 400 with the code.
pub fn router(w: Arc<Witness>) -> axum::Router {
    axum::Router::new().route("/add-checkpoint", post(add)).with_state(w)
}

async fn add(State(w): State<Arc<Witness>>, body: axum::body::Bytes) -> (StatusCode, String) {
    let Ok(req) = serde_json::from_slice::<AddCheckpoint>(&body) else {
        return (StatusCode::BAD_REQUEST, "bad request".into());
    };
    let Ok(proof) = req
        .proof
        .iter()
        .map(|h| hex::decode(h).ok().and_then(|b| Hash::try_from(b).ok()).ok_or(()))
        .collect::<Result<Vec<Hash>, ()>>()
    else {
        return (StatusCode::BAD_REQUEST, "log.consistency.invalid".into());
    };
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    match w.add_checkpoint(req.old_size, &proof, &req.checkpoint, now) {
        Ok(line) => (StatusCode::OK, line),
        Err(AddError::Conflict(size)) => {
            (StatusCode::CONFLICT, serde_json::json!({ "size": size }).to_string())
        }
        Err(AddError::Failed(e)) => (StatusCode::BAD_REQUEST, e.code().to_owned()),
    }
}
