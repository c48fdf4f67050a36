//! spec/audit.md: a clean deployment audits green; each failure has its own code.

use super::*;
use crate::audit_log::note::{Note, SIG_TYPE_ED25519, sign_note, verifier_key};
use crate::audit_log::{Checkpoint, InclusionProof, LogProof};
use crate::cbor;
use crate::crypto::{Ed25519Signer, Esp256Signer, Signer};
use crate::evidence::{
    Attestation, Evidence, Issuer, Participant, Policy, Software, Transcript, attest, sign_evidence, sign1,
};
use crate::session::SessionSecretKey;
use crate::validation_bundle::{Anchor, Claims, KeyRole, Node, NodeKey, countersign, keyset, sign};
use crate::vault::VaultServerSetup;
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

const FLEET: &str = "audit.example/vault";
const NOW: u64 = 1_800_000_000;
const SOFTWARE: [u8; 32] = [0x50; 32];
const FIRMWARE: [u8; 32] = [0xf1; 32];

/// What to break.
#[derive(Default, Clone, Copy)]
struct Knobs {
    tamper_evidence: bool,
    garbage_evidence: bool,
    keyset_names_other_evidence: bool,
    evidence_epoch: Option<u64>,
    omit_evidence_entry: bool,
    omit_bundle_entry: bool,
    bundle_logged_first: bool,
    duplicate_bundle: bool,
    foreign_root: bool,
    statement_by_other_key: bool,
    attest_other_session_key: bool,
    statement_software: Option<[u8; 32]>,
    policy_limit: Option<u32>,
    break_chain: bool,
    step_by_stranger: bool,
    skip_close: bool,
}

struct Built {
    evidence: Vec<u8>,
    released: LoggedBundle,
    anchors: TrustAnchors,
    log_anchors: LogAnchors,
    checkpoint: String,
    entries: Vec<Vec<u8>>,
    roots: Vec<VendorRoot>,
}

