//! `bkv log ...`: run the audit log, a witness, or a monitor (spec/audit-log.md §8, §9).

use crate::cli::contract::Envelope;
use crate::error::{Error, write_file, write_secret};
use bkv_client::LogClient;
use bkv_client::monitor::{self, Announced};
use bkv_protocol::audit_log::note::{self, SIG_TYPE_COSIGNATURE, SIG_TYPE_ED25519, VerifierKey};
use bkv_protocol::audit_log::{LogAnchors, TreeHead};
use bkv_protocol::crypto::Ed25519Signer;
use bkv_third_party::log_server::{self as server, LogService};
use bkv_third_party::witness::{self, Witness};
use clap::{Parser, Subcommand, ValueEnum};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

/// `bkv log`.
#[derive(Debug, Parser)]
pub struct Args {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Create a log or witness signing key (hex seed file, mode 0600) and print its verifier key.
    Keygen {
        /// Key name (a log's origin, or a witness name), e.g. `log.example/bkv`.
        #[arg(long)]
        name: String,
        /// Log key (signed-note type 0x01) or witness key (cosignature type 0x04).
        #[arg(long, value_enum)]
        kind: KeyKind,
        /// Where to write the secret seed.
        #[arg(long)]
        out: PathBuf,
    },
    /// Serve the log over HTTP (storage in redb).
    Serve {
        /// redb database file.
        #[arg(long)]
        db: PathBuf,
        /// Listen address.
        #[arg(long, default_value = "127.0.0.1:8080")]
        addr: String,
        /// Log origin (also the key name).
        #[arg(long)]
        origin: String,
        /// File holding the log's hex seed.
        #[arg(long)]
        key_file: PathBuf,
        /// Witness base URLs to ask for cosignatures.
        #[arg(long = "witness")]
        witnesses: Vec<String>,
        /// Listen address of the admin listener: `POST /add` and `POST /checkpoint`, for the
        /// third-party signer only (spec/audit-log.md §8.1).
        #[arg(long, default_value = "127.0.0.1:8079")]
        admin_addr: String,
        /// The admin listener's bearer token (created, owner-only, when the file does not
        /// exist); a write without it is 401 and changes nothing.
        #[arg(long)]
        admin_token_file: PathBuf,
        /// Run as a supervisor's child: stop when standard input closes.
        #[arg(long, hide = true)]
        supervised: bool,
        /// Fault injection for crash tests: abort after the n-th durable append, before acknowledging it.
        #[arg(long, hide = true)]
        crash_after_appends: Option<u64>,
        /// Serve over TLS.
        #[command(flatten)]
        tls: TlsArgs,
    },
    /// Serve a witness over HTTP (state in redb).
    Witness {
        /// redb database file.
        #[arg(long)]
        db: PathBuf,
        /// Listen address.
        #[arg(long, default_value = "127.0.0.1:8081")]
        addr: String,
        /// Witness name.
        #[arg(long)]
        name: String,
        /// File holding the witness's hex seed.
        #[arg(long)]
        key_file: PathBuf,
        /// The log's verifier key.
        #[arg(long)]
        log_vkey: String,
        /// Run as a supervisor's child: stop when standard input closes.
        #[arg(long, hide = true)]
        supervised: bool,
        /// Serve over TLS.
        #[command(flatten)]
        tls: TlsArgs,
    },
    /// Walk a log: verify it, list its bundles, flag gaps, forks and unannounced bundles.
    Monitor {
        /// Log base URL.
        #[arg(long)]
        url: String,
        /// Only list this fleet's bundles.
        #[arg(long)]
        fleet: Option<String>,
        /// LogAnchors JSON: verify the checkpoint signature and witnesses.
        #[arg(long)]
        anchors: Option<PathBuf>,
        /// JSON list of {fleet_id, epoch, digest} the operator announced.
        #[arg(long)]
        announced: Option<PathBuf>,
        /// JSON file with the tree head seen last time; updated after a clean run.
        #[arg(long)]
        state: Option<PathBuf>,
        /// `--json` (global, spec of the output: `bkv schema output`).
        #[arg(skip)]
        json: bool,
    },
}

/// `--tls-cert` and `--tls-key` of a server: both, or neither for plain HTTP.
#[derive(Debug, Clone, clap::Args)]
pub struct TlsArgs {
    /// The server's certificate chain (PEM, leaf first).
    #[arg(long, requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// Its private key (PEM).
    #[arg(long, requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
}

