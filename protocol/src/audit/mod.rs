//! The Audit procedure: spec/audit.md steps AU1–AU12 as one pure function.
//!
//! [`audit`] takes everything an auditor fetched (evidence, released bundle, the log's
//! checkpoint and every entry, pinned roots and measurements) and returns an
//! [`AuditReport`]: each step that passed with what it checked, and the first failure.

use crate::audit_log::merkle::Tree;
use crate::audit_log::{EntryType, LogAnchors, LogEntry, LoggedBundle, verify_checkpoint};
use crate::crypto::{PublicKey, ct_eq, sha256};
use crate::error::{Error, Result};
use crate::evidence::{
    AttestationStatement, CT_ATTESTATION, CT_DEVICE_CERT, CT_EVIDENCE, CT_STEP, CeremonyStep, DeviceCert,
    Evidence, Sign1, keyset_core,
};
use crate::validation_bundle::{ClientState, FleetKeySet, TrustAnchors, verify_bundle};
use serde::{Deserialize, Serialize};

#[cfg(any(test, feature = "fixtures"))]
pub mod fixture;
#[cfg(test)]
mod tests;

/// A pinned HSM vendor root (spec/audit.md §1 input 4).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VendorRoot {
    /// The root's name (the `issuer` of the certificates it signs).
    pub name: String,
    /// Its key.
    pub key: PublicKey,
}

/// Everything the auditor brings (spec/audit.md §1).
#[derive(Debug, Clone)]
pub struct AuditInputs<'a> {
    /// The evidence bytes.
    pub evidence: &'a [u8],
    /// The released bundle.
    pub released: &'a LoggedBundle,
    /// The organisations' anchors.
    pub anchors: &'a TrustAnchors,
    /// The log's anchors.
    pub log_anchors: &'a LogAnchors,
    /// The log's latest checkpoint note.
    pub checkpoint: &'a str,
    /// Every log entry, index order.
    pub entries: &'a [Vec<u8>],
    /// Pinned vendor roots.
    pub vendor_roots: &'a [VendorRoot],
    /// The rebuilt node software measurement.
    pub software: [u8; 32],
    /// The vendor's published firmware measurement, if checked.
    pub firmware: Option<[u8; 32]>,
    /// Audit time (POSIX seconds).
    pub now: u64,
}

/// One step that passed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Checked {
    /// `AU1` … `AU12`.
    pub step: String,
    /// What the step checks.
    pub title: String,
    /// What it found, against what.
    pub details: Vec<String>,
}

/// spec/audit.md §2: the result of an audit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AuditReport {
    /// Fleet id and epoch, once known.
    pub fleet: Option<(String, u64)>,
    /// The steps that passed, in order.
    pub passed: Vec<Checked>,
    /// The first failure: `(step, code)`.
    pub failure: Option<(String, String)>,
}

impl AuditReport {
    /// Whether every step passed.
    pub fn ok(&self) -> bool {
        self.failure.is_none()
    }

    /// The failing error, if any.
    pub fn error(&self) -> Option<Error> {
        self.failure.as_ref().and_then(|(_, c)| Error::from_code(c))
    }
}

struct Run {
    report: AuditReport,
}

impl Run {
    fn step<T>(
        &mut self,
        step: &str,
        title: &str,
        f: impl FnOnce(&mut Vec<String>) -> Result<T>,
    ) -> Result<T> {
        let mut details = Vec::new();
        match f(&mut details) {
            Ok(v) => {
                self.report.passed.push(Checked { step: step.into(), title: title.into(), details });
                Ok(v)
            }
            Err(e) => {
                self.report.failure = Some((step.into(), e.code().into()));
                Err(e)
            }
        }
    }
}

/// spec/audit.md: run AU1–AU12, stopping at the first failure.
pub fn audit(inputs: &AuditInputs<'_>) -> AuditReport {
    let mut run = Run { report: AuditReport { fleet: None, passed: Vec::new(), failure: None } };
    let _ = steps(&mut run, inputs);
    run.report
}

