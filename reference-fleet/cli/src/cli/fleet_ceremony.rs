//! `bkv fleet ceremony`: the key ceremony of a new local fleet (spec/evidence.md).
//!
//! Each node's keys are generated inside its software HSM; the simulated vendor certifies
//! each device; each HSM attests its node keys; operator and observer sign the transcript
//! step by step; the operator signs the evidence; the third party logs it, signs the
//! FleetKeySet, the operator countersigns, and the bundle is logged and released. The
//! deployment is audited before the command returns. Nodes are not started: `bkv fleet up
//! --dir DIR` starts them.

use super::fleet_up::NewFleetArgs;
use crate::error::Result;
use crate::fleet::{LocalFleet, OperatorKeys};
use clap::Args;
use std::path::PathBuf;
use std::process::ExitCode;

/// Arguments of `bkv fleet ceremony`.
#[derive(Debug, Args)]
pub struct CeremonyArgs {
    #[command(flatten)]
    pub fleet: NewFleetArgs,
    /// The new fleet's directory.
    #[arg(long)]
    pub out: PathBuf,
    /// `--json` (global, spec of the output: `bkv schema output`).
    #[arg(skip)]
    pub json: bool,
}

/// Run `bkv fleet ceremony`.
pub async fn run(a: CeremonyArgs) -> Result<ExitCode> {
    let config = a.fleet.config()?;
    // A ceremony builds a new directory: never into one that holds something, and a failed
    // ceremony leaves nothing behind.
    let existed = a.out.exists();
    if existed && std::fs::read_dir(&a.out).map(|mut d| d.next().is_some()).unwrap_or(true) {
        return Err(crate::error::Error::Usage(format!(
            "--out {}: the directory exists and is not empty; a ceremony creates a new fleet directory",
            a.out.display()
        )));
    }
    let json = a.json;
    let steps = super::output::Steps::new(json);
    let say = |line: &str| steps.step(line);
    let fleet = match LocalFleet::ceremony(&a.out, &config, &OperatorKeys::generate(), say).await {
        Ok(f) => f,
        Err(e) => {
            if !existed {
                let _ = std::fs::remove_dir_all(&a.out);
            }
            return Err(e);
        }
    };
    drop(steps);
    let files = ["evidence.cbor", "released-bundle.cbor", "trust.cbor", "vendor-roots.cbor"];
    if json {
        let v = serde_json::json!({
            "fleet_id": fleet.keyset.fleet_id, "epoch": fleet.keyset.epoch,
            "files": files.iter().map(|f| a.out.join(f)).collect::<Vec<_>>(),
            "software_measurement": hex::encode(crate::fleet::software_measurement()?.measurement),
            "published": a.out.join(crate::fleet::PUBLISHED),
        });
        super::contract::Envelope::success(v).print();
    } else {
        println!("\nceremony done for fleet {} epoch {}:", fleet.keyset.fleet_id, fleet.keyset.epoch);
        for f in files {
            println!("  {}", a.out.join(f).display());
        }
        println!(
            "  {}/   (what an auditor is given: keys as PEM and verifier-key text, the vendor's certificate, a trust spec)",
            a.out.join(crate::fleet::PUBLISHED).display()
        );
        println!("start the fleet with `bkv fleet up --dir {}`; it prints an audit command", a.out.display());
    }
    fleet.shutdown().await;
    Ok(ExitCode::SUCCESS)
}
