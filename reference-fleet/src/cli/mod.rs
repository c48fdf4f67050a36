//! The `bkv` command line. One module per area; each parses its own arguments and
//! moves bytes in and out of `bkv-protocol`.
//!
//! Conventions for every subcommand: readable output by default, `--json` for machines,
//! exit status 0 on success, 1 when a verification fails (the spec error code is
//! printed), 2 for usage and I/O errors.

pub mod audit;
pub mod backup;
pub mod bundle;
pub mod fleet_ceremony;
pub mod fleet_rotate;
pub mod fleet_status;
pub mod fleet_up;
pub mod log;
pub mod output;
pub mod recovery_bench;
pub mod replication_bench;

use crate::error::Error;
use clap::{Parser, Subcommand};
use std::process::ExitCode;

/// bkv: an open Backup Key Vault protocol (reference implementation).
#[derive(Debug, Parser)]
#[command(name = "bkv", version, about)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
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
    /// Audit a fleet's deployment: evidence, attestations, ceremony, log (spec/audit.md).
    Audit(audit::AuditArgs),
    /// Back up a file under a recovery code, and restore it (spec/vault.md).
    #[command(subcommand)]
    Backup(backup::BackupCommand),
    /// Benchmarks.
    #[command(subcommand)]
    Bench(BenchCommand),
}

/// `bkv fleet ...`
#[derive(Debug, Subcommand)]
pub enum FleetCommand {
    /// Run the key ceremony of a new local fleet: keys in HSMs, attestations, evidence, bundle.
    Ceremony(fleet_ceremony::CeremonyArgs),
    /// Start a local replicated fleet on loopback (or restart the one in --dir).
    Up(fleet_up::UpArgs),
    /// Replace a local fleet by its successor, moving every record with its counter.
    Rotate(fleet_rotate::RotateArgs),
    /// Leader, term, log and applied indexes, and each node's lag.
    Status(fleet_status::StatusArgs),
}

/// `bkv bench ...`
#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Commits per second: replicated fleet vs a single node without replication, in the same run.
    Replication(replication_bench::ReplicationBenchArgs),
    /// Full recoveries per second over HTTP: replicated fleet vs a single node without
    /// replication, in the same run.
    Recovery(recovery_bench::RecoveryBenchArgs),
}

/// Parse the command line, run it, and map the outcome to an exit status.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(2);
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error [{}]: {e}", e.code());
            ExitCode::from(if matches!(e, Error::Protocol(_)) { 1 } else { 2 })
        }
    }
}

/// Run one parsed command.
pub async fn run(cli: Cli) -> Result<ExitCode, Error> {
    match cli.command {
        Command::Demo(args) => crate::demo::run(args).await,
        Command::Bundle(cmd) => bundle::run(cmd).await,
        Command::Log(args) => log::run_async(args).await.map_err(Error::from),
        Command::Fleet(FleetCommand::Ceremony(a)) => fleet_ceremony::run(a).await,
        Command::Fleet(FleetCommand::Up(a)) => fleet_up::run(a).await,
        Command::Fleet(FleetCommand::Rotate(a)) => fleet_rotate::run(a).await,
        Command::Fleet(FleetCommand::Status(a)) => fleet_status::run(a).await,
        Command::Backup(cmd) => backup::run(cmd).await,
        Command::Audit(a) => audit::run(a).await,
        Command::Bench(BenchCommand::Replication(a)) => replication_bench::run(a).await,
        Command::Bench(BenchCommand::Recovery(a)) => recovery_bench::run(a).await,
    }
}