fn hexs(b: &[u8]) -> String {
    hex::encode(b)
}

fn steps(run: &mut Run, i: &AuditInputs<'_>) -> Result<()> {
    let bundle = &i.released.bundle;
    // AU1
    let keyset: FleetKeySet =
        run.step("AU1", "bundle signed by the third party, countersigned by the operator", |d| {
            let v = verify_bundle(bundle, i.anchors, &ClientState::default(), i.now)?;
            d.push(format!("bundle sha256 {}", hexs(&sha256(bundle))));
            d.push(format!(
                "fleet {} epoch {}, {} nodes",
                v.keyset().fleet_id,
                v.keyset().epoch,
                v.keyset().nodes.len()
            ));
            Ok(v.keyset().clone())
        })?;
    run.report.fleet = Some((keyset.fleet_id.clone(), keyset.epoch));

    // AU2
    let entries: Vec<LogEntry> =
        run.step("AU2", "log checkpoint verified and recomputed from every entry", |d| {
            let cp = verify_checkpoint(i.checkpoint, i.log_anchors)?;
            let mut tree = Tree::new();
            for e in i.entries {
                tree.push(e);
            }
            if tree.size() != cp.checkpoint.size || !ct_eq(&tree.root(), &cp.checkpoint.root) {
                return Err(Error::LogInclusionInvalid);
            }
            d.push(format!(
                "origin {} size {} root {}",
                cp.checkpoint.origin,
                cp.checkpoint.size,
                hexs(&cp.checkpoint.root)
            ));
            d.push(format!("cosigned by {}", cp.cosigners.join(", ")));
            i.entries.iter().map(|e| LogEntry::from_cbor(e)).collect()
        })?;

    let e = EvidenceInputs {
        evidence: i.evidence,
        anchors: i.anchors,
        vendor_roots: i.vendor_roots,
        software: i.software,
        firmware: i.firmware,
        now: i.now,
    };
    let evidence = evidence_signed(run, &e, &keyset)?;
    // AU5, AU6
    let find = |kind: EntryType, digest: &[u8; 32]| {
        entries.iter().position(|e| {
            e.kind == kind
                && e.fleet_id == keyset.fleet_id
                && e.epoch == keyset.epoch
                && ct_eq(&e.digest, digest)
        })
    };
    run.step("AU5", "evidence and bundle logged, evidence first", |d| {
        let ev = find(EntryType::Evidence, &sha256(i.evidence)).ok_or(Error::AuditEvidenceUnlogged)?;
        let bu = find(EntryType::Bundle, &sha256(bundle)).ok_or(Error::AuditBundleUnlogged)?;
        if ev > bu {
            return Err(Error::AuditEvidenceLate);
        }
        d.push(format!("evidence entry #{ev}, bundle entry #{bu}"));
        Ok(())
    })?;
    let (bundle_digest, evidence_digest) = (sha256(bundle), sha256(i.evidence));
    run.step("AU6", "no other bundle or evidence for this fleet and epoch", |d| {
        let others: Vec<usize> = entries
            .iter()
            .enumerate()
            .filter(|(_, e)| {
                matches!(e.kind, EntryType::Bundle | EntryType::Evidence)
                    && e.fleet_id == keyset.fleet_id
                    && e.epoch == keyset.epoch
                    && !ct_eq(&e.digest, &bundle_digest)
                    && !ct_eq(&e.digest, &evidence_digest)
            })
            .map(|(n, _)| n)
            .collect();
        if !others.is_empty() {
            d.push(format!("conflicting entries {others:?}"));
            return Err(Error::AuditLogDuplicate);
        }
        d.push(format!("{} entries scanned", entries.len()));
        Ok(())
    })?;

    evidence_content(run, &e, &keyset, &evidence)
}

