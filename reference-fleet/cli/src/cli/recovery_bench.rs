//! `bkv bench recovery`: full recoveries per second and their latency (session envelope,
//! OPAQUE, the counter decrement committed before KE2 and the reset after KE3, over HTTP)
//! against an `n`-node replicated loopback fleet, versus the same node software committing
//! to a local durable log without consensus or replication, in the same run
//! (spec/fleet-replication.md, spec/vault.md §7.1). With `--processes`, also the same
//! fleet with each node its own `bkv-node run` process, children of this one.

use std::path::Path;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use bkv_protocol::vault::{BackupKey, KsfParams};
use clap::Args;
use rand_core::{OsRng, RngCore};

use crate::error::{Error, Result};
use crate::fleet::{FleetConfig, LocalFleet, OperatorKeys};
use bkv_client::{FleetClient, Persisted, Recovery};
use bkv_node::replication::raft::bench::{BenchResult, Scratch, summarize_clients};

const FLEET: &str = "bench.bkv.example/vault";
const CODE: &[u8] = b"482913";

/// Arguments of `bkv bench recovery`.
#[derive(Debug, Args)]
pub struct RecoveryBenchArgs {
    /// Nodes in the replicated fleet.
    #[arg(long, default_value_t = 5)]
    pub nodes: usize,
    /// Concurrent clients (spread over the nodes), each recovering its own record.
    #[arg(long, default_value_t = 16)]
    pub clients: usize,
    /// Seconds per measurement.
    #[arg(long, default_value_t = 10)]
    pub secs: u64,
    /// Also measure the same fleet with each node its own `bkv-node run` process (over
    /// plain HTTP, the same timings, no rate limits), in the same run.
    #[arg(long)]
    pub processes: bool,
    /// Also measure the in-process fleet with every HSM's state kept in memory instead of
    /// its sealed file (not durable: what the HSM-state writes of spec/hsm.md §4.4 cost).
    #[arg(long)]
    pub volatile_hsm_state: bool,
    /// Scratch directory (default: a fresh directory under the system temp dir).
    #[arg(long)]
    pub dir: Option<std::path::PathBuf>,
    /// `--json` (global, spec of the output: `bkv schema output`).
    #[arg(skip)]
    pub json: bool,
}

/// Run the benchmark.
pub async fn run(a: RecoveryBenchArgs) -> Result<ExitCode> {
    if a.nodes == 0 || a.clients == 0 {
        return Err(Error::Usage("--nodes and --clients must be at least 1".into()));
    }
    let scratch = Scratch::given_or_temp(a.dir.as_deref(), "bkv-bench-recovery");
    let root = scratch.0.clone();
    let dur = Duration::from_secs(a.secs);
    let mut results = Vec::new();
    let steps = super::output::Steps::new(a.json);

    steps.step(&format!("single node, no replication: key ceremony, {} clients, {} s...", a.clients, a.secs));
    let mut single = ceremony(&root.join("single"), 1).await?;
    single.start_node_unreplicated(0).await?;
    results.push(drive("single node, no replication", &single, a.clients, dur).await?);
    single.shutdown().await;

    steps.step(&format!(
        "{}-node replicated fleet: key ceremony, {} clients, {} s...",
        a.nodes, a.clients, a.secs
    ));
    let mut fleet = ceremony(&root.join("fleet"), a.nodes).await?;
    for i in 0..a.nodes {
        fleet.start_node(i).await?;
    }
    fleet.wait_ready(Duration::from_secs(30)).await?;
    results.push(drive(&format!("{}-node replicated fleet", a.nodes), &fleet, a.clients, dur).await?);
    fleet.shutdown().await;

    if a.volatile_hsm_state {
        steps.step(&format!(
            "{}-node fleet, HSM state in memory: key ceremony, {} clients, {} s...",
            a.nodes, a.clients, a.secs
        ));
        let mut fleet = ceremony(&root.join("volatile"), a.nodes).await?;
        fleet.volatile_hsm_state = true;
        for i in 0..a.nodes {
            fleet.start_node(i).await?;
        }
        fleet.wait_ready(Duration::from_secs(30)).await?;
        let label = format!("{}-node fleet, HSM state in memory (not durable)", a.nodes);
        results.push(drive(&label, &fleet, a.clients, dur).await?);
        fleet.shutdown().await;
    }

    if a.processes {
        steps.step(&format!(
            "{}-node fleet, one process per node: key ceremony, {} clients, {} s...",
            a.nodes, a.clients, a.secs
        ));
        let mut fleet = ceremony(&root.join("processes"), a.nodes).await?;
        fleet.release_listeners();
        for config in crate::fleet::write_node_configs(&fleet.dir, None)? {
            // The clients recover the same records as fast as the fleet answers.
            let mut text = std::fs::read_to_string(&config)
                .map_err(|source| Error::Read { path: config.clone(), source })?;
            text.push_str(
                "\n[limits]\nmax_connections = 4096\nmax_connections_per_client = 4096\nheader_timeout_ms = 5000\n\
                 attempts_per_record_per_minute = 0\nattempts_per_node_per_second = 0\nrequests_per_client_per_second = 0\n",
            );
            crate::error::write_file(&config, text.as_bytes())?;
        }
        let sup = super::supervisor::Supervisor::new(
            &fleet.dir,
            fleet.nodes.iter().map(|n| n.id.clone()).collect(),
        );
        let started = async {
            for n in &fleet.nodes {
                sup.start(&n.id).await?;
            }
            let urls: Vec<String> = fleet.nodes.iter().map(|n| n.url.clone()).collect();
            super::supervisor::wait_ready(&urls, Duration::from_secs(60)).await
        }
        .await;
        let measured = match started {
            Ok(()) => {
                drive(&format!("{}-node fleet, one process per node", a.nodes), &fleet, a.clients, dur).await
            }
            Err(e) => Err(e),
        };
        sup.stop_all().await;
        fleet.shutdown().await;
        results.push(measured?);
    }

    drop(steps);
    super::print_bench(&results, a.json);
    Ok(ExitCode::SUCCESS)
}

