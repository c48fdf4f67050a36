//! Vectors for spec/audit.md (the Audit procedure over spec/evidence.md), operation
//! `audit`. Each case is the fixed sample deployment of `bkv_protocol::audit::fixture`
//! with one thing broken; its expected code is the step of spec/audit.md §2 that checks
//! that thing.

use crate::format::{FileBuilder, VectorFile, map};
use bkv_protocol::Error;
use bkv_protocol::audit::fixture::{FIRMWARE, Knobs, NOW, SOFTWARE, build};
use bkv_protocol::cbor;
use serde_json::{Value, json};
use std::collections::BTreeMap;

const NOTES: &[(&str, &str)] = &[
    ("Clean", "the deployment as its ceremony produced it"),
    ("Evidence", "the evidence document or its digests"),
    ("Log", "what the audit log holds"),
    ("Attestation", "attestation chains, keys and measurements"),
    ("Ceremony", "the key ceremony transcript"),
];

fn input(k: Knobs, software: [u8; 32], drop_last_entry: bool) -> BTreeMap<String, Value> {
    let mut b = build(k);
    if drop_last_entry {
        b.entries.pop();
    }
    map([
        ("evidence", json!(hex::encode(&b.evidence))),
        ("released", json!(hex::encode(b.released.to_cbor()))),
        ("anchors", json!(hex::encode(b.anchors.to_bytes()))),
        ("log_anchors", json!(hex::encode(cbor::to_vec(&b.log_anchors)))),
        ("checkpoint", json!(b.checkpoint)),
        ("entries", json!(b.entries.iter().map(hex::encode).collect::<Vec<_>>())),
        ("vendor_roots", json!(hex::encode(cbor::to_vec(&b.roots)))),
        ("software", json!(hex::encode(software))),
        ("firmware", json!(hex::encode(FIRMWARE))),
        ("now", json!(NOW)),
    ])
}