impl TlsArgs {
    /// The TLS configuration, if asked for.
    pub fn config(&self) -> Result<Option<Arc<rustls::ServerConfig>>, Error> {
        match (&self.tls_cert, &self.tls_key) {
            (Some(c), Some(k)) => Ok(Some(bkv_serve::tls::server_config(c, k)?)),
            _ => Ok(None),
        }
    }

    /// `https` with TLS, else `http`.
    pub fn scheme(&self) -> &'static str {
        if self.tls_cert.is_some() { "https" } else { "http" }
    }
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum KeyKind {
    Log,
    Witness,
}

impl Args {
    /// Apply the global `--json` to the subcommands that print a result.
    pub fn set_json(&mut self, json: bool) {
        if let Cmd::Monitor { json: j, .. } = &mut self.cmd {
            *j = json;
        }
    }
}

/// Run `bkv log` inside an existing runtime; `Ok(1)` when the monitor has findings. With
/// `json`, a server's readiness is one success envelope (its keys and URLs) on standard
/// output; without, the lines `vkey …`, `admin on …` and `listening on …`.
pub async fn run_async(args: Args, json: bool) -> Result<ExitCode, Error> {
    match args.cmd {
        Cmd::Keygen { name, kind, out } => {
            let signer = Ed25519Signer::generate(&mut rand_core::OsRng);
            let t = match kind {
                KeyKind::Log => SIG_TYPE_ED25519,
                KeyKind::Witness => SIG_TYPE_COSIGNATURE,
            };
            let vkey = note::verifier_key(&name, t, &signer)?;
            write_secret(&out, &hex::encode(signer.seed()))?;
            if json {
                Envelope::success(serde_json::json!({ "vkey": vkey.encode(), "key_file": out })).print();
            } else {
                println!("{}", vkey.encode());
            }
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Serve {
            db,
            addr,
            origin,
            key_file,
            witnesses,
            admin_addr,
            admin_token_file,
            supervised,
            crash_after_appends,
            tls,
        } => {
            let config = tls.config()?;
            let signer = Ed25519Signer::from_seed(&*crate::error::read_secret(&key_file)?);
            let token = server::AdminToken::load_or_create(&admin_token_file, &mut rand_core::OsRng)?;
            let log = Arc::new(
                LogService::open(&db, &origin, signer, witnesses)?
                    .crash_after_appends(crash_after_appends)?,
            );
            let vkey = log.vkey().encode();
            let running = server::spawn_tls(&addr, server::router(log.clone()), config.clone()).await?;
            let admin = server::spawn_tls(&admin_addr, server::admin_router(log, token), config).await?;
            let (url, admin_url) = (
                format!("{}://{}", tls.scheme(), running.addr),
                format!("{}://{}", tls.scheme(), admin.addr),
            );
            if json {
                Envelope::success(serde_json::json!({
                    "vkey": vkey, "url": url, "admin_url": admin_url, "admin_token_file": admin_token_file,
                }))
                .print();
            } else {
                println!("vkey {vkey}");
                println!("admin on {admin_url} (token in {})", admin_token_file.display());
                println!("listening on {url}");
            }
            wait_forever(supervised).await
        }
        Cmd::Witness { db, addr, name, key_file, log_vkey, supervised, tls } => {
            let config = tls.config()?;
            let signer = Ed25519Signer::from_seed(&*crate::error::read_secret(&key_file)?);
            let w = Witness::open(&db, &name, signer, VerifierKey::parse(&log_vkey)?)?;
            let vkey = w.vkey().encode();
            let running = server::spawn_tls(&addr, witness::router(Arc::new(w)), config).await?;
            let url = format!("{}://{}", tls.scheme(), running.addr);
            if json {
                Envelope::success(serde_json::json!({ "vkey": vkey, "url": url })).print();
            } else {
                println!("vkey {vkey}");
                println!("listening on {url}");
            }
            wait_forever(supervised).await
        }
        Cmd::Monitor { url, fleet, anchors, announced, state, json } => {
            let url = super::url::service_url("url", &url)?;
            let opts = monitor::Options {
                fleet,
                anchors: anchors.as_deref().map(read_log_anchors).transpose()?,
                announced: announced
                    .as_ref()
                    .map(|p| crate::error::read_json::<Vec<Announced>>(p))
                    .transpose()?,
                previous: match &state {
                    Some(p) if p.exists() => Some(read_monitor_state(p)?),
                    _ => None,
                },
            };
            let bar = indicatif::ProgressBar::new(0);
            if json || !std::io::IsTerminal::is_terminal(&std::io::stderr()) {
                bar.set_draw_target(indicatif::ProgressDrawTarget::hidden());
            }
            bar.set_style(
                indicatif::ProgressStyle::with_template("{msg} [{bar:40}] {pos}/{len} entries")
                    .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
            );
            bar.set_message("walking log");
            let report = monitor::run(&LogClient::new(&url), &opts, &|done, total| {
                bar.set_length(total);
                bar.set_position(done);
            })
            .await?;
            bar.finish_and_clear();
            if !report.findings.is_empty() {
                // spec/audit-log.md §9: findings are the monitor's failure; the report is
                // its details (printed as the table without --json).
                if !json {
                    print_report(&report);
                }
                let kinds: Vec<&str> = report.findings.iter().map(|f| f.kind).collect();
                return Err(Error::Findings {
                    summary: format!("{} finding(s): {}", kinds.len(), kinds.join(", ")),
                    report: serde_json::to_value(&report).expect("a report serializes"),
                });
            }
            if json {
                Envelope::success(&report).print();
            } else {
                print_report(&report);
            }
            if let Some(p) = &state {
                let v =
                    serde_json::json!({ "size": report.head.size, "root": hex::encode(report.head.root) });
                write_file(p, serde_json::to_string_pretty(&v).expect("json").as_bytes())?;
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// The log anchors of `--anchors`, in any form a bkv tool writes: a trust file (CBOR
/// `{"anchors", "log"}`, its `log`), `LogAnchors` as CBOR, or `LogAnchors` as JSON.
pub fn read_log_anchors(path: &std::path::Path) -> Result<LogAnchors, Error> {
    if let Ok(trust) = super::trust::read_trust(path) {
        return Ok(trust.log);
    }
    let bytes = crate::error::read_file(path)?;
    if let Ok(anchors) = bkv_protocol::cbor::from_slice::<LogAnchors>(&bytes) {
        return Ok(anchors);
    }
    serde_json::from_slice::<LogAnchors>(&bytes).map_err(|e| Error::BadInput {
        path: path.to_owned(),
        detail: format!(
            "not log anchors: neither a trust file (trust.cbor), nor LogAnchors as CBOR or JSON \
             ({{\"origin\", \"log_key\", \"witnesses\", \"threshold\"}}); as JSON: {e}"
        ),
    })
}

/// The monitor's state file: `{"size", "root": hex}` (the `log` object of `bkv bundle verify
/// --state`); the form of earlier versions, the root as a list of byte values, is read too.
fn read_monitor_state(path: &std::path::Path) -> Result<TreeHead, Error> {
    let bad = |detail: String| Error::BadInput { path: path.to_owned(), detail };
    let v: serde_json::Value = crate::error::read_json(path)?;
    let size = v["size"].as_u64().ok_or_else(|| bad("no \"size\": not a monitor state file".into()))?;
    let root: Option<[u8; 32]> = match &v["root"] {
        serde_json::Value::String(h) => hex::decode(h).ok().and_then(|d| d.try_into().ok()),
        serde_json::Value::Array(_) => serde_json::from_value(v["root"].clone()).ok(),
        _ => None,
    };
    let root = root.ok_or_else(|| bad("\"root\" is not 32 bytes of hex: not a monitor state file".into()))?;
    Ok(TreeHead { size, root })
}

fn print_report(r: &monitor::Report) {
    println!("log      {}", r.origin);
    println!("size     {}", r.size);
    println!("root     {}", r.root);
    if r.checkpoint_verified {
        println!("checked  log signature and witnesses: {}", r.cosigners.join(", "));
        if r.development_only {
            println!("WARNING  the anchors require no witness (K = 0): local development only");
        }
    } else {
        println!("checked  tree only (no --anchors: signatures not verified)");
    }
    println!("bundles  {}", r.bundles.len());
    for b in &r.bundles {
        println!("  #{:<8} fleet {}  epoch {}  sha256 {}", b.index, b.fleet_id, b.epoch, b.digest);
    }
    if r.findings.is_empty() {
        println!("findings none");
    } else {
        println!("findings {}", r.findings.len());
        for f in &r.findings {
            let at = f.index.map(|i| format!(" at #{i}")).unwrap_or_default();
            println!("  {}{at}: {}", f.kind, f.detail);
        }
    }
}

/// Serve until SIGINT or SIGTERM, or, for a supervisor's child, until its standard input
/// closes (the supervisor exited or was killed).
pub(crate) async fn wait_forever(supervised: bool) -> Result<ExitCode, Error> {
    if supervised {
        tokio::select! {
            _ = super::node::wait_for_termination() => {}
            _ = super::node::stdin_closed() => {}
        }
    } else {
        super::node::wait_for_termination().await;
    }
    Ok(ExitCode::SUCCESS)
}
