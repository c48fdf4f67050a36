//! `bkv signer serve` (the third party: its key and the signing protocol) and `bkv operator
//! countersign` (the operator: its key only), spec/signer-api.md. Each command loads one
//! organisation's key; no command loads both.

use crate::cli::contract::Envelope;
use crate::error::{Error, Result, read_file};
use bkv_client::Trust;
use bkv_client::clock::SystemClock;
use bkv_protocol::audit::VendorRoot;
use bkv_protocol::crypto::{Ed25519Signer, Esp256Signer};
use bkv_third_party::signer_service::{SignerConfig, SignerService, router};
use clap::{Args, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

/// `bkv signer ...`
#[derive(Debug, Subcommand)]
pub enum SignerCommand {
    /// Serve the third party's signer (spec/signer-api.md §3) until Ctrl-C.
    Serve(ServeArgs),
}

/// Arguments of `bkv signer serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Listen address.
    #[arg(long, default_value = "127.0.0.1:8090")]
    pub addr: String,
    /// The signer's state (redb): one signing per fleet and epoch.
    #[arg(long)]
    pub db: PathBuf,
    /// The third party's Ed25519 signing key (hex seed file, mode 0600).
    #[arg(long)]
    pub key_file: PathBuf,
    /// The fleet's anchors (`trust.cbor`): the operator keys it authenticates, the log's.
    #[arg(long)]
    pub trust: PathBuf,
    /// The pinned HSM vendor roots (CBOR).
    #[arg(long)]
    pub vendor_roots: PathBuf,
    /// The published node software measurement (hex SHA-256).
    #[arg(long)]
    pub software: String,
    /// The vendor's published firmware measurement (hex SHA-256), if checked.
    #[arg(long)]
    pub firmware: Option<String>,
    /// The audit log's public URL.
    #[arg(long)]
    pub log: String,
    /// The audit log's admin URL (writes).
    #[arg(long)]
    pub log_admin: String,
    /// The bearer token of the log's admin listener.
    #[arg(long)]
    pub log_token_file: PathBuf,
    /// Serve over TLS.
    #[command(flatten)]
    pub tls: super::log::TlsArgs,
}

/// `bkv operator ...`
#[derive(Debug, Subcommand)]
pub enum OperatorCommand {
    /// Have the signer sign a FleetKeySet, check it, countersign, and write the released
    /// bundle (spec/signer-api.md §4).
    Countersign(CountersignArgs),
}

/// Arguments of `bkv operator countersign`.
#[derive(Debug, Args)]
pub struct CountersignArgs {
    /// The third party's signer.
    #[arg(long)]
    pub signer: String,
    /// The operator's ESP256 countersigning key (hex scalar file, mode 0600).
    #[arg(long)]
    pub key_file: PathBuf,
    /// The fleet's anchors (`trust.cbor`).
    #[arg(long)]
    pub trust: PathBuf,
    /// The FleetKeySet bytes to have signed.
    #[arg(long)]
    pub keyset: PathBuf,
    /// The deployment evidence bytes.
    #[arg(long)]
    pub evidence: PathBuf,
    /// Where to write the released bundle (`-` for stdout).
    #[arg(long)]
    pub out: PathBuf,
    /// Replace `--out` if it exists.
    #[arg(long)]
    pub force: bool,
    /// `--json` (global).
    #[arg(skip)]
    pub json: bool,
}

fn hex32(flag: &str, s: &str) -> Result<[u8; 32]> {
    hex::decode(s.trim())
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| Error::Usage(format!("{flag}: {s:?} is not 32 bytes of hex")))
}

/// A 32-byte secret from a hex file (the format of `bkv log keygen` and `orgs/`).
fn secret(path: &std::path::Path) -> Result<zeroize::Zeroizing<[u8; 32]>> {
    Ok(bkv_node::hsm::Kek::from_file(path).map_err(Error::Hsm)?.expose())
}

fn trust(path: &std::path::Path) -> Result<Trust> {
    bkv_protocol::cbor::from_slice(&read_file(path)?).map_err(|e| Error::BadInput {
        path: path.to_owned(),
        detail: format!("not trust anchors [{}]: {e}", e.code()),
    })
}

/// Run `bkv signer`.
pub async fn run_signer(cmd: SignerCommand) -> Result<ExitCode> {
    let SignerCommand::Serve(a) = cmd;
    let trust = trust(&a.trust)?;
    let vendor_roots: Vec<VendorRoot> = bkv_protocol::cbor::from_slice(&read_file(&a.vendor_roots)?)
        .map_err(|e| Error::BadInput {
            path: a.vendor_roots.clone(),
            detail: format!("not vendor roots: {e}"),
        })?;
    let token = read_file(&a.log_token_file)?;
    let token = String::from_utf8(token)
        .map_err(|_| Error::BadInput { path: a.log_token_file.clone(), detail: "not text".into() })?;
    let config = SignerConfig {
        key: Box::new(Ed25519Signer::from_seed(&*secret(&a.key_file)?)),
        anchors: trust.anchors,
        log_anchors: trust.log,
        vendor_roots,
        software: hex32("--software", &a.software)?,
        firmware: a.firmware.as_deref().map(|f| hex32("--firmware", f)).transpose()?,
        log: bkv_client::LogClient::new(&a.log).with_admin(&a.log_admin, token.trim()),
        clock: SystemClock::shared(),
    };
    let service = Arc::new(SignerService::open(&a.db, config).map_err(Error::AuditLog)?);
    let tls = a.tls.config()?;
    let running = bkv_third_party::log_server::spawn_tls(&a.addr, router(service), tls)
        .await
        .map_err(Error::AuditLog)?;
    println!("listening on {}://{}", a.tls.scheme(), running.addr);
    let _ = tokio::signal::ctrl_c().await;
    Ok(ExitCode::SUCCESS)
}

/// Run `bkv operator`.
pub async fn run_operator(cmd: OperatorCommand) -> Result<ExitCode> {
    let OperatorCommand::Countersign(a) = cmd;
    let out = super::contract::OutputFile::new(&a.out, a.force);
    out.check()?;
    let trust = trust(&a.trust)?;
    let operator = Esp256Signer::from_scalar(&*secret(&a.key_file)?)?;
    let released = crate::operator::countersign_release(
        &a.signer,
        &operator,
        &trust,
        &read_file(&a.keyset)?,
        &read_file(&a.evidence)?,
        bkv_client::clock::system_now(),
    )
    .await?;
    let bytes = released.to_cbor();
    out.write(&bytes)?;
    let summary = serde_json::json!({
        "out": a.out, "bundle_sha256": hex::encode(bkv_protocol::crypto::sha256(&released.bundle)),
        "leaf_index": released.proof.inclusion.leaf_index,
    });
    if out == super::contract::OutputFile::Stdout {
        eprintln!("released bundle written to standard output: {summary}");
    } else if a.json {
        Envelope::success(summary).print();
    } else {
        println!(
            "released bundle {} (log entry #{}) written to {}",
            summary["bundle_sha256"].as_str().unwrap_or_default(),
            released.proof.inclusion.leaf_index,
            a.out.display()
        );
    }
    Ok(ExitCode::SUCCESS)
}
