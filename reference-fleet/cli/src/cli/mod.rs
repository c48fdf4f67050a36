//! The `bkv` command line. One module per area; each parses its own arguments and
//! moves bytes in and out of `bkv-protocol`.
//!
//! Conventions for every subcommand ([`contract`]): readable output by default, the global
//! `--json` for machines, results on stdout and status on stderr, exit status 0 on
//! success, 1 when a verification fails, 2 for a usage error, 3 for an operational
//! failure; logs through `tracing` (`RUST_LOG`, `--log-format`).

pub mod audit;
pub mod backup;
pub mod bundle;
pub mod contract;
pub mod evidence;
pub mod fleet_ceremony;
pub mod fleet_rotate;
pub mod fleet_status;
pub mod fleet_up;
pub mod forged_bench;
pub mod log;
pub mod log_bench;
pub mod node;
pub mod operator;
pub mod output;
pub mod recovery_bench;
pub mod replication_bench;
pub mod scale_bench;
pub mod signer;
pub mod supervisor;
pub mod tls;
pub mod trust;
pub mod url;

use crate::error::Error;
use clap::{Parser, Subcommand};
use std::process::ExitCode;

/// bkv: an open Backup Key Vault protocol (reference implementation).
#[derive(Debug, Parser)]
#[command(
    name = "bkv",
    version = concat!(env!("CARGO_PKG_VERSION"), " (source ", env!("BKV_SOURCE_REV"), ", ", env!("BKV_RUSTC_VERSION"), ")"),
    about
)]
pub struct Cli {
    /// Print the result, or the failure, as one JSON document on stdout (`bkv schema output`).
    #[arg(long, global = true)]
    pub json: bool,
    /// Format of the log events on stderr (filter them with `RUST_LOG`; default: warnings,
    /// without openraft's).
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// CA certificates (PEM) trusted for every `https://` URL (nodes, log, witnesses); no
    /// other roots are trusted. Plain `http://` needs none.
    #[arg(long, global = true, env = "BKV_CA")]
    pub ca: Option<std::path::PathBuf>,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// `--log-format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per event, with its fields.
    Json,
}

/// `bkv schema ...`
#[derive(Debug, Subcommand)]
pub enum SchemaCommand {
    /// The JSON Schema of every command's `--json` output (the output contract).
    Output,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the whole story end to end on this machine, printing each step.
    Demo(crate::demo::DemoArgs),
    /// Inspect and verify validation bundles (spec/validation-bundle.md).
    #[command(subcommand)]
    Bundle(bundle::BundleCommand),
    /// Audit log: serve a log or a witness, monitor a log (spec/audit-log.md).
    Log(log::Args),
    /// Operate a fleet (spec/fleet-replication.md).
    #[command(subcommand)]
    Fleet(FleetCommand),
    /// Check a node's configuration (`bkv node check`); nodes run as `bkv-node run`.
    #[command(subcommand)]
    Node(node::BkvNodeCommand),
    /// Audit a fleet's deployment: evidence, attestations, ceremony, log (spec/audit.md).
    Audit(audit::AuditArgs),
    /// Build and inspect the trust file from published keys; the vendor-roots file from
    /// vendors' certificates (spec/audit.md §1.1).
    #[command(subcommand)]
    Trust(trust::TrustCommand),
    /// Inspect deployment evidence (spec/evidence.md), unverified.
    #[command(subcommand)]
    Evidence(evidence::EvidenceCommand),
    /// Back up a file under a recovery code, and restore it (spec/vault.md).
    #[command(subcommand)]
    Backup(backup::BackupCommand),
    /// Benchmarks.
    #[command(subcommand)]
    Bench(BenchCommand),
    /// JSON Schemas of what the CLI prints.
    #[command(subcommand)]
    Schema(SchemaCommand),
    /// TLS certificates for a private CA (tests and labs).
    #[command(subcommand)]
    Tls(tls::TlsCommand),
    /// The third party's signer: its key and the signing protocol (spec/signer-api.md §3).
    #[command(subcommand)]
    Signer(signer::SignerCommand),
    /// The operator: have a FleetKeySet signed, check it, countersign (spec/signer-api.md §4).
    #[command(subcommand)]
    Operator(operator::OperatorCommand),
    /// Organisation keys in a PKCS#11 token: generate, inspect.
    #[command(subcommand)]
    Keys(signer::KeysCommand),
    /// The version, the source revision and the compiler of this build.
    Version,
}

