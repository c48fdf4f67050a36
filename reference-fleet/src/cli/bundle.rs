//! `bkv bundle inspect|verify`: spec/validation-bundle.md §4 and §5.

use super::output::{now, rfc3339, short_hex};
use crate::error::{Error, Result, read_file, write_file};
use bkv_protocol::crypto::sha256;
use bkv_protocol::validation_bundle::{
    ClientState, FleetKeySet, KeyRole, Parsed, TrustAnchors, VerifiedFleet, verify_bundle,
};
use clap::{Args, Subcommand};
use serde_json::json;
use std::path::PathBuf;
use std::process::ExitCode;

/// `bkv bundle ...`
#[derive(Debug, Subcommand)]
pub enum BundleCommand {
    /// Decode a bundle strictly and print its contents (does not verify signatures).
    Inspect(InspectArgs),
    /// Verify a bundle against trust anchors (spec/validation-bundle.md §5).
    Verify(VerifyArgs),
}

/// Arguments of `bkv bundle inspect`.
#[derive(Debug, Args)]
pub struct InspectArgs {
    /// The bundle file (tagged COSE_Sign1).
    pub file: PathBuf,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

/// Arguments of `bkv bundle verify`.
#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// The bundle file (tagged COSE_Sign1).
    pub file: PathBuf,
    /// The client's trust anchors (deterministic CBOR, spec/validation-bundle.md §4.4).
    #[arg(long)]
    pub anchors: PathBuf,
    /// The client's rollback state (JSON); read if it exists, updated on success.
    #[arg(long)]
    pub state: Option<PathBuf>,
    /// Verify as of this time (POSIX seconds) instead of now.
    #[arg(long)]
    pub now: Option<u64>,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

/// Run a `bkv bundle` command.
pub fn run(cmd: BundleCommand) -> Result<ExitCode> {
    match cmd {
        BundleCommand::Inspect(a) => inspect(&a),
        BundleCommand::Verify(a) => verify(&a),
    }
}

fn inspect(a: &InspectArgs) -> Result<ExitCode> {
    let bytes = read_file(&a.file)?;
    let parsed = Parsed::parse(&bytes)?;
    let keyset = FleetKeySet::from_bytes(&parsed.payload)?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&bundle_json(&bytes, &parsed, &keyset)).expect("json"));
    } else {
        print!("{}", describe(&bytes, &parsed, &keyset));
        println!("(not verified: use `bkv bundle verify FILE --anchors ANCHORS`)");
    }
    Ok(ExitCode::SUCCESS)
}

/// A readable description of a strictly decoded bundle.
pub fn describe(bytes: &[u8], parsed: &Parsed, ks: &FleetKeySet) -> String {
    let mut s = String::new();
    let cs = parsed.countersignature.as_ref();
    s += &format!("validation bundle  {} bytes  sha256 {}\n", bytes.len(), hex::encode(sha256(bytes)));
    s += &format!("  signed by        {} key {}\n", parsed.alg.name(), short_hex(&parsed.kid, 8));
    s += &format!(
        "  claims           iss {}  sub {}  iat {}\n",
        parsed.claims.iss,
        parsed.claims.sub,
        rfc3339(parsed.claims.iat)
    );
    match cs {
        Some(cs) => {
            s +=
                &format!("  countersigned by {} key {} (RFC 9338 V2)\n", cs.alg.name(), short_hex(&cs.kid, 8))
        }
        None => s += "  countersigned by nobody (not yet countersigned)\n",
    }
    s += &format!("fleet key set      sha256 {}\n", hex::encode(sha256(&parsed.payload)));
    s += &format!("  fleet            {}  epoch {}\n", ks.fleet_id, ks.epoch);
    s += &format!("  valid            {} .. {}\n", rfc3339(ks.not_before), rfc3339(ks.not_after));
    s += &format!("  guess limit      {}\n", ks.guess_limit);
    s += &format!("  quorum           {} of {} nodes\n", ks.quorum, ks.nodes.len());
    s += &format!("  previous bundle  {}\n", ks.prev.map_or("none (first epoch)".into(), hex::encode));
    s += &format!("  evidence         {}\n", ks.evidence.map_or("none".into(), hex::encode));
    for n in &ks.nodes {
        let k = |r| n.key(r).map_or("-".to_string(), |k| short_hex(&k.key, 6));
        s += &format!(
            "  node {:<10} dc {:<8} session {}  opaque {}  signing {}\n",
            n.id,
            n.datacenter,
            k(KeyRole::Session),
            k(KeyRole::Opaque),
            k(KeyRole::Signing)
        );
    }
    s
}

