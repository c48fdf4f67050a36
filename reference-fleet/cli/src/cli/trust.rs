//! `bkv trust`: the trust file an app pins and an auditor uses, built from published keys,
//! and the vendor-roots file from vendors' published certificates (spec/audit.md §1.1).
//!
//! Every command that takes `--trust` reads it with [`read_trust`] and every command that
//! takes `--vendor-roots` with [`read_vendor_roots`]: one rule for each, CBOR or JSON (or
//! PEM certificates for vendor roots), detected from the first byte.

use super::contract::{Envelope, OutputFile};
use crate::error::{Error, Result, read_file};
use bkv_client::Trust;
use bkv_client::published::{self, JsonTrust};
use bkv_protocol::audit::VendorRoot;
use clap::{Args, Subcommand, ValueEnum};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// `bkv trust ...`
#[derive(Debug, Subcommand)]
pub enum TrustCommand {
    /// Build the trust file from a TOML spec naming the published keys (spec/audit.md §1.1).
    Build(BuildArgs),
    /// Print a trust file (CBOR or JSON): each key with its id and window, the log's keys.
    Inspect(InspectArgs),
    /// Build the vendor-roots file from HSM vendors' published root certificates (PEM).
    VendorRoots(VendorRootsArgs),
}

/// The trust file's encoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// The CBOR map an app pins (`trust.cbor`).
    Cbor,
    /// The JSON form (spec/audit.md §1.1), which every command reads too.
    Json,
}

/// Arguments of `bkv trust build`.
#[derive(Debug, Args)]
pub struct BuildArgs {
    /// The trust spec (TOML): fleet id, each organisation's PEM key and window, the log's
    /// and witnesses' verifier keys, K.
    pub spec: PathBuf,
    /// Where to write the trust file (`-`: standard output).
    #[arg(long, default_value = "trust.cbor")]
    pub out: PathBuf,
    /// The encoding to write.
    #[arg(long, value_enum, default_value_t = Format::Cbor)]
    pub format: Format,
    /// Replace an existing file.
    #[arg(long)]
    pub force: bool,
}

/// Arguments of `bkv trust inspect`.
#[derive(Debug, Args)]
pub struct InspectArgs {
    /// The trust file (CBOR or JSON).
    pub file: PathBuf,
}

/// Arguments of `bkv trust vendor-roots`.
#[derive(Debug, Args)]
pub struct VendorRootsArgs {
    /// Vendor root certificates (PEM), one or more per file.
    #[arg(required = true)]
    pub certs: Vec<PathBuf>,
    /// Where to write the vendor-roots file (CBOR; `-`: standard output).
    #[arg(long, default_value = "vendor-roots.cbor")]
    pub out: PathBuf,
    /// Replace an existing file.
    #[arg(long)]
    pub force: bool,
}

fn published_error(path: &Path, e: bkv_client::Error) -> Error {
    match e {
        bkv_client::Error::Published { what, detail } => {
            Error::Published { path: path.to_owned(), what, detail }
        }
        bkv_client::Error::Protocol(source) => Error::InFile {
            path: path.to_owned(),
            what: "a trust file (the CBOR map {\"anchors\", \"log\"} of `bkv trust build`, or its JSON form)",
            source,
        },
        other => other.into(),
    }
}

/// spec/audit.md §1.1 "Trust file": the one reader of `--trust` (CBOR or JSON), naming the
/// file when it is not a trust file.
pub fn read_trust(path: &Path) -> Result<Trust> {
    published::trust_from_bytes(&read_file(path)?).map_err(|e| published_error(path, e))
}

/// `--vendor-roots`: the CBOR list `[{"name", "key"}]` (spec/audit.md §1 item 4), or PEM
/// root certificates (spec/audit.md §1.1), told apart by the first bytes.
pub fn read_vendor_roots(path: &Path) -> Result<Vec<VendorRoot>> {
    let bytes = read_file(path)?;
    if bytes.trim_ascii_start().starts_with(b"-----BEGIN") {
        let text = String::from_utf8(bytes).map_err(|_| Error::Published {
            path: path.to_owned(),
            what: "vendor root certificates".into(),
            detail: "not UTF-8 text".into(),
        })?;
        return roots_from_pem(path, &text);
    }
    bkv_protocol::cbor::from_slice(&bytes).map_err(|source| Error::InFile {
        path: path.to_owned(),
        what: "a vendor-roots file (the CBOR list of {\"name\", \"key\"} of `bkv trust vendor-roots`, or PEM certificates)",
        source,
    })
}

/// Every `CERTIFICATE` block of a PEM file, as vendor roots, naming the file on failure.
fn roots_from_pem(path: &Path, text: &str) -> Result<Vec<VendorRoot>> {
    published::vendor_roots_from_pem(text.as_bytes()).map_err(|e| published_error(path, e))
}