/// What the evidence steps need (spec/audit.md §1 inputs without the log).
#[derive(Debug, Clone)]
pub struct EvidenceInputs<'a> {
    /// The evidence bytes.
    pub evidence: &'a [u8],
    /// The organisations' anchors (AU3 uses the operator's).
    pub anchors: &'a TrustAnchors,
    /// Pinned vendor roots.
    pub vendor_roots: &'a [VendorRoot],
    /// The published node software measurement.
    pub software: [u8; 32],
    /// The vendor's published firmware measurement, if checked.
    pub firmware: Option<[u8; 32]>,
    /// Check time (POSIX seconds).
    pub now: u64,
}

/// spec/evidence.md §2 and spec/audit.md §3: what the third party checks before it signs
/// the FleetKeySet `keyset`: AU3, AU4 and AU7–AU12 (the steps that need neither the signed
/// bundle nor the log). Returns the report of those steps; sign only if it is `ok()`.
pub fn check_before_signing(inputs: &EvidenceInputs<'_>, keyset: &FleetKeySet) -> AuditReport {
    let mut run = Run {
        report: AuditReport {
            fleet: Some((keyset.fleet_id.clone(), keyset.epoch)),
            passed: Vec::new(),
            failure: None,
        },
    };
    let _ = evidence_signed(&mut run, inputs, keyset)
        .and_then(|ev| evidence_content(&mut run, inputs, keyset, &ev));
    run.report
}

/// AU3 and AU4.
fn evidence_signed(run: &mut Run, i: &EvidenceInputs<'_>, keyset: &FleetKeySet) -> Result<Evidence> {
    // AU3
    let (evidence, ev): (Evidence, Sign1) = run.step("AU3", "evidence signed by the operator", |d| {
        let ev = Sign1::parse(i.evidence, CT_EVIDENCE)?;
        let op = i
            .anchors
            .operator
            .iter()
            .find(|a| a.key.kid().as_slice() == ev.kid.as_slice() && a.valid_at(i.now))
            .ok_or(Error::AuditEvidenceSignature)?;
        if !ev.verified_by(&op.key) {
            return Err(Error::AuditEvidenceSignature);
        }
        d.push(format!(
            "evidence sha256 {}, signed by operator anchor {:?}",
            hexs(&sha256(i.evidence)),
            op.name
        ));
        let evidence: Evidence = ev.decode()?;
        version_1(evidence.v)?;
        Ok((evidence, ev))
    })?;
    drop(ev);

    // AU4
    run.step("AU4", "FleetKeySet and evidence name each other", |d| {
        let digest = sha256(i.evidence);
        if !keyset.evidence.is_some_and(|e| ct_eq(&e, &digest)) {
            return Err(Error::AuditEvidenceMismatch);
        }
        let core = keyset_core(keyset);
        if evidence.fleet_id != keyset.fleet_id
            || evidence.epoch != keyset.epoch
            || !ct_eq(&evidence.keyset_core, &core)
        {
            return Err(Error::AuditKeysetMismatch);
        }
        d.push(format!("FleetKeySet evidence = {}", hexs(&digest)));
        d.push(format!("evidence keyset_core = {}", hexs(&core)));
        Ok(())
    })?;

    Ok(evidence)
}

