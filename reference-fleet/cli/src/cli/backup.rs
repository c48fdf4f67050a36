//! `bkv backup create|restore`: back up a file under a recovery code and restore it on
//! another device (spec/vault.md, spec/backup-envelope.md), through a fleet whose bundle
//! the client verifies first (spec/validation-bundle.md §5, spec/audit-log.md §7.2).
//!
//! The recovery code comes from `--code-stdin` (the first line of standard input),
//! `--code-file FILE` (its first line), the environment variable `BKV_RECOVERY_CODE`, or a
//! prompt without echo, in that order of precedence; it is never a command-line argument
//! (which other users of the machine can read in the process list). A code from a file,
//! standard input or the environment is checked (spec/vault.md §2.4) before anything else;
//! the prompt comes only after the fleet is verified, so nobody types a code for a fleet
//! that would be refused.
//!
//! Files: `-` is standard input or output; an existing output file is replaced only with
//! `--force`, checked before the fleet is contacted (a backup is never lost to a typo).

use super::contract::{Envelope, OutputFile};
use crate::error::{Error, Result, after_attempt, guesses, read_file};
use bkv_client::backup::{Created, Output, Restored};
use bkv_client::{FleetClient, Persisted};
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
    #[arg(long, conflicts_with = "code_file")]
    pub code_stdin: bool,
    /// Read the recovery code from the first line of this file instead of a prompt.
    #[arg(long)]
    pub code_file: Option<PathBuf>,
    /// Replace the output file if it exists.
    #[arg(long)]
    pub force: bool,
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
    /// The file to back up (`-`: standard input).
    input: PathBuf,
    /// The encrypted backup to write (`-`: standard output); an existing file only with --force.
    output: PathBuf,
}

/// `bkv backup restore`.
#[derive(Debug, Args)]
pub struct RestoreArgs {
    #[command(flatten)]
    pub common: Common,
    /// The encrypted backup (`-`: standard input).
    input: PathBuf,
    /// Where to write the restored file (`-`: standard output, once the whole file is
    /// verified); an existing file only with --force.
    output: PathBuf,
}

/// Run a `bkv backup` subcommand.
pub async fn run(cmd: BackupCommand) -> Result<ExitCode> {
    match cmd {
        BackupCommand::Create(a) => create(a).await,
        BackupCommand::Restore(a) => restore(a).await,
    }
}

/// The environment variable that may hold the recovery code.
pub const CODE_ENV: &str = "BKV_RECOVERY_CODE";

/// Where the recovery code comes from.
enum CodeSource {
    /// Already read and normalised (standard input, a file, the environment).
    Given(Zeroizing<Vec<u8>>),
    /// A prompt on the terminal, after the fleet is verified.
    Prompt,
}

/// The normal form of a typed code (spec/vault.md §2.4): a malformed or weak code is refused.
fn normal_form(text: &str) -> Result<Zeroizing<Vec<u8>>> {
    Ok(bkv_protocol::vault::normalise_code(text)?)
}

/// The first line of `text`, without its line ending.
fn first_line(text: &str) -> &str {
    text.split(['\r', '\n']).next().unwrap_or_default()
}

/// Read a code that needs no prompt now, or say a prompt will come: `--code-stdin`, then
/// `--code-file`, then `BKV_RECOVERY_CODE`, then a terminal prompt.
fn code_source(common: &Common) -> Result<CodeSource> {
    if common.code_stdin {
        let mut line = Zeroizing::new(String::new());
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .map_err(|source| Error::Read { path: "-".into(), source })?;
        return Ok(CodeSource::Given(normal_form(first_line(&line))?));
    }
    if let Some(path) = &common.code_file {
        let text = Zeroizing::new(read_file(path)?);
        let text = std::str::from_utf8(&text).map_err(|_| Error::BadInput {
            path: path.clone(),
            detail: "not UTF-8 text: a code file holds the recovery code on its first line".into(),
        })?;
        return Ok(CodeSource::Given(normal_form(first_line(text))?));
    }
    if let Some(text) = std::env::var_os(CODE_ENV) {
        let text = Zeroizing::new(text.into_string().map_err(|_| bkv_protocol::Error::VaultCodeMalformed)?);
        return Ok(CodeSource::Given(normal_form(&text)?));
    }
    if std::io::stdin().is_terminal() {
        return Ok(CodeSource::Prompt);
    }
    Err(Error::Usage(format!(
        "no recovery code: run in a terminal, or pass --code-stdin or --code-file FILE, or set {CODE_ENV}"
    )))
}

