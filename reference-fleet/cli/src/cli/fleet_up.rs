//! `bkv fleet up`: a local replicated fleet on loopback with embedded storage
//! (spec/fleet-replication.md), its bundle signed, countersigned and logged
//! (spec/validation-bundle.md, spec/audit-log.md). Runs until Ctrl-C; run it again on
//! the same directory to restart the fleet with everything it acknowledged.

use crate::error::Result;
use crate::fleet::{FleetConfig, LocalFleet};
use clap::Args;
use std::path::PathBuf;
use std::process::ExitCode;

/// What a new fleet is made of: shared by `bkv fleet up` and `bkv fleet ceremony`.
#[derive(Debug, Args)]
pub struct NewFleetArgs {
    /// Number of HSM nodes (a majority of them must be up to serve).
    #[arg(long, default_value_t = 5)]
    pub nodes: usize,
    /// Fleet id of a new fleet.
    #[arg(long, default_value = "local.bkv.example/vault")]
    pub fleet_id: String,
    /// Guess limit of a new fleet (spec/vault.md §5.2).
    #[arg(long, default_value_t = bkv_protocol::validation_bundle::keyset::DEFAULT_GUESS_LIMIT)]
    pub guess_limit: u32,
}

impl NewFleetArgs {
    /// The fleet configuration these arguments describe, checked against the FleetKeySet's
    /// rules (spec/validation-bundle.md §3.2) before any key is generated or any directory
    /// touched.
    pub fn config(&self) -> Result<FleetConfig> {
        use bkv_protocol::validation_bundle::keyset::MAX_GUESS_LIMIT;
        let usage = |m: String| Err(crate::error::Error::Usage(m));
        if !(1..=MAX_GUESS_LIMIT).contains(&self.guess_limit) {
            return usage(format!(
                "--guess-limit {}: a fleet allows 1 to {MAX_GUESS_LIMIT} guesses per record (spec/vault.md §5.2)",
                self.guess_limit
            ));
        }
        if !(1..=255).contains(&self.nodes) {
            return usage(format!("--nodes {}: a fleet has 1 to 255 nodes", self.nodes));
        }
        if self.fleet_id.is_empty() || self.fleet_id.len() > 255 {
            return usage("--fleet-id: 1 to 255 bytes (spec/validation-bundle.md §3.2 rule 1)".into());
        }
        let mut config = FleetConfig::new(&self.fleet_id, self.nodes);
        config.guess_limit = self.guess_limit;
        Ok(config)
    }
}

/// Arguments of `bkv fleet up`.
#[derive(Debug, Args)]
pub struct UpArgs {
    #[command(flatten)]
    pub fleet: NewFleetArgs,
    /// The fleet directory (created if missing; an existing fleet in it is restarted).
    #[arg(long)]
    pub dir: PathBuf,
    /// Run each node as its own process (`bkv-node run`), supervised by this one: the
    /// default, kept for scripts written before it was.
    #[arg(long, hide = true, conflicts_with = "in_process")]
    pub processes: bool,
    /// Run every node inside this process instead (one PID; no `bkv fleet kill|stop|start`).
    #[arg(long)]
    pub in_process: bool,
    /// `--json` (global, spec of the output: `bkv schema output`).
    #[arg(skip)]
    pub json: bool,
}

/// What `fleet up` prints with `--json`.
#[derive(Debug, serde::Serialize)]
pub struct UpReport {
    /// Fleet id.
    pub fleet_id: String,
    /// Epoch.
    pub epoch: u64,
    /// Guess limit.
    pub guess_limit: u32,
    /// Quorum.
    pub quorum: u32,
    /// The nodes.
    pub nodes: Vec<UpNode>,
    /// The released bundle (with its log proof) the nodes serve.
    pub bundle: PathBuf,
    /// The anchors an app pins (`--trust` of `bkv backup`).
    pub trust: PathBuf,
    /// The audit log's URL, when this run created the fleet.
    pub log: Option<String>,
    /// The supervisor's process id (`--processes`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub supervisor: Option<u32>,
}

/// One node in [`UpReport`].
#[derive(Debug, serde::Serialize)]
pub struct UpNode {
    /// Node id.
    pub id: String,
    /// Datacenter label.
    pub datacenter: String,
    /// Client endpoint.
    pub url: String,
    /// Node-to-node endpoint.
    pub raft: String,
    /// The node's process id (`--processes`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pid: Option<u32>,
}

/// Describe a running fleet.
pub fn report(fleet: &LocalFleet) -> UpReport {
    UpReport {
        fleet_id: fleet.keyset.fleet_id.clone(),
        epoch: fleet.keyset.epoch,
        guess_limit: fleet.keyset.guess_limit,
        quorum: fleet.keyset.quorum,
        nodes: fleet
            .nodes
            .iter()
            .map(|n| UpNode {
                id: n.id.clone(),
                datacenter: n.datacenter.clone(),
                url: n.url.clone(),
                raft: n.raft_addr.to_string(),
                pid: None,
            })
            .collect(),
        bundle: fleet.dir.join("released-bundle.cbor"),
        trust: fleet.dir.join("trust.cbor"),
        log: fleet.log.as_ref().map(|l| l.client.base.clone()),
        supervisor: None,
    }
}

