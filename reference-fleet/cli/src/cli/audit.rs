//! `bkv audit`: the Audit procedure of spec/audit.md, for one command-line call.
//!
//! Fetches the log's checkpoint and every entry, runs `bkv_protocol::audit::audit`, prints
//! a readable report (each step, what it checked, against what), writes `report.md` and
//! `report.json`, and exits non-zero with the step's code on the first failure.

use crate::error::{Error, Result, read_file, write_file};
use bkv_client::LogClient;
use bkv_client::Trust;
use bkv_protocol::audit::{AuditInputs, AuditReport, VendorRoot, audit};
use bkv_protocol::audit_log::LoggedBundle;
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use std::path::PathBuf;
use std::process::ExitCode;

/// Arguments of `bkv audit`.
#[derive(Debug, Args)]
pub struct AuditArgs {
    /// The deployment evidence (`evidence.cbor`).
    #[arg(long)]
    pub evidence: PathBuf,
    /// The released bundle (`released-bundle.cbor`: the bundle with its log proof).
    #[arg(long)]
    pub bundle: PathBuf,
    /// The audit log's URL.
    #[arg(long)]
    pub log: String,
    /// The anchors of both organisations and the log (`trust.cbor`).
    #[arg(long)]
    pub trust: PathBuf,
    /// The HSM vendor roots the auditor pins (CBOR list of {name, key}).
    #[arg(long)]
    pub vendor_roots: PathBuf,
    /// SHA-256 (hex) of the node software the auditor rebuilt from the recipe.
    #[arg(long, conflicts_with = "measure")]
    pub measurement: Option<String>,
    /// Compute the software measurement from this rebuilt binary instead.
    #[arg(long)]
    pub measure: Option<PathBuf>,
    /// The vendor's published firmware measurement (hex), if checked.
    #[arg(long)]
    pub firmware: Option<String>,
    /// Where to write report.md and report.json (default: the current directory).
    #[arg(long, default_value = ".")]
    pub out: PathBuf,
    /// `--json` (global, spec of the output: `bkv schema output`).
    #[arg(skip)]
    pub json: bool,
}

/// What an auditor fetched from a log.
#[derive(Debug, Clone)]
pub struct Fetched {
    /// The latest checkpoint note.
    pub checkpoint: String,
    /// Every entry, index order.
    pub entries: Vec<Vec<u8>>,
}

/// Fetch the latest checkpoint and every entry up to its size
/// ([`LogClient::fetch_all`]), showing a progress bar when `bar` is visible.
pub async fn fetch_log_with(log: &LogClient, bar: &ProgressBar) -> Result<Fetched> {
    let (checkpoint, entries) = log
        .fetch_all(&mut |done, total| {
            bar.set_length(total);
            bar.set_position(done);
        })
        .await?;
    Ok(Fetched { checkpoint, entries })
}

/// [`fetch_log_with`] without a progress bar.
pub async fn fetch_log(log: &LogClient) -> Result<Fetched> {
    fetch_log_with(log, &ProgressBar::hidden()).await
}

fn hex32(s: &str, what: &str) -> Result<[u8; 32]> {
    hex::decode(s.trim())
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| Error::Usage(format!("{what}: not 64 hex digits")))
}

/// The report as markdown.
pub fn markdown(r: &AuditReport, inputs: &[(String, String)]) -> String {
    let mut s = String::from("# bkv audit report\n\n");
    if let Some((f, e)) = &r.fleet {
        s.push_str(&format!("Fleet `{f}`, epoch {e}.\n\n"));
    }
    s.push_str("## Inputs\n\n");
    for (k, v) in inputs {
        s.push_str(&format!("- {k}: `{v}`\n"));
    }
    s.push_str("\n## Steps (spec/audit.md §2)\n\n");
    for c in &r.passed {
        s.push_str(&format!("### {} — passed: {}\n\n", c.step, c.title));
        for d in &c.details {
            s.push_str(&format!("- {d}\n"));
        }
        s.push('\n');
    }
    match &r.failure {
        None => s.push_str("**Result: every step passed.**\n"),
        Some((step, code)) => {
            let desc = bkv_protocol::Error::from_code(code).map(|e| e.description()).unwrap_or("");
            s.push_str(&format!("### {step} — FAILED\n\n**Result: `{code}`** {desc}\n"));
        }
    }
    s
}

