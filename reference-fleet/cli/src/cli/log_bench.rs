//! `bkv bench log`: durable appends per second to the audit log service over HTTP
//! (spec/audit-log.md §8.1, `POST /add` on the admin listener with its bearer token)
//! against a baseline measured in the same run: the same number of entries written to the
//! log's own redb storage directly, in batches of as many entries as there are clients
//! (the most a batch can hold when every client has one append in flight), one fsync per
//! batch, with no HTTP and no service.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Args;

use crate::error::{Error, Result};
use bkv_node::replication::raft::bench::{BenchResult, Scratch, summarize, summarize_clients};
use bkv_protocol::audit_log::LogEntry;
use bkv_protocol::crypto::Ed25519Signer;
use bkv_third_party::log_server::{self, AdminToken, LogService};
use bkv_third_party::storage::LogStore;

/// Arguments of `bkv bench log`.
#[derive(Debug, Args)]
pub struct LogBenchArgs {
    /// Concurrent appending clients.
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

/// A bundle entry of about the size a real one has (spec/audit-log.md §5).
fn entry(client: usize, seq: u64) -> Vec<u8> {
    LogEntry::bundle(&format!("bench-{client}"), seq + 1, &[0x5a; 1500]).to_cbor()
}

/// The baseline: batches of `batch` entries straight into the log's storage.
fn baseline(path: &std::path::Path, batch: usize, duration: Duration) -> Result<BenchResult> {
    let mut store = LogStore::open(path).map_err(Error::AuditLog)?;
    let (start, mut lat, mut seq) = (Instant::now(), Vec::new(), 0u64);
    while start.elapsed() < duration {
        let entries: Vec<Vec<u8>> = (0..batch).map(|c| entry(c, seq)).collect();
        seq += 1;
        let t = Instant::now();
        store.append_batch(&entries).map_err(Error::AuditLog)?;
        lat.extend(std::iter::repeat_n(t.elapsed(), batch));
    }
    Ok(summarize(&format!("redb, {batch} entries per fsync"), lat, 0, start.elapsed()))
}

/// Run the benchmark.
pub async fn run(a: LogBenchArgs) -> Result<ExitCode> {
    if a.clients == 0 || a.secs == 0 {
        return Err(Error::Usage("--clients and --secs must each be at least 1".into()));
    }
    let scratch = Scratch::given_or_temp(a.dir.as_deref(), "bkv-bench-log");
    let root = scratch.0.clone();
    std::fs::create_dir_all(&root).map_err(|source| Error::Write { path: root.clone(), source })?;
    let dur = Duration::from_secs(a.secs);
    let steps = super::output::Steps::new(a.json);

    steps.step(&format!("redb alone, batches of {} entries ({} s)...", a.clients, a.secs));
    let base = baseline(&root.join("baseline.redb"), a.clients, dur)?;

    steps.step(&format!("log service over HTTP, {} clients ({} s)...", a.clients, a.secs));
    let log = Arc::new(
        LogService::open(
            &root.join("log.redb"),
            "bench.example/log",
            Ed25519Signer::from_seed(&[9; 32]),
            vec![],
        )
        .map_err(Error::AuditLog)?,
    );
    let token = AdminToken::generate(&mut rand_core::OsRng);
    let secret = token.expose().to_owned();
    let admin = log_server::spawn("127.0.0.1:0", log_server::admin_router(log.clone(), token))
        .await
        .map_err(Error::AuditLog)?;
    let url = format!("http://{}", admin.addr);
    let start = Instant::now();
    let deadline = start + dur;
    let mut tasks = Vec::new();
    for c in 0..a.clients {
        let client = bkv_client::log::LogClient::new(&url).with_admin(&url, &secret);
        tasks.push(tokio::spawn(async move {
            let (mut lat, mut errors, mut seq) = (Vec::new(), 0u64, 0u64);
            while Instant::now() < deadline {
                let t = Instant::now();
                match client.append(&entry(c, seq)).await {
                    Ok(_) => lat.push(t.elapsed()),
                    Err(_) => errors += 1,
                }
                seq += 1;
            }
            (lat, errors, start.elapsed())
        }));
    }
    let service = summarize_clients(&format!("log service, {} HTTP clients", a.clients), tasks)
        .await
        .map_err(|e| Error::Bench(format!("a bench client failed: {e}")))?;
    drop(admin);
    drop(steps);
    super::print_bench(&[base, service], a.json);
    Ok(ExitCode::SUCCESS)
}
