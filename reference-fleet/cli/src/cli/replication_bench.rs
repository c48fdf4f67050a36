//! `bkv bench replication`: attempts per second and latency of an `n`-node replicated
//! loopback fleet versus a single node without replication, measured in the same run
//! (spec/fleet-replication.md; see `replication::raft::bench`).

use std::process::ExitCode;
use std::time::Duration;

use clap::Args;

use crate::error::{Error, Result};
use bkv_node::replication::raft::bench::{
    BenchResult, LogRef, Scratch, UnreplicatedLog, drive, drive_fleet, start_fleet,
};
use bkv_node::replication::raft::guess_counter::GuessCounter;

/// Arguments of `bkv bench replication`.
#[derive(Debug, Args)]
pub struct ReplicationBenchArgs {
    /// Nodes in the replicated fleet.
    #[arg(long, default_value_t = 5)]
    pub nodes: usize,
    /// Concurrent clients (spread over the nodes).
    #[arg(long, default_value_t = 32)]
    pub clients: usize,
    /// Seconds per measurement.
    #[arg(long, default_value_t = 10)]
    pub secs: u64,
    /// Scratch directory (default: a fresh directory under the system temp dir).
    #[arg(long)]
    pub dir: Option<std::path::PathBuf>,
    /// `--json` (global, spec of the output: `bkv schema output`).
    #[arg(skip)]
    pub json: bool,
}

/// Run the benchmark.
pub async fn run(a: ReplicationBenchArgs) -> Result<ExitCode> {
    if a.nodes == 0 || a.clients == 0 || a.secs == 0 {
        return Err(Error::Usage("--nodes, --clients and --secs must each be at least 1".into()));
    }
    let scratch = Scratch::given_or_temp(a.dir.as_deref(), "bkv-bench");
    let root = scratch.0.clone();
    let dur = Duration::from_secs(a.secs);
    let limit = 10;
    let mut results: Vec<BenchResult> = Vec::new();
    let steps = super::output::Steps::new(a.json);

    steps.step(&format!("single node, no replication ({} clients, {} s)...", a.clients, a.secs));
    let local = LogRef(std::sync::Arc::new(
        UnreplicatedLog::open(&root.join("single"), GuessCounter::new(limit)).map_err(Error::Usage)?,
    ));
    results.push(drive("single node, no replication", vec![local], a.clients, dur).await);

    steps.step(&format!("1-node Raft, no replication ({} clients, {} s)...", a.clients, a.secs));
    let one = start_fleet(1, &root.join("one"), limit).await.map_err(Error::Usage)?;
    results.push(drive_fleet("1-node Raft, no replication", &one, a.clients, dur).await);
    for n in one {
        n.shutdown().await;
    }

    steps.step(&format!("{}-node replicated fleet ({} clients, {} s)...", a.nodes, a.clients, a.secs));
    let fleet = start_fleet(a.nodes, &root.join("fleet"), limit).await.map_err(Error::Usage)?;
    results.push(drive_fleet(&format!("{}-node replicated (Raft)", a.nodes), &fleet, a.clients, dur).await);
    for n in fleet {
        n.shutdown().await;
    }

    drop(steps);
    super::print_bench(&results, a.json);
    Ok(ExitCode::SUCCESS)
}
