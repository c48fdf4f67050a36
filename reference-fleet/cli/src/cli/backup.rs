//! `bkv backup create|restore`: back up a file under a recovery code and restore it on
//! another device (spec/vault.md, spec/backup-envelope.md), through a fleet whose bundle
//! the client verifies first (spec/validation-bundle.md §5, spec/audit-log.md §7.2).
//!
//! The recovery code is read from a prompt without echo, or from standard input with
//! `--code-stdin`; it is never a command-line argument (which other users of the machine
//! can read in the process list).

use crate::error::{Error, Result, read_file};
use bkv_client::backup::{Created, Restored};
use bkv_client::{FleetClient, Persisted, Trust};
use bkv_protocol::vault::{KsfParams, RECORD_ID_MAX, RECORD_ID_MIN};
use clap::{Args, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use rand_core::{OsRng, RngCore};
use std::io::{BufRead, IsTerminal};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;
use zeroize::Zeroizing;

/// `bkv backup ...`
#[derive(Debug, Subcommand)]
pub enum BackupCommand {
    /// Register a fresh backup key under a recovery code and encrypt IN into OUT.
    Create(CreateArgs),
    /// Recover the backup key with the recovery code and decrypt IN into OUT.
    Restore(RestoreArgs),
}

impl BackupCommand {
    /// Apply the global `--json`.
    pub fn set_json(&mut self, json: bool) {
        match self {
            BackupCommand::Create(a) => a.common.json = json,
            BackupCommand::Restore(a) => a.common.json = json,
        }
    }
}

/// Options shared by both subcommands.
#[derive(Debug, Args)]
pub struct Common {
    /// A node's client URL (printed by `bkv fleet up`).
    #[arg(long)]
    pub fleet: String,
    /// The anchors the app pins (`trust.cbor` of `bkv fleet up`).
    #[arg(long)]
    pub trust: PathBuf,
    /// The client's state (JSON: highest bundle and largest checkpoint, as `bkv bundle
    /// verify --state`): read if it exists, updated after the fleet is verified, so a later
    /// run refuses a rolled-back bundle or a forked log.
    #[arg(long)]
    pub state: Option<PathBuf>,
    /// Read the recovery code from the first line of standard input instead of a prompt.
    #[arg(long)]
    pub code_stdin: bool,
    /// Test KSF profile (spec/vault.md §2.1): MUST NOT be used with a real fleet.
    #[arg(long, hide = true)]
    pub insecure_test_ksf: bool,
    /// `--json` (global, spec of the output: `bkv schema output`).
    #[arg(skip)]
    pub json: bool,
}

/// `bkv backup create`.
#[derive(Debug, Args)]
pub struct CreateArgs {
    #[command(flatten)]
    pub common: Common,
    /// Record id as hex (16 to 64 bytes); default: 32 random bytes.
    #[arg(long)]
    record: Option<String>,
    /// The file to back up.
    input: PathBuf,
    /// The encrypted backup to write.
    output: PathBuf,
}

/// `bkv backup restore`.
#[derive(Debug, Args)]
pub struct RestoreArgs {
    #[command(flatten)]
    pub common: Common,
    /// The encrypted backup.
    input: PathBuf,
    /// Where to write the restored file.
    output: PathBuf,
}

/// Run a `bkv backup` subcommand.
pub async fn run(cmd: BackupCommand) -> Result<ExitCode> {
    match cmd {
        BackupCommand::Create(a) => create(a).await,
        BackupCommand::Restore(a) => restore(a).await,
    }
}

/// The recovery code as typed, then its normal form (spec/vault.md §2.4): a malformed or
/// weak code is refused here, before anything is sent.
fn read_code(common: &Common, confirm: bool) -> Result<Zeroizing<Vec<u8>>> {
    let code = if common.code_stdin {
        let mut line = Zeroizing::new(String::new());
        std::io::stdin().lock().read_line(&mut line).map_err(|e| Error::Usage(format!("stdin: {e}")))?;
        Zeroizing::new(line.trim_end_matches(['\r', '\n']).as_bytes().to_vec())
    } else if std::io::stdin().is_terminal() {
        let code = Zeroizing::new(
            rpassword::prompt_password("Recovery code: ")
                .map_err(|e| Error::Usage(format!("prompt: {e}")))?,
        );
        if confirm {
            let again = Zeroizing::new(
                rpassword::prompt_password("Repeat it: ")
                    .map_err(|e| Error::Usage(format!("prompt: {e}")))?,
            );
            if *again != *code {
                return Err(Error::Usage("the two codes differ".into()));
            }
        }
        Zeroizing::new(code.as_bytes().to_vec())
    } else {
        return Err(Error::Usage("no recovery code: run in a terminal or pass --code-stdin".into()));
    };
    let text = std::str::from_utf8(&code).map_err(|_| bkv_protocol::Error::VaultCodeMalformed)?;
    Ok(bkv_protocol::vault::normalise_code(text)?)
}

async fn connect(common: &Common) -> Result<FleetClient> {
    let trust: Trust = bkv_protocol::cbor::from_slice(&read_file(&common.trust)?)?;
    let ksf = if common.insecure_test_ksf { KsfParams::TEST } else { KsfParams::PRODUCTION };
    if trust.log.threshold == 0 {
        // spec/audit-log.md §7.1: K = 0 is for local development, and the client says so.
        eprintln!("WARNING: the trust anchors require no witness cosignature (K = 0): development only");
    }
    let (bundle, log) = super::bundle::load_state(common.state.as_ref())?;
    let held = Persisted { bundle, log };
    let (client, state) =
        FleetClient::connect(&common.fleet, &trust, &held, ksf, bkv_client::clock::system_now()).await?;
    if let Some(path) = &common.state {
        super::bundle::save_state(path, &state.bundle, &state.log)?;
    }
    if !common.json {
        let ks = client.keyset();
        println!(
            "verified fleet {} epoch {} ({} nodes, quorum {}): both signatures, validity, log inclusion",
            ks.fleet_id,
            ks.epoch,
            ks.nodes.len(),
            ks.quorum
        );
    }
    Ok(client)
}

fn bar(len: u64, json: bool, what: &str) -> ProgressBar {
    if json {
        return ProgressBar::hidden();
    }
    let b = ProgressBar::new(len);
    b.set_style(
        ProgressStyle::with_template("{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}")
            .expect("valid template")
            .progress_chars("=> "),
    );
    b.set_message(what.to_owned());
    b
}

async fn create(a: CreateArgs) -> Result<ExitCode> {
    let record = match &a.record {
        Some(h) => hex::decode(h).map_err(|_| Error::Usage("--record is not hex".into()))?,
        None => {
            let mut r = vec![0u8; 32];
            OsRng.fill_bytes(&mut r);
            r
        }
    };
    if !(RECORD_ID_MIN..=RECORD_ID_MAX).contains(&record.len()) {
        return Err(Error::Usage(format!("--record must be {RECORD_ID_MIN} to {RECORD_ID_MAX} bytes")));
    }
    let input =
        std::fs::File::open(&a.input).map_err(|source| Error::Read { path: a.input.clone(), source })?;
    let len = input.metadata().map(|m| m.len()).unwrap_or(0);
    let code = read_code(&a.common, true)?;
    let client = connect(&a.common).await?;
    let t = Instant::now();
    let b = bar(len, a.common.json, "registering and encrypting");
    let created = bkv_client::backup::create(&client, &record, &code, b.wrap_read(input), &a.output).await;
    b.finish_and_clear();
    let Created { remaining, bytes: total } = created?;
    let fleet_id = client.keyset().fleet_id.clone();
    if !a.common.json {
        println!(
            "registered record {} on node {} ({:.0} ms with the encryption): {remaining} guesses allowed",
            hex::encode(&record),
            client.node_id(),
            t.elapsed().as_secs_f64() * 1e3
        );
    }
    if a.common.json {
        let v = serde_json::json!({
            "fleet_id": fleet_id, "record": hex::encode(&record), "node": client.node_id(),
            "remaining": remaining, "bytes": total, "output": a.output,
        });
        println!("{v}");
    } else {
        println!("backup written: {} ({total} bytes of plaintext)", a.output.display());
    }
    Ok(ExitCode::SUCCESS)
}

async fn restore(a: RestoreArgs) -> Result<ExitCode> {
    let mut input =
        std::fs::File::open(&a.input).map_err(|source| Error::Read { path: a.input.clone(), source })?;
    let len = input.metadata().map(|m| m.len()).unwrap_or(0);
    let header = bkv_client::backup::read_header(&mut input)?;
    let code = read_code(&a.common, false)?;
    let client = connect(&a.common).await?;
    let input =
        std::fs::File::open(&a.input).map_err(|source| Error::Read { path: a.input.clone(), source })?;
    let b = bar(len, a.common.json, "decrypting");
    let restored = bkv_client::backup::restore(&client, &header, &code, b.wrap_read(input), &a.output).await;
    b.finish_and_clear();
    let remaining = match restored? {
        Restored::WrongCode { remaining } => {
            if a.common.json {
                println!("{}", serde_json::json!({"error": "vault.code.invalid", "remaining": remaining}));
            }
            eprintln!(
                "error [vault.code.invalid]: wrong recovery code; {remaining} guesses left for this backup"
            );
            return Ok(ExitCode::from(1));
        }
        Restored::Restored { remaining } => remaining,
    };
    if a.common.json {
        let v = serde_json::json!({
            "fleet_id": header.fleet_id, "record": hex::encode(&header.record_id), "node": client.node_id(),
            "remaining": remaining, "output": a.output,
        });
        println!("{v}");
    } else {
        println!(
            "restored {} (record {}; {remaining} guesses allowed now)",
            a.output.display(),
            hex::encode(&header.record_id)
        );
    }
    Ok(ExitCode::SUCCESS)
}
