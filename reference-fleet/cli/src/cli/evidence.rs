//! `bkv evidence inspect`: what a deployment evidence document says (spec/evidence.md): the
//! fleet, the policy, the software and its build recipe, each node's attestation chain and
//! measurements, and the key ceremony's steps.
//!
//! Inspection decodes; it verifies nothing (`bkv audit` does, spec/audit.md). The signer of
//! each signed object is shown by its key id so a reader can compare it with the anchors.

use super::contract::Envelope;
use crate::error::{Result, in_file, read_file};
use bkv_protocol::evidence::{
    AttestationStatement, CT_ATTESTATION, CT_DEVICE_CERT, CT_EVIDENCE, CT_STEP, CeremonyStep, DeviceCert,
    Evidence, Sign1,
};
use clap::{Args, Subcommand};
use serde::Serialize;
use std::path::PathBuf;
use std::process::ExitCode;

/// `bkv evidence ...`
#[derive(Debug, Subcommand)]
pub enum EvidenceCommand {
    /// Decode deployment evidence (`evidence.cbor`) and print what it claims, unverified.
    Inspect(InspectArgs),
}

/// Arguments of `bkv evidence inspect`.
#[derive(Debug, Args)]
pub struct InspectArgs {
    /// The evidence (`evidence.cbor`).
    pub file: PathBuf,
}

/// What `bkv evidence inspect --json` prints.
#[derive(Debug, Serialize)]
pub struct Inspected {
    /// Always false: inspection does not verify (run `bkv audit`).
    pub verified: bool,
    /// SHA-256 of the evidence bytes (the digest the FleetKeySet and the log name).
    pub digest: String,
    /// The key id of the evidence's signer (an operator anchor).
    pub signer_kid: String,
    /// The fleet.
    pub fleet_id: String,
    /// The epoch.
    pub epoch: u64,
    /// The FleetKeySet core digest.
    pub keyset_core: String,
    /// Guess limit, quorum and datacenters.
    pub policy: serde_json::Value,
    /// The software measurement.
    pub software_measurement: String,
    /// How to rebuild the measured software (spec/audit.md §1.2).
    pub recipe: String,
    /// One per node.
    pub attestations: Vec<InspectedAttestation>,
    /// The ceremony's participants.
    pub participants: Vec<serde_json::Value>,
    /// The ceremony's steps, in order.
    pub steps: Vec<serde_json::Value>,
}

/// One node's attestation.
#[derive(Debug, Serialize)]
pub struct InspectedAttestation {
    /// The node.
    pub node_id: String,
    /// The device the statement names.
    pub device: String,
    /// The chain, device first: `{issuer, subject, ca, firmware, kid}`.
    pub chain: Vec<serde_json::Value>,
    /// The statement's firmware measurement.
    pub firmware: String,
    /// The statement's software measurement.
    pub software: String,
    /// How many node keys the statement lists.
    pub keys: usize,
}

