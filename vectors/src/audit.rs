//! Vectors for spec/audit.md (the Audit procedure over spec/evidence.md), operation
//! `audit`. Each case is the fixed sample deployment of `bkv_protocol::audit::fixture`
//! with one thing broken; its expected code is the step of spec/audit.md §2 that checks
//! that thing.

use crate::cases;
use crate::format::{Case, FileBuilder, VectorFile, map};
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
    ("Inputs", "the order in which the inputs are decoded (§1)"),
    crate::produce::NOTE,
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

/// The sample deployment with `knobs` broken, refused with `e`.
fn broken(flags: &'static [&'static str], knobs: Knobs, e: Error) -> Case {
    Case::invalid(flags, input(knobs, SOFTWARE, false), e)
}

/// The clean deployment's input with the released bundle's last byte flipped, and the
/// code AU1 gives for it.
fn broken_bundle() -> (BTreeMap<String, Value>, Error) {
    let mut input = input(Knobs::default(), SOFTWARE, false);
    let b = build(Knobs::default());
    let mut released = b.released.clone();
    let last = released.bundle.len() - 1;
    released.bundle[last] ^= 1;
    let au1 = bkv_protocol::validation_bundle::verify_bundle(
        &released.bundle,
        &b.anchors,
        &bkv_protocol::validation_bundle::ClientState::default(),
        NOW,
    )
    .expect_err("a flipped signature byte fails AU1");
    input.insert("released".into(), json!(hex::encode(released.to_cbor())));
    (input, au1)
}

/// The clean deployment with the evidence's COSE_Sign1 items edited (the signature is
/// left as it was), refused with `e`.
fn evidence_envelope(edit: impl FnOnce(&mut Vec<ciborium::Value>), e: Error) -> Case {
    use ciborium::Value;
    let mut input = input(Knobs::default(), SOFTWARE, false);
    let b = build(Knobs::default());
    let Ok(Value::Tag(18, inner)) = cbor::value_from_slice(&b.evidence, &[18]) else {
        panic!("the fixture's evidence is a COSE_Sign1")
    };
    let Value::Array(mut items) = *inner else { panic!("a COSE_Sign1 array") };
    edit(&mut items);
    let edited = cbor::value_to_vec(&Value::Tag(18, Box::new(Value::Array(items))));
    input.insert("evidence".into(), json!(hex::encode(edited)));
    Case::invalid(&["Evidence"], input, e)
}

/// The same with the protected header's map entries (`1: alg`, `3: content type`,
/// `4: kid`, in that order) edited and re-encoded.
fn evidence_protected(edit: impl FnOnce(&mut Vec<(ciborium::Value, ciborium::Value)>), e: Error) -> Case {
    use ciborium::Value;
    evidence_envelope(
        |items| {
            let Value::Bytes(protected) = &items[0] else { panic!("a protected header") };
            let Ok(Value::Map(mut header)) = cbor::value_from_slice(protected, &[]) else {
                panic!("a protected header map")
            };
            edit(&mut header);
            items[0] = Value::Bytes(cbor::value_to_vec(&Value::Map(header)));
        },
        e,
    )
}

/// Each case builds its own deployment from the fixture; there is nothing to share.
struct World;

