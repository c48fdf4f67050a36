//! `bkv bundle inspect|verify`: spec/validation-bundle.md §4 and §5.

use super::output::{rfc3339, short_hex};
use crate::error::{Error, Result, read_file, write_file};
use bkv_client::LogClient;
use bkv_client::clock::system_now as now;
use bkv_client::verify_step_12;
use bkv_protocol::audit_log::{LogProof, LogState, LogVerified, LoggedBundle, TreeHead};
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

impl BundleCommand {
    /// Apply the global `--json`.
    pub fn set_json(&mut self, json: bool) {
        match self {
            BundleCommand::Inspect(a) => a.json = json,
            BundleCommand::Verify(a) => a.json = json,
        }
    }
}

/// Arguments of `bkv bundle inspect`.
#[derive(Debug, Args)]
pub struct InspectArgs {
    /// The bundle file (tagged COSE_Sign1).
    pub file: PathBuf,
    /// `--json` (global, spec of the output: `bkv schema output`).
    #[arg(skip)]
    pub json: bool,
}

/// Arguments of `bkv bundle verify`.
#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("anchor_source").required(true).args(["trust", "anchors"])))]
pub struct VerifyArgs {
    /// The bundle: a released bundle with its log proof (`LoggedBundle`,
    /// spec/audit-log.md §6, e.g. `released-bundle.cbor`), or a bare tagged COSE_Sign1.
    pub file: PathBuf,
    /// The client's trust: bundle anchors and log anchors (`trust.cbor` of `bkv fleet up`).
    /// Runs every step of spec/validation-bundle.md §5.1, step 12 included.
    #[arg(long)]
    pub trust: Option<PathBuf>,
    /// Bundle trust anchors only (spec/validation-bundle.md §4.4); needs --skip-log.
    #[arg(long, requires = "skip_log")]
    pub anchors: Option<PathBuf>,
    /// Run steps 1 to 11 only. The result is NOT a client's verification: without step 12
    /// nothing shows the bundle is in the third party's log.
    #[arg(long)]
    pub skip_log: bool,
    /// The audit log's URL, to fetch a consistency proof from the checkpoint held in
    /// --state to the bundle's (spec/audit-log.md §7.3).
    #[arg(long)]
    pub log: Option<String>,
    /// The client's state (JSON: highest bundle and largest checkpoint); read if it exists,
    /// updated on success.
    #[arg(long)]
    pub state: Option<PathBuf>,
    /// Verify as of this time (POSIX seconds) instead of now.
    #[arg(long)]
    pub now: Option<u64>,
    /// `--json` (global, spec of the output: `bkv schema output`).
    #[arg(skip)]
    pub json: bool,
}

/// Run a `bkv bundle` command.
pub async fn run(cmd: BundleCommand) -> Result<ExitCode> {
    match cmd {
        BundleCommand::Inspect(a) => inspect(&a),
        BundleCommand::Verify(a) => verify(&a).await,
    }
}