/// `bkv fleet ...`
#[derive(Debug, Subcommand)]
pub enum FleetCommand {
    /// Run the key ceremony of a new local fleet: keys in HSMs, attestations, evidence, bundle.
    Ceremony(fleet_ceremony::CeremonyArgs),
    /// Start a local replicated fleet on loopback, one process per node (or restart the one in --dir).
    Up(fleet_up::UpArgs),
    /// Replace a local fleet by its successor, moving every record with its counter.
    Rotate(fleet_rotate::RotateArgs),
    /// Leader, term, log and applied indexes, and each node's lag.
    Status(fleet_status::StatusArgs),
    /// Write each node's configuration file (`node-N/node.toml`) for `bkv-node run`.
    Configs(node::ConfigsArgs),
    /// SIGKILL one node process of a `bkv fleet up` fleet.
    Kill(SupervisorArgs),
    /// Stop one node process cleanly, or, without --node, the whole fleet.
    Stop(SupervisorArgs),
    /// Start one node process again.
    Start(SupervisorArgs),
}

/// Arguments of `bkv fleet kill|stop|start`.
#[derive(Debug, clap::Args)]
pub struct SupervisorArgs {
    /// The fleet directory of a running `bkv fleet up`.
    #[arg(long)]
    pub dir: std::path::PathBuf,
    /// The node.
    #[arg(long)]
    pub node: Option<String>,
}

/// `bkv bench ...`
#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Commits per second: replicated fleet vs a single node without replication, in the same run.
    Replication(replication_bench::ReplicationBenchArgs),
    /// Full recoveries per second over HTTP: replicated fleet vs a single node without
    /// replication, in the same run.
    Recovery(recovery_bench::RecoveryBenchArgs),
    /// Recoveries, memory, snapshots, start-up and catch-up at several record counts
    /// (records seeded directly through the state machine).
    Scale(scale_bench::ScaleBenchArgs),
    /// Durable appends per second to the audit log service over HTTP vs its storage alone,
    /// in the same run.
    Log(log_bench::LogBenchArgs),
    /// Memory and disk per node after forged guesses against ids never registered
    /// (most seeded directly through the state machine, the rest through the log).
    Forged(forged_bench::ForgedBenchArgs),
}

/// Print a benchmark's results: the envelope with `--json`, else a table; each with its
/// ratio to the baseline measured in the same run.
pub(crate) fn print_bench(results: &[bkv_node::replication::raft::bench::BenchResult], json: bool) {
    use bkv_node::replication::raft::bench::{results_json, results_table};
    if json {
        contract::Envelope::success(results_json(results)).print();
    } else {
        print!("{}", results_table(results));
    }
}

/// Without `RUST_LOG`: bkv's warnings; openraft's own error events are left out, because
/// the vote gate (spec/fleet-replication.md §6.3) refuses vote requests on purpose and
/// openraft reports each refusal as an error.
pub const DEFAULT_LOG_FILTER: &str = "warn,openraft=off";

/// The `--log-format` of this process (the supervisor passes it on to its children).
pub static LOG_FORMAT: std::sync::OnceLock<LogFormat> = std::sync::OnceLock::new();

impl LogFormat {
    /// The `--log-format` value.
    pub fn arg(self) -> &'static str {
        match self {
            LogFormat::Text => "text",
            LogFormat::Json => "json",
        }
    }
}

/// Install the `tracing` subscriber: events on stderr, filtered by `RUST_LOG`
/// (default [`DEFAULT_LOG_FILTER`]).
fn init_logs(format: LogFormat) {
    let _ = LOG_FORMAT.set(format);
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(DEFAULT_LOG_FILTER));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}

