//! `bkv fleet rotate`: replace a local fleet by its successor (spec/rotation.md).
//!
//! Restarts the fleet in `--dir` with its audit log, deploys a successor of epoch + 1 in
//! `--out` signed by both organisations (their development keys in `--dir/orgs`), has the
//! old fleet verify it and move every record with its counter, then decommissions the old
//! fleet: its HSM keys are destroyed and its retirement is logged.

use crate::error::Result;
use crate::fleet::{LocalFleet, OperatorKeys};
use clap::Args;
use std::path::PathBuf;
use std::process::ExitCode;

/// Arguments of `bkv fleet rotate`.
#[derive(Debug, Args)]
pub struct RotateArgs {
    /// The fleet to retire (a directory of `bkv fleet up`, not running).
    #[arg(long)]
    pub dir: PathBuf,
    /// Where to create the successor fleet.
    #[arg(long)]
    pub out: PathBuf,
    /// `--json` (global, spec of the output: `bkv schema output`).
    #[arg(skip)]
    pub json: bool,
}

/// The usage error for a fleet that is running (its stores are locked by its processes).
fn running(dir: &std::path::Path) -> crate::error::Error {
    crate::error::Error::Usage(format!(
        "the fleet in {0} is running: stop it first with `bkv fleet stop --dir {0}` (a rotation opens the fleet itself)",
        dir.display()
    ))
}

/// Refuse a fleet whose supervisor (`bkv fleet up`) is alive, before anything is opened.
fn refuse_running(dir: &std::path::Path) -> Result<()> {
    if let Ok(Some(_)) = super::supervisor::live_supervisor(dir) {
        return Err(running(dir));
    }
    Ok(())
}

/// Run `bkv fleet rotate`.
pub async fn run(a: RotateArgs) -> Result<ExitCode> {
    let json = a.json;
    let steps = super::output::Steps::new(json);
    let say = |line: &str| steps.step(line);
    refuse_running(&a.dir)?;
    let orgs = OperatorKeys::load(&a.dir)?;
    let mut old = LocalFleet::open(&a.dir, bkv_node::replication::raft::Timing::default(), say)
        .await
        .map_err(|e| if e.to_string().contains("already open") { running(&a.dir) } else { e })?;
    let (new, report) = old.rotate(&a.out, &orgs, say).await?;
    let successor = new.released.bundle.clone();
    old.decommission(&successor, &orgs).await?;
    say("the old fleet's HSM keys are destroyed and its retirement is logged");
    let summary = super::fleet_up::report(&new);
    // Both stopped (the log's processes end with the last handle): the successor takes the
    // log's and the third party's directories, so it does not depend on the retired folder.
    new.shutdown().await;
    let moved = LocalFleet::adopt_services(&a.dir, &a.out)?;
    for m in &moved {
        say(&format!("moved to the successor: {}", m.display()));
    }
    // The retired directory points to its successor (`bkv fleet up` on it says where).
    let marker = a.dir.join("RETIRED");
    let mut text = crate::error::read_file(&marker).map(|b| String::from_utf8_lossy(&b).into_owned())?;
    let out = std::path::absolute(&a.out).unwrap_or_else(|_| a.out.clone());
    text.push_str(&format!("dir {}\n", out.display()));
    crate::error::write_file(&marker, text.as_bytes())?;
    drop(steps);
    if json {
        let v = serde_json::json!({ "rotation": report, "fleet": summary, "moved": moved });
        super::contract::Envelope::success(v).print();
    } else {
        println!(
            "\nfleet {} epoch {} → {}: {} registered, {} unregistered, {} locked ids moved with their counters",
            summary.fleet_id,
            report.from_epoch,
            report.to_epoch,
            report.registered,
            report.unregistered,
            report.locked
        );
        println!("successor bundle sha256 {}", report.successor);
        println!("start it with: bkv fleet up --dir {}", a.out.display());
    }
    Ok(ExitCode::SUCCESS)
}