/// Run `bkv trust`.
pub fn run(cmd: TrustCommand, json: bool) -> Result<ExitCode> {
    match cmd {
        TrustCommand::Build(a) => build(a, json),
        TrustCommand::Inspect(a) => inspect(a, json),
        TrustCommand::VendorRoots(a) => vendor_roots(a, json),
    }
}

fn build(a: BuildArgs, json: bool) -> Result<ExitCode> {
    let out = OutputFile::new(&a.out, a.force);
    out.check()?;
    let text = String::from_utf8(read_file(&a.spec)?).map_err(|_| Error::BadInput {
        path: a.spec.clone(),
        detail: "not UTF-8 text: not a trust spec (TOML)".into(),
    })?;
    let base = a.spec.parent().unwrap_or(Path::new(".")).to_owned();
    let read_key = |name: &str| -> bkv_client::Result<String> {
        let path = base.join(name);
        std::fs::read_to_string(&path).map_err(|e| bkv_client::Error::Published {
            what: format!("the key file {}", path.display()),
            detail: e.to_string(),
        })
    };
    let trust = published::trust_from_spec(&text, &read_key).map_err(|e| published_error(&a.spec, e))?;
    let doc = JsonTrust::from_trust(&trust);
    let bytes = match a.format {
        Format::Cbor => bkv_protocol::cbor::to_vec(&trust),
        Format::Json => {
            let mut s = serde_json::to_string_pretty(&doc).expect("serializable");
            s.push('\n');
            s.into_bytes()
        }
    };
    out.write(&bytes)?;
    if json {
        Envelope::success(serde_json::json!({ "file": a.out, "trust": doc })).print();
    } else if out != OutputFile::Stdout {
        println!("{}: the trust file of fleet {:?}", a.out.display(), trust.anchors.fleet_id);
        print_trust(&doc);
    }
    Ok(ExitCode::SUCCESS)
}

fn inspect(a: InspectArgs, json: bool) -> Result<ExitCode> {
    let doc = JsonTrust::from_trust(&read_trust(&a.file)?);
    if json {
        Envelope::success(&doc).print();
    } else {
        println!("{}: the trust file of fleet {:?}", a.file.display(), doc.fleet_id);
        print_trust(&doc);
    }
    Ok(ExitCode::SUCCESS)
}

fn print_trust(doc: &JsonTrust) {
    let window = |a: &published::JsonAnchor| {
        format!("{} .. {}", super::output::rfc3339(a.not_before), super::output::rfc3339(a.not_after))
    };
    for (role, list) in [("third party", &doc.third_party), ("operator", &doc.operator)] {
        for a in list {
            let alg = if a.alg == -19 { "Ed25519" } else { "ESP256" };
            println!("  {role:<11} {:?} {alg} kid {} valid {}", a.name, a.kid, window(a));
        }
    }
    for p in &doc.pinned {
        println!("  pinned      FleetKeySet {p}");
    }
    println!("  log         {} (key {})", doc.log.origin, doc.log.log_key.encode());
    for w in &doc.log.witnesses {
        println!("  witness     {}", w.encode());
    }
    println!("  cosignatures required: {} of {}", doc.log.threshold, doc.log.witnesses.len());
}

fn vendor_roots(a: VendorRootsArgs, json: bool) -> Result<ExitCode> {
    let out = OutputFile::new(&a.out, a.force);
    out.check()?;
    let mut roots = Vec::new();
    for path in &a.certs {
        let text = String::from_utf8(read_file(path)?).map_err(|_| Error::Published {
            path: path.clone(),
            what: "a vendor root certificate".into(),
            detail: "not UTF-8 text: not a PEM CERTIFICATE".into(),
        })?;
        roots.extend(roots_from_pem(path, &text)?);
    }
    out.write(&bkv_protocol::cbor::to_vec(&roots))?;
    let listed: Vec<_> = roots
        .iter()
        .map(|r| serde_json::json!({ "name": r.name, "alg": r.key.alg.cose_id(), "kid": hex::encode(r.key.kid()) }))
        .collect();
    if json {
        Envelope::success(serde_json::json!({ "file": a.out, "roots": listed })).print();
    } else if out != OutputFile::Stdout {
        let n = if roots.len() == 1 {
            "1 vendor root".to_owned()
        } else {
            format!("{} vendor roots", roots.len())
        };
        println!("{}: {n}, each self-signed and checked", a.out.display());
        for r in &roots {
            println!("  {:?} kid {}", r.name, hex::encode(r.key.kid()));
        }
    }
    Ok(ExitCode::SUCCESS)
}