/// A new fleet for the benchmark (served in this process: no rate limits, so its clients
/// recover the same record as fast as the fleet answers).
async fn ceremony(dir: &Path, nodes: usize) -> Result<LocalFleet> {
    LocalFleet::ceremony(dir, &FleetConfig::new(FLEET, nodes), &OperatorKeys::generate(), |_| {}).await
}

/// `clients` clients, client `c` bound to node `c % n`, each registers one record (not
/// timed) and then recovers it with the right code until `duration` is over. Clients use
/// the TEST Argon2id profile (spec/vault.md §2.1): the production KSF runs on the phone
/// and would only measure this machine's Argon2id.
async fn drive(label: &str, fleet: &LocalFleet, clients: usize, duration: Duration) -> Result<BenchResult> {
    let now = bkv_client::clock::system_now();
    let mut bound = Vec::new();
    for c in 0..clients {
        let url = &fleet.nodes[c % fleet.nodes.len()].url;
        let (client, _) =
            FleetClient::connect(url, &fleet.trust, &Persisted::default(), KsfParams::TEST, now).await?;
        let mut record = vec![0u8; 32];
        OsRng.fill_bytes(&mut record);
        client.register(&record, CODE, &BackupKey::generate(&mut OsRng)).await?;
        bound.push((client, record));
    }
    let writes =
        |f: &LocalFleet| -> u64 { f.nodes.iter().filter_map(|n| n.hsm()).map(|h| h.status().writes).sum() };
    let writes_before = writes(fleet);
    let start = Instant::now();
    let deadline = start + duration;
    let tasks: Vec<_> = bound
        .into_iter()
        .map(|(client, record)| {
            tokio::spawn(async move {
                let (mut lat, mut errors) = (Vec::new(), 0u64);
                while Instant::now() < deadline {
                    let t = Instant::now();
                    match client.recover(&record, CODE).await {
                        Ok(Recovery::Recovered { .. }) => lat.push(t.elapsed()),
                        _ => errors += 1,
                    }
                }
                (lat, errors, start.elapsed())
            })
        })
        .collect();
    let result = summarize_clients(label, tasks)
        .await
        .map_err(|e| Error::Bench(format!("a bench client failed: {e}")))?;
    // spec/hsm.md §4.4: HSM-state (NVRAM) writes per committed command, per node; each
    // recovery commits two commands (attempt_start, attempt_success). Nodes in other
    // processes are not counted here.
    let hsms = fleet.nodes.iter().filter(|n| n.hsm().is_some()).count();
    if hsms > 0 && result.ops > 0 {
        let w = writes(fleet) - writes_before;
        eprintln!(
            "{label}: {w} HSM-state writes on {hsms} HSMs for {} committed commands: {:.2} per command per HSM",
            2 * result.ops,
            w as f64 / (2 * result.ops) as f64 / hsms as f64
        );
    }
    Ok(result)
}