/// Run `bkv audit`.
pub async fn run(a: AuditArgs) -> Result<ExitCode> {
    let in_file = |path: &PathBuf, what: &'static str| {
        let path = path.clone();
        move |source| Error::InFile { path, what, source }
    };
    let log_url = super::url::service_url("log", &a.log)?;
    let evidence = read_file(&a.evidence)?;
    let released = LoggedBundle::from_cbor(&read_file(&a.bundle)?)
        .map_err(in_file(&a.bundle, "a released (logged) bundle, released-bundle.cbor"))?;
    let trust: Trust = bkv_protocol::cbor::from_slice(&read_file(&a.trust)?)
        .map_err(in_file(&a.trust, "a trust file (trust.cbor: {\"anchors\", \"log\"})"))?;
    let roots: Vec<VendorRoot> = bkv_protocol::cbor::from_slice(&read_file(&a.vendor_roots)?)
        .map_err(in_file(&a.vendor_roots, "a vendor-roots file (a CBOR list of {\"name\", \"key\"})"))?;
    let software = match (&a.measurement, &a.measure) {
        (Some(h), _) => hex32(h, "--measurement")?,
        (None, Some(path)) => bkv_protocol::crypto::sha256(&read_file(path)?),
        (None, None) => return Err(Error::Usage("give --measurement HEX or --measure BINARY".into())),
    };
    let firmware = a.firmware.as_deref().map(|f| hex32(f, "--firmware")).transpose()?;
    let bar = if a.json {
        ProgressBar::hidden()
    } else {
        let b = ProgressBar::new(0);
        b.set_style(
            ProgressStyle::with_template("fetching log entries [{bar:30}] {pos}/{len}")
                .expect("valid template")
                .progress_chars("=> "),
        );
        b
    };
    let fetched = fetch_log_with(&LogClient::new(&log_url), &bar).await?;
    bar.finish_and_clear();
    let now = bkv_client::clock::system_now();
    let report = audit(&AuditInputs {
        evidence: &evidence,
        released: &released,
        anchors: &trust.anchors,
        log_anchors: &trust.log,
        checkpoint: &fetched.checkpoint,
        entries: &fetched.entries,
        vendor_roots: &roots,
        software,
        firmware,
        now,
    });
    let inputs = vec![
        (
            "evidence".to_owned(),
            format!(
                "{} (sha256 {})",
                a.evidence.display(),
                hex::encode(bkv_protocol::crypto::sha256(&evidence))
            ),
        ),
        (
            "bundle".to_owned(),
            format!(
                "{} (sha256 {})",
                a.bundle.display(),
                hex::encode(bkv_protocol::crypto::sha256(&released.bundle))
            ),
        ),
        ("log".to_owned(), format!("{} ({} entries)", a.log, fetched.entries.len())),
        ("vendor roots".to_owned(), roots.iter().map(|r| r.name.clone()).collect::<Vec<_>>().join(", ")),
        ("software measurement".to_owned(), hex::encode(software)),
        ("audit time".to_owned(), super::output::rfc3339(now)),
    ];
    let md = markdown(&report, &inputs);
    let outcome = if report.failure.is_none() { "passed" } else { "failed" };
    let document = serde_json::json!({ "result": outcome, "inputs": inputs, "report": report });
    let json = serde_json::to_string_pretty(&document).expect("serializable");
    std::fs::create_dir_all(&a.out).map_err(|source| Error::Write { path: a.out.clone(), source })?;
    write_file(&a.out.join("report.md"), md.as_bytes())?;
    write_file(&a.out.join("report.json"), json.as_bytes())?;
    if !a.json {
        print!("{md}");
        println!(
            "\n(written to {} and {})",
            a.out.join("report.md").display(),
            a.out.join("report.json").display()
        );
    }
    match report.error() {
        None => {
            if a.json {
                super::contract::Envelope::success(&document).print();
            }
            Ok(ExitCode::SUCCESS)
        }
        Some(e) => {
            let step = report.failure.as_ref().map(|(s, _)| s.clone()).unwrap_or_default();
            // AU9: what the evidence claims, what the auditor measured, and how to rebuild.
            let measurement = (e == bkv_protocol::Error::AuditMeasurementMismatch)
                .then(|| claimed_software(&evidence))
                .flatten()
                .map(|claimed| {
                    format!(
                        "the evidence claims software {}, the auditor's measurement is {}; rebuild with: {}",
                        hex::encode(claimed.measurement),
                        hex::encode(software),
                        claimed.recipe
                    )
                });
            Err(Error::AuditFailed { step, code: e, explanation: measurement, report: document })
        }
    }
}

/// The software the evidence claims (its measurement and build recipe), if it decodes.
fn claimed_software(evidence: &[u8]) -> Option<bkv_protocol::evidence::Software> {
    let signed = bkv_protocol::evidence::Sign1::parse(evidence, bkv_protocol::evidence::CT_EVIDENCE).ok()?;
    signed.decode::<bkv_protocol::evidence::Evidence>().ok().map(|e| e.software)
}