/// Decode `bytes` as evidence.
pub fn inspect_bytes(file: &std::path::Path, bytes: &[u8]) -> Result<Inspected> {
    let signed =
        Sign1::parse(bytes, CT_EVIDENCE).map_err(in_file(file, "deployment evidence (evidence.cbor)"))?;
    let e: Evidence = signed.decode().map_err(in_file(file, "deployment evidence (evidence.cbor)"))?;
    let mut attestations = Vec::new();
    for a in &e.attestations {
        let mut chain = Vec::new();
        for c in &a.chain {
            let s = Sign1::parse(c, CT_DEVICE_CERT)
                .map_err(in_file(file, "evidence with decodable device certificates"))?;
            let cert: DeviceCert =
                s.decode().map_err(in_file(file, "evidence with decodable device certificates"))?;
            chain.push(serde_json::json!({
                "issuer": cert.issuer, "subject": cert.subject, "ca": cert.ca,
                "firmware": hex::encode(cert.firmware), "kid": hex::encode(cert.key.kid()),
                "signer_kid": hex::encode(&s.kid),
            }));
        }
        let s = Sign1::parse(&a.statement, CT_ATTESTATION)
            .map_err(in_file(file, "evidence with decodable statements"))?;
        let st: AttestationStatement =
            s.decode().map_err(in_file(file, "evidence with decodable statements"))?;
        attestations.push(InspectedAttestation {
            node_id: a.node_id.clone(),
            device: st.device,
            chain,
            firmware: hex::encode(st.firmware),
            software: hex::encode(st.software),
            keys: st.keys.len(),
        });
    }
    let mut steps = Vec::new();
    for b in &e.ceremony.steps {
        let s = Sign1::parse(b, CT_STEP).map_err(in_file(file, "evidence with decodable ceremony steps"))?;
        let step: CeremonyStep =
            s.decode().map_err(in_file(file, "evidence with decodable ceremony steps"))?;
        steps.push(serde_json::json!({
            "seq": step.seq, "time": super::output::rfc3339(step.time), "action": step.action,
            "subject": step.subject, "signer_kid": hex::encode(&s.kid),
        }));
    }
    Ok(Inspected {
        verified: false,
        digest: hex::encode(bkv_protocol::crypto::sha256(bytes)),
        signer_kid: hex::encode(&signed.kid),
        fleet_id: e.fleet_id,
        epoch: e.epoch,
        keyset_core: hex::encode(e.keyset_core),
        policy: serde_json::json!({
            "guess_limit": e.policy.guess_limit, "quorum": e.policy.quorum, "datacenters": e.policy.datacenters,
        }),
        software_measurement: hex::encode(e.software.measurement),
        recipe: e.software.recipe,
        attestations,
        participants: e
            .ceremony
            .participants
            .iter()
            .map(|p| serde_json::json!({ "name": p.name, "kid": hex::encode(p.key.kid()) }))
            .collect(),
        steps,
    })
}

/// Run `bkv evidence`.
pub fn run(cmd: EvidenceCommand, json: bool) -> Result<ExitCode> {
    let EvidenceCommand::Inspect(a) = cmd;
    let i = inspect_bytes(&a.file, &read_file(&a.file)?)?;
    if json {
        Envelope::success(&i).print();
        return Ok(ExitCode::SUCCESS);
    }
    println!("{}: deployment evidence (decoded, NOT verified: run `bkv audit` to verify)", a.file.display());
    println!("  sha256      {}", i.digest);
    println!("  signed by   kid {} (an operator anchor)", i.signer_kid);
    println!("  fleet       {:?} epoch {}", i.fleet_id, i.epoch);
    println!("  FleetKeySet core {}", i.keyset_core);
    println!(
        "  policy      guess limit {}, quorum {}, datacenters {}",
        i.policy["guess_limit"],
        i.policy["quorum"],
        i.policy["datacenters"]
            .as_array()
            .map(|d| d.iter().filter_map(|x| x.as_str()).collect::<Vec<_>>().join(", "))
            .unwrap_or_default()
    );
    println!("  software    {}", i.software_measurement);
    println!("  recipe      {}", i.recipe);
    for a in &i.attestations {
        println!("  node {:?}: device {:?}, {} keys", a.node_id, a.device, a.keys);
        for c in &a.chain {
            println!(
                "    cert {:?} issued by {:?}{} firmware {}",
                c["subject"].as_str().unwrap_or(""),
                c["issuer"].as_str().unwrap_or(""),
                if c["ca"] == true { " (CA)" } else { "" },
                c["firmware"].as_str().unwrap_or("")
            );
        }
        println!("    firmware {} software {}", a.firmware, a.software);
    }
    println!("  ceremony: {} participants, {} steps", i.participants.len(), i.steps.len());
    for p in &i.participants {
        println!(
            "    participant {} kid {}",
            p["name"].as_str().unwrap_or(""),
            p["kid"].as_str().unwrap_or("")
        );
    }
    for s in &i.steps {
        println!(
            "    #{} {} {} {} (kid {})",
            s["seq"],
            s["time"].as_str().unwrap_or(""),
            s["action"].as_str().unwrap_or(""),
            s["subject"].as_str().unwrap_or(""),
            s["signer_kid"].as_str().unwrap_or("")
        );
    }
    Ok(ExitCode::SUCCESS)
}
