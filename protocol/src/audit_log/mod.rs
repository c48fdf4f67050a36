//! spec/audit-log.md: the third-party audit log of validation bundles.
//!
//! Sans-I/O: RFC 9162 Merkle hashing and proofs ([`merkle`]), C2SP signed notes,
//! verifier keys and cosignatures ([`note`]), C2SP checkpoints, log entries, the
//! delivery wrapper that carries a bundle's proof, the log trust anchors, and the
//! client rule that refuses a bundle that is not provably logged and witnessed
//! ([`verify_logged_bundle`]).

pub mod merkle;
pub mod note;
pub mod tiles;

#[cfg(test)]
mod tests;

use crate::crypto::{Digest32, sha256};
use crate::error::{Error, Result};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use merkle::Hash;
use note::{Note, SIG_TYPE_COSIGNATURE, SIG_TYPE_ED25519, VerifierKey};
use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;

// ---- §4.4 checkpoints --------------------------------------------------------------

/// A C2SP `tlog-checkpoint` body (spec/audit-log.md §4.4):
/// `<origin>\n<size>\n<base64 root>\n`, no extension lines in bkv v1.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    /// The log origin (also the log key's name).
    pub origin: String,
    /// The tree size.
    pub size: u64,
    /// The RFC 9162 root hash of the tree of `size` leaves.
    pub root: Hash,
}

impl Checkpoint {
    /// The note text of this checkpoint.
    pub fn body(&self) -> String {
        format!("{}\n{}\n{}\n", self.origin, self.size, B64.encode(self.root))
    }

    /// spec/audit-log.md §4.4: parse a checkpoint body. Fails with `log.checkpoint.malformed`.
    pub fn parse_body(text: &str) -> Result<Checkpoint> {
        let bad = Error::LogCheckpointMalformed;
        let lines: Vec<&str> = text.strip_suffix('\n').ok_or(bad)?.split('\n').collect();
        let [origin, size, root] = lines.as_slice() else {
            return Err(bad);
        };
        if origin.is_empty() || !size.bytes().all(|b| b.is_ascii_digit()) || size.is_empty() {
            return Err(bad);
        }
        if size.len() > 1 && size.starts_with('0') {
            return Err(bad);
        }
        let size: u64 = size.parse().map_err(|_| bad)?;
        let root: Hash = B64.decode(root).map_err(|_| bad)?.try_into().map_err(|_| bad)?;
        Ok(Checkpoint { origin: (*origin).to_owned(), size, root })
    }
}

// ---- §5 log entries ----------------------------------------------------------------

/// spec/audit-log.md §5: what a log entry records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EntryType {
    /// A validation bundle (spec/validation-bundle.md).
    Bundle,
    /// Deployment evidence (spec/evidence.md).
    Evidence,
    /// A retired epoch and its successor bundle (spec/rotation.md §6).
    Retirement,
}

/// spec/audit-log.md §5: a log entry, deterministic CBOR.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogEntry {
    /// Version, 1.
    pub v: u64,
    /// Entry type.
    #[serde(rename = "type")]
    pub kind: EntryType,
    /// The fleet the bundle or evidence is for.
    pub fleet_id: String,
    /// The FleetKeySet epoch.
    pub epoch: u64,
    /// SHA-256 of the exact final bundle (or evidence) bytes.
    #[serde(with = "serde_bytes")]
    pub digest: [u8; 32],
}

impl LogEntry {
    /// The entry for the exact final bundle bytes `bundle` (spec/audit-log.md §5).
    pub fn bundle(fleet_id: &str, epoch: u64, bundle: &[u8]) -> Self {
        LogEntry {
            v: 1,
            kind: EntryType::Bundle,
            fleet_id: fleet_id.to_owned(),
            epoch,
            digest: sha256(bundle),
        }
    }

    /// spec/evidence.md §2: the entry for the deployment evidence bytes `evidence`.
    pub fn evidence(fleet_id: &str, epoch: u64, evidence: &[u8]) -> Self {
        LogEntry {
            v: 1,
            kind: EntryType::Evidence,
            fleet_id: fleet_id.to_owned(),
            epoch,
            digest: sha256(evidence),
        }
    }