/// AU7–AU12.
fn evidence_content(
    run: &mut Run,
    i: &EvidenceInputs<'_>,
    keyset: &FleetKeySet,
    evidence: &Evidence,
) -> Result<()> {
    // AU7
    let statements: Vec<(AttestationStatement, DeviceCert)> =
        run.step("AU7", "every attestation chains to a pinned vendor root", |d| {
            evidence
                .attestations
                .iter()
                .map(|a| {
                    let (statement, device, root) = check_chain(a, i.vendor_roots)?;
                    d.push(format!(
                        "{}: device {} firmware {} via root {:?}",
                        a.node_id,
                        device.subject,
                        hexs(&device.firmware),
                        root
                    ));
                    Ok((statement, device))
                })
                .collect::<Result<Vec<_>>>()
                .and_then(|all| distinct_devices(&all).map(|()| all))
        })?;

    // AU8
    run.step("AU8", "the bundle's keys are exactly the attested keys", |d| {
        if statements.len() != keyset.nodes.len() || evidence.attestations.len() != keyset.nodes.len() {
            return Err(Error::AuditKeysMismatch);
        }
        for ((s, _), (node, a)) in statements.iter().zip(keyset.nodes.iter().zip(&evidence.attestations)) {
            if a.node_id != node.id
                || s.node_id != node.id
                || s.fleet_id != keyset.fleet_id
                || s.epoch != keyset.epoch
                || s.keys != node.keys
            {
                return Err(Error::AuditKeysMismatch);
            }
            d.push(format!("{}: {} keys attested", node.id, s.keys.len()));
        }
        Ok(())
    })?;

    // AU9
    run.step("AU9", "firmware and software measurements are the published ones", |d| {
        if !ct_eq(&evidence.software.measurement, &i.software) {
            return Err(Error::AuditMeasurementMismatch);
        }
        for (s, cert) in &statements {
            if !ct_eq(&s.firmware, &cert.firmware)
                || i.firmware.is_some_and(|f| !ct_eq(&f, &s.firmware))
                || !ct_eq(&s.software, &evidence.software.measurement)
            {
                return Err(Error::AuditMeasurementMismatch);
            }
        }
        d.push(format!("software {} (recipe: {})", hexs(&i.software), evidence.software.recipe));
        match i.firmware {
            Some(f) => d.push(format!("firmware {}", hexs(&f))),
            None => d.push(
                "firmware: each statement equals its device certificate (no published value given)".into(),
            ),
        }
        Ok(())
    })?;

    // AU10
    run.step("AU10", "policy equals the FleetKeySet", |d| {
        let dcs: Vec<String> = keyset.nodes.iter().map(|n| n.datacenter.clone()).collect();
        let p = &evidence.policy;
        if p.guess_limit != keyset.guess_limit || p.quorum != keyset.quorum || p.datacenters != dcs {
            return Err(Error::AuditPolicyMismatch);
        }
        d.push(format!(
            "guess limit {}, quorum {}, datacenters {:?}",
            p.guess_limit, p.quorum, p.datacenters
        ));
        Ok(())
    })?;

    // AU11
    let steps: Vec<(CeremonyStep, String)> =
        run.step("AU11", "ceremony transcript chained and signed", |d| {
            let mut out = Vec::new();
            let mut prev = [0u8; 32];
            let mut last_time = 0;
            for (n, bytes) in evidence.ceremony.steps.iter().enumerate() {
                let s = Sign1::parse(bytes, CT_STEP)?;
                let step: CeremonyStep = s.decode()?;
                if step.seq != n as u64 || !ct_eq(&step.prev, &prev) || step.time < last_time {
                    return Err(Error::AuditTranscriptBroken);
                }
                let who = evidence
                    .ceremony
                    .participants
                    .iter()
                    .find(|p| s.verified_by(&p.key))
                    .ok_or(Error::AuditTranscriptSignature)?;
                d.push(format!(
                    "#{} {} {} {} by {}",
                    step.seq, step.time, step.action, step.subject, who.name
                ));
                prev = sha256(bytes);
                last_time = step.time;
                out.push((step, who.name.clone()));
            }
            Ok(out)
        })?;

    // AU12
    run.step("AU12", "ceremony transcript complete", |d| {
        let mut want = vec![("open".to_owned(), None)];
        want.extend(keyset.nodes.iter().map(|n| ("keygen".to_owned(), Some(n.id.clone()))));
        want.extend(keyset.nodes.iter().map(|n| ("attest".to_owned(), Some(n.id.clone()))));
        want.push(("keyset".into(), Some(hexs(&evidence.keyset_core))));
        want.push(("close".into(), None));
        let mut it = steps.iter();
        for (action, subject) in &want {
            let found =
                it.any(|(s, _)| &s.action == action && subject.as_ref().is_none_or(|x| &s.subject == x));
            if !found {
                return Err(Error::AuditTranscriptIncomplete);
            }
        }
        if steps.first().map(|s| s.0.action.as_str()) != Some("open")
            || steps.last().map(|s| s.0.action.as_str()) != Some("close")
        {
            return Err(Error::AuditTranscriptIncomplete);
        }
        for p in &evidence.ceremony.participants {
            if !steps.iter().any(|(_, who)| who == &p.name) {
                return Err(Error::AuditTranscriptIncomplete);
            }
        }
        d.push(format!("{} steps, {} participants", steps.len(), evidence.ceremony.participants.len()));
        Ok(())
    })?;
    Ok(())
}

