//! The `bkv` command line.
use clap::Parser;
use std::process::ExitCode;

#[derive(Debug, Parser)]
#[command(name = "bkv", about = "bkv: open Backup Key Vault protocol tools")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Debug, clap::Subcommand)]
enum Cmd {
    /// Audit log: serve a log or a witness, monitor a log.
    Log(bkv_fleet::cli::log::Args),
}

fn main() -> ExitCode {
    match Cli::parse().cmd {
        Cmd::Log(a) => bkv_fleet::cli::log::run(a),
    }
}
