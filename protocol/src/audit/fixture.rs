//! Deterministic sample deployments (spec/evidence.md) for the Audit procedure's tests and
//! the vector generator: one clean deployment, and [`Knobs`] that each break one thing the
//! Audit procedure checks. Not for production use: every key comes from a fixed seed.

use super::{
    AttestationStatement, CT_EVIDENCE, CT_STEP, CeremonyStep, EntryType, LogAnchors, LogEntry, LoggedBundle,
    Sign1, Tree, TrustAnchors, VendorRoot, keyset_core,
};
use crate::audit_log::note::{Note, SIG_TYPE_ED25519, sign_note, verifier_key};
use crate::audit_log::{Checkpoint, InclusionProof, LogProof};
use crate::cbor;
use crate::crypto::{Ed25519Signer, Esp256Signer, PublicKey, Signer, sha256};
use crate::evidence::{
    Attestation, Evidence, Issuer, Participant, Policy, Software, Transcript, attest, sign_evidence, sign1,
};
use crate::session::SessionSecretKey;
use crate::validation_bundle::{
    Anchor, Claims, FleetKeySet, KeyRole, Node, NodeKey, countersign, keyset, sign,
};
use crate::vault::VaultServerSetup;
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

/// The fixture's fleet id.
pub const FLEET: &str = "audit.example/vault";
/// The fixture's audit time.
pub const NOW: u64 = 1_800_000_000;
/// The published software measurement.
pub const SOFTWARE: [u8; 32] = [0x50; 32];
/// The published firmware measurement.
pub const FIRMWARE: [u8; 32] = [0xf1; 32];

/// What to break (all `false`: a clean deployment).
#[derive(Debug, Default, Clone, Copy)]
#[allow(missing_docs)]
pub struct Knobs {
    pub tamper_evidence: bool,
    pub garbage_evidence: bool,
    pub keyset_names_other_evidence: bool,
    pub evidence_epoch: Option<u64>,
    pub omit_evidence_entry: bool,
    pub omit_bundle_entry: bool,
    pub bundle_logged_first: bool,
    pub duplicate_bundle: bool,
    pub foreign_root: bool,
    pub statement_by_other_key: bool,
    pub attest_other_session_key: bool,
    pub statement_software: Option<[u8; 32]>,
    pub policy_limit: Option<u32>,
    pub break_chain: bool,
    pub step_by_stranger: bool,
    pub skip_close: bool,
    /// Device certs issued by a vendor intermediate (a valid two-link chain).
    pub intermediate_ca: bool,
    /// Like `intermediate_ca`, but the intermediate's cert has `ca = false`.
    pub intermediate_not_ca: bool,
    /// Node 1 is attested by node 0's device.
    pub shared_device: bool,
    /// A second evidence entry for the same fleet and epoch.
    pub duplicate_evidence: bool,
    /// The close step is timed before the step it follows.
    pub time_backwards: bool,
    /// Node 1's keygen step is missing.
    pub skip_keygen: bool,
    /// The observer is listed but signs no step.
    pub silent_observer: bool,
    /// The operator signs a payload that is not an `Evidence` (right content type).
    pub signed_non_evidence: bool,
    /// Like `signed_non_evidence`, but signed by a key that is not an operator anchor.
    pub unsigned_non_evidence: bool,
    /// The same bundle entry logged a second time.
    pub bundle_logged_twice: bool,
    /// A retirement entry for this fleet and epoch (another digest).
    pub retirement_entry: bool,
    /// The bundle's entry names another fleet (same digest and epoch).
    pub bundle_entry_other_fleet: bool,
    /// Node 1's statement names a device other than its certificate's subject.
    pub statement_device_other: bool,
    /// Node 1's statement lists its keys in another order.
    pub statement_keys_reordered: bool,
    /// An extra, unrequired step between the keygen and attest steps.
    pub extra_step: bool,
    /// The keygen steps in reverse node order.
    pub keygen_reversed: bool,
    /// The Evidence's `"v"` is 2.
    pub evidence_v2: bool,
    /// Node 1's AttestationStatement's `"v"` is 2.
    pub statement_v2: bool,
}

/// A built deployment and what an auditor would fetch.
#[allow(missing_docs)]
pub struct Built {
    pub evidence: Vec<u8>,
    pub released: LoggedBundle,
    pub anchors: TrustAnchors,
    pub log_anchors: LogAnchors,
    pub checkpoint: String,
    pub entries: Vec<Vec<u8>>,
    pub roots: Vec<VendorRoot>,
}

