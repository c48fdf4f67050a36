//! spec/audit-log.md §8.2: the third-party signer's release step. [`release`] is the only
//! way to obtain a releasable bundle: it logs the exact final bytes, waits for a witnessed
//! checkpoint, and checks the result as a client would.

use crate::Result;
use bkv_client::LogClient;
use bkv_protocol::audit_log::note::Note;
use bkv_protocol::audit_log::{
    Checkpoint, LogAnchors, LogEntry, LogProof, LogState, LoggedBundle, verify_logged_bundle,
};

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
    prove(log, anchors, final_bundle, fleet_id, epoch, index).await
}

/// spec/audit-log.md §8.2 steps 4–5 for a bundle entry already durable at `index`: publish
/// a witnessed checkpoint that covers it and return the [`LoggedBundle`], verified as a
/// fresh client with `anchors` would verify it.
pub async fn prove(
    log: &LogClient,
    anchors: &LogAnchors,
    final_bundle: Vec<u8>,
    fleet_id: &str,
    epoch: u64,
    index: u64,
) -> Result<LoggedBundle> {
    let checkpoint = log.publish_checkpoint().await?;
    let size = Checkpoint::parse_body(&Note::parse(&checkpoint)?.text)?.size;
    let inclusion = log.inclusion_proof(index, size).await?;
    let proof = LogProof { inclusion, checkpoint };
    verify_logged_bundle(&final_bundle, fleet_id, epoch, &proof, anchors, &LogState::default(), None)?;
    Ok(LoggedBundle { v: 1, bundle: final_bundle, proof })
}