impl Command {
    /// Apply the global `--json` to the commands that print a result.
    fn set_json(&mut self, json: bool) {
        match self {
            Command::Bundle(c) => c.set_json(json),
            Command::Log(a) => a.set_json(json),
            Command::Fleet(FleetCommand::Ceremony(a)) => a.json = json,
            Command::Fleet(FleetCommand::Up(a)) => a.json = json,
            Command::Fleet(FleetCommand::Rotate(a)) => a.json = json,
            Command::Fleet(FleetCommand::Status(a)) => a.json = json,
            Command::Fleet(FleetCommand::Configs(a)) => a.json = json,
            Command::Fleet(FleetCommand::Kill(_) | FleetCommand::Stop(_) | FleetCommand::Start(_)) => {}
            Command::Node(c) => c.set_json(json),
            Command::Audit(a) => a.json = json,
            Command::Backup(c) => c.set_json(json),
            Command::Bench(BenchCommand::Replication(a)) => a.json = json,
            Command::Bench(BenchCommand::Recovery(a)) => a.json = json,
            Command::Bench(BenchCommand::Scale(a)) => a.json = json,
            Command::Bench(BenchCommand::Forged(a)) => a.json = json,
            Command::Bench(BenchCommand::Log(a)) => a.json = json,
            Command::Tls(c) => c.set_json(json),
            Command::Operator(operator::OperatorCommand::Countersign(a)) => a.json = json,
            Command::Signer(_) => {}
            Command::Keys(c) => c.set_json(json),
            Command::Demo(a) => a.json = json,
            Command::Schema(_) | Command::Version | Command::Trust(_) | Command::Evidence(_) => {}
        }
    }
}

/// What `bkv version` reports.
#[derive(Debug, serde::Serialize)]
pub struct Version {
    /// The package version.
    pub version: &'static str,
    /// The git revision the binary was built from.
    pub source_rev: &'static str,
    /// The compiler that built it.
    pub rustc: &'static str,
}

/// This build's version.
pub const VERSION: Version = Version {
    version: env!("CARGO_PKG_VERSION"),
    source_rev: env!("BKV_SOURCE_REV"),
    rustc: env!("BKV_RUSTC_VERSION"),
};

/// Parse the command line as `C`; a usage error is reported by the contract (the
/// envelope with `--json`) and becomes the exit status.
fn parse<C: Parser>() -> Result<C, ExitCode> {
    // Usage errors are reported before a `--json` could be parsed: look for it in the raw
    // arguments so that they, too, follow the contract.
    let json_requested = std::env::args().any(|a| a == "--json");
    match C::try_parse() {
        Ok(cli) => Ok(cli),
        Err(e) if !e.use_stderr() => {
            let _ = e.print();
            Err(ExitCode::SUCCESS)
        }
        Err(e) => {
            if json_requested {
                contract::Envelope::failure(&Error::Usage(e.render().to_string().trim_end().to_owned()))
                    .print();
            } else {
                let _ = e.print();
            }
            Err(ExitCode::from(contract::EXIT_USAGE))
        }
    }
}

/// Run `work` on a new runtime and map its outcome to an exit status.
fn block_on(json: bool, work: impl Future<Output = Result<ExitCode, Error>>) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => return report(&Error::Runtime(format!("cannot start the async runtime: {e}")), json),
    };
    match runtime.block_on(work) {
        Ok(code) => code,
        Err(e) => report(&e, json),
    }
}

/// Parse the command line, run it, and map the outcome to an exit status
/// ([`contract::exit_status`]).
pub fn main() -> ExitCode {
    let mut cli = match parse::<Cli>() {
        Ok(cli) => cli,
        Err(code) => return code,
    };
    init_logs(cli.log_format);
    let json = cli.json;
    if let Some(ca) = &cli.ca
        && let Err(e) = bkv_client::tls::trust_roots(ca)
    {
        return report(&Error::Tls(e), json);
    }
    cli.command.set_json(json);
    block_on(json, run(cli))
}

/// `bkv-node`: the node software, its own executable, the one the deployment evidence
/// measures (spec/audit.md §1.2). It runs a node and checks a node's configuration; nothing
/// else.
#[derive(Debug, Parser)]
#[command(
    name = "bkv-node",
    version = concat!(env!("CARGO_PKG_VERSION"), " (source ", env!("BKV_SOURCE_REV"), ", ", env!("BKV_RUSTC_VERSION"), ")"),
    about = "bkv-node: one node of a bkv fleet (the measured node software, spec/audit.md §1.2)"
)]
pub struct NodeCli {
    /// Print the result, or the failure, as one JSON document on stdout (`bkv schema output`).
    #[arg(long, global = true)]
    pub json: bool,
    /// Format of the log events on stderr (filter them with `RUST_LOG`).
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// What to do.
    #[command(subcommand)]
    pub command: node::NodeCommand,
}