cases! { World, AUDIT;
    /// a clean ceremony: all twelve steps pass
    fn clean(_w) {
        Case::valid(&["Clean"], input(Knobs::default(), SOFTWARE, false), Some(map([("steps", json!(12))])))
    }
    /// AU3: the policy edited after the operator signed
    fn tamper_evidence(_w) {
        broken(&["Evidence"], Knobs { tamper_evidence: true, ..Knobs::default() }, Error::AuditEvidenceSignature)
    }
    /// AU3: not an evidence COSE_Sign1 (wrong content type)
    fn garbage_evidence(_w) {
        broken(&["Evidence"], Knobs { garbage_evidence: true, ..Knobs::default() }, Error::EvidenceMalformed)
    }
    /// AU4: the FleetKeySet names other evidence
    fn keyset_names_other_evidence(_w) {
        broken(&["Evidence"], Knobs { keyset_names_other_evidence: true, ..Knobs::default() }, Error::AuditEvidenceMismatch)
    }
    /// AU4: the evidence is for another epoch
    fn evidence_epoch(_w) {
        broken(&["Evidence"], Knobs { evidence_epoch: Some(2), ..Knobs::default() }, Error::AuditKeysetMismatch)
    }
    /// AU5: the evidence is missing from the log
    fn omit_evidence_entry(_w) {
        broken(&["Log"], Knobs { omit_evidence_entry: true, ..Knobs::default() }, Error::AuditEvidenceUnlogged)
    }
    /// AU5: the bundle is missing from the log
    fn omit_bundle_entry(_w) {
        broken(&["Log"], Knobs { omit_bundle_entry: true, ..Knobs::default() }, Error::AuditBundleUnlogged)
    }
    /// AU5: the evidence was logged after the bundle
    fn bundle_logged_first(_w) {
        broken(&["Log"], Knobs { bundle_logged_first: true, ..Knobs::default() }, Error::AuditEvidenceLate)
    }
    /// AU5, AU6: the same bundle logged twice is not a duplicate
    fn bundle_logged_twice(_w) {
        let input = input(Knobs { bundle_logged_twice: true, ..Knobs::default() }, SOFTWARE, false);
        Case::valid(&["Log"], input, Some(map([("steps", json!(12))])))
    }
    /// AU6: a retirement entry for the same fleet and epoch is neither a bundle nor evidence
    fn retirement_entry_is_not_a_duplicate(_w) {
        let input = input(Knobs { retirement_entry: true, ..Knobs::default() }, SOFTWARE, false);
        Case::valid(&["Log"], input, Some(map([("steps", json!(12))])))
    }
    /// AU5: the only bundle entry with the bundle's digest names another fleet
    fn bundle_entry_of_another_fleet(_w) {
        broken(&["Log"], Knobs { bundle_entry_other_fleet: true, ..Knobs::default() }, Error::AuditBundleUnlogged)
    }
    /// AU6: a second bundle for the same fleet and epoch
    fn duplicate_bundle(_w) {
        broken(&["Log"], Knobs { duplicate_bundle: true, ..Knobs::default() }, Error::AuditLogDuplicate)
    }
    /// AU7: device certificates from an unknown vendor root
    fn foreign_root(_w) {
        broken(&["Attestation"], Knobs { foreign_root: true, ..Knobs::default() }, Error::AuditAttestationUntrusted)
    }
    /// AU7: a statement not signed by its device key
    fn statement_by_other_key(_w) {
        broken(&["Attestation"], Knobs { statement_by_other_key: true, ..Knobs::default() }, Error::AuditAttestationInvalid)
    }
    /// AU7: a statement whose `device` is not its certificate's subject
    fn statement_device_not_the_cert_subject(_w) {
        broken(&["Attestation"], Knobs { statement_device_other: true, ..Knobs::default() }, Error::AuditAttestationInvalid)
    }
    /// AU8: a statement listing its node's keys in another order
    fn statement_keys_in_another_order(_w) {
        broken(&["Attestation"], Knobs { statement_keys_reordered: true, ..Knobs::default() }, Error::AuditKeysMismatch)
    }
    /// AU9: the auditor gives no firmware measurement (`firmware: null`): only the
    /// statements against their certificates are compared
    fn no_firmware_measurement(_w) {
        let mut input = input(Knobs::default(), SOFTWARE, false);
        input.insert("firmware".into(), Value::Null);
        Case::valid(&["Attestation"], input, Some(map([("steps", json!(12))])))
    }
    /// AU8: a bundle key not in the attestations
    fn attest_other_session_key(_w) {
        broken(&["Attestation"], Knobs { attest_other_session_key: true, ..Knobs::default() }, Error::AuditKeysMismatch)
    }
    /// AU9: a statement reports other software
    fn statement_software(_w) {
        broken(&["Attestation"], Knobs { statement_software: Some([1; 32]), ..Knobs::default() }, Error::AuditMeasurementMismatch)
    }
    /// AU10: the evidence states another guess limit
    fn policy_limit(_w) {
        broken(&["Evidence"], Knobs { policy_limit: Some(5), ..Knobs::default() }, Error::AuditPolicyMismatch)
    }
    /// AU11: a step's prev digest is wrong
    fn break_chain(_w) {
        broken(&["Ceremony"], Knobs { break_chain: true, ..Knobs::default() }, Error::AuditTranscriptBroken)
    }
    /// AU11: steps signed by someone not listed
    fn step_by_stranger(_w) {
        broken(&["Ceremony"], Knobs { step_by_stranger: true, ..Knobs::default() }, Error::AuditTranscriptSignature)
    }
    /// AU12: an unrequired step between the required ones: they form a subsequence
    fn transcript_with_an_extra_step(_w) {
        let input = input(Knobs { extra_step: true, ..Knobs::default() }, SOFTWARE, false);
        Case::valid(&["Ceremony"], input, Some(map([("steps", json!(12))])))
    }
    /// AU12: the keygen steps in reverse node order
    fn keygen_steps_out_of_node_order(_w) {
        broken(&["Ceremony"], Knobs { keygen_reversed: true, ..Knobs::default() }, Error::AuditTranscriptIncomplete)
    }
    /// AU12: the close step is missing
    fn skip_close(_w) {
        broken(&["Ceremony"], Knobs { skip_close: true, ..Knobs::default() }, Error::AuditTranscriptIncomplete)
    }
    /// §1: vendor roots that are not a list, and a bundle whose last byte is flipped: the
    /// inputs are decoded before AU1
    fn inputs_decoded_before_au1(_w) {
        let (mut input, _) = broken_bundle();
        input.insert("vendor_roots".into(), json!("a0"));
        Case::invalid(&["Inputs"], input, Error::CborSchema)
    }
    /// §1: log anchors that decode but break audit-log.md §7.1 (K above the witnesses),
    /// and the same broken bundle: the anchors' rules are AU2's, so AU1 fails first
    fn log_anchor_rules_after_au1(_w) {
        let (mut input, au1) = broken_bundle();
        let mut b = build(Knobs::default());
        b.log_anchors.threshold = b.log_anchors.witnesses.len() as u64 + 1;
        input.insert("log_anchors".into(), json!(hex::encode(cbor::to_vec(&b.log_anchors))));
        Case::invalid(&["Inputs"], input, au1)
    }
    /// AU3: the envelope's protected header is the empty byte string (not a CBOR item)
    fn evidence_protected_header_empty(_w) {
        evidence_envelope(|items| items[0] = ciborium::Value::Bytes(Vec::new()), Error::CborMalformed)
    }
    /// AU3: a non-empty unprotected header and an empty protected one: the unprotected
    /// header is checked first
    fn evidence_unprotected_header_checked_first(_w) {
        evidence_envelope(
            |items| {
                items[0] = ciborium::Value::Bytes(Vec::new());
                items[1] = ciborium::Value::Map(vec![(1.into(), (-19).into())]);
            },
            Error::EvidenceMalformed,
        )
    }
    /// AU3: alg -7 (ES256, deprecated by RFC 9864) in the protected header
    fn evidence_alg_deprecated(_w) {
        evidence_protected(|h| h[0].1 = (-7).into(), Error::EvidenceMalformed)
    }
    /// AU3: alg as a text string
    fn evidence_alg_text(_w) {
        evidence_protected(|h| h[0].1 = "EdDSA".into(), Error::EvidenceMalformed)
    }
    /// AU3: a kid that names no operator anchor (the signature is not tried)
    fn evidence_kid_of_another_key(_w) {
        evidence_protected(|h| h[2].1 = ciborium::Value::Bytes(vec![0x11; 32]), Error::AuditEvidenceSignature)
    }
    /// AU9: the rebuilt software measurement differs
    fn rebuilt_software_differs(_w) {
        Case::invalid(&["Attestation"], input(Knobs::default(), [0x51; 32], false), Error::AuditMeasurementMismatch)
    }
    /// AU2: the entries do not reproduce the checkpoint
    fn entries_do_not_reproduce_checkpoint(_w) {
        Case::invalid(&["Log"], input(Knobs::default(), SOFTWARE, true), Error::LogInclusionInvalid)
    }
    /// AU7: a vendor chain through an intermediate CA: all twelve steps pass
    fn intermediate_ca(_w) {
        // Appended after the first nineteen cases so their ids stay stable.
        let input = input(Knobs { intermediate_ca: true, ..Knobs::default() }, SOFTWARE, false);
        Case::valid(&["Attestation"], input, Some(map([("steps", json!(12))])))
    }
    /// AU7: the intermediate's certificate is not a CA certificate
    fn intermediate_not_ca(_w) {
        broken(&["Attestation"], Knobs { intermediate_not_ca: true, ..Knobs::default() }, Error::AuditAttestationInvalid)
    }
    /// AU7: two nodes attested by the same device
    fn shared_device(_w) {
        broken(&["Attestation"], Knobs { shared_device: true, ..Knobs::default() }, Error::AuditDeviceReused)
    }
    /// AU6: a second evidence for the same fleet and epoch
    fn duplicate_evidence(_w) {
        broken(&["Log"], Knobs { duplicate_evidence: true, ..Knobs::default() }, Error::AuditLogDuplicate)
    }
    /// AU11: a step timed before the step it follows
    fn time_backwards(_w) {
        broken(&["Ceremony"], Knobs { time_backwards: true, ..Knobs::default() }, Error::AuditTranscriptBroken)
    }
    /// AU12: a node's keygen step is missing
    fn skip_keygen(_w) {
        broken(&["Ceremony"], Knobs { skip_keygen: true, ..Knobs::default() }, Error::AuditTranscriptIncomplete)
    }
    /// AU12: a listed participant signed no step
    fn silent_observer(_w) {
        broken(&["Ceremony"], Knobs { silent_observer: true, ..Knobs::default() }, Error::AuditTranscriptIncomplete)
    }
    /// AU3: the operator signed a payload that is not an Evidence
    fn signed_non_evidence(_w) {
        broken(&["Evidence"], Knobs { signed_non_evidence: true, ..Knobs::default() }, Error::EvidenceMalformed)
    }
    /// AU3: a payload that is not an Evidence, not signed by the operator: the signature is checked first
    fn unsigned_non_evidence(_w) {
        broken(&["Evidence"], Knobs { unsigned_non_evidence: true, ..Knobs::default() }, Error::AuditEvidenceSignature)
    }
    /// AU9: the vendor's published firmware measurement differs
    fn published_firmware_differs(_w) {
        let mut other_firmware = input(Knobs::default(), SOFTWARE, false);
        other_firmware.insert("firmware".into(), json!(hex::encode([0xf2; 32])));
        Case::invalid(&["Attestation"], other_firmware, Error::AuditMeasurementMismatch)
    }
    /// AU3: the Evidence's "v" is 2: a decoding failure, like any other mismatch with
    /// its CDDL (evidence.md §5), before AU4 compares it with the FleetKeySet
    fn evidence_version_2(_w) {
        broken(&["Evidence"], Knobs { evidence_v2: true, ..Knobs::default() }, Error::EvidenceMalformed)
    }
    /// AU7: an AttestationStatement's "v" is 2: a decoding failure (evidence.md §5)
    fn statement_version_2(_w) {
        broken(&["Attestation"], Knobs { statement_v2: true, ..Knobs::default() }, Error::EvidenceMalformed)
    }
}

/// The audit vector file.
pub fn generate() -> VectorFile {
    let mut f = FileBuilder::new("audit", "spec/audit.md", NOTES);
    f.group("audit", "§2");
    f.cases(&mut World, AUDIT);
    crate::produce::add_audit(&mut f);
    f.finish()
}