/// The audit vector file.
pub fn generate() -> VectorFile {
    let mut f = FileBuilder::new("audit", "spec/audit.md", NOTES);
    let k = Knobs::default;
    f.group("audit", "§2");
    f.case(
        "a clean ceremony: all twelve steps pass",
        &["Clean"],
        input(k(), SOFTWARE, false),
        None,
        Some(map([("steps", json!(12))])),
    );
    let cases: Vec<(Knobs, &str, &str, Error)> = vec![
        (
            Knobs { tamper_evidence: true, ..k() },
            "Evidence",
            "AU3: the policy edited after the operator signed",
            Error::AuditEvidenceSignature,
        ),
        (
            Knobs { garbage_evidence: true, ..k() },
            "Evidence",
            "AU3: not an evidence COSE_Sign1 (wrong content type)",
            Error::EvidenceMalformed,
        ),
        (
            Knobs { keyset_names_other_evidence: true, ..k() },
            "Evidence",
            "AU4: the FleetKeySet names other evidence",
            Error::AuditEvidenceMismatch,
        ),
        (
            Knobs { evidence_epoch: Some(2), ..k() },
            "Evidence",
            "AU4: the evidence is for another epoch",
            Error::AuditKeysetMismatch,
        ),
        (
            Knobs { omit_evidence_entry: true, ..k() },
            "Log",
            "AU5: the evidence is missing from the log",
            Error::AuditEvidenceUnlogged,
        ),
        (
            Knobs { omit_bundle_entry: true, ..k() },
            "Log",
            "AU5: the bundle is missing from the log",
            Error::AuditBundleUnlogged,
        ),
        (
            Knobs { bundle_logged_first: true, ..k() },
            "Log",
            "AU5: the evidence was logged after the bundle",
            Error::AuditEvidenceLate,
        ),
        (
            Knobs { duplicate_bundle: true, ..k() },
            "Log",
            "AU6: a second bundle for the same fleet and epoch",
            Error::AuditLogDuplicate,
        ),
        (
            Knobs { foreign_root: true, ..k() },
            "Attestation",
            "AU7: device certificates from an unknown vendor root",
            Error::AuditAttestationUntrusted,
        ),
        (
            Knobs { statement_by_other_key: true, ..k() },
            "Attestation",
            "AU7: a statement not signed by its device key",
            Error::AuditAttestationInvalid,
        ),
        (
            Knobs { attest_other_session_key: true, ..k() },
            "Attestation",
            "AU8: a bundle key not in the attestations",
            Error::AuditKeysMismatch,
        ),
        (
            Knobs { statement_software: Some([1; 32]), ..k() },
            "Attestation",
            "AU9: a statement reports other software",
            Error::AuditMeasurementMismatch,
        ),
        (
            Knobs { policy_limit: Some(5), ..k() },
            "Evidence",
            "AU10: the evidence states another guess limit",
            Error::AuditPolicyMismatch,
        ),
        (
            Knobs { break_chain: true, ..k() },
            "Ceremony",
            "AU11: a step's prev digest is wrong",
            Error::AuditTranscriptBroken,
        ),
        (
            Knobs { step_by_stranger: true, ..k() },
            "Ceremony",
            "AU11: steps signed by someone not listed",
            Error::AuditTranscriptSignature,
        ),
        (
            Knobs { skip_close: true, ..k() },
            "Ceremony",
            "AU12: the close step is missing",
            Error::AuditTranscriptIncomplete,
        ),
    ];
    for (knobs, flag, comment, err) in cases {
        f.case(comment, &[flag], input(knobs, SOFTWARE, false), Some(err), None);
    }
    f.case(
        "AU9: the rebuilt software measurement differs",
        &["Attestation"],
        input(k(), [0x51; 32], false),
        Some(Error::AuditMeasurementMismatch),
        None,
    );
    f.case(
        "AU2: the entries do not reproduce the checkpoint",
        &["Log"],
        input(k(), SOFTWARE, true),
        Some(Error::LogInclusionInvalid),
        None,
    );
    // Appended after the first nineteen so their ids stay stable.
    f.case(
        "AU7: a vendor chain through an intermediate CA: all twelve steps pass",
        &["Attestation"],
        input(Knobs { intermediate_ca: true, ..k() }, SOFTWARE, false),
        None,
        Some(map([("steps", json!(12))])),
    );
    let more: Vec<(Knobs, &str, &str, Error)> = vec![
        (
            Knobs { intermediate_not_ca: true, ..k() },
            "Attestation",
            "AU7: the intermediate's certificate is not a CA certificate",
            Error::AuditAttestationInvalid,
        ),
        (
            Knobs { shared_device: true, ..k() },
            "Attestation",
            "AU7: two nodes attested by the same device",
            Error::AuditDeviceReused,
        ),
        (
            Knobs { duplicate_evidence: true, ..k() },
            "Log",
            "AU6: a second evidence for the same fleet and epoch",
            Error::AuditLogDuplicate,
        ),
        (
            Knobs { time_backwards: true, ..k() },
            "Ceremony",
            "AU11: a step timed before the step it follows",
            Error::AuditTranscriptBroken,
        ),
        (
            Knobs { skip_keygen: true, ..k() },
            "Ceremony",
            "AU12: a node's keygen step is missing",
            Error::AuditTranscriptIncomplete,
        ),
        (
            Knobs { silent_observer: true, ..k() },
            "Ceremony",
            "AU12: a listed participant signed no step",
            Error::AuditTranscriptIncomplete,
        ),
        (
            Knobs { signed_non_evidence: true, ..k() },
            "Evidence",
            "AU3: the operator signed a payload that is not an Evidence",
            Error::EvidenceMalformed,
        ),
        (
            Knobs { unsigned_non_evidence: true, ..k() },
            "Evidence",
            "AU3: a payload that is not an Evidence, not signed by the operator: the signature is checked first",
            Error::AuditEvidenceSignature,
        ),
    ];
    for (knobs, flag, comment, err) in more {
        f.case(comment, &[flag], input(knobs, SOFTWARE, false), Some(err), None);
    }
    let mut other_firmware = input(k(), SOFTWARE, false);
    other_firmware.insert("firmware".into(), json!(hex::encode([0xf2; 32])));
    f.case(
        "AU9: the vendor's published firmware measurement differs",
        &["Attestation"],
        other_firmware,
        Some(Error::AuditMeasurementMismatch),
        None,
    );
    f.finish()
}
