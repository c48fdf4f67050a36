//! `bkv bench scale`: recoveries, memory, snapshots, start-up and catch-up of a fleet at
//! several record counts (see `replication::raft::scale` for what is measured and how the
//! records are seeded).

use std::process::ExitCode;

use clap::Args;

use crate::error::{Error, Result};
use bkv_node::replication::raft::bench::Scratch;
use bkv_node::replication::raft::scale::{ScaleRow, measure, table};

/// Arguments of `bkv bench scale`.
#[derive(Debug, Args)]
pub struct ScaleBenchArgs {
    /// Record counts to measure, comma-separated, each seeded directly through the state
    /// machine.
    #[arg(long, value_delimiter = ',', default_value = "1000,100000,1000000")]
    pub records: Vec<u64>,
    /// Nodes in the fleet (at least 3: one follower is restarted, another wiped).
    #[arg(long, default_value_t = 3)]
    pub nodes: usize,
    /// Concurrent recovering clients (spread over the nodes).
    #[arg(long, default_value_t = 16)]
    pub clients: usize,
    /// Seconds of recoveries per size.
    #[arg(long, default_value_t = 5)]
    pub secs: u64,
    /// Scratch directory (default: a fresh directory under the system temp dir).
    #[arg(long)]
    pub dir: Option<std::path::PathBuf>,
    /// `--json` (global, spec of the output: `bkv schema output`).
    #[arg(skip)]
    pub json: bool,
}

/// Run the benchmark.
pub async fn run(a: ScaleBenchArgs) -> Result<ExitCode> {
    if a.nodes < 3 || a.clients == 0 || a.secs == 0 || a.records.is_empty() || a.records.contains(&0) {
        return Err(Error::Usage(
            "--nodes must be at least 3, --clients, --secs and every --records count at least 1".into(),
        ));
    }
    let scratch = Scratch::given_or_temp(a.dir.as_deref(), "bkv-bench-scale");
    let root = scratch.0.clone();
    let steps = super::output::Steps::new(a.json);
    let mut rows: Vec<ScaleRow> = Vec::new();
    for (i, &records) in a.records.iter().enumerate() {
        let dir = root.join(format!("size{i}"));
        let row = measure(records, a.nodes, a.clients, a.secs, &dir, &|s: &str| steps.step(s))
            .await
            .map_err(|e| Error::Bench(format!("bench scale at {records} records: {e}")))?;
        rows.push(row);
        let _ = std::fs::remove_dir_all(&dir);
    }
    drop(steps);
    if a.json {
        super::contract::Envelope::success(serde_json::json!({ "rows": rows })).print();
    } else {
        print!("{}", table(&rows));
    }
    Ok(ExitCode::SUCCESS)
}