/// spec/evidence.md §5: a `"v"` other than 1 in a structure of spec/evidence.md is a
/// decoding failure, `evidence.malformed`, like any other mismatch with its CDDL.
fn version_1(v: u64) -> Result<()> {
    if v == 1 { Ok(()) } else { Err(Error::EvidenceMalformed) }
}

/// spec/evidence.md §3: verify one attestation's chain up to a pinned root; returns the
/// statement, the device cert and the root's name.
fn check_chain(
    a: &crate::evidence::Attestation,
    roots: &[VendorRoot],
) -> Result<(AttestationStatement, DeviceCert, String)> {
    let invalid = Error::AuditAttestationInvalid;
    let certs: Vec<(Sign1, DeviceCert)> = a
        .chain
        .iter()
        .map(|b| {
            let s = Sign1::parse(b, CT_DEVICE_CERT)?;
            let c: DeviceCert = s.decode()?;
            version_1(c.v)?;
            Ok((s, c))
        })
        .collect::<Result<_>>()?;
    let (first, rest) = certs.split_first().ok_or(invalid)?;
    if first.1.ca {
        return Err(invalid);
    }
    for (k, (s, c)) in certs.iter().enumerate() {
        if let Some((_, parent)) = rest.get(k)
            && (!parent.ca || parent.subject != c.issuer || !s.verified_by(&parent.key))
        {
            return Err(invalid);
        }
    }
    let (top_sig, top) = certs.last().ok_or(invalid)?;
    let root = roots.iter().find(|r| r.name == top.issuer).ok_or(Error::AuditAttestationUntrusted)?;
    if !top_sig.verified_by(&root.key) {
        // A pinned name with another key is a root we do not trust.
        return Err(Error::AuditAttestationUntrusted);
    }
    let st = Sign1::parse(&a.statement, CT_ATTESTATION)?;
    if !st.verified_by(&first.1.key) {
        return Err(invalid);
    }
    let statement: AttestationStatement = st.decode()?;
    version_1(statement.v)?;
    if statement.device != first.1.subject {
        return Err(invalid);
    }
    Ok((statement, first.1.clone(), root.name.clone()))
}

/// spec/audit.md AU7: no two attestations name the same device, by identity (issuer and
/// subject) or by key.
fn distinct_devices(all: &[(AttestationStatement, DeviceCert)]) -> Result<()> {
    for (n, (_, a)) in all.iter().enumerate() {
        for (_, b) in &all[..n] {
            if (a.issuer == b.issuer && a.subject == b.subject) || a.key == b.key {
                return Err(Error::AuditDeviceReused);
            }
        }
    }
    Ok(())
}

/// Convenience for callers that want the error: `Ok` if the audit passed.
pub fn audit_result(inputs: &AuditInputs<'_>) -> Result<AuditReport> {
    let r = audit(inputs);
    match r.error() {
        Some(e) => Err(e),
        None => Ok(r),
    }
}