/// Build the deployment `k` describes.
pub fn build(k: Knobs) -> Built {
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

    // Attestations. Keys the knobs add come from their own seed, so the clean deployment
    // (and every committed vector) stays the same.
    let mut extra_rng = ChaCha20Rng::seed_from_u64(43);
    let intermediate = Ed25519Signer::generate(&mut extra_rng);
    let root_name = "vendor root";
    let signer_root: &dyn Signer = if k.foreign_root { &stranger } else { &vendor };
    let root_issuer = Issuer { name: root_name, signer: signer_root };
    let via_intermediate = k.intermediate_ca || k.intermediate_not_ca;
    let inter_name = "vendor intermediate";
    let inter_cert =
        root_issuer.certify(inter_name, intermediate.public_key(), [0; 32], !k.intermediate_not_ca);
    let issuer =
        if via_intermediate { Issuer { name: inter_name, signer: &intermediate } } else { root_issuer };
    let mut attestations = Vec::new();
    for (i, (node, dev)) in nodes.iter().zip(&devices).enumerate() {
        let (i, dev) = if k.shared_device && i == 1 { (0, &devices[0]) } else { (i, dev) };
        let subject = format!("hsm-{i}");
        let cert = issuer.certify(&subject, dev.public_key(), FIRMWARE, false);
        let mut chain = vec![serde_bytes::ByteBuf::from(cert)];
        if via_intermediate {
            chain.push(serde_bytes::ByteBuf::from(inter_cert.clone()));
        }
        let mut keys = node.keys.clone();
        if k.attest_other_session_key && i == 1 {
            keys[0].key = SessionSecretKey::generate(&mut rng).public_key().to_vec();
        }
        if k.statement_keys_reordered && i == 1 {
            keys.swap(0, 1);
        }
        let statement = AttestationStatement {
            v: if k.statement_v2 && i == 1 { 2 } else { 1 },
            device: if k.statement_device_other && i == 1 { "hsm-other".into() } else { subject },
            fleet_id: FLEET.into(),
            epoch: 1,
            node_id: node.id.clone(),
            keys,
            firmware: FIRMWARE,
            software: k.statement_software.unwrap_or(SOFTWARE),
        };
        let by: &dyn Signer = if k.statement_by_other_key && i == 0 { &stranger } else { dev };
        attestations.push(Attestation { node_id: node.id.clone(), chain, statement: attest(by, &statement) });
    }

    // Ceremony.
    let participants = vec![
        Participant { name: "operator".into(), key: op.public_key().clone() },
        Participant { name: "observer".into(), key: observer.public_key().clone() },
    ];
    let mut t = Transcript::new(participants);
    t.step(&op, NOW, "open", "");
    let mut order: Vec<usize> = (0..nodes.len()).collect();
    if k.keygen_reversed {
        order.reverse();
    }
    for i in order {
        if !(k.skip_keygen && i == 1) {
            t.step(&op, NOW + 1, "keygen", &nodes[i].id);
        }
    }
    if k.extra_step {
        t.step(&op, NOW + 1, "inspect", "rack 3 sealed");
    }
    let witness: &dyn Signer = if k.silent_observer { &op } else { &observer };
    for n in &nodes {
        let who: &dyn Signer = if k.step_by_stranger { &stranger } else { witness };
        t.step(who, NOW + 2, "attest", &n.id);
    }
    t.step(witness, NOW + 3, "keyset", &hex::encode(core));
    if !k.skip_close {
        t.step(&op, if k.time_backwards { NOW + 2 } else { NOW + 4 }, "close", "");
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
        v: if k.evidence_v2 { 2 } else { 1 },
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
    if k.signed_non_evidence || k.unsigned_non_evidence {
        let by: &dyn Signer = if k.unsigned_non_evidence { &stranger } else { &op };
        evidence_bytes = sign1(&cbor::to_vec(&evidence.policy), CT_EVIDENCE, by);
        ks.evidence = Some(sha256(&evidence_bytes));
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
        let entry = if k.bundle_entry_other_fleet {
            LogEntry { fleet_id: "other.example/vault".into(), ..bu_entry.clone() }
        } else {
            bu_entry.clone()
        };
        entries.push(entry.to_cbor());
    }
    if k.bundle_logged_twice {
        entries.push(bu_entry.to_cbor());
    }
    if k.retirement_entry {
        let retired =
            LogEntry { kind: EntryType::Retirement, digest: sha256(b"a successor"), ..bu_entry.clone() };
        entries.push(retired.to_cbor());
    }
    if k.bundle_logged_first {
        entries.push(ev_entry.to_cbor());
    }
    if k.duplicate_bundle {
        entries.push(LogEntry::bundle(FLEET, 1, b"another bundle").to_cbor());
    }
    if k.duplicate_evidence {
        let other = LogEntry { digest: sha256(b"other evidence"), ..ev_entry.clone() };
        entries.push(other.to_cbor());
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
    let anchors = anchors(FLEET, tp.public_key(), op.public_key());
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

/// Trust anchors for `fleet_id` with one third-party key (`"tp"`) and one operator key
/// (`"op"`), valid at every time and with nothing pinned: for fixtures only, since a real
/// anchor carries the validity window of spec/validation-bundle.md §4 (`TrustAnchors`).
pub fn anchors(fleet_id: &str, third_party: &PublicKey, operator: &PublicKey) -> TrustAnchors {
    let anchor = |name: &str, key: &PublicKey| Anchor {
        name: name.into(),
        key: key.clone(),
        not_before: 0,
        not_after: u64::MAX,
    };
    TrustAnchors {
        v: 1,
        fleet_id: fleet_id.into(),
        third_party: vec![anchor("tp", third_party)],
        operator: vec![anchor("op", operator)],
        pinned: vec![],
    }
}
