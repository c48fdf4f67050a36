//! The one error type of the `bkv` CLI.
//!
//! Protocol failures keep their stable spec code (spec/conventions.md §7); operational
//! failures keep the code of the component that failed (`hsm.*`, `node.start.*`, `io.*`,
//! `client.transport`, spec/conventions.md §8), and `cli.usage` is only for a command line
//! or an input file that is not usable.

use std::path::PathBuf;

/// A failure of the reference fleet, its services or the CLI.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A protocol verification failed; carries the spec code.
    #[error(transparent)]
    Protocol(#[from] bkv_protocol::Error),
    /// The recovery code is wrong (spec/vault.md §6.4 L3): the guess is counted.
    #[error("wrong recovery code; {} left for this backup", guesses(*remaining))]
    WrongCode {
        /// Guesses the record allows now.
        remaining: u32,
    },
    /// A protocol structure read from a file failed to decode or verify: its spec code,
    /// and the file named.
    #[error("{path}: not {what}: {}", source.description())]
    InFile {
        /// The file.
        path: PathBuf,
        /// What the file should be, e.g. "a validation bundle".
        what: &'static str,
        /// The protocol failure.
        source: bkv_protocol::Error,
    },
    /// A monitor flagged something (spec/audit-log.md §9): `log.monitor.findings`, with the
    /// monitor's report as the details.
    #[error("the log monitor flagged {summary}")]
    Findings {
        /// What was flagged, in one line.
        summary: String,
        /// The monitor's report.
        report: serde_json::Value,
    },
    /// The Audit procedure failed at `step` with `code` (spec/audit.md §2); the report is
    /// the details.
    #[error("the audit failed at {step}: {}{}", code.description(), explanation.as_ref().map(|e| format!(" ({e})")).unwrap_or_default())]
    AuditFailed {
        /// The step, e.g. "AU9".
        step: String,
        /// Its code.
        code: bkv_protocol::Error,
        /// What the step saw, when the CLI can say more (AU9: expected, given, recipe).
        explanation: Option<String>,
        /// The report (inputs, steps) as written to report.json.
        report: serde_json::Value,
    },
    /// `bkv fleet status`: no leader among the nodes (`fleet.unavailable`, an operational
    /// failure: nothing was verified).
    #[error("no leader among the nodes: {0}")]
    FleetDown(String),
    /// A file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A file could not be written.
    #[error("cannot write {path}: {source}")]
    Write {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The command line asks for something impossible.
    #[error("{0}")]
    Usage(String),
    /// A published auditor input cannot be used (spec/audit.md §1.1): `published.invalid`.
    #[error("{path}: {what}: {detail}")]
    Published {
        /// The file.
        path: PathBuf,
        /// The input and field, e.g. `operator[0].key`.
        what: String,
        /// What is wrong and what it should be.
        detail: String,
    },
    /// An input file's contents are not usable (names the file).
    #[error("{path}: {detail}")]
    BadInput {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        detail: String,
    },
    /// An audit-log service failed (storage or HTTP; spec/audit-log.md §8).
    #[error(transparent)]
    AuditLog(bkv_third_party::Error),
    /// A fleet node could not be reached.
    #[error("{0}")]
    Transport(String),
    /// A log or witness exchange failed.
    #[error("{0}")]
    Http(String),
    /// The software HSM failed.
    #[error(transparent)]
    Hsm(#[from] bkv_node::HsmError),
    /// A fleet node could not start.
    #[error(transparent)]
    NodeStart(#[from] bkv_node::StartError),
    /// The async runtime could not start.
    #[error("{0}")]
    Runtime(String),
    /// A benchmark's fleet did not start, elect a leader, snapshot or catch up in time.
    #[error("{0}")]
    Bench(String),
    /// A node's configuration cannot be used.
    #[error(transparent)]
    NodeConfig(#[from] bkv_node::config::ConfigError),
    /// A node refused the request for this client's rate (spec/node-api.md §6).
    #[error("{0}")]
    RateLimited(String),
    /// A TLS certificate, key or CA file cannot be used (`--ca`, `--tls-cert`, `--tls-key`).
    #[error(transparent)]
    Tls(#[from] bkv_client::tls::TlsError),
    /// An organisation's key in a PKCS#11 token could not be used.
    #[error(transparent)]
    Pkcs11(#[from] bkv_pkcs11::Error),
}

impl From<bkv_node::Error> for Error {
    fn from(e: bkv_node::Error) -> Self {
        match e {
            bkv_node::Error::Protocol(p) => Error::Protocol(p),
            bkv_node::Error::Hsm(h) => Error::Hsm(h),
            bkv_node::Error::Start(s) => Error::NodeStart(s),
            bkv_node::Error::Config(c) => Error::NodeConfig(c),
            other => Error::Usage(other.to_string()),
        }
    }
}

impl From<bkv_client::Error> for Error {
    fn from(e: bkv_client::Error) -> Self {
        match e {
            bkv_client::Error::Protocol(p) => Error::Protocol(p),
            bkv_client::Error::Transport(t) => Error::Transport(t),
            bkv_client::Error::Http(t) => Error::Http(t),
            e @ bkv_client::Error::RateLimited { .. } => Error::RateLimited(e.to_string()),
            bkv_client::Error::Io { path, detail } => {
                Error::Write { path, source: std::io::Error::other(detail) }
            }
            other => Error::Transport(other.to_string()),
        }
    }
}

impl From<bkv_operator::Error> for Error {
    fn from(e: bkv_operator::Error) -> Self {
        match e {
            bkv_operator::Error::Protocol(p) => Error::Protocol(p),
            bkv_operator::Error::Transport(t) => Error::Transport(t),
            bkv_operator::Error::Http(t) => Error::Http(t),
        }
    }
}

impl From<bkv_third_party::Error> for Error {
    fn from(e: bkv_third_party::Error) -> Self {
        match e {
            bkv_third_party::Error::Protocol(p) => Error::Protocol(p),
            other => Error::AuditLog(other),
        }
    }
}

impl Error {
    /// The stable code printed by the CLI and carried in `--json` output.
    pub fn code(&self) -> &'static str {
        match self {
            Error::Protocol(e) => e.code(),
            Error::WrongCode { .. } => "vault.code.invalid",
            Error::InFile { source, .. } => source.code(),
            Error::FleetDown(..) => "fleet.unavailable",
            Error::Findings { .. } => "log.monitor.findings",
            Error::AuditFailed { code, .. } => code.code(),
            Error::Read { .. } => "io.read",
            Error::Write { .. } => "io.write",
            Error::Usage(_) | Error::BadInput { .. } => "cli.usage",
            Error::Published { .. } => "published.invalid",
            Error::AuditLog(e) => e.code(),
            Error::Transport(_) => "client.transport",
            Error::Http(_) => "io.http",
            Error::Hsm(e) => e.code(),
            Error::NodeStart(e) => e.code(),
            Error::Runtime(_) => "io.runtime",
            Error::Bench(_) => "bench.failed",
            Error::NodeConfig(e) => e.code(),
            Error::Tls(_) => "tls.config.invalid",
            Error::RateLimited(_) => "client.rate_limited",
            Error::Pkcs11(e) => e.code(),
        }
    }
}

/// "1 guess", "2 guesses".
pub fn guesses(n: u32) -> String {
    if n == 1 { "1 guess".into() } else { format!("{n} guesses") }
}

/// What a user must hear about a record after an attempt (spec/vault.md §5.4), if anything:
/// the last guess is near, or it was used.
pub fn after_attempt(remaining: u32, recovered: bool) -> Option<String> {
    match (recovered, remaining) {
        (true, 0) => Some(
            "that was the record's last guess: the record is destroyed (spec/vault.md §5.4) and this backup \
             cannot be restored again; create a new backup now with `bkv backup create`"
                .into(),
        ),
        (false, 0) => Some(
            "that was the last guess: the record and its key are destroyed and this backup can never be \
             restored; create a new backup from a device that still has the data"
                .into(),
        ),
        (false, 1) => {
            Some("one guess left: the next wrong code destroys the record and this backup for good".into())
        }
        _ => None,
    }
}

impl Error {
    /// The message without the code (the code is printed next to it, once).
    pub fn message(&self) -> String {
        match self {
            Error::Protocol(e) => e.description().to_owned(),
            other => other.to_string(),
        }
    }

    /// Machine-readable details of the failure, when it has any (`--json` `error.details`).
    pub fn details(&self) -> Option<serde_json::Value> {
        match self {
            Error::WrongCode { remaining } => Some(serde_json::json!({ "remaining": remaining })),
            Error::Findings { report, .. } | Error::AuditFailed { report, .. } => Some(report.clone()),
            _ => None,
        }
    }

    /// The file the failure concerns, if any.
    pub fn file(&self) -> Option<String> {
        match self {
            Error::Read { path, .. }
            | Error::Write { path, .. }
            | Error::BadInput { path, .. }
            | Error::Published { path, .. }
            | Error::InFile { path, .. } => Some(path.display().to_string()),
            Error::NodeConfig(e) => Some(e.file.display().to_string()),
            Error::Tls(e) => Some(e.path.display().to_string()),
            _ => None,
        }
    }

    /// What to do next, where the CLI knows.
    pub fn hint(&self) -> Option<String> {
        match self {
            Error::WrongCode { remaining } => after_attempt(*remaining, false),
            Error::Protocol(bkv_protocol::Error::VaultRecordLocked) => Some(
                "this backup's record was destroyed after its last allowed guess (spec/vault.md §5.4): it can \
                 never be restored; create a new backup from a device that still has the data"
                    .into(),
            ),
            Error::Protocol(bkv_protocol::Error::FleetUnavailable) => Some(
                "the fleet could not answer in time; if this was a recovery attempt it may already have been \
                 counted (spec/fleet-replication.md §3.4), so at most one guess fewer is left: try again later"
                    .into(),
            ),
            Error::FleetDown(..) => Some("start the fleet's nodes (`bkv fleet up --dir DIR`), or check the addresses".into()),
            Error::Protocol(bkv_protocol::Error::VaultCodeWeak) => Some(
                "choose a code of at least 6 digits that is not one digit repeated or a run such as 123456 \
                 (spec/vault.md §2.4)"
                    .into(),
            ),
            Error::Write { source, .. } if source.kind() == std::io::ErrorKind::AlreadyExists => {
                Some("choose another file, or pass --force to replace it".into())
            }
            Error::Hsm(bkv_node::HsmError::Unseal) => Some(
                "check BKV_HSM_KEK or the fleet's kek.hex: the sealed HSM state opens only under its own KEK"
                    .into(),
            ),
            _ => None,
        }
    }
}

/// `Result` with the fleet [`Error`].
pub type Result<T, E = Error> = core::result::Result<T, E>;

/// Read a whole file, naming it in the error.
pub fn read_file(path: &std::path::Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|source| Error::Read { path: path.to_owned(), source })
}

/// A 32-byte secret from a hex file (`bkv log keygen --out`, `bkv keys file`, `orgs/`),
/// naming the file when it is missing (`io.read`) or not such a key (`cli.usage`).
pub fn read_secret(path: &std::path::Path) -> Result<zeroize::Zeroizing<[u8; 32]>> {
    let text = zeroize::Zeroizing::new(read_file(path)?);
    let bytes = zeroize::Zeroizing::new(hex::decode(text.trim_ascii()).unwrap_or_default());
    let secret: [u8; 32] = bytes.as_slice().try_into().map_err(|_| Error::BadInput {
        path: path.to_owned(),
        detail: "not a key file: 64 hex digits, as `bkv log keygen --out` and `bkv keys file` write".into(),
    })?;
    Ok(zeroize::Zeroizing::new(secret))
}

/// The constructor of [`Error::InFile`] for `map_err`: a protocol structure in `path` that
/// is not `what`.
pub fn in_file<'a>(
    path: &'a std::path::Path,
    what: &'static str,
) -> impl Fn(bkv_protocol::Error) -> Error + 'a {
    move |source| Error::InFile { path: path.to_owned(), what, source }
}

/// Parse a JSON input file, naming it in the error (`cli.usage`).
pub fn read_json<T: serde::de::DeserializeOwned>(path: &std::path::Path) -> Result<T> {
    serde_json::from_slice(&read_file(path)?).map_err(|e| Error::BadInput {
        path: path.to_owned(),
        detail: format!("not valid JSON of this file's kind: {e}"),
    })
}

/// Write a whole file, naming it in the error.
pub fn write_file(path: &std::path::Path, bytes: &[u8]) -> Result<()> {
    std::fs::write(path, bytes).map_err(|source| Error::Write { path: path.to_owned(), source })
}

/// Write a secret to a new file readable by its owner only (never over an existing file).
pub fn write_secret(path: &std::path::Path, text: &str) -> Result<()> {
    use std::io::Write;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let io = |source| Error::Write { path: path.to_owned(), source };
    let mut f = opts.open(path).map_err(io)?;
    f.write_all(text.as_bytes()).map_err(io)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    /// spec/conventions.md §8, parsed out of the spec text: the first column's codes.
    fn listed() -> BTreeSet<String> {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../spec/conventions.md");
        let text = std::fs::read_to_string(path).expect("spec/conventions.md");
        let section = text.split("## 8. Operational codes").nth(1).expect("§8");
        let section = section.split("\n## ").next().expect("§8 text");
        section
            .lines()
            .filter(|l| l.starts_with("| `"))
            .filter_map(|l| l.split('|').nth(1))
            .flat_map(|cell| cell.split('`').skip(1).step_by(2).map(str::to_owned).collect::<Vec<_>>())
            .collect()
    }

    /// One failure of every kind the CLI reports, through the error types of the crates it
    /// drives.
    fn every_operational_error() -> Vec<Error> {
        let io = || std::io::Error::other("x");
        vec![
            Error::Read { path: "f".into(), source: io() },
            Error::Write { path: "f".into(), source: io() },
            Error::Usage("x".into()),
            Error::BadInput { path: "f".into(), detail: "x".into() },
            Error::Published { path: "f".into(), what: "x".into(), detail: "x".into() },
            Error::AuditLog(bkv_third_party::Error::Storage("x".into())),
            Error::AuditLog(bkv_third_party::Error::Http("x".into())),
            Error::Transport("x".into()),
            Error::Http("x".into()),
            Error::Runtime("x".into()),
            Error::Bench("x".into()),
            Error::Hsm(bkv_node::HsmError::Io("x".into())),
            Error::Hsm(bkv_node::HsmError::Sealed("x".into())),
            Error::Hsm(bkv_node::HsmError::Unseal),
            Error::Hsm(bkv_node::HsmError::Kek("x".into())),
            Error::Hsm(bkv_node::HsmError::AwaitingSetup),
            Error::NodeStart(bkv_node::StartError::Storage("x".into())),
            Error::NodeStart(bkv_node::StartError::Bind("127.0.0.1:1".parse().unwrap(), io())),
            Error::NodeStart(bkv_node::StartError::Raft("x".into())),
            Error::NodeStart(bkv_node::StartError::NotAMember(9)),
            Error::NodeConfig(bkv_node::config::ConfigError {
                file: "node.toml".into(),
                field: "id".into(),
                detail: "x".into(),
            }),
            Error::Tls(bkv_client::tls::TlsError { path: "ca.pem".into(), detail: "x".into() }),
            Error::RateLimited("x".into()),
            Error::Pkcs11(bkv_pkcs11::Error::Pin("x".into())),
        ]
    }

    #[test]
    fn operational_codes_equal_spec_section_8() {
        let spec = listed();
        let mut code: BTreeSet<String> =
            every_operational_error().iter().map(|e| e.code().to_owned()).collect();
        // The codes services answer with in an HTTP body (not CLI errors).
        let answers = [
            bkv_node::service::LOG_RANGE,
            bkv_node::service::LOG_UNREACHABLE,
            bkv_third_party::log_server::ADMIN_UNAUTHORIZED,
        ];
        code.extend(answers.map(str::to_owned));
        let only_spec: Vec<_> = spec.difference(&code).collect();
        let only_code: Vec<_> = code.difference(&spec).collect();
        assert!(
            only_spec.is_empty() && only_code.is_empty(),
            "only in §8: {only_spec:?}; only in code: {only_code:?}"
        );
    }

    #[test]
    fn a_wrong_kek_keeps_its_hsm_code() {
        let e: Error = bkv_node::Error::Hsm(bkv_node::HsmError::Unseal).into();
        assert_eq!(e.code(), "hsm.unseal.failed");
        assert_eq!(crate::cli::contract::exit_status(&e), crate::cli::contract::EXIT_OPERATIONAL);
    }

    #[test]
    fn a_json_parse_error_is_cli_usage_naming_the_file() {
        let dir = std::env::temp_dir().join(format!("bkv-error-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("anchors.json");
        std::fs::write(&path, b"{not json").unwrap();
        let e = read_json::<serde_json::Value>(&path).unwrap_err();
        assert_eq!(e.code(), "cli.usage");
        assert!(e.to_string().contains("anchors.json"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
