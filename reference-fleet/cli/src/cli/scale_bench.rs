//! `bkv bench scale`: recoveries, memory, snapshots, start-up and catch-up of a fleet at
//! several record counts (see `replication::raft::scale` for what is measured and how the
//! records are seeded).

use std::process::ExitCode;

use clap::Args;

use crate::error::{Error, Result};
use bkv_node::replication::raft::bench::Scratch;
use bkv_node::replication::raft::scale::{measure, table};

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
    let (nodes, clients, secs) = (a.nodes, a.clients, a.secs);
    let rows =
        measure_rows(&a.records, a.dir.as_deref(), "scale", "records", a.json, async |records, dir, step| {
            measure(records, nodes, clients, secs, dir, step).await
        })
        .await?;
    print_rows(&rows, a.json, table);
    Ok(ExitCode::SUCCESS)
}

/// Measure each of `counts` in its own scratch directory (under `dir` or a fresh temporary
/// one), with a progress line, as `bench <name>`; a failure is `bench.failed` naming the
/// count of `unit`.
pub(crate) async fn measure_rows<R>(
    counts: &[u64],
    dir: Option<&std::path::Path>,
    name: &str,
    unit: &str,
    json: bool,
    measure: impl AsyncFn(u64, &std::path::Path, &dyn Fn(&str)) -> std::result::Result<R, String>,
) -> Result<Vec<R>> {
    let scratch = Scratch::given_or_temp(dir, &format!("bkv-bench-{name}"));
    let steps = super::output::Steps::new(json);
    let mut rows = Vec::new();
    for (i, &count) in counts.iter().enumerate() {
        let dir = scratch.0.join(format!("count{i}"));
        let row = measure(count, &dir, &|s: &str| steps.step(s))
            .await
            .map_err(|e| Error::Bench(format!("bench {name} at {count} {unit}: {e}")))?;
        rows.push(row);
        let _ = std::fs::remove_dir_all(&dir);
    }
    Ok(rows)
}

/// Print `rows`: the `--json` envelope, or `table`.
pub(crate) fn print_rows<R: serde::Serialize>(rows: &[R], json: bool, table: fn(&[R]) -> String) {
    if json {
        super::contract::Envelope::success(serde_json::json!({ "rows": rows })).print();
    } else {
        print!("{}", table(rows));
    }
}
