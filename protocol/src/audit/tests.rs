//! spec/audit.md: a clean deployment audits green; each failure has its own code.

use super::fixture::{FIRMWARE, FLEET, Knobs, NOW, SOFTWARE, build};
use super::*;

fn run(k: Knobs, software: [u8; 32]) -> AuditReport {
    let b = build(k);
    audit(&AuditInputs {
        evidence: &b.evidence,
        released: &b.released,
        anchors: &b.anchors,
        log_anchors: &b.log_anchors,
        checkpoint: &b.checkpoint,
        entries: &b.entries,
        vendor_roots: &b.roots,
        software,
        firmware: Some(FIRMWARE),
        now: NOW,
    })
}

fn code(k: Knobs) -> String {
    let r = run(k, SOFTWARE);
    r.failure.map(|(_, c)| c).unwrap_or_else(|| "passed".into())
}

#[test]
fn a_clean_ceremony_audits_green() {
    let r = run(Knobs::default(), SOFTWARE);
    assert!(r.ok(), "{:?}", r.failure);
    let steps: Vec<_> = r.passed.iter().map(|c| c.step.as_str()).collect();
    assert_eq!(
        steps,
        ["AU1", "AU2", "AU3", "AU4", "AU5", "AU6", "AU7", "AU8", "AU9", "AU10", "AU11", "AU12"]
    );
    assert_eq!(r.fleet, Some((FLEET.into(), 1)));
}

#[test]
fn each_failure_has_its_own_code() {
    let k = Knobs::default;
    let cases: Vec<(Knobs, &str)> = vec![
        (Knobs { tamper_evidence: true, ..k() }, "audit.evidence.signature"),
        (Knobs { garbage_evidence: true, ..k() }, "evidence.malformed"),
        (Knobs { keyset_names_other_evidence: true, ..k() }, "audit.evidence.mismatch"),
        (Knobs { evidence_epoch: Some(2), ..k() }, "audit.keyset.mismatch"),
        (Knobs { omit_evidence_entry: true, ..k() }, "audit.evidence.unlogged"),
        (Knobs { omit_bundle_entry: true, ..k() }, "audit.bundle.unlogged"),
        (Knobs { bundle_logged_first: true, ..k() }, "audit.evidence.late"),
        (Knobs { duplicate_bundle: true, ..k() }, "audit.log.duplicate"),
        (Knobs { foreign_root: true, ..k() }, "audit.attestation.untrusted"),
        (Knobs { statement_by_other_key: true, ..k() }, "audit.attestation.invalid"),
        (Knobs { attest_other_session_key: true, ..k() }, "audit.keys.mismatch"),
        (Knobs { statement_software: Some([1; 32]), ..k() }, "audit.measurement.mismatch"),
        (Knobs { policy_limit: Some(5), ..k() }, "audit.policy.mismatch"),
        (Knobs { break_chain: true, ..k() }, "audit.transcript.broken"),
        (Knobs { step_by_stranger: true, ..k() }, "audit.transcript.signature"),
        (Knobs { skip_close: true, ..k() }, "audit.transcript.incomplete"),
    ];
    for (knobs, want) in cases {
        assert_eq!(code(knobs), want);
    }
}

#[test]
fn a_measurement_other_than_the_rebuilt_one_fails() {
    let r = run(Knobs::default(), [0x51; 32]);
    assert_eq!(r.failure, Some(("AU9".into(), "audit.measurement.mismatch".into())));
    // Every step before the failure is reported as passed.
    assert_eq!(r.passed.len(), 8);
}

#[test]
fn an_entry_list_that_does_not_match_the_checkpoint_fails_au2() {
    let mut b = build(Knobs::default());
    b.entries.pop();
    let r = audit(&AuditInputs {
        evidence: &b.evidence,
        released: &b.released,
        anchors: &b.anchors,
        log_anchors: &b.log_anchors,
        checkpoint: &b.checkpoint,
        entries: &b.entries,
        vendor_roots: &b.roots,
        software: SOFTWARE,
        firmware: None,
        now: NOW,
    });
    assert_eq!(r.failure, Some(("AU2".into(), "log.inclusion.invalid".into())));
}

// One test per rule the table above does not reach: each builds a deployment that breaks
// exactly that rule (or, for the intermediate chain, none) and checks the step and code.

fn failure(k: Knobs) -> Option<(String, String)> {
    run(k, SOFTWARE).failure
}

fn fails(step: &str, code: &str) -> Option<(String, String)> {
    Some((step.into(), code.into()))
}

#[test]
fn a_vendor_chain_through_an_intermediate_audits_green() {
    let r = run(Knobs { intermediate_ca: true, ..Knobs::default() }, SOFTWARE);
    assert!(r.ok(), "{:?}", r.failure);
    let au7 = r.passed.iter().find(|c| c.step == "AU7").unwrap();
    assert!(au7.details.iter().all(|d| d.contains("\"vendor root\"")), "{:?}", au7.details);
}

#[test]
fn an_intermediate_that_is_not_a_ca_is_attestation_invalid() {
    assert_eq!(
        failure(Knobs { intermediate_not_ca: true, ..Knobs::default() }),
        fails("AU7", "audit.attestation.invalid")
    );
}

#[test]
fn two_nodes_attested_by_one_device_is_device_reused() {
    assert_eq!(
        failure(Knobs { shared_device: true, ..Knobs::default() }),
        fails("AU7", "audit.device.reused")
    );
}

#[test]
fn a_second_evidence_for_the_same_fleet_and_epoch_is_a_log_duplicate() {
    assert_eq!(
        failure(Knobs { duplicate_evidence: true, ..Knobs::default() }),
        fails("AU6", "audit.log.duplicate")
    );
}

