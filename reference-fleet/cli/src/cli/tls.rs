//! `bkv tls certs`: a private CA and certificates signed by it, for a lab or a test fleet
//! whose nodes, log and witnesses serve `https://` (`[tls]` of `node.toml`, `--tls-cert`
//! and `--tls-key` of `bkv log serve|witness`, and the global `--ca` of every client).
//! Production deployments use their own CA; these keys are written unencrypted (mode 0600).

use crate::cli::contract::Envelope;
use crate::error::{Error, Result, write_file, write_secret};
use clap::Subcommand;
use std::path::PathBuf;
use std::process::ExitCode;

/// `bkv tls ...`
#[derive(Debug, Subcommand)]
pub enum TlsCommand {
    /// Create a CA (`ca.pem`, `ca.key`) and one certificate and key per `--cert`.
    Certs(CertsArgs),
}

impl TlsCommand {
    /// Apply the global `--json`.
    pub fn set_json(&mut self, json: bool) {
        let TlsCommand::Certs(a) = self;
        a.json = json;
    }
}

/// Arguments of `bkv tls certs`.
#[derive(Debug, clap::Args)]
pub struct CertsArgs {
    /// A new directory for the files.
    #[arg(long)]
    pub out: PathBuf,
    /// `NAME=SAN[,SAN...]`: write `NAME.pem` and `NAME.key` for these DNS names or IP
    /// addresses (repeat for each server).
    #[arg(long = "cert", required = true)]
    pub certs: Vec<String>,
    /// `--json` (global).
    #[arg(skip)]
    pub json: bool,
}

/// What `bkv tls certs` wrote.
#[derive(Debug, serde::Serialize)]
pub struct Written {
    /// The CA certificate clients pass to `--ca`.
    pub ca: PathBuf,
    /// Per certificate: its name, file, key file and subject alternative names.
    pub certs: Vec<(String, PathBuf, PathBuf, Vec<String>)>,
}

fn rcgen_error(e: rcgen::Error) -> Error {
    Error::Runtime(format!("certificate generation failed: {e}"))
}

/// Run `bkv tls certs`.
pub fn run(cmd: TlsCommand) -> Result<ExitCode> {
    let TlsCommand::Certs(a) = cmd;
    let mut wanted = Vec::new();
    for spec in &a.certs {
        let (name, sans) = spec
            .split_once('=')
            .filter(|(n, s)| !n.is_empty() && !s.is_empty() && !n.contains('/'))
            .ok_or_else(|| Error::Usage(format!("--cert {spec:?}: expected NAME=SAN[,SAN...]")))?;
        wanted.push((name.to_owned(), sans.split(',').map(str::to_owned).collect::<Vec<_>>()));
    }
    if a.out.exists() {
        return Err(Error::Usage(format!("{} exists: choose a new directory", a.out.display())));
    }
    std::fs::create_dir_all(&a.out).map_err(|source| Error::Write { path: a.out.clone(), source })?;

    let ca_key = rcgen::KeyPair::generate().map_err(rcgen_error)?;
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).map_err(rcgen_error)?;
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    params.distinguished_name.push(rcgen::DnType::CommonName, "bkv private CA");
    params.key_usages = vec![rcgen::KeyUsagePurpose::KeyCertSign, rcgen::KeyUsagePurpose::CrlSign];
    let ca = rcgen::CertifiedIssuer::self_signed(params, ca_key).map_err(rcgen_error)?;
    let ca_file = a.out.join("ca.pem");
    write_file(&ca_file, ca.pem().as_bytes())?;
    write_secret(&a.out.join("ca.key"), &ca.key().serialize_pem())?;
    let mut written = Written { ca: ca_file, certs: Vec::new() };
    for (name, sans) in wanted {
        let key = rcgen::KeyPair::generate().map_err(rcgen_error)?;
        let mut params = rcgen::CertificateParams::new(sans.clone()).map_err(rcgen_error)?;
        params.distinguished_name.push(rcgen::DnType::CommonName, name.clone());
        let cert = params.signed_by(&key, &ca).map_err(rcgen_error)?;
        let (cert_file, key_file) = (a.out.join(format!("{name}.pem")), a.out.join(format!("{name}.key")));
        write_file(&cert_file, cert.pem().as_bytes())?;
        write_secret(&key_file, &key.serialize_pem())?;
        written.certs.push((name, cert_file, key_file, sans));
    }
    if a.json {
        Envelope::success(&written).print();
    } else {
        println!("CA: {} (clients: --ca {})", written.ca.display(), written.ca.display());
        for (name, cert, key, sans) in &written.certs {
            println!("{name}: {} and {} for {}", cert.display(), key.display(), sans.join(", "));
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// An Ed25519 organisation key as rcgen's signer (the vendor root's certificate).
struct Ed25519Key<'a>(&'a bkv_protocol::crypto::Ed25519Signer);

impl rcgen::PublicKeyData for Ed25519Key<'_> {
    fn der_bytes(&self) -> &[u8] {
        use bkv_protocol::crypto::Signer as _;
        &self.0.public_key().key
    }

    fn algorithm(&self) -> &'static rcgen::SignatureAlgorithm {
        &rcgen::PKCS_ED25519
    }
}

impl rcgen::SigningKey for Ed25519Key<'_> {
    fn sign(&self, msg: &[u8]) -> std::result::Result<Vec<u8>, rcgen::Error> {
        use bkv_protocol::crypto::Signer as _;
        Ok(self.0.sign(msg))
    }
}

/// A self-signed X.509 root certificate (PEM) for `key`, named `name` (its subject's common
/// name): the form in which an HSM vendor publishes its root (spec/audit.md §1.1).
pub fn self_signed_root(name: &str, key: &bkv_protocol::crypto::Ed25519Signer) -> Result<String> {
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).map_err(rcgen_error)?;
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    params.distinguished_name.push(rcgen::DnType::CommonName, name);
    params.key_usages = vec![rcgen::KeyUsagePurpose::KeyCertSign];
    Ok(params.self_signed(&Ed25519Key(key)).map_err(rcgen_error)?.pem())
}