fn bundle_json(bytes: &[u8], parsed: &Parsed, ks: &FleetKeySet) -> serde_json::Value {
    json!({
        "bundle_sha256": hex::encode(sha256(bytes)),
        "size": bytes.len(),
        "signer": { "alg": parsed.alg.cose_id(), "kid": hex::encode(&parsed.kid) },
        "claims": { "iss": parsed.claims.iss, "sub": parsed.claims.sub, "iat": parsed.claims.iat },
        "countersigner": parsed.countersignature.as_ref().map(|cs| json!({
            "alg": cs.alg.cose_id(), "kid": hex::encode(&cs.kid)
        })),
        "keyset_sha256": hex::encode(sha256(&parsed.payload)),
        "keyset": keyset_json(ks),
    })
}

fn keyset_json(ks: &FleetKeySet) -> serde_json::Value {
    json!({
        "fleet_id": ks.fleet_id, "epoch": ks.epoch,
        "not_before": ks.not_before, "not_after": ks.not_after,
        "guess_limit": ks.guess_limit, "quorum": ks.quorum,
        "prev": ks.prev.map(hex::encode), "evidence": ks.evidence.map(hex::encode),
        "nodes": ks.nodes.iter().map(|n| json!({
            "id": n.id, "datacenter": n.datacenter,
            "keys": n.keys.iter().map(|k| json!({
                "role": k.role, "suite": k.suite, "key": hex::encode(&k.key)
            })).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
    })
}

/// The client's rollback state as a local JSON file (not part of the protocol).
pub fn load_state(path: Option<&PathBuf>) -> Result<ClientState> {
    let Some(path) = path else { return Ok(ClientState::default()) };
    if !path.exists() {
        return Ok(ClientState::default());
    }
    let v: serde_json::Value = serde_json::from_slice(&read_file(path)?)
        .map_err(|e| Error::Usage(format!("{}: not a state file: {e}", path.display())))?;
    let bad = || Error::Usage(format!("{}: not a state file", path.display()));
    let epoch = v["epoch"].as_u64().ok_or_else(bad)?;
    let digest: [u8; 32] = hex::decode(v["bundle_sha256"].as_str().ok_or_else(bad)?)
        .ok()
        .and_then(|d| d.try_into().ok())
        .ok_or_else(bad)?;
    Ok(ClientState { highest: Some((epoch, digest)) })
}

fn save_state(path: &std::path::Path, st: &ClientState) -> Result<()> {
    if let Some((epoch, d)) = st.highest {
        let v = json!({ "epoch": epoch, "bundle_sha256": hex::encode(d) });
        write_file(path, serde_json::to_string_pretty(&v).expect("json").as_bytes())?;
    }
    Ok(())
}

fn verify(a: &VerifyArgs) -> Result<ExitCode> {
    let bytes = read_file(&a.file)?;
    let anchors = TrustAnchors::from_bytes(&read_file(&a.anchors)?)?;
    let state = load_state(a.state.as_ref())?;
    let t = a.now.unwrap_or_else(now);
    match verify_bundle(&bytes, &anchors, &state, t) {
        Ok(v) => {
            if let Some(p) = &a.state {
                save_state(p, &v.next_state())?;
            }
            report_ok(a, &v, &anchors, t);
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            if a.json {
                let out = json!({ "result": "invalid", "error_code": e.code(), "error": e.description() });
                println!("{}", serde_json::to_string_pretty(&out).expect("json"));
            } else {
                println!("INVALID [{}] {}", e.code(), e.description());
            }
            Ok(ExitCode::from(1))
        }
    }
}

fn report_ok(a: &VerifyArgs, v: &VerifiedFleet, anchors: &TrustAnchors, t: u64) {
    let ks = v.keyset();
    if a.json {
        let out = json!({
            "result": "valid",
            "verified_at": t,
            "bundle_sha256": v.bundle_digest().map(hex::encode),
            "keyset_sha256": hex::encode(v.keyset_digest()),
            "keyset": keyset_json(ks),
        });
        println!("{}", serde_json::to_string_pretty(&out).expect("json"));
    } else {
        println!(
            "VALID fleet {} epoch {} ({} nodes, quorum {}, guess limit {}) at {}",
            ks.fleet_id,
            ks.epoch,
            ks.nodes.len(),
            ks.quorum,
            ks.guess_limit,
            rfc3339(t)
        );
        println!(
            "  signed by a third-party anchor of {:?} and countersigned by an operator anchor of {:?}",
            anchors.third_party.iter().map(|x| &x.name).collect::<Vec<_>>(),
            anchors.operator.iter().map(|x| &x.name).collect::<Vec<_>>()
        );
    }
}