#[test]
fn a_second_bundle_for_the_same_fleet_and_epoch_is_a_log_duplicate() {
    assert_eq!(
        failure(Knobs { duplicate_bundle: true, ..Knobs::default() }),
        fails("AU6", "audit.log.duplicate")
    );
}

#[test]
fn a_step_timed_before_its_predecessor_breaks_the_transcript() {
    assert_eq!(
        failure(Knobs { time_backwards: true, ..Knobs::default() }),
        fails("AU11", "audit.transcript.broken")
    );
}

#[test]
fn a_missing_keygen_step_makes_the_transcript_incomplete() {
    assert_eq!(
        failure(Knobs { skip_keygen: true, ..Knobs::default() }),
        fails("AU12", "audit.transcript.incomplete")
    );
}

#[test]
fn a_participant_who_signed_nothing_makes_the_transcript_incomplete() {
    assert_eq!(
        failure(Knobs { silent_observer: true, ..Knobs::default() }),
        fails("AU12", "audit.transcript.incomplete")
    );
}

#[test]
fn a_firmware_other_than_the_vendors_published_one_fails() {
    let b = build(Knobs::default());
    let r = audit(&AuditInputs {
        evidence: &b.evidence,
        released: &b.released,
        anchors: &b.anchors,
        log_anchors: &b.log_anchors,
        checkpoint: &b.checkpoint,
        entries: &b.entries,
        vendor_roots: &b.roots,
        software: SOFTWARE,
        firmware: Some([0xf2; 32]),
        now: NOW,
    });
    assert_eq!(r.failure, fails("AU9", "audit.measurement.mismatch"));
}

#[test]
fn the_reports_error_is_the_failing_code() {
    let r = run(Knobs { shared_device: true, ..Knobs::default() }, SOFTWARE);
    assert_eq!(r.error(), Some(Error::AuditDeviceReused));
    assert_eq!(r.passed.len(), 6, "AU1..AU6 passed before AU7 failed");
}

#[test]
fn a_signed_payload_that_is_not_evidence_is_malformed() {
    assert_eq!(
        failure(Knobs { signed_non_evidence: true, ..Knobs::default() }),
        fails("AU3", "evidence.malformed")
    );
}

#[test]
fn an_unsigned_payload_is_refused_before_it_is_parsed() {
    // spec/audit.md AU3: the signature is checked before the payload is decoded.
    assert_eq!(
        failure(Knobs { unsigned_non_evidence: true, ..Knobs::default() }),
        fails("AU3", "audit.evidence.signature")
    );
}

/// spec/evidence.md §2: the third party's check before it signs runs AU3, AU4 and
/// AU7–AU12 on the FleetKeySet it is asked to sign, with no bundle and no log.
fn before_signing(k: Knobs) -> AuditReport {
    let b = build(k);
    let parsed = crate::validation_bundle::Parsed::parse(&b.released.bundle).unwrap();
    let keyset = FleetKeySet::from_bytes(&parsed.payload).unwrap();
    check_before_signing(
        &EvidenceInputs {
            evidence: &b.evidence,
            anchors: &b.anchors,
            vendor_roots: &b.roots,
            software: SOFTWARE,
            firmware: Some(FIRMWARE),
            now: NOW,
        },
        &keyset,
    )
}

#[test]
fn the_signer_checks_the_evidence_before_it_signs() {
    let r = before_signing(Knobs::default());
    assert!(r.ok(), "{:?}", r.failure);
    let steps: Vec<_> = r.passed.iter().map(|c| c.step.as_str()).collect();
    assert_eq!(steps, ["AU3", "AU4", "AU7", "AU8", "AU9", "AU10", "AU11", "AU12"]);
    let k = Knobs::default;
    for (knobs, want) in [
        (Knobs { tamper_evidence: true, ..k() }, "audit.evidence.signature"),
        (Knobs { keyset_names_other_evidence: true, ..k() }, "audit.evidence.mismatch"),
        (Knobs { foreign_root: true, ..k() }, "audit.attestation.untrusted"),
        (Knobs { attest_other_session_key: true, ..k() }, "audit.keys.mismatch"),
        (Knobs { statement_software: Some([1; 32]), ..k() }, "audit.measurement.mismatch"),
        (Knobs { break_chain: true, ..k() }, "audit.transcript.broken"),
    ] {
        let r = before_signing(knobs);
        assert_eq!(r.failure.map(|(_, c)| c).as_deref(), Some(want));
    }
    // The log steps are not its business: a deployment whose entries are missing from the
    // log still passes the signer's check (the log is written after it).
    assert!(before_signing(Knobs { omit_evidence_entry: true, omit_bundle_entry: true, ..k() }).ok());
}

/// spec/evidence.md §2: `keyset_core` over the received FleetKeySet bytes with the value of
/// `evidence` replaced by null in place equals the digest of the re-encoding with
/// `evidence: null` (what `keyset_core` computes).
#[test]
fn keyset_core_is_the_received_bytes_with_evidence_nulled_in_place() {
    let b = build(Knobs::default());
    let payload = crate::validation_bundle::Parsed::parse(&b.released.bundle).unwrap().payload;
    let ks = FleetKeySet::from_bytes(&payload).unwrap();
    let digest = ks.evidence.expect("the fixture names its evidence");
    let mut value = vec![0x58, 0x20];
    value.extend_from_slice(&digest);
    let at = payload.windows(value.len()).position(|w| w == value.as_slice()).unwrap();
    let mut nulled = payload[..at].to_vec();
    nulled.push(0xf6);
    nulled.extend_from_slice(&payload[at + value.len()..]);
    assert_eq!(sha256(&nulled), keyset_core(&ks));
}
