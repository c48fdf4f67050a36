//! spec/audit-log.md §8.3: a witness service. It cosigns a checkpoint only after
//! `bkv_protocol::audit_log::witness_check` accepted it (log signature, no fork,
//! consistency with the last cosigned checkpoint) and the new tree head is durably stored.

use crate::{Error, Result};
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use bkv_client::clock::{SharedClock, SystemClock};
use bkv_protocol::audit_log::merkle::Hash;
use bkv_protocol::audit_log::note::{self, Note, SIG_TYPE_COSIGNATURE, VerifierKey};
use bkv_protocol::audit_log::{Checkpoint, TreeHead, witness_check};
use bkv_protocol::crypto::Ed25519Signer;
use redb::{Database, Durability, ReadableDatabase, TableDefinition};
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
    clock: SharedClock,
}

/// C2SP tlog-witness `add-checkpoint` request body: `old <size>\n`, up to 63 base64
/// consistency-proof lines, an empty line, then the checkpoint note.
pub fn encode_request(old_size: u64, proof: &[Hash], checkpoint: &str) -> String {
    let mut s = format!("old {old_size}\n");
    for h in proof {
        s.push_str(&B64.encode(h));
        s.push('\n');
    }
    s.push('\n');
    s.push_str(checkpoint);
    s
}

/// Parse a C2SP tlog-witness `add-checkpoint` request body.
pub fn parse_request(body: &str) -> Option<(u64, Vec<Hash>, &str)> {
    let (first, mut rest) = body.split_once('\n')?;
    let old = first.strip_prefix("old ")?;
    if old.is_empty() || !old.bytes().all(|b| b.is_ascii_digit()) || (old.len() > 1 && old.starts_with('0')) {
        return None;
    }
    let old: u64 = old.parse().ok()?;
    let mut proof = Vec::new();
    loop {
        let (line, tail) = rest.split_once('\n')?;
        rest = tail;
        if line.is_empty() {
            break;
        }
        if proof.len() == 63 {
            return None;
        }
        proof.push(Hash::try_from(B64.decode(line).ok()?).ok()?);
    }
    Some((old, proof, rest))
}

impl Witness {
    /// Open (or create) the witness state at `path`.
    pub fn open(path: &Path, name: &str, signer: Ed25519Signer, log_key: VerifierKey) -> Result<Self> {
        let db = Database::create(path)?;
        let txn = db.begin_write()?;
        txn.open_table(HEADS)?;
        txn.commit()?;
        note::verifier_key(name, SIG_TYPE_COSIGNATURE, &signer)?;
        Ok(Witness {
            name: name.to_owned(),
            signer,
            log_key,
            db,
            lock: Mutex::new(()),
            clock: SystemClock::shared(),
        })
    }

    /// Read the cosignature timestamps from `clock` (tests fix it).
    pub fn with_clock(mut self, clock: SharedClock) -> Self {
        self.clock = clock;
        self
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
        // spec/audit-log.md §8.3: a checkpoint of an origin this witness does not follow is
        // 404 before anything is compared with what the witness holds (for another log).
        let origin = Note::parse(checkpoint)
            .and_then(|n| Checkpoint::parse_body(&n.text))
            .map_err(Error::from)?
            .origin;
        if origin != self.log_key.name {
            return Err(AddError::Failed(Error::Protocol(bkv_protocol::Error::LogCheckpointOrigin)));
        }
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

/// The witness's HTTP API: C2SP tlog-witness `POST /add-checkpoint`. 200: the
/// cosignature line; 409 (`text/x.tlog.size`): the held size, when `old` is not it or the
/// same size has another root; 404: unknown origin; 403: no valid log signature; 422: the
/// consistency proof fails; 400: malformed, or `old` above the checkpoint size.
pub fn router(w: Arc<Witness>) -> axum::Router {
    axum::Router::new().route("/add-checkpoint", post(add)).with_state(w)
}

type Reply = (StatusCode, [(axum::http::header::HeaderName, &'static str); 1], String);

async fn add(State(w): State<Arc<Witness>>, body: axum::body::Bytes) -> Reply {
    let text = |status, body: String| (status, [(axum::http::header::CONTENT_TYPE, "text/plain")], body);
    let Some((old, proof, checkpoint)) = std::str::from_utf8(&body).ok().and_then(parse_request) else {
        return text(StatusCode::BAD_REQUEST, "malformed add-checkpoint request".into());
    };
    let now = w.clock.now();
    let conflict = |size: u64| {
        (StatusCode::CONFLICT, [(axum::http::header::CONTENT_TYPE, "text/x.tlog.size")], format!("{size}\n"))
    };
    match w.add_checkpoint(old, &proof, checkpoint, now) {
        Ok(line) => text(StatusCode::OK, line),
        Err(AddError::Conflict(size)) => conflict(size),
        Err(AddError::Failed(Error::Protocol(e))) => {
            use bkv_protocol::Error as P;
            let status = match e {
                P::LogFork => return conflict(w.held().ok().flatten().map_or(0, |h| h.size)),
                P::LogCheckpointOrigin => StatusCode::NOT_FOUND,
                P::LogCheckpointUnsigned | P::LogCheckpointSignatureInvalid => StatusCode::FORBIDDEN,
                P::LogConsistencyInvalid => StatusCode::UNPROCESSABLE_ENTITY,
                _ => StatusCode::BAD_REQUEST,
            };
            text(status, e.code().to_owned())
        }
        Err(AddError::Failed(e)) => text(StatusCode::INTERNAL_SERVER_ERROR, e.code().to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_c2sp_tlog_witness_example_request() {
        let path =
            concat!(env!("CARGO_MANIFEST_DIR"), "/../../protocol/tests/data/c2sp/signed-note-example.json");
        let data: serde_json::Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
        let body = data["witness_request_example"].as_str().unwrap();
        let (old, proof, checkpoint) = parse_request(body).unwrap();
        assert_eq!(old, 20852014);
        assert_eq!(proof.len(), 4);
        assert_eq!(B64.encode(proof[3]), "/6WVhPs2CwSsb5rYBH5cjHV/wSmA79abXAwhXw3Kj/0=");
        assert!(checkpoint.starts_with("example.com/behind-the-sofa\n20852163\n"));
        assert_eq!(encode_request(old, &proof, checkpoint), body);
        for bad in ["old 01\n\nx", "old 1\nnot base64\n\nx", "new 1\n\nx", "old 1\n"] {
            assert_eq!(parse_request(bad), None, "{bad:?}");
        }
    }
}