/// The readable description of a running fleet, and what to try next.
pub fn print_text(r: &UpReport, dir: &std::path::Path) -> Result<()> {
    if std::env::var_os(bkv_node::hsm::KEK_ENV).is_none() {
        println!(
            "  ! the HSM key-encryption key is {}: fine for local development only; set {} in a deployment",
            dir.join("kek.hex").display(),
            bkv_node::hsm::KEK_ENV
        );
    }
    println!(
        "\nfleet {} epoch {}: {} nodes, quorum {}, guess limit {}",
        r.fleet_id,
        r.epoch,
        r.nodes.len(),
        r.quorum,
        r.guess_limit
    );
    for n in &r.nodes {
        let pid = n.pid.map(|p| format!("pid {p:<7} ")).unwrap_or_default();
        println!("  {:<8} {:<9} {pid}{}   (raft {})", n.id, n.datacenter, n.url, n.raft);
    }
    println!("  bundle  {}", r.bundle.display());
    println!("  trust   {}", r.trust.display());
    if let Some(log) = &r.log {
        println!("  log     {log}");
    }
    println!("\nTry, in another terminal:");
    println!("  bkv backup create --fleet {} --trust {} chat.db chat.bkv", r.nodes[0].url, r.trust.display());
    println!(
        "  bkv backup restore --fleet {} --trust {} chat.bkv restored.db",
        r.nodes[r.nodes.len() - 1].url,
        r.trust.display()
    );
    println!("  bkv fleet status --dir {}", dir.display());
    if r.supervisor.is_some() {
        println!(
            "  bkv fleet kill --dir {d} --node {n}     (then `bkv fleet start --dir {d} --node {n}`)",
            d = dir.display(),
            n = r.nodes[0].id
        );
    }
    if let Some(log) = &r.log {
        let d = dir.display();
        // AU9 must compare the evidence's claim with a binary the auditor rebuilt, never
        // with the claim itself: the command measures a binary.
        let exe = crate::third_party::node_binary()?;
        println!(
            "  bkv audit --evidence {d}/evidence.cbor --bundle {d}/released-bundle.cbor --trust {d}/trust.cbor \\\n      --vendor-roots {d}/vendor-roots.cbor --log {log} --measure {}",
            exe.display()
        );
        println!(
            "    (--measure: the bkv-node the fleet runs; an auditor rebuilds it with the recipe of `bkv evidence inspect {d}/evidence.cbor`, spec/audit.md §1.2, and measures that; {d}/published/ holds what an auditor is given)"
        );
    }
    Ok(())
}

/// A retired fleet (spec/rotation.md §6: its keys are destroyed) is not started: the
/// error points to its successor.
fn refuse_retired(dir: &std::path::Path) -> Result<()> {
    let marker = dir.join("RETIRED");
    if !marker.exists() {
        return Ok(());
    }
    let text = String::from_utf8_lossy(&crate::error::read_file(&marker)?).into_owned();
    let successor = text.lines().find_map(|l| l.strip_prefix("dir ")).map(str::to_owned);
    Err(crate::error::Error::Usage(match successor {
        Some(next) => format!(
            "the fleet in {} is retired (its HSM keys are destroyed, spec/rotation.md §6); its successor is in {next}: start it with `bkv fleet up --dir {next}`",
            dir.display()
        ),
        None => format!(
            "the fleet in {} is retired (its HSM keys are destroyed, spec/rotation.md §6); start its successor instead",
            dir.display()
        ),
    }))
}

/// Run `bkv fleet up`.
pub async fn run(args: UpArgs) -> Result<ExitCode> {
    let config = args.fleet.config()?;
    refuse_retired(&args.dir)?;
    let json = args.json;
    let say = |line: &str| {
        if !json {
            println!("  · {line}");
        }
    };
    if !json {
        println!("bkv fleet up — {}", args.dir.display());
    }
    if !args.in_process {
        let fleet = if args.dir.join("fleet.json").exists() {
            LocalFleet::open_stopped(&args.dir, config.timing).await?
        } else {
            LocalFleet::ceremony(&args.dir, &config, &crate::fleet::OperatorKeys::generate(), say).await?
        };
        super::supervisor::run_processes(fleet, json).await?;
        return Ok(ExitCode::SUCCESS);
    }
    let fleet = LocalFleet::up(&args.dir, &config, say).await?;
    let r = report(&fleet);
    if json {
        // The readiness line: one envelope (the output contract), then serving.
        super::contract::Envelope::success(&r).print();
    } else {
        print_text(&r, &args.dir)?;
        println!("\nServing until Ctrl-C.");
    }
    tokio::signal::ctrl_c().await.map_err(|e| crate::error::Error::Usage(format!("signal: {e}")))?;
    if !json {
        println!(
            "stopping: every acknowledged request is on a majority's disk; `bkv fleet up --dir {}` restarts it",
            args.dir.display()
        );
    }
    fleet.shutdown().await;
    Ok(ExitCode::SUCCESS)
}
