//! `bkv bench forged`: memory and disk per node after forged guesses against ids that were
//! never registered (spec/vault.md §5.5; see `replication::raft::forged` for what is
//! measured and how the guesses are seeded).

use std::process::ExitCode;

use clap::Args;

use super::scale_bench::{measure_rows, print_rows};
use crate::error::{Error, Result};
use bkv_node::replication::raft::forged::{measure, table};

/// Arguments of `bkv bench forged`.
#[derive(Debug, Args)]
pub struct ForgedBenchArgs {
    /// Forged guesses to measure, comma-separated counts, each against its own random id.
    #[arg(long, value_delimiter = ',', default_value = "1000,100000,1000000")]
    pub guesses: Vec<u64>,
    /// Of each count, how many go through the replicated log (the rest are applied
    /// directly through the state machine); a smaller count goes through it whole.
    #[arg(long, default_value_t = 1000)]
    pub live: u64,
    /// Guesses a second the fleet admits (spec/node-api.md §6 point 3): the pace of the
    /// guesses' request times.
    #[arg(long, default_value_t = 300)]
    pub rate: u64,
    /// Nodes in the fleet.
    #[arg(long, default_value_t = 3)]
    pub nodes: usize,
    /// Concurrent clients sending the live guesses (spread over the nodes).
    #[arg(long, default_value_t = 32)]
    pub clients: usize,
    /// Scratch directory (default: a fresh directory under the system temp dir).
    #[arg(long)]
    pub dir: Option<std::path::PathBuf>,
    /// `--json` (global, spec of the output: `bkv schema output`).
    #[arg(skip)]
    pub json: bool,
}

/// Run the benchmark.
pub async fn run(a: ForgedBenchArgs) -> Result<ExitCode> {
    if a.nodes == 0 || a.clients == 0 || a.rate == 0 || a.guesses.is_empty() {
        return Err(Error::Usage(
            "--nodes, --clients and --rate must be at least 1, with a --guesses count".into(),
        ));
    }
    let (live, rate, nodes, clients) = (a.live, a.rate, a.nodes, a.clients);
    let rows = measure_rows(
        &a.guesses,
        a.dir.as_deref(),
        "forged",
        "guesses",
        a.json,
        async |guesses, dir, step| measure(guesses, live.min(guesses), rate, nodes, clients, dir, step).await,
    )
    .await?;
    print_rows(&rows, a.json, table);
    Ok(ExitCode::SUCCESS)
}