/// The code: the one given, or a prompt (twice with `confirm`) now that the fleet is verified.
fn code(source: CodeSource, confirm: bool) -> Result<Zeroizing<Vec<u8>>> {
    match source {
        CodeSource::Given(code) => Ok(code),
        CodeSource::Prompt => {
            let ask = |prompt: &str| {
                rpassword::prompt_password(prompt)
                    .map(Zeroizing::new)
                    .map_err(|source| Error::Read { path: "/dev/tty".into(), source })
            };
            let code = ask("Recovery code: ")?;
            if confirm && *ask("Repeat it: ")? != *code {
                return Err(Error::Usage("the two codes differ".into()));
            }
            normal_form(&code)
        }
    }
}

async fn connect(common: &Common) -> Result<FleetClient> {
    let trust = super::trust::read_trust(&common.trust)?;
    let ksf = if common.insecure_test_ksf { KsfParams::TEST } else { KsfParams::PRODUCTION };
    if trust.log.threshold == 0 {
        // spec/audit-log.md §7.1: K = 0 is for local development, and the client says so.
        eprintln!("WARNING: the trust anchors require no witness cosignature (K = 0): development only");
    }
    let (bundle, log) = super::bundle::load_state(common.state.as_ref())?;
    let held = Persisted { bundle, log };
    let url = super::url::service_url("fleet", &common.fleet)?;
    let (client, state) =
        FleetClient::connect(&url, &trust, &held, ksf, bkv_client::clock::system_now()).await?;
    if let Some(path) = &common.state {
        super::bundle::save_state(path, &state.bundle, &state.log)?;
    }
    if !common.json {
        let ks = client.keyset();
        eprintln!(
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

/// Refuse, before anything else, a `--fleet` that is no URL and the combinations that
/// would mix two things on one stream.
fn check_streams(common: &Common, input: &std::path::Path, output: &OutputFile) -> Result<()> {
    super::url::service_url("fleet", &common.fleet)?;
    let stdin_input = input == std::path::Path::new("-");
    if stdin_input && common.code_stdin {
        return Err(Error::Usage(
            "standard input cannot carry both the file (-) and the code (--code-stdin): use --code-file or BKV_RECOVERY_CODE"
                .into(),
        ));
    }
    if *output == OutputFile::Stdout && common.json {
        return Err(Error::Usage(
            "--json and the output - would both use standard output: name an output file".into(),
        ));
    }
    Ok(())
}

/// A human line about the result: on standard output, or on standard error when standard
/// output carries the file.
fn say(output: &OutputFile, line: &str) {
    if *output == OutputFile::Stdout { eprintln!("{line}") } else { println!("{line}") }
}

async fn create(a: CreateArgs) -> Result<ExitCode> {
    // Everything that can be checked without the fleet or the code, first.
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
    let output = OutputFile::new(&a.output, a.common.force);
    check_streams(&a.common, &a.input, &output)?;
    output.check()?;
    let (input, len): (Box<dyn std::io::Read>, u64) = if a.input == std::path::Path::new("-") {
        (Box::new(std::io::stdin()), 0)
    } else {
        let f =
            std::fs::File::open(&a.input).map_err(|source| Error::Read { path: a.input.clone(), source })?;
        let len = f.metadata().map(|m| m.len()).unwrap_or(0);
        (Box::new(f), len)
    };
    let source = code_source(&a.common)?;
    let client = connect(&a.common).await?;
    let code = code(source, true)?;
    let t = Instant::now();
    let b = bar(len, a.common.json, "registering and encrypting");
    let mut memory = Vec::new();
    let target = match &output {
        OutputFile::Stdout => Output::Memory(&mut memory),
        OutputFile::Path { path, .. } => Output::File(path),
    };
    let created = bkv_client::backup::create(&client, &record, &code, b.wrap_read(input), target).await;
    b.finish_and_clear();
    let Created { remaining, bytes: total } = created?;
    if output == OutputFile::Stdout {
        output.write(&memory)?;
    }
    let fleet_id = client.keyset().fleet_id.clone();
    if a.common.json {
        Envelope::success(serde_json::json!({
            "fleet_id": fleet_id, "record": hex::encode(&record), "node": client.node_id(),
            "remaining": remaining, "bytes": total, "output": a.output,
        }))
        .print();
    } else {
        say(
            &output,
            &format!(
                "registered record {} on node {} ({:.0} ms with the encryption): {} allowed",
                hex::encode(&record),
                client.node_id(),
                t.elapsed().as_secs_f64() * 1e3,
                guesses(remaining)
            ),
        );
        say(&output, &format!("backup written: {} ({total} bytes of plaintext)", a.output.display()));
    }
    Ok(ExitCode::SUCCESS)
}

async fn restore(a: RestoreArgs) -> Result<ExitCode> {
    let output = OutputFile::new(&a.output, a.common.force);
    check_streams(&a.common, &a.input, &output)?;
    output.check()?;
    // The backup: from its file (read twice: the header, then the whole), or standard input
    // held in memory.
    let from_stdin = a.input == std::path::Path::new("-");
    let stdin_bytes = if from_stdin {
        let mut all = Vec::new();
        std::io::Read::read_to_end(&mut std::io::stdin(), &mut all)
            .map_err(|source| Error::Read { path: "-".into(), source })?;
        all
    } else {
        Vec::new()
    };
    let open = || -> Result<(Box<dyn std::io::Read + '_>, u64)> {
        if from_stdin {
            return Ok((Box::new(&stdin_bytes[..]), stdin_bytes.len() as u64));
        }
        let f =
            std::fs::File::open(&a.input).map_err(|source| Error::Read { path: a.input.clone(), source })?;
        let len = f.metadata().map(|m| m.len()).unwrap_or(0);
        Ok((Box::new(f), len))
    };
    let header = bkv_client::backup::read_header(&mut open()?.0).map_err(|e| Error::BadInput {
        path: a.input.clone(),
        detail: format!("not a bkv backup file ({e})"),
    })?;
    let source = code_source(&a.common)?;
    let client = connect(&a.common).await?;
    let code = code(source, false)?;
    let (input, len) = open()?;
    let b = bar(len, a.common.json, "decrypting");
    let mut memory = Vec::new();
    let target = match &output {
        OutputFile::Stdout => Output::Memory(&mut memory),
        OutputFile::Path { path, .. } => Output::File(path),
    };
    let restored = bkv_client::backup::restore(&client, &header, &code, b.wrap_read(input), target).await;
    b.finish_and_clear();
    let remaining = match restored? {
        Restored::WrongCode { remaining } => return Err(Error::WrongCode { remaining }),
        Restored::Restored { remaining } => remaining,
    };
    if output == OutputFile::Stdout {
        output.write(&memory)?;
    }
    let warning = after_attempt(remaining, true);
    if a.common.json {
        Envelope::success(serde_json::json!({
            "fleet_id": header.fleet_id, "record": hex::encode(&header.record_id), "node": client.node_id(),
            "remaining": remaining, "output": a.output, "warning": warning,
        }))
        .print();
    } else {
        say(
            &output,
            &format!(
                "restored {} (record {}; {} allowed now)",
                a.output.display(),
                hex::encode(&header.record_id),
                guesses(remaining)
            ),
        );
        if let Some(w) = warning {
            eprintln!("WARNING: {w}");
        }
    }
    Ok(ExitCode::SUCCESS)
}
