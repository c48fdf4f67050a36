//! The one error type of `bkv-protocol`.
//!
//! spec/conventions.md §7 (error-code registry): every verification failure in the
//! spec has exactly one stable dotted code, and every code has exactly one variant
//! here. Variants carry no data, so a failure is never an oracle (compare rust-hpke's
//! `OpenError`); the doc comment of a variant is its human-readable description.
//!
//! Sections follow the spec files. Add a variant in the section of the spec file
//! that defines its code, and add the code to the spec's registry in the same change;
//! `tests/registry.rs` fails if the two disagree.

macro_rules! define_errors {
    ($( $(#[doc = $doc:literal])+ $variant:ident => $code:literal, )*) => {
        /// A protocol failure, identified by its stable spec code ([`Error::code`]).
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
        #[non_exhaustive]
        pub enum Error {
            $(
                $(#[doc = $doc])+
                #[error("{}: {}", $code, concat!($($doc),+).trim())]
                $variant,
            )*
        }

        impl Error {
            /// Every error, in registry order.
            pub const ALL: &'static [Error] = &[$(Error::$variant),*];

            /// The stable spec code, e.g. `bundle.countersignature.missing`.
            pub const fn code(&self) -> &'static str {
                match self { $(Error::$variant => $code,)* }
            }

            /// The one-line description from the registry.
            pub fn description(&self) -> &'static str {
                match self { $(Error::$variant => concat!($($doc),+).trim(),)* }
            }

            /// The error with this spec code, if there is one.
            pub fn from_code(code: &str) -> Option<Error> {
                match code { $($code => Some(Error::$variant),)* _ => None }
            }
        }
    };
}

define_errors! {
    // ---- spec/conventions.md §3: deterministic CBOR -------------------------------
    /// The input is not well-formed CBOR (truncated, reserved additional information, invalid UTF-8).
    CborMalformed => "cbor.malformed",
    /// Bytes follow the single top-level CBOR data item.
    CborTrailingBytes => "cbor.trailing_bytes",
    /// An integer, length or tag is not encoded in its shortest form.
    CborNonMinimal => "cbor.non_minimal",
    /// An indefinite-length string, array or map was used.
    CborIndefiniteLength => "cbor.indefinite_length",
    /// Map keys are not in bytewise lexicographic order of their encodings.
    CborMapUnsorted => "cbor.map.unsorted",
    /// A map key appears twice.
    CborMapDuplicateKey => "cbor.map.duplicate_key",
    /// A floating-point number was used.
    CborFloat => "cbor.float",
    /// A simple value other than false, true or null was used.
    CborSimpleUnsupported => "cbor.simple.unsupported",
    /// A tag that the structure does not allow was used.
    CborTagUnknown => "cbor.tag.unknown",
    /// Arrays and maps are nested deeper than the limit.
    CborDepthExceeded => "cbor.depth_exceeded",
    /// Deterministic CBOR that does not match the structure's CDDL (missing, extra or mistyped field).
    CborSchema => "cbor.schema",

    // ---- spec/conventions.md §4: COSE algorithms and keys --------------------------
    /// The algorithm is the deprecated polymorphic EdDSA (-8) or ES256 (-7); bkv requires Ed25519 (-19) or ESP256 (-9).
    CoseAlgorithmDeprecated => "cose.algorithm.deprecated",
    /// The algorithm is not one bkv supports.
    CoseAlgorithmUnsupported => "cose.algorithm.unsupported",
    /// The public key is not a valid key for its algorithm.
    CoseKeyInvalid => "cose.key.invalid",

    // ---- spec/validation-bundle.md §5: client verification -------------------------
    /// The bundle is not a tagged COSE_Sign1 (tag 18) with an attached payload.
    BundleNotSign1 => "bundle.envelope.not_sign1",
    /// A required protected header parameter (alg, kid, content type, CWT claims) is missing or malformed.
    BundleHeaderMissing => "bundle.header.missing",
    /// A header parameter appears where it is not allowed (unprotected alg/kid/claims, or in both buckets).
    BundleHeaderMisplaced => "bundle.header.misplaced",
    /// The content type is not application/bkv-fleet-key-set+cbor.
    BundleContentType => "bundle.header.content_type",
    /// The signer's kid names no pinned third-party anchor.
    BundleSignerUnknown => "bundle.signer.unknown",
    /// The third-party anchor is outside its not_before/not_after window at verification time.
    BundleSignerExpired => "bundle.signer.expired",
    /// The header algorithm differs from the algorithm of the anchor key.
    BundleAlgorithmMismatch => "bundle.algorithm.mismatch",
    /// The third-party signature does not verify.
    BundleSignatureInvalid => "bundle.signature.invalid",
    /// The CWT claims do not match (iss is not the anchor's name, sub is not the fleet id, iat outside the anchor window).
    BundleClaimsMismatch => "bundle.claims.mismatch",
    /// No operator countersignature at unprotected label 11.
    BundleCountersignatureMissing => "bundle.countersignature.missing",
    /// Label 11 holds more than one countersignature.
    BundleCountersignatureMultiple => "bundle.countersignature.multiple",
    /// A countersignature in a forbidden form is present (label 7, 9 or 12).
    BundleCountersignatureForbiddenLabel => "bundle.countersignature.forbidden_label",
    /// The countersignature is not a well-formed COSE_Countersignature.
    BundleCountersignatureMalformed => "bundle.countersignature.malformed",
    /// The countersigner's kid names no pinned operator anchor.
    BundleCountersignerUnknown => "bundle.countersigner.unknown",
    /// The operator anchor is outside its not_before/not_after window at verification time.
    BundleCountersignerExpired => "bundle.countersigner.expired",
    /// The operator countersignature does not verify over the V2 Countersign_structure.
    BundleCountersignatureInvalid => "bundle.countersignature.invalid",
    /// The FleetKeySet breaks a structural rule (version, quorum, guess limit, node or key rules).
    BundleKeySetInvalid => "bundle.keyset.invalid",
    /// The FleetKeySet is for another fleet than the trust anchors.
    BundleFleetMismatch => "bundle.fleet.mismatch",
    /// The verification time is before the FleetKeySet's not_before.
    BundleNotYetValid => "bundle.validity.not_yet_valid",
    /// The verification time is after the FleetKeySet's not_after.
    BundleExpired => "bundle.validity.expired",
    /// The epoch is lower than the highest epoch the client has accepted.
    BundleRollback => "bundle.epoch.rollback",
    /// The epoch equals the highest accepted epoch but the bundle digest differs.
    BundleEquivocation => "bundle.epoch.equivocation",
    /// The previous-bundle digest does not chain to the bundle the client holds.
    BundleChainBroken => "bundle.chain.broken",

    // ---- spec/validation-bundle.md §6: pinned mode ---------------------------------
    /// The FleetKeySet digest is not the pinned digest.
    PinnedMismatch => "pinned.digest.mismatch",
    /// The pinned fleet has been retired; the app must be updated to reach the new fleet.
    PinnedFleetRetired => "pinned.fleet.retired",

    // ---- spec/session.md: the session envelope -------------------------------------
    /// The request names an HPKE suite other than DHKEM(X25519, HKDF-SHA256) / HKDF-SHA256 / ChaCha20Poly1305.
    SessionSuiteUnsupported => "session.suite.unsupported",
    /// The request is for another fleet than this node's.
    SessionFleetMismatch => "session.fleet.mismatch",
    /// The request is for another epoch than this node's: verify the current bundle and retry.
    SessionEpochMismatch => "session.epoch.mismatch",
    /// The request is sealed for another node of the fleet: send it to the node it names.
    SessionNodeMismatch => "session.node.mismatch",
    /// The request could not be opened (any HPKE failure; deliberately vague).
    SessionOpenFailed => "session.open.failed",
    /// The request time is outside the node's acceptance window: check the clock and send a new request.
    SessionRequestStale => "session.request.stale",
    /// The request id has already been used: send a new request with a fresh id.
    SessionRequestReplayed => "session.request.replayed",
    /// The response cannot be opened or trusted (client side): retry with a new request.
    SessionResponseInvalid => "session.response.invalid",

    // ---- spec/vault.md: registration and recovery -------------------------------------
    /// The record id is not 16 to 64 bytes.
    VaultRecordIdInvalid => "vault.record.id_invalid",
    /// A record with this id is registered: recover it (and change the code) or delete it first.
    VaultRecordExists => "vault.record.exists",
    /// The record was destroyed after its last allowed guess; its backup key is gone.
    VaultRecordLocked => "vault.record.locked",
    /// The record changed (re-registered, deleted or destroyed) since this login started: start again.
    VaultRecordChanged => "vault.record.changed",
    /// This node is refusing attempts on this record for a while (its rate limit); nothing was counted: retry later.
    VaultAttemptRateLimited => "vault.attempt.rate_limited",
    /// An OPAQUE message or record does not decode (bad length or group element).
    VaultMessageInvalid => "vault.message.invalid",
    /// The recovery code is wrong, or no such record exists (client side; the two look the same).
    VaultCodeInvalid => "vault.code.invalid",
    /// The typed recovery code has a character that is not a digit, a space or a hyphen, or more than 64 digits.
    VaultCodeMalformed => "vault.code.malformed",
    /// The recovery code is too weak: it needs at least 6 digits, not all the same digit, and not a run such as 123456 or 654321.
    VaultCodeWeak => "vault.code.weak",
    /// The fleet's OPAQUE server key is not the `opaque` key of the verified FleetKeySet.
    VaultServerKeyMismatch => "vault.server_key.mismatch",
    /// The login finish names no pending login on this node (expired, consumed or never started).
    VaultLoginUnknown => "vault.login.unknown",
    /// The client's OPAQUE KE3 does not verify.
    VaultLoginFailed => "vault.login.failed",
    /// The wrapped backup key is not 48 bytes, or does not unwrap under the export key.
    VaultWrappedKeyInvalid => "vault.wrapped_key.invalid",
    /// The serialized OPAQUE ServerSetup does not decode.
    VaultSetupInvalid => "vault.setup.invalid",
    // ---- spec/backup-envelope.md §5: reading a backup file -------------------------
    /// The file does not start with the bkv backup magic.
    EnvelopeMagic => "envelope.magic",
    /// The file ends before its last chunk (or inside its header or a chunk).
    EnvelopeTruncated => "envelope.truncated",
    /// The header is not version 1, suite 1, 64 KiB chunks, or is too long.
    EnvelopeHeaderUnsupported => "envelope.header.unsupported",
    /// The header MAC does not verify: the header was modified, or the key is not this file's.
    EnvelopeHeaderAuthFailed => "envelope.header.auth_failed",
    /// The header names another fleet or record than expected.
    EnvelopeHeaderMismatch => "envelope.header.mismatch",
    /// A chunk belongs to another file (its file id differs).
    EnvelopeChunkSpliced => "envelope.chunk.spliced",
    /// A chunk is out of order (its counter is not its position).
    EnvelopeChunkReordered => "envelope.chunk.reordered",
    /// A chunk does not open: modified bytes, or a bad length or flag.
    EnvelopeChunkCorrupt => "envelope.chunk.corrupt",
    /// Bytes follow the last chunk.
    EnvelopeTrailingData => "envelope.trailing_data",
    /// Reading the input or writing the output failed.
    EnvelopeIo => "envelope.io",

    // ---- spec/audit-log.md §3, §4, §7: audit log --------------------------------------
    /// The inclusion proof does not verify (wrong root, index, size, length or hash size); the entry is not proven to be in the log.
    LogInclusionInvalid => "log.inclusion.invalid",
    /// The consistency proof does not verify: the log may have forked; do not switch to the new checkpoint.
    LogConsistencyInvalid => "log.consistency.invalid",
    /// A checkpoint of another size than the one held arrived without a consistency proof; fetch one and retry.
    LogConsistencyMissing => "log.consistency.missing",
    /// A monitor flagged a gap, a fork, an unannounced bundle or a retirement; its report lists what and where.
    LogMonitorFindings => "log.monitor.findings",
    /// Two verified checkpoints of one size have different roots: the log forked.
    LogFork => "log.fork",
    /// The signed note is malformed (framing, control characters, key name, base64, too many signatures).
    LogNoteMalformed => "log.note.malformed",
    /// The verifier key string is malformed or its key id does not match the key.
    LogVkeyMalformed => "log.vkey.malformed",
    /// The checkpoint body is not origin, size and root hash lines.
    LogCheckpointMalformed => "log.checkpoint.malformed",
    /// The checkpoint is for another log origin than the pinned one.
    LogCheckpointOrigin => "log.checkpoint.origin",
    /// The checkpoint carries no signature line from the pinned log key.
    LogCheckpointUnsigned => "log.checkpoint.unsigned",
    /// The log's signature on the checkpoint does not verify.
    LogCheckpointSignatureInvalid => "log.checkpoint.signature_invalid",
    /// A cosignature line from a pinned witness does not verify.
    LogCosignatureInvalid => "log.cosignature.invalid",
    /// Fewer than K pinned witnesses cosigned the checkpoint.
    LogWitnessInsufficient => "log.witness.insufficient",
    /// The log trust anchors are inconsistent (key types, log key name, duplicate witness, K above the witness count).
    LogAnchorsInvalid => "log.anchors.invalid",
    /// The witness holds a larger checkpoint than the one offered; send a newer checkpoint with a consistency proof from the witness's size.
    LogWitnessConflict => "log.witness.conflict",

    // ---- spec/signer-api.md §5: the signing protocol between the two organisations ----
    /// The signing request is not a request of spec/signer-api.md §2.
    SignerRequestMalformed => "signer.request.malformed",
    /// The signing request's key is no operator anchor valid at the signer's time.
    SignerRequestUnauthenticated => "signer.request.unauthenticated",
    /// The signing request's signature does not verify.
    SignerRequestSignatureInvalid => "signer.request.signature_invalid",
    /// The signing request was made more than 300 s from the signer's time.
    SignerRequestStale => "signer.request.stale",
    /// The FleetKeySet to sign is not a valid FleetKeySet of the anchors' fleet.
    SignerKeysetInvalid => "signer.keyset.invalid",
    /// Another FleetKeySet or evidence was already signed for this fleet and epoch.
    SignerEpochTaken => "signer.epoch.taken",
    /// No pending signing has this request id.
    SignerRequestUnknown => "signer.request.unknown",
    /// The countersignature is not the operator's over this request's intermediate bundle.
    SignerCountersignatureInvalid => "signer.countersignature.invalid",
    /// The signer answered for another request, or signed other bytes than the operator sent.
    SignerIntermediateMismatch => "signer.intermediate.mismatch",
    /// A retirement of an epoch, or for a successor, that the signer did not release.
    SignerRetirementInvalid => "signer.retirement.invalid",

    // ---- spec/hsm.md: the HSM boundary -------------------------------------------------
    /// The HSM has not re-applied its entries up to its mark (a rolled-back or lagging disk).
    HsmStateBehind => "hsm.state.behind",
    /// The entries fed to the HSM differ from those it acknowledged.
    HsmStateDiverged => "hsm.state.diverged",
    /// A snapshot above the HSM's mark awaits a quorum of acknowledgements.
    HsmStateUnverified => "hsm.state.unverified",
    /// The HSM state is of another version, fleet, epoch or node.
    HsmStateInvalid => "hsm.state.invalid",
    /// A database with entries but an HSM without state (written by an earlier release).
    HsmStateMissing => "hsm.state.missing",
    /// The HSM holds no unused output of its own for the pending commit at that position.
    HsmCommitUnknown => "hsm.commit.unknown",
    /// Fewer than quorum valid acknowledgements of the position.
    HsmCommitUnproven => "hsm.commit.unproven",
    /// A snapshot not signed by a node of this fleet and epoch.
    HsmSnapshotInvalid => "hsm.snapshot.invalid",
    /// The HSM recorded its fleet's retirement.
    HsmRetired => "hsm.retired",

    // ---- spec/fleet-replication.md: replication and node-to-node RPCs ----------------
    /// No majority of the fleet's nodes is reachable within the time bound; retry later with the same request id.
    FleetUnavailable => "fleet.unavailable",
    /// A node RPC names another fleet id or epoch than the receiver's FleetKeySet.
    FleetRpcFleetMismatch => "fleet.rpc.fleet_mismatch",
    /// The sender of a node RPC is not a node of the FleetKeySet.
    FleetRpcSenderUnknown => "fleet.rpc.sender_unknown",
    /// A node RPC is addressed to another node.
    FleetRpcRecipientMismatch => "fleet.rpc.recipient_mismatch",
    /// A node RPC signature does not verify with the sender's node key.
    FleetRpcSignatureInvalid => "fleet.rpc.signature_invalid",
    /// A node RPC's time is outside the allowed window.
    FleetRpcStale => "fleet.rpc.stale",
    /// A node RPC reply does not match the request's kind, sender or nonce.
    FleetRpcReplyMismatch => "fleet.rpc.reply_mismatch",

    // ---- spec/rotation.md: fleet rotation ----------------------------------------------
    /// The new bundle is not epoch E + 1 of this fleet chained to this fleet's bundle.
    RotationSuccessorInvalid => "rotation.successor.invalid",
    /// The successor's OPAQUE key is not this fleet's, so no registration could move.
    RotationOpaqueMismatch => "rotation.opaque.mismatch",
    /// The successor's guess limit differs from this fleet's.
    RotationPolicyMismatch => "rotation.policy.mismatch",
    /// The sealed export is for another fleet, epoch, node or bundle, or its records are malformed.
    RotationExportMismatch => "rotation.export.mismatch",
    /// The sealed export does not open with this node's session key.
    RotationOpenFailed => "rotation.open.failed",
    /// This fleet has been retired: fetch the fleet's current bundle (pinned apps: update the app).
    RotationFleetRetired => "rotation.fleet.retired",
    /// The import is not the first event of a new fleet, or destroy came before retire.
    RotationImportRefused => "rotation.import.refused",
    /// This fleet has not imported its predecessor's records yet; retry later.
    RotationImportPending => "rotation.import.pending",
    // ---- spec/evidence.md, spec/audit.md: deployment evidence and the Audit procedure ----
    /// Not an evidence COSE_Sign1 of spec/evidence.md, or a nested object of the wrong shape.
    EvidenceMalformed => "evidence.malformed",
    /// The evidence is not signed by a pinned operator anchor.
    AuditEvidenceSignature => "audit.evidence.signature",
    /// The FleetKeySet's evidence digest does not name this evidence.
    AuditEvidenceMismatch => "audit.evidence.mismatch",
    /// The evidence names another fleet, epoch or FleetKeySet.
    AuditKeysetMismatch => "audit.keyset.mismatch",
    /// The evidence is not in the audit log.
    AuditEvidenceUnlogged => "audit.evidence.unlogged",
    /// The bundle is not in the audit log.
    AuditBundleUnlogged => "audit.bundle.unlogged",
    /// The evidence was logged after the bundle.
    AuditEvidenceLate => "audit.evidence.late",
    /// Another bundle or evidence for this fleet and epoch is in the log.
    AuditLogDuplicate => "audit.log.duplicate",
    /// An attestation chain does not end at a pinned vendor root.
    AuditAttestationUntrusted => "audit.attestation.untrusted",
    /// A certificate or statement signature, or a chain link, does not verify.
    AuditAttestationInvalid => "audit.attestation.invalid",
    /// The bundle's keys are not exactly the attested keys.
    AuditKeysMismatch => "audit.keys.mismatch",
    /// A firmware or software measurement differs from the published one.
    AuditMeasurementMismatch => "audit.measurement.mismatch",
    /// The evidence's policy differs from the FleetKeySet.
    AuditPolicyMismatch => "audit.policy.mismatch",
    /// The ceremony transcript's order or hash chain is broken.
    AuditTranscriptBroken => "audit.transcript.broken",
    /// A ceremony step is not signed by a listed participant.
    AuditTranscriptSignature => "audit.transcript.signature",
    /// A required ceremony step is missing, or a participant signed nothing.
    AuditTranscriptIncomplete => "audit.transcript.incomplete",
    /// Two attestations name the same device (identity or key): one HSM would hold several nodes' keys.
    AuditDeviceReused => "audit.device.reused",
}

impl Error {
    /// The spec file that defines the code (for reports and vector files).
    pub fn spec_area(&self) -> &'static str {
        self.code().split('.').next().unwrap_or("")
    }
}

/// `Result` with the protocol [`Error`].
pub type Result<T, E = Error> = core::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_unique_and_round_trip() {
        let mut seen = std::collections::BTreeSet::new();
        for e in Error::ALL {
            assert!(seen.insert(e.code()), "duplicate code {}", e.code());
            assert_eq!(Error::from_code(e.code()), Some(*e));
            assert!(!e.description().is_empty());
            assert!(e.to_string().starts_with(e.code()));
        }
        assert_eq!(Error::from_code("no.such.code"), None);
    }

    #[test]
    fn codes_are_lowercase_dotted() {
        for e in Error::ALL {
            let c = e.code();
            assert!(c.split('.').count() >= 2, "{c}");
            assert!(
                c.chars().all(|ch| ch.is_ascii_lowercase() || ch == '.' || ch == '_' || ch.is_ascii_digit()),
                "{c}"
            );
        }
    }
}
