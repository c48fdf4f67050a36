//! `bkv signer serve` (the third party: its key and the signing protocol,
//! spec/signer-api.md §3) and `bkv keys` (organisation keys in a token or a file). The
//! operator's command is in [`super::operator`]; each command loads one organisation's key,
//! no command loads both.

use crate::cli::contract::Envelope;
use crate::error::{Error, Result, read_file};
use bkv_client::clock::SystemClock;
use bkv_protocol::crypto::{Ed25519Signer, Esp256Signer};
use bkv_third_party::signer_service::{SignerConfig, SignerService, ThirdPartyKey, router};
use clap::{Args, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

/// Where an organisation's signing key is: a hex key file (development), or a PKCS#11
/// token (`--pkcs11-module`, `--token-label`, `--key-label`, the PIN from `--pin-file` or
/// `BKV_PKCS11_PIN`, never from the command line).
#[derive(Debug, Clone, Args)]
pub struct KeySource {
    /// The key as a hex file (mode 0600): development only.
    #[arg(long, conflicts_with = "pkcs11_module", required_unless_present = "pkcs11_module")]
    pub key_file: Option<PathBuf>,
    /// The PKCS#11 module that holds the key (SoftHSM2: /usr/lib/softhsm/libsofthsm2.so).
    #[arg(long, requires_all = ["token_label", "key_label"])]
    pub pkcs11_module: Option<PathBuf>,
    /// The token's label.
    #[arg(long, requires = "pkcs11_module")]
    pub token_label: Option<String>,
    /// The key's label in the token.
    #[arg(long, requires = "pkcs11_module")]
    pub key_label: Option<String>,
    /// A file holding the token's user PIN (else `BKV_PKCS11_PIN`).
    #[arg(long, requires = "pkcs11_module")]
    pub pin_file: Option<PathBuf>,
}

/// The environment variable a PKCS#11 PIN is read from when no `--pin-file` is given.
pub const PIN_ENV: &str = "BKV_PKCS11_PIN";

impl KeySource {
    /// The token key this source names, if it names one.
    pub fn token(&self) -> Result<Option<bkv_pkcs11::KeyRef>> {
        let (Some(module), Some(token_label), Some(key_label)) =
            (&self.pkcs11_module, &self.token_label, &self.key_label)
        else {
            return Ok(None);
        };
        Ok(Some(bkv_pkcs11::KeyRef {
            module: module.clone(),
            token_label: token_label.clone(),
            key_label: key_label.clone(),
            pin: bkv_pkcs11::read_pin(self.pin_file.as_deref(), PIN_ENV)?,
        }))
    }

    /// The key: from the token, or from the file as `software` reads it.
    pub(crate) fn signer(
        &self,
        software: impl FnOnce(
            &zeroize::Zeroizing<[u8; 32]>,
        ) -> Result<Box<dyn bkv_protocol::crypto::Signer + Send + Sync>>,
    ) -> Result<Box<dyn bkv_protocol::crypto::Signer + Send + Sync>> {
        match (self.token()?, &self.key_file) {
            (Some(key), _) => Ok(Box::new(bkv_pkcs11::TokenSigner::open(&key)?)),
            (None, Some(file)) => software(&crate::error::read_secret(file)?),
            (None, None) => Err(Error::Usage("give --key-file or --pkcs11-module".into())),
        }
    }
}

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
    /// The third party's signing key: an Ed25519 seed file, or a key in a token.
    #[command(flatten)]
    pub key: KeySource,
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
    /// Run as a supervisor's child: stop when standard input closes.
    #[arg(long, hide = true)]
    pub supervised: bool,
}

fn hex32(flag: &str, s: &str) -> Result<[u8; 32]> {
    hex::decode(s.trim())
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| Error::Usage(format!("{flag}: {s:?} is not 32 bytes of hex")))
}

/// Run `bkv signer`.
pub async fn run_signer(cmd: SignerCommand, json: bool) -> Result<ExitCode> {
    let SignerCommand::Serve(a) = cmd;
    let trust = super::trust::read_trust(&a.trust)?;
    let vendor_roots = super::trust::read_vendor_roots(&a.vendor_roots)?;
    let token = read_file(&a.log_token_file)?;
    let token = String::from_utf8(token)
        .map_err(|_| Error::BadInput { path: a.log_token_file.clone(), detail: "not text".into() })?;
    let config = SignerConfig {
        key: ThirdPartyKey::new(a.key.signer(|seed| Ok(Box::new(Ed25519Signer::from_seed(seed))))?),
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
    let url = format!("{}://{}", a.tls.scheme(), running.addr);
    if json {
        Envelope::success(serde_json::json!({ "url": url })).print();
    } else {
        println!("listening on {url}");
    }
    super::log::wait_forever(a.supervised).await
}

/// `bkv keys ...`
#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Generate an organisation's signing key in a PKCS#11 token (non-extractable,
    /// sensitive) and print its public key and key id.
    Init(KeysArgs),
    /// Print a token key's public key, key id and attributes.
    Inspect(KeysArgs),
    /// Generate a key as a hex file (mode 0600) and print its public key: development
    /// fleets only (a deployment keeps organisation keys in a token, `bkv keys init`).
    File(FileKeyArgs),
}