/// `bkv bundle inspect`: a bare bundle, or the released (logged) bundle clients and
/// auditors receive (spec/audit-log.md §6.1), described without verifying it.
fn inspect(a: &InspectArgs) -> Result<ExitCode> {
    let bytes = read_file(&a.file)?;
    let in_file = |what: &'static str| crate::error::in_file(&a.file, what);
    let (bundle, logged) = match Parsed::parse(&bytes) {
        Ok(_) => (bytes.clone(), None),
        Err(bare) => match LoggedBundle::from_cbor(&bytes) {
            Ok(l) => (l.bundle.clone(), Some(l)),
            Err(_) => return Err(in_file("a validation bundle, nor a released (logged) bundle")(bare)),
        },
    };
    let parsed =
        Parsed::parse(&bundle).map_err(in_file("a released bundle whose bundle is a validation bundle"))?;
    let keyset = FleetKeySet::from_bytes(&parsed.payload).map_err(in_file("a bundle of a FleetKeySet"))?;
    let log = logged.as_ref().map(|l| {
        json!({
            "leaf_index": l.proof.inclusion.leaf_index,
            "tree_size": l.proof.inclusion.tree_size,
            "checkpoint": l.proof.checkpoint,
        })
    });
    if a.json {
        let mut out = bundle_json(&bundle, &parsed, &keyset);
        out["released"] = json!(log);
        super::contract::Envelope::success(out).print();
    } else {
        print!("{}", describe(&bundle, &parsed, &keyset));
        if let Some(l) = &logged {
            println!(
                "  released with   a log proof: leaf {} of a tree of {} (checkpoint of {})",
                l.proof.inclusion.leaf_index,
                l.proof.inclusion.tree_size,
                l.proof.checkpoint.lines().next().unwrap_or("?")
            );
        }
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

/// The client's state as a local JSON file (not part of the protocol): the rollback state
/// of spec/validation-bundle.md §5.1 and the log state of spec/audit-log.md §7.3.
pub fn load_state(path: Option<&PathBuf>) -> Result<(ClientState, LogState)> {
    let Some(path) = path else { return Ok(Default::default()) };
    if !path.exists() {
        return Ok(Default::default());
    }
    let v: serde_json::Value = serde_json::from_slice(&read_file(path)?)
        .map_err(|e| Error::Usage(format!("{}: not a state file: {e}", path.display())))?;
    let bad = || Error::Usage(format!("{}: not a state file", path.display()));
    let hash = |v: &serde_json::Value| -> Result<[u8; 32]> {
        hex::decode(v.as_str().ok_or_else(bad)?).ok().and_then(|d| d.try_into().ok()).ok_or_else(bad)
    };
    let epoch = v["epoch"].as_u64().ok_or_else(bad)?;
    let bundle = ClientState { highest: Some((epoch, hash(&v["bundle_sha256"])?)) };
    let log = match &v["log"] {
        serde_json::Value::Null => LogState::default(),
        l => LogState {
            largest: Some(TreeHead { size: l["size"].as_u64().ok_or_else(bad)?, root: hash(&l["root"])? }),
        },
    };
    Ok((bundle, log))
}

/// Write the state [`load_state`] reads.
pub fn save_state(path: &std::path::Path, st: &ClientState, log: &LogState) -> Result<()> {
    if let Some((epoch, d)) = st.highest {
        let mut v = json!({ "epoch": epoch, "bundle_sha256": hex::encode(d) });
        if let Some(h) = &log.largest {
            v["log"] = json!({ "size": h.size, "root": hex::encode(h.root) });
        }
        write_file(path, serde_json::to_string_pretty(&v).expect("json").as_bytes())?;
    }
    Ok(())
}

/// The bundle bytes and, for a `LoggedBundle`, its proof.
fn read_bundle(path: &std::path::Path) -> Result<(Vec<u8>, Option<LogProof>)> {
    let bytes = read_file(path)?;
    // A tagged COSE_Sign1 starts with tag 18 (0xd2); anything else is read as a LoggedBundle.
    if bytes.first() == Some(&0xd2) {
        return Ok((bytes, None));
    }
    let logged = LoggedBundle::from_cbor(&bytes)?;
    Ok((logged.bundle, Some(logged.proof)))
}

async fn verify(a: &VerifyArgs) -> Result<ExitCode> {
    let (bytes, proof) = read_bundle(&a.file)?;
    let (anchors, log_anchors) = match (&a.trust, &a.anchors) {
        (Some(t), _) => {
            let trust = super::trust::read_trust(t)?;
            (trust.anchors, Some(trust.log))
        }
        (None, Some(p)) => (TrustAnchors::from_bytes(&read_file(p)?)?, None),
        (None, None) => unreachable!("clap requires --trust or --anchors"),
    };
    let (state, log_state) = load_state(a.state.as_ref())?;
    let t = a.now.unwrap_or_else(now);
    let result = async {
        let v = verify_bundle(&bytes, &anchors, &state, t)?;
        // Step 12 (spec/validation-bundle.md §5.1, spec/audit-log.md §7.2).
        let logged = match (&log_anchors, a.skip_log) {
            (_, true) => None,
            (None, false) => unreachable!("clap requires --skip-log with --anchors"),
            (Some(la), false) => {
                let proof = proof.as_ref().ok_or(bkv_protocol::Error::LogInclusionInvalid)?;
                let fetch = async |size1, size2| match a.log.as_deref() {
                    Some(url) => {
                        LogClient::new(url).consistency_proof(size1, size2).await.map_err(Error::from)
                    }
                    // Without --log the proof cannot be fetched: the missing proof is the answer.
                    None => Err(bkv_protocol::Error::LogConsistencyMissing.into()),
                };
                Some(verify_step_12(&bytes, v.keyset(), proof, la, &log_state, fetch).await?)
            }
        };
        Ok::<_, Error>((v, logged))
    };
    match result.await {
        Ok((v, logged)) => {
            let next_log = logged.as_ref().map(|l| l.state.clone()).unwrap_or(log_state);
            if let Some(p) = &a.state {
                save_state(p, &v.next_state(), &next_log)?;
            }
            report_ok(a, &v, &anchors, logged.as_ref(), t);
            Ok(ExitCode::SUCCESS)
        }
        // A bare bundle carries no log proof: say which file to verify instead.
        Err(Error::Protocol(source @ bkv_protocol::Error::LogInclusionInvalid)) if proof.is_none() => {
            Err(Error::InFile {
                path: a.file.clone(),
                what: "a released bundle (a bare bundle carries no log proof: verify released-bundle.cbor)",
                source,
            })
        }
        Err(e) => Err(e),
    }
}

fn report_ok(
    a: &VerifyArgs,
    v: &VerifiedFleet,
    anchors: &TrustAnchors,
    logged: Option<&LogVerified>,
    t: u64,
) {
    let ks = v.keyset();
    if a.json {
        let out = json!({
            "result": "valid",
            "complete": logged.is_some(),
            "verified_at": t,
            "bundle_sha256": v.bundle_digest().map(hex::encode),
            "keyset_sha256": hex::encode(v.keyset_digest()),
            "keyset": keyset_json(ks),
            "log": logged.map(|l| json!({
                "leaf_index": l.leaf_index,
                "tree_size": l.checkpoint.checkpoint.size,
                "development_only": l.development_only,
            })),
        });
        super::contract::Envelope::success(out).print();
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
        match logged {
            Some(l) => {
                println!(
                    "  in the audit log: entry #{} of a checkpoint of size {}",
                    l.leaf_index, l.checkpoint.checkpoint.size
                );
                if l.development_only {
                    println!("  WARNING: no witness cosignature is required (K = 0): development only");
                }
            }
            None => {
                println!("  NOT a complete verification: step 12 (log inclusion) was skipped (--skip-log)")
            }
        }
    }
}