    /// spec/rotation.md §6: epoch `epoch` of `fleet_id` was retired for the successor
    /// bundle `successor_bundle`.
    pub fn retirement(fleet_id: &str, epoch: u64, successor_bundle: &[u8]) -> Self {
        LogEntry {
            v: 1,
            kind: EntryType::Retirement,
            fleet_id: fleet_id.to_owned(),
            epoch,
            digest: sha256(successor_bundle),
        }
    }

    /// The deterministic CBOR encoding (the bytes that are logged).
    pub fn to_cbor(&self) -> Vec<u8> {
        crate::cbor::to_vec(self)
    }

    /// The largest encoded entry (spec/audit-log.md §5): a `fleet_id` of 255 bytes and the
    /// largest `epoch`. A log refuses a longer body before decoding it.
    pub const MAX_ENCODED: usize = 400;

    /// Strictly decode an entry; fails with a `cbor.*` code. spec/audit-log.md §5: a
    /// `fleet_id` outside 1..255 bytes, or a body over [`LogEntry::MAX_ENCODED`], is
    /// `cbor.schema`.
    pub fn from_cbor(bytes: &[u8]) -> Result<Self> {
        if bytes.len() > Self::MAX_ENCODED {
            return Err(Error::CborSchema);
        }
        let e: LogEntry = crate::cbor::from_slice(bytes)?;
        if e.v != 1 || e.fleet_id.is_empty() || e.fleet_id.len() > 255 {
            return Err(Error::CborSchema);
        }
        Ok(e)
    }
}

// ---- §6 delivery wrapper -----------------------------------------------------------

/// spec/audit-log.md §6.1: an RFC 9162 inclusion proof, as the array of the RFC 9942
/// `RFC9162_SHA256` inclusion proof
/// `[tree-size, leaf-index, inclusion-path]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InclusionProof {
    /// Tree size the proof is for (equals the checkpoint size).
    pub tree_size: u64,
    /// Index of the entry's leaf.
    pub leaf_index: u64,
    /// The audit path, deepest first.
    pub path: Vec<Hash>,
}

#[derive(Serialize, Deserialize)]
struct InclusionWire(u64, u64, Vec<ByteBuf>);

impl Serialize for InclusionProof {
    fn serialize<S: serde::Serializer>(&self, s: S) -> core::result::Result<S::Ok, S::Error> {
        InclusionWire(
            self.tree_size,
            self.leaf_index,
            self.path.iter().map(|h| ByteBuf::from(h.to_vec())).collect(),
        )
        .serialize(s)
    }
}

impl<'de> Deserialize<'de> for InclusionProof {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> core::result::Result<Self, D::Error> {
        let w = InclusionWire::deserialize(d)?;
        let path = w
            .2
            .into_iter()
            .map(|b| {
                <Hash>::try_from(b.as_slice()).map_err(|_| serde::de::Error::custom("hash is not 32 bytes"))
            })
            .collect::<core::result::Result<_, _>>()?;
        Ok(InclusionProof { tree_size: w.0, leaf_index: w.1, path })
    }
}

/// spec/audit-log.md §6.1: the proof that travels with a bundle.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogProof {
    /// Inclusion of the bundle's entry in the checkpoint's tree.
    pub inclusion: InclusionProof,
    /// The checkpoint as a signed note with the log signature and witness cosignatures.
    pub checkpoint: String,
}

/// spec/audit-log.md §6.1: a bundle as released by the third-party signer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoggedBundle {
    /// Version, 1.
    pub v: u64,
    /// The exact final bundle bytes (tagged COSE_Sign1 with the operator countersignature).
    #[serde(with = "serde_bytes")]
    pub bundle: Vec<u8>,
    /// Its log proof.
    pub proof: LogProof,
}

impl LoggedBundle {
    /// The deterministic CBOR encoding.
    pub fn to_cbor(&self) -> Vec<u8> {
        crate::cbor::to_vec(self)
    }

    /// Strictly decode; fails with a `cbor.*` code.
    pub fn from_cbor(bytes: &[u8]) -> Result<Self> {
        let w: LoggedBundle = crate::cbor::from_slice(bytes)?;
        if w.v != 1 {
            return Err(Error::CborSchema);
        }
        Ok(w)
    }
}

// ---- §7 trust anchors and verification ------------------------------------------

impl Serialize for VerifierKey {
    fn serialize<S: serde::Serializer>(&self, s: S) -> core::result::Result<S::Ok, S::Error> {
        s.serialize_str(&self.encode())
    }
}

