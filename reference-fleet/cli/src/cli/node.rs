//! `bkv-node run --config node.toml`: one fleet node as its own process, the program the
//! deployment evidence measures (spec/audit.md §1.2); `bkv node check`
//! (`reference-fleet/README.md`, "Node configuration"); `bkv fleet configs`: write those
//! files for a local fleet directory.

use crate::cli::contract::Envelope;
use crate::error::{Error, Result};
use bkv_client::clock::SystemClock;
use bkv_node::config::NodeConfig;
use clap::{Args, Subcommand};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;

/// `bkv node ...`
#[derive(Debug, Subcommand)]
pub enum NodeCommand {
    /// Run one fleet node from its configuration file until SIGINT or SIGTERM.
    Run(RunArgs),
    /// Check a node's configuration file and exit (nothing is opened or bound).
    Check(RunArgs),
}

/// Arguments of `bkv node run` and `bkv node check`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// The node's configuration (TOML).
    #[arg(long)]
    pub config: PathBuf,
    /// Run as a supervisor's child: stop when standard input closes (the supervisor exited
    /// or was killed), so that no node outlives its supervisor.
    #[arg(long, hide = true)]
    pub supervised: bool,
    /// A supervisor's first start of a new fleet: bind the listeners (port 0 allowed), print
    /// a `bound` line with the real addresses, then read the peers' addresses as one JSON
    /// line `{"peers": {"node-2": "127.0.0.1:PORT", ...}}` from standard input.
    #[arg(long, hide = true, requires = "supervised")]
    pub announce: bool,
    /// `--json` (global).
    #[arg(skip)]
    pub json: bool,
}

/// Arguments of `bkv fleet configs`.
#[derive(Debug, Args)]
pub struct ConfigsArgs {
    /// The fleet directory (of `bkv fleet ceremony` or `bkv fleet up`).
    #[arg(long)]
    pub dir: PathBuf,
    /// The audit log URL the nodes relay consistency proofs from.
    #[arg(long)]
    pub audit_log: Option<String>,
    /// `--json` (global).
    #[arg(skip)]
    pub json: bool,
}

/// `bkv node ...`: a node's configuration is checked here; the node itself runs as the
/// program `bkv-node` (spec/audit.md §1.2).
#[derive(Debug, Subcommand)]
pub enum BkvNodeCommand {
    /// Check a node's configuration file and exit (nothing is opened or bound).
    Check(RunArgs),
    /// Points to `bkv-node run`: the node runs as its own, measured program.
    #[command(hide = true)]
    Run(RunArgs),
}

impl BkvNodeCommand {
    /// Apply the global `--json`.
    pub fn set_json(&mut self, json: bool) {
        match self {
            BkvNodeCommand::Run(a) | BkvNodeCommand::Check(a) => a.json = json,
        }
    }
}

impl NodeCommand {
    /// Apply the global `--json`.
    pub fn set_json(&mut self, json: bool) {
        match self {
            NodeCommand::Run(a) | NodeCommand::Check(a) => a.json = json,
        }
    }
}

/// Run a `bkv node` subcommand.
pub async fn run(cmd: NodeCommand) -> Result<ExitCode> {
    match cmd {
        NodeCommand::Check(a) => {
            let config = NodeConfig::load(&a.config, bkv_client::clock::system_now())?;
            let summary = serde_json::json!({
                "config": a.config, "node": config.raw.id, "fleet_id": config.keyset.fleet_id,
                "epoch": config.keyset.epoch, "peers": config.raw.peers.len(),
            });
            if a.json {
                Envelope::success(summary).print();
            } else {
                println!(
                    "{}: node {} of fleet {} epoch {}, {} peers: the configuration is usable",
                    a.config.display(),
                    config.raw.id,
                    config.keyset.fleet_id,
                    config.keyset.epoch,
                    config.raw.peers.len()
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        NodeCommand::Run(a) => {
            let config = NodeConfig::load(&a.config, bkv_client::clock::system_now())?;
            let bound = bkv_node::run::bind_listeners(&config)?;
            let peers = if a.announce { Some(announce(&config, &bound).await?) } else { None };
            let running = bound.start(&config, peers.as_ref(), SystemClock::shared()).await?;
            let ready = serde_json::json!({
                "node": config.raw.id, "pid": std::process::id(),
                "client": format!("{}://{}", running.scheme, running.client_addr), "peer": running.peer_addr.to_string(),
            });
            // The readiness line: both listeners are bound and consensus has started.
            if a.json {
                Envelope::success(ready).print();
            } else {
                println!(
                    "node {} serving: client http://{}, peers {}, pid {}",
                    config.raw.id,
                    running.client_addr,
                    running.peer_addr,
                    std::process::id()
                );
            }
            if a.supervised {
                tokio::select! {
                    _ = wait_for_termination() => {}
                    _ = stdin_closed() => tracing::info!(node = %config.raw.id, "supervisor gone"),
                }
            } else {
                wait_for_termination().await;
            }
            tracing::info!(node = %config.raw.id, "shutting down");
            running.shutdown().await;
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// The `--announce` exchange: print the bound addresses, read the peers' from the supervisor.
async fn announce(
    config: &NodeConfig,
    bound: &bkv_node::run::Bound,
) -> Result<BTreeMap<String, std::net::SocketAddr>> {
    use tokio::io::AsyncBufReadExt;
    Envelope::success(serde_json::json!({ "bound": {
        "node": config.raw.id, "client": bound.client_addr, "peer": bound.peer_addr,
    }}))
    .print();
    let mut line = String::new();
    let mut stdin = tokio::io::BufReader::new(tokio::io::stdin());
    let read = tokio::time::timeout(std::time::Duration::from_secs(60), stdin.read_line(&mut line)).await;
    let no_peers = |why: String| {
        Error::Runtime(format!("{}: no peer addresses from the supervisor: {why}", config.raw.id))
    };
    match read {
        Err(_) => return Err(no_peers("none within 60 s".into())),
        Ok(Err(e)) => return Err(no_peers(e.to_string())),
        Ok(Ok(0)) => return Err(no_peers("standard input closed".into())),
        Ok(Ok(_)) => {}
    }
    #[derive(serde::Deserialize)]
    struct Peers {
        peers: BTreeMap<String, std::net::SocketAddr>,
    }
    let peers: Peers = serde_json::from_str(&line).map_err(|e| no_peers(format!("{line:?}: {e}")))?;
    Ok(peers.peers)
}

/// Wait until standard input reaches its end (the supervisor holds the other end).
pub(crate) async fn stdin_closed() {
    use tokio::io::AsyncReadExt;
    let mut stdin = tokio::io::stdin();
    let mut buf = [0u8; 64];
    while matches!(stdin.read(&mut buf).await, Ok(n) if n > 0) {}
}

/// Wait for SIGINT or SIGTERM.
pub(crate) async fn wait_for_termination() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// Run `bkv fleet configs`.
pub fn configs(a: ConfigsArgs) -> Result<ExitCode> {
    let written = crate::fleet::write_node_configs(&a.dir, a.audit_log.as_deref())?;
    if a.json {
        Envelope::success(serde_json::json!({ "configs": written })).print();
    } else {
        for p in &written {
            println!("{}", p.display());
        }
    }
    Ok(ExitCode::SUCCESS)
}