/// The `main` of `bkv-node`.
pub fn node_main() -> ExitCode {
    let mut cli = match parse::<NodeCli>() {
        Ok(cli) => cli,
        Err(code) => return code,
    };
    init_logs(cli.log_format);
    cli.command.set_json(cli.json);
    block_on(cli.json, node::run(cli.command))
}

/// Report a failure by the contract: the envelope on stdout with `--json`, one line on
/// stderr always.
fn report(e: &Error, json: bool) -> ExitCode {
    if json {
        contract::Envelope::failure(e).print();
    }
    eprintln!("error [{}]: {}", e.code(), e.message());
    if let Some(hint) = e.hint() {
        eprintln!("hint: {hint}");
    }
    ExitCode::from(contract::exit_status(e))
}

/// `bkv fleet kill|stop|start`: ask the supervisor.
async fn supervise(a: SupervisorArgs, action: &str, json: bool) -> Result<ExitCode, Error> {
    if a.node.is_none() && action != "stop" {
        return Err(Error::Usage(format!("bkv fleet {action} needs --node")));
    }
    let text = supervisor::request(&a.dir, a.node.as_deref(), action).await?;
    if json {
        contract::Envelope::success(serde_json::json!({ "done": text })).print();
    } else {
        println!("{text}");
    }
    Ok(ExitCode::SUCCESS)
}

/// Run one parsed command.
pub async fn run(cli: Cli) -> Result<ExitCode, Error> {
    let json = cli.json;
    match cli.command {
        Command::Demo(args) => crate::demo::run(args).await,
        Command::Bundle(cmd) => bundle::run(cmd).await,
        Command::Log(args) => log::run_async(args, json).await,
        Command::Fleet(FleetCommand::Ceremony(a)) => fleet_ceremony::run(a).await,
        Command::Fleet(FleetCommand::Up(a)) => fleet_up::run(a).await,
        Command::Fleet(FleetCommand::Rotate(a)) => fleet_rotate::run(a).await,
        Command::Fleet(FleetCommand::Status(a)) => fleet_status::run(a).await,
        Command::Fleet(FleetCommand::Configs(a)) => node::configs(a),
        Command::Fleet(FleetCommand::Kill(a)) => supervise(a, "kill", json).await,
        Command::Fleet(FleetCommand::Stop(a)) => supervise(a, "stop", json).await,
        Command::Fleet(FleetCommand::Start(a)) => supervise(a, "start", json).await,
        Command::Node(node::BkvNodeCommand::Run(_)) => Err(Error::Usage(
            "a node runs as its own program, the measured node software (spec/audit.md §1.2): \
             `bkv-node run --config node.toml`"
                .into(),
        )),
        Command::Node(node::BkvNodeCommand::Check(a)) => node::run(node::NodeCommand::Check(a)).await,
        Command::Backup(cmd) => backup::run(cmd).await,
        Command::Audit(a) => audit::run(a).await,
        Command::Trust(cmd) => trust::run(cmd, json),
        Command::Evidence(cmd) => evidence::run(cmd, json),
        Command::Bench(BenchCommand::Replication(a)) => replication_bench::run(a).await,
        Command::Bench(BenchCommand::Recovery(a)) => recovery_bench::run(a).await,
        Command::Bench(BenchCommand::Scale(a)) => scale_bench::run(a).await,
        Command::Bench(BenchCommand::Forged(a)) => forged_bench::run(a).await,
        Command::Bench(BenchCommand::Log(a)) => log_bench::run(a).await,
        Command::Tls(cmd) => tls::run(cmd),
        Command::Signer(cmd) => signer::run_signer(cmd, json).await,
        Command::Operator(cmd) => operator::run_operator(cmd).await,
        Command::Keys(cmd) => signer::run_keys(cmd),
        Command::Schema(SchemaCommand::Output) => {
            if json {
                contract::Envelope::success(contract::schema()).print();
            } else {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&contract::schema()).expect("a schema serializes")
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Version => {
            if json {
                contract::Envelope::success(&VERSION).print();
            } else {
                println!(
                    "bkv {} (source {}, built with {})",
                    VERSION.version, VERSION.source_rev, VERSION.rustc
                );
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}