impl<'de> Deserialize<'de> for VerifierKey {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> core::result::Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        VerifierKey::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// spec/audit-log.md §7.1: what a client pins about the audit log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogAnchors {
    /// The log origin (checkpoint first line).
    pub origin: String,
    /// The log's verifier key (type 0x01, named `origin`).
    pub log_key: VerifierKey,
    /// The pinned witnesses' verifier keys (type 0x04).
    pub witnesses: Vec<VerifierKey>,
    /// K: how many distinct pinned witnesses must cosign. 0 only for local development.
    pub threshold: u64,
}

impl LogAnchors {
    /// spec/audit-log.md §7.1: structural checks. Fails with `log.anchors.invalid`.
    pub fn validate(&self) -> Result<()> {
        let bad = Error::LogAnchorsInvalid;
        if self.log_key.sig_type != SIG_TYPE_ED25519 || self.log_key.name != self.origin {
            return Err(bad);
        }
        for (i, w) in self.witnesses.iter().enumerate() {
            if w.sig_type != SIG_TYPE_COSIGNATURE || self.witnesses[..i].iter().any(|o| o.name == w.name) {
                return Err(bad);
            }
        }
        if self.threshold > self.witnesses.len() as u64 {
            return Err(bad);
        }
        Ok(())
    }
}

/// A checkpoint that passed spec/audit-log.md §7.2 steps 1–5.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedCheckpoint {
    /// The checkpoint.
    pub checkpoint: Checkpoint,
    /// Names of the pinned witnesses whose cosignature verified.
    pub cosigners: Vec<String>,
    /// True when the anchors' threshold is 0: nothing was witnessed and the result
    /// MUST only be used for local development (spec/audit-log.md §7.1).
    pub development_only: bool,
}

/// spec/audit-log.md §7.2 steps 1–5: verify a cosigned checkpoint note against the anchors.
pub fn verify_checkpoint(note: &str, anchors: &LogAnchors) -> Result<VerifiedCheckpoint> {
    anchors.validate()?;
    // Step 1: parse the note and its body.
    let note = Note::parse(note)?;
    let checkpoint = Checkpoint::parse_body(&note.text)?;
    // Step 2: origin.
    if checkpoint.origin != anchors.origin {
        return Err(Error::LogCheckpointOrigin);
    }
    // Step 3: the log signature.
    let mut log_sigs = note.signatures.iter().filter(|s| anchors.log_key.matches(s)).peekable();
    if log_sigs.peek().is_none() {
        return Err(Error::LogCheckpointUnsigned);
    }
    for s in log_sigs {
        if !anchors.log_key.verify_note_signature(&note.text, s) {
            return Err(Error::LogCheckpointSignatureInvalid);
        }
    }
    // Step 4: cosignatures from pinned witnesses.
    let mut cosigners = Vec::new();
    for w in &anchors.witnesses {
        let mut ok = false;
        for s in note.signatures.iter().filter(|s| w.matches(s)) {
            if w.verify_cosignature(&note.text, s).is_none() {
                return Err(Error::LogCosignatureInvalid);
            }
            ok = true;
        }
        if ok {
            cosigners.push(w.name.clone());
        }
    }
    // Step 5: threshold.
    if (cosigners.len() as u64) < anchors.threshold {
        return Err(Error::LogWitnessInsufficient);
    }
    Ok(VerifiedCheckpoint { checkpoint, cosigners, development_only: anchors.threshold == 0 })
}

/// spec/audit-log.md §7.3: the largest checkpoint a client has accepted.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogState {
    /// Size and root of the largest verified checkpoint, none before the first.
    pub largest: Option<TreeHead>,
}

/// A tree size and its root.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TreeHead {
    /// Tree size.
    pub size: u64,
    /// Root hash.
    #[serde(with = "serde_bytes")]
    pub root: [u8; 32],
}

impl LogState {
    /// spec/audit-log.md §7.3: fold a verified checkpoint into the state. `consistency`
    /// proves the smaller of (held, new) is a prefix of the larger. Returns the new state;
    /// on error the caller keeps the old one.
    pub fn update(&self, new: TreeHead, consistency: Option<&[Hash]>) -> Result<LogState> {
        let Some(old) = self.largest else {
            return Ok(LogState { largest: Some(new) });
        };
        if old.size == new.size {
            return if crate::crypto::ct_eq(&old.root, &new.root) {
                Ok(self.clone())
            } else {
                Err(Error::LogFork)
            };
        }
        let proof = consistency.ok_or(Error::LogConsistencyMissing)?;
        let (small, large) = if old.size < new.size { (old, new) } else { (new, old) };
        merkle::verify_consistency(small.size, large.size, proof, &small.root, &large.root)?;
        Ok(LogState { largest: Some(large) })
    }
}