fn build(k: Knobs) -> Built {
    let mut rng = ChaCha20Rng::seed_from_u64(42);
    let tp = Ed25519Signer::generate(&mut rng);
    let op = Esp256Signer::generate(&mut rng);
    let vendor = Ed25519Signer::generate(&mut rng);
    let stranger = Ed25519Signer::generate(&mut rng);
    let observer = Ed25519Signer::generate(&mut rng);
    let log_key = Ed25519Signer::generate(&mut rng);
    let opaque = VaultServerSetup::generate(&mut rng).public_key();

    // Nodes: a device key (the HSM's identity) and the three node keys.
    let dcs = ["dc-a", "dc-b", "dc-c"];
    let mut nodes = Vec::new();
    let mut devices = Vec::new();
    for (i, dc) in dcs.iter().enumerate() {
        devices.push(Ed25519Signer::generate(&mut rng));
        nodes.push(Node {
            id: format!("n{i}"),
            datacenter: (*dc).into(),
            keys: vec![
                NodeKey {
                    role: KeyRole::Session,
                    suite: keyset::SESSION_SUITE_X25519,
                    key: SessionSecretKey::generate(&mut rng).public_key().to_vec(),
                },
                NodeKey { role: KeyRole::Opaque, suite: keyset::OPAQUE_SUITE_1, key: opaque.to_vec() },
                NodeKey {
                    role: KeyRole::Signing,
                    suite: -19,
                    key: Ed25519Signer::generate(&mut rng).public_key().key.clone(),
                },
            ],
        });
    }
    let mut ks = FleetKeySet {
        v: 1,
        fleet_id: FLEET.into(),
        epoch: 1,
        not_before: 0,
        not_after: u64::MAX / 2,
        guess_limit: 10,
        quorum: 2,
        nodes: nodes.clone(),
        prev: None,
        evidence: None,
    };
    let core = keyset_core(&ks);

    // Attestations.
    let root_name = "vendor root";
    let signer_root: &dyn Signer = if k.foreign_root { &stranger } else { &vendor };
    let issuer = Issuer { name: root_name, signer: signer_root };
    let mut attestations = Vec::new();
    for (i, (node, dev)) in nodes.iter().zip(&devices).enumerate() {
        let subject = format!("hsm-{i}");
        let cert = issuer.certify(&subject, dev.public_key(), FIRMWARE, false);
        let mut keys = node.keys.clone();
        if k.attest_other_session_key && i == 1 {
            keys[0].key = SessionSecretKey::generate(&mut rng).public_key().to_vec();
        }
        let statement = AttestationStatement {
            v: 1,
            device: subject,
            fleet_id: FLEET.into(),
            epoch: 1,
            node_id: node.id.clone(),
            keys,
            firmware: FIRMWARE,
            software: k.statement_software.unwrap_or(SOFTWARE),
        };
        let by: &dyn Signer = if k.statement_by_other_key && i == 0 { &stranger } else { dev };
        attestations.push(Attestation {
            node_id: node.id.clone(),
            chain: vec![serde_bytes::ByteBuf::from(cert)],
            statement: attest(by, &statement),
        });
    }

    // Ceremony.
    let participants = vec![
        Participant { name: "operator".into(), key: op.public_key().clone() },
        Participant { name: "observer".into(), key: observer.public_key().clone() },
    ];
    let mut t = Transcript::new(participants);
    t.step(&op, NOW, "open", "");
    for n in &nodes {
        t.step(&op, NOW + 1, "keygen", &n.id);
    }
    for n in &nodes {
        let who: &dyn Signer = if k.step_by_stranger { &stranger } else { &observer };
        t.step(who, NOW + 2, "attest", &n.id);
    }
    t.step(&observer, NOW + 3, "keyset", &hex::encode(core));
    if !k.skip_close {
        t.step(&op, NOW + 4, "close", "");
    }
    let mut ceremony = t.finish();
    if k.break_chain {
        // Re-sign step 2 with a wrong prev: still signed, but not chained.
        let mut step: CeremonyStep =
            cbor::from_slice(&Sign1::parse(&ceremony.steps[2], CT_STEP).unwrap().payload).unwrap();
        step.prev = [9; 32];
        ceremony.steps[2] = serde_bytes::ByteBuf::from(sign1(&cbor::to_vec(&step), CT_STEP, &op));
    }

    let evidence = Evidence {
        v: 1,
        fleet_id: FLEET.into(),
        epoch: k.evidence_epoch.unwrap_or(1),
        keyset_core: core,
        policy: Policy {
            guess_limit: k.policy_limit.unwrap_or(10),
            quorum: 2,
            datacenters: dcs.iter().map(|d| (*d).to_string()).collect(),
        },
        software: Software { measurement: SOFTWARE, recipe: "cargo build --release --locked".into() },
        attestations,
        ceremony,
    };
    let mut evidence_bytes = sign_evidence(&evidence, &op);
    ks.evidence = Some(if k.keyset_names_other_evidence { [7; 32] } else { sha256(&evidence_bytes) });
    if k.tamper_evidence {
        // Change the policy after signing.
        let mut e = evidence.clone();
        e.policy.quorum = 3;
        let good = Sign1::parse(&evidence_bytes, CT_EVIDENCE).unwrap();
        let payload = cbor::to_vec(&e);
        let pos =
            evidence_bytes.windows(good.payload.len()).position(|w| w == good.payload.as_slice()).unwrap();
        let len_changed = payload.len() != good.payload.len();
        assert!(!len_changed);
        evidence_bytes.splice(pos..pos + payload.len(), payload);
        ks.evidence = Some(sha256(&evidence_bytes));
    }
    if k.garbage_evidence {
        evidence_bytes = sign1(b"\xa0", "text/plain", &op);
    }

    let claims = Claims { iss: "tp".into(), sub: FLEET.into(), iat: NOW };
    let bundle = countersign(&sign(&ks.to_bytes(), &claims, &tp), &op).unwrap();

    // The log.
    let ev_entry = LogEntry {
        v: 1,
        kind: EntryType::Evidence,
        fleet_id: FLEET.into(),
        epoch: 1,
        digest: sha256(&evidence_bytes),
    };
    let bu_entry = LogEntry::bundle(FLEET, 1, &bundle);
    let mut entries = Vec::new();
    if !k.omit_evidence_entry && !k.bundle_logged_first {
        entries.push(ev_entry.to_cbor());
    }
    if !k.omit_bundle_entry {
        entries.push(bu_entry.to_cbor());
    }
    if k.bundle_logged_first {
        entries.push(ev_entry.to_cbor());
    }
    if k.duplicate_bundle {
        entries.push(LogEntry::bundle(FLEET, 1, b"another bundle").to_cbor());
    }
    let mut tree = Tree::new();
    for e in &entries {
        tree.push(e);
    }
    let origin = "log.audit.example";
    let text = Checkpoint { origin: origin.into(), size: tree.size(), root: tree.root() }.body();
    let sig = sign_note(&text, origin, &log_key).unwrap();
    let checkpoint = Note { text, signatures: vec![sig] }.encode();
    let log_anchors = LogAnchors {
        origin: origin.into(),
        log_key: verifier_key(origin, SIG_TYPE_ED25519, &log_key).unwrap(),
        witnesses: vec![],
        threshold: 0,
    };
    let anchor = |name: &str, key: &PublicKey| Anchor {
        name: name.into(),
        key: key.clone(),
        not_before: 0,
        not_after: u64::MAX,
    };
    let anchors = TrustAnchors {
        v: 1,
        fleet_id: FLEET.into(),
        third_party: vec![anchor("tp", tp.public_key())],
        operator: vec![anchor("op", op.public_key())],
        pinned: vec![],
    };
    let released = LoggedBundle {
        v: 1,
        bundle,
        proof: LogProof {
            inclusion: InclusionProof { tree_size: 0, leaf_index: 0, path: vec![] },
            checkpoint: checkpoint.clone(),
        },
    };
    Built {
        evidence: evidence_bytes,
        released,
        anchors,
        log_anchors,
        checkpoint,
        entries,
        roots: vec![VendorRoot { name: root_name.into(), key: vendor.public_key().clone() }],
    }
}

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
