//! `bkv audit`: the Audit procedure of spec/audit.md, for one command-line call.
//!
//! Fetches the log's checkpoint and every entry, runs `bkv_protocol::audit::audit`, prints
//! a readable report (each step, what it checked, against what), writes `report.md`,
//! `report.json` and `report.html` (a static page, no scripts), and exits non-zero with the step's code on the first failure.

use crate::error::{Error, Result, read_file, write_file};
use bkv_client::LogClient;
use bkv_protocol::audit::{AuditInputs, AuditReport, audit};
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
    /// The anchors of both organisations and the log: `trust.cbor` or its JSON form
    /// (`bkv trust build` from the published keys, spec/audit.md §1.1).
    #[arg(long)]
    pub trust: PathBuf,
    /// The HSM vendor roots the auditor pins: `bkv trust vendor-roots`' CBOR list, or the
    /// vendors' PEM root certificates themselves.
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
    /// Where to write report.md, report.json and report.html (default: the current directory).
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

/// Text for an HTML element or attribute.
fn escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// The report as one static HTML page (no scripts, no external resources) an auditor opens
/// in a browser; the same content as [`markdown`].
pub fn html(r: &AuditReport, inputs: &[(String, String)]) -> String {
    let (verdict, colour) = match &r.failure {
        None => ("every step passed".to_owned(), "#1a7f37"),
        Some((step, code)) => (format!("FAILED at {step}: {code}"), "#cf222e"),
    };
    let mut s = String::from(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n\
         <meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'\">\n\
         <title>bkv audit report</title>\n<style>body{font-family:sans-serif;max-width:60em;margin:2em auto;padding:0 1em}\
         code{font-size:90%;word-break:break-all}h2{border-bottom:1px solid #ccc}.passed{color:#1a7f37}.failed{color:#cf222e}</style>\n\
         </head><body>\n<h1>bkv audit report</h1>\n",
    );
    if let Some((f, e)) = &r.fleet {
        s.push_str(&format!("<p>Fleet <code>{}</code>, epoch {e}.</p>\n", escape(f)));
    }
    s.push_str(&format!("<p style=\"color:{colour}\"><strong>Result: {}</strong></p>\n", escape(&verdict)));
    s.push_str("<h2>Inputs</h2>\n<ul>\n");
    for (k, v) in inputs {
        s.push_str(&format!("<li>{}: <code>{}</code></li>\n", escape(k), escape(v)));
    }
    s.push_str("</ul>\n<h2>Steps (spec/audit.md §2)</h2>\n");
    for c in &r.passed {
        s.push_str(&format!(
            "<h3 class=\"passed\">{} — passed: {}</h3>\n<ul>\n",
            escape(&c.step),
            escape(&c.title)
        ));
        for d in &c.details {
            s.push_str(&format!("<li><code>{}</code></li>\n", escape(d)));
        }
        s.push_str("</ul>\n");
    }
    if let Some((step, code)) = &r.failure {
        let desc = bkv_protocol::Error::from_code(code).map(|e| e.description()).unwrap_or("");
        s.push_str(&format!(
            "<h3 class=\"failed\">{} — FAILED</h3>\n<p><code>{}</code> {}</p>\n",
            escape(step),
            escape(code),
            escape(desc)
        ));
    }
    s.push_str("</body></html>\n");
    s
}

/// Run `bkv audit`.
pub async fn run(a: AuditArgs) -> Result<ExitCode> {
    let log_url = super::url::service_url("log", &a.log)?;
    let evidence = read_file(&a.evidence)?;
    let released = LoggedBundle::from_cbor(&read_file(&a.bundle)?)
        .map_err(crate::error::in_file(&a.bundle, "a released (logged) bundle, released-bundle.cbor"))?;
    let trust = super::trust::read_trust(&a.trust)?;
    let roots = super::trust::read_vendor_roots(&a.vendor_roots)?;
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
    write_file(&a.out.join("report.html"), html(&report, &inputs).as_bytes())?;
    if !a.json {
        print!("{md}");
        println!(
            "\n(written to {}, {} and {})",
            a.out.join("report.md").display(),
            a.out.join("report.json").display(),
            a.out.join("report.html").display()
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
