//! `bkv operator countersign` (spec/signer-api.md §4): the operator's key only, talking to
//! the third party's signer over HTTP(S).

use super::signer::KeySource;
use super::trust::read_trust as trust;
use crate::cli::contract::Envelope;
use crate::error::{Result, read_file};
use bkv_protocol::crypto::Esp256Signer;
use clap::{Args, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

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
    /// The operator's countersigning key: an ESP256 scalar file, or a key in a token.
    #[command(flatten)]
    pub key: KeySource,
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

/// Run `bkv operator`.
pub async fn run_operator(cmd: OperatorCommand) -> Result<ExitCode> {
    let OperatorCommand::Countersign(a) = cmd;
    let out = super::contract::OutputFile::new(&a.out, a.force);
    out.check()?;
    let trust = trust(&a.trust)?;
    let operator = bkv_operator::OperatorKey::new(
        a.key.signer(|scalar| Ok(Box::new(Esp256Signer::from_scalar(scalar)?)))?,
    );
    let released = bkv_operator::countersign_release(
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