/// Arguments of `bkv keys file`.
#[derive(Debug, Args)]
pub struct FileKeyArgs {
    /// The algorithm: `ed25519` for a third party, `esp256` for an operator.
    #[arg(long, value_enum)]
    pub alg: KeyAlg,
    /// The new key file (never replaced).
    #[arg(long)]
    pub out: PathBuf,
    /// `--json` (global).
    #[arg(skip)]
    pub json: bool,
}

/// Arguments of `bkv keys init|inspect`.
#[derive(Debug, Args)]
pub struct KeysArgs {
    /// The PKCS#11 module.
    #[arg(long)]
    pub pkcs11_module: PathBuf,
    /// The token's label.
    #[arg(long)]
    pub token_label: String,
    /// The key's label in the token.
    #[arg(long)]
    pub key_label: String,
    /// A file holding the token's user PIN (else `BKV_PKCS11_PIN`).
    #[arg(long)]
    pub pin_file: Option<PathBuf>,
    /// The algorithm (`init`): `ed25519` for a third party, `esp256` for an operator.
    #[arg(long, value_enum, default_value_t = KeyAlg::Ed25519)]
    pub alg: KeyAlg,
    /// `--json` (global).
    #[arg(skip)]
    pub json: bool,
}

/// `--alg` of `bkv keys init`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum KeyAlg {
    /// Ed25519 (COSE -19), `CKM_EDDSA`.
    Ed25519,
    /// ESP256 (COSE -9), SHA-256 then `CKM_ECDSA`.
    Esp256,
}

impl KeysCommand {
    /// Apply the global `--json`.
    pub fn set_json(&mut self, json: bool) {
        match self {
            KeysCommand::Init(a) | KeysCommand::Inspect(a) => a.json = json,
            KeysCommand::File(a) => a.json = json,
        }
    }
}

/// Run `bkv keys`.
pub fn run_keys(cmd: KeysCommand) -> Result<ExitCode> {
    let (a, init) = match cmd {
        KeysCommand::Init(a) => (a, true),
        KeysCommand::Inspect(a) => (a, false),
        KeysCommand::File(a) => return key_file(a),
    };
    let key = bkv_pkcs11::KeyRef {
        module: a.pkcs11_module.clone(),
        token_label: a.token_label.clone(),
        key_label: a.key_label.clone(),
        pin: bkv_pkcs11::read_pin(a.pin_file.as_deref(), PIN_ENV)?,
    };
    let (pk, attrs) = if init {
        let alg = match a.alg {
            KeyAlg::Ed25519 => bkv_protocol::crypto::Algorithm::Ed25519,
            KeyAlg::Esp256 => bkv_protocol::crypto::Algorithm::Esp256,
        };
        bkv_pkcs11::generate(&key, alg)?
    } else {
        bkv_pkcs11::inspect(&key)?
    };
    let mut report = public_report(&pk);
    report["token"] = a.token_label.clone().into();
    report["key"] = a.key_label.clone().into();
    report["attributes"] = serde_json::to_value(&attrs).expect("serializable");
    if a.json {
        Envelope::success(report).print();
    } else {
        println!(
            "{} key {:?} in token {:?}: kid {}\n  public key {}\n  extractable {}, sensitive {}",
            if init { "generated" } else { "found" },
            a.key_label,
            a.token_label,
            report["kid"].as_str().unwrap_or_default(),
            hex::encode(&pk.key),
            attrs.extractable,
            attrs.sensitive
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// The public key as `bkv keys` prints it.
fn public_report(pk: &bkv_protocol::crypto::PublicKey) -> serde_json::Value {
    serde_json::json!({
        "public_key": { "alg": pk.alg.cose_id(), "key": hex::encode(&pk.key) },
        "public_key_cbor": hex::encode(bkv_protocol::cbor::to_vec(pk)),
        "kid": hex::encode(pk.kid()),
    })
}

/// `bkv keys file`: a new software key, written owner-only; its public key printed.
fn key_file(a: FileKeyArgs) -> Result<ExitCode> {
    use bkv_protocol::crypto::Signer as _;
    let (secret, pk) = match a.alg {
        KeyAlg::Ed25519 => {
            let k = Ed25519Signer::generate(&mut rand_core::OsRng);
            (zeroize::Zeroizing::new(hex::encode(&k.seed()[..])), k.public_key().clone())
        }
        KeyAlg::Esp256 => {
            let k = Esp256Signer::generate(&mut rand_core::OsRng);
            (zeroize::Zeroizing::new(hex::encode(&k.scalar()[..])), k.public_key().clone())
        }
    };
    crate::error::write_secret(&a.out, &secret)?;
    let mut report = public_report(&pk);
    report["file"] = serde_json::to_value(&a.out).expect("serializable");
    if a.json {
        Envelope::success(report).print();
    } else {
        println!(
            "{}: key id {}, public key {}",
            a.out.display(),
            hex::encode(pk.kid()),
            hex::encode(&pk.key)
        );
    }
    Ok(ExitCode::SUCCESS)
}