/// The result of [`verify_logged_bundle`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogVerified {
    /// The state to persist (replaces the old one).
    pub state: LogState,
    /// The checkpoint the bundle is included in.
    pub checkpoint: VerifiedCheckpoint,
    /// The bundle's leaf index.
    pub leaf_index: u64,
    /// Copy of `checkpoint.development_only`: the log check ran with K = 0.
    pub development_only: bool,
}

/// spec/audit-log.md §7.2: the client rule. `bundle` is the exact final bundle bytes,
/// `fleet_id` and `epoch` come from its verified FleetKeySet, `proof` travelled with it,
/// `state` is the client's persisted log state and `consistency` a consistency proof
/// between the held checkpoint and the proof's checkpoint (needed when their sizes
/// differ). On success returns the new state; on error the state is unchanged.
pub fn verify_logged_bundle(
    bundle: &[u8],
    fleet_id: &str,
    epoch: u64,
    proof: &LogProof,
    anchors: &LogAnchors,
    state: &LogState,
    consistency: Option<&[Hash]>,
) -> Result<LogVerified> {
    // Steps 1-5.
    let checkpoint = verify_checkpoint(&proof.checkpoint, anchors)?;
    // Step 6: the entry is recomputed from the bundle, never taken from the wire.
    let entry = LogEntry::bundle(fleet_id, epoch, bundle).to_cbor();
    // Step 7: inclusion under the checkpoint root.
    let inc = &proof.inclusion;
    if inc.tree_size != checkpoint.checkpoint.size {
        return Err(Error::LogInclusionInvalid);
    }
    merkle::verify_inclusion(
        &merkle::leaf_hash(&entry),
        inc.leaf_index,
        inc.tree_size,
        &inc.path,
        &checkpoint.checkpoint.root,
    )?;
    // Steps 8-9: consistency with the held checkpoint.
    let head = TreeHead { size: checkpoint.checkpoint.size, root: checkpoint.checkpoint.root };
    let state = state.update(head, consistency)?;
    let development_only = checkpoint.development_only;
    Ok(LogVerified { state, leaf_index: inc.leaf_index, checkpoint, development_only })
}

/// SHA-256 of a bundle, as recorded in its entry.
pub fn bundle_digest(bundle: &[u8]) -> Digest32 {
    sha256(bundle)
}

// ---- §8.3 witness ------------------------------------------------------------------

/// spec/audit-log.md §8.3: what a witness decides about a new checkpoint note for the
/// log `log_key` (whose name is the origin), given the tree head it last cosigned and a
/// consistency proof from that head. On success the caller MUST durably store the
/// returned head before releasing a cosignature ([`note::cosign`] over the returned note
/// text).
pub fn witness_check(
    log_key: &VerifierKey,
    held: Option<TreeHead>,
    checkpoint_note: &str,
    consistency: &[Hash],
) -> Result<(Note, TreeHead)> {
    let note = Note::parse(checkpoint_note)?;
    let cp = Checkpoint::parse_body(&note.text)?;
    if cp.origin != log_key.name {
        return Err(Error::LogCheckpointOrigin);
    }
    let mut sigs = note.signatures.iter().filter(|s| log_key.matches(s)).peekable();
    if sigs.peek().is_none() {
        return Err(Error::LogCheckpointUnsigned);
    }
    for s in sigs {
        if !log_key.verify_note_signature(&note.text, s) {
            return Err(Error::LogCheckpointSignatureInvalid);
        }
    }
    let new = TreeHead { size: cp.size, root: cp.root };
    match held {
        Some(h) if new.size < h.size => return Err(Error::LogWitnessConflict),
        Some(h) if new.size == h.size && !crate::crypto::ct_eq(&h.root, &new.root) => {
            return Err(Error::LogFork);
        }
        Some(h) if new.size == h.size => {}
        Some(h) if h.size > 0 => {
            merkle::verify_consistency(h.size, new.size, consistency, &h.root, &new.root)?
        }
        _ => {}
    }
    Ok((note, new))
}
