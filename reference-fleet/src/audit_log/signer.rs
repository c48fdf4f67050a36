//! spec/audit-log.md §8.2: the third-party signer's release step, and an HTTP client of
//! the log. [`release`] is the only way to obtain a releasable bundle: it logs the exact
//! final bytes, waits for a witnessed checkpoint, and checks the result as a client would.

use super::server::{ConsistencyJson, InclusionJson};
use super::{Error, Result, http};
use bkv_protocol::audit_log::merkle::Hash;
use bkv_protocol::audit_log::note::Note;
use bkv_protocol::audit_log::{
    Checkpoint, InclusionProof, LogAnchors, LogEntry, LogProof, LogState, LoggedBundle, verify_logged_bundle,
};

/// An HTTP client of a log server.
#[derive(Debug, Clone)]
pub struct LogClient {
    /// Base URL, e.g. `http://127.0.0.1:8080`.
    pub base: String,
}

fn hashes(hex_list: &[String]) -> Result<Vec<Hash>> {
    hex_list
        .iter()
        .map(|h| hex::decode(h).ok().and_then(|b| Hash::try_from(b).ok()))
        .collect::<Option<Vec<_>>>()
        .ok_or_else(|| Error::Http("bad hash in proof".into()))
}

fn json<T: serde::de::DeserializeOwned>(b: &[u8]) -> Result<T> {
    serde_json::from_slice(b).map_err(|e| Error::Http(e.to_string()))
}

impl LogClient {
    /// A client of the log at `base`.
    pub fn new(base: &str) -> Self {
        LogClient { base: base.trim_end_matches('/').to_owned() }
    }

    /// Append an entry; returns its index once durable.
    pub async fn append(&self, entry: &[u8]) -> Result<u64> {
        #[derive(serde::Deserialize)]
        struct Index {
            index: u64,
        }
        Ok(json::<Index>(&http::post(&format!("{}/add", self.base), entry).await?)?.index)
    }

    /// Ask the log to publish a (cosigned) checkpoint at its current size.
    pub async fn publish_checkpoint(&self) -> Result<String> {
        let b = http::post(&format!("{}/checkpoint", self.base), &[]).await?;
        String::from_utf8(b).map_err(|_| Error::Http("checkpoint is not UTF-8".into()))
    }

    /// The latest published checkpoint note.
    pub async fn checkpoint(&self) -> Result<String> {
        let b = http::get(&format!("{}/checkpoint", self.base)).await?;
        String::from_utf8(b).map_err(|_| Error::Http("checkpoint is not UTF-8".into()))
    }

    /// Inclusion proof of `index` in the tree of `size`.
    pub async fn inclusion_proof(&self, index: u64, size: u64) -> Result<InclusionProof> {
        let j: InclusionJson =
            json(&http::get(&format!("{}/proof/inclusion/{index}/{size}", self.base)).await?)?;
        Ok(InclusionProof { tree_size: j.tree_size, leaf_index: j.leaf_index, path: hashes(&j.path)? })
    }

    /// Consistency proof from `size1` to `size2`.
    pub async fn consistency_proof(&self, size1: u64, size2: u64) -> Result<Vec<Hash>> {
        let j: ConsistencyJson =
            json(&http::get(&format!("{}/proof/consistency/{size1}/{size2}", self.base)).await?)?;
        hashes(&j.path)
    }

    /// Entries `start..end` (at most 1024).
    pub async fn entries(&self, start: u64, end: u64) -> Result<Vec<Vec<u8>>> {
        let list: Vec<String> = json(&http::get(&format!("{}/entries/{start}/{end}", self.base)).await?)?;
        list.iter().map(|h| hex::decode(h).map_err(|_| Error::Http("bad entry hex".into()))).collect()
    }
}

/// spec/audit-log.md §8.2 steps 3–5: log the exact final bundle bytes (after the
/// operator's countersignature), wait for a checkpoint cosigned by enough witnesses, and
/// return the releasable [`LoggedBundle`]. The result is verified exactly as a fresh
/// client with `anchors` would verify it, so a bundle is never released without a proof
/// that clients accept.
pub async fn release(
    log: &LogClient,
    anchors: &LogAnchors,
    final_bundle: Vec<u8>,
    fleet_id: &str,
    epoch: u64,
) -> Result<LoggedBundle> {
    let index = log.append(&LogEntry::bundle(fleet_id, epoch, &final_bundle).to_cbor()).await?;
    let checkpoint = log.publish_checkpoint().await?;
    let size = Checkpoint::parse_body(&Note::parse(&checkpoint)?.text)?.size;
    let inclusion = log.inclusion_proof(index, size).await?;
    let proof = LogProof { inclusion, checkpoint };
    verify_logged_bundle(&final_bundle, fleet_id, epoch, &proof, anchors, &LogState::default(), None)?;
    Ok(LoggedBundle { v: 1, bundle: final_bundle, proof })
}
