//! The output and exit-code contract of every `bkv` command (README "Output and exit codes").
//!
//! - Results go to standard output, progress and status to standard error.
//! - With `--json`, standard output carries exactly one [`Envelope`]: `{"ok": true,
//!   "result": …}` on success, `{"ok": false, "error": {"code", "message", "file"?,
//!   "hint"?}}` on failure. Its JSON Schema is [`schema`] (`bkv schema output`).
//! - Exit status: [`EXIT_OK`], [`EXIT_VERIFICATION`] for a verification failure (a code
//!   of spec/conventions.md §7 but `fleet.unavailable` and `vault.attempt.rate_limited`),
//!   [`EXIT_OPERATIONAL`] for an operational failure (a code of §8 other than `cli.usage`,
//!   and those two), [`EXIT_USAGE`] for a usage error (`cli.usage`).
//! - Output files are written through [`OutputFile`]: an existing file is never replaced
//!   without `--force`, and `-` is standard output.

use crate::error::Error;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::path::{Path, PathBuf};

/// Success.
pub const EXIT_OK: u8 = 0;
/// A verification failed (spec/conventions.md §7).
pub const EXIT_VERIFICATION: u8 = 1;
/// The command line or an input file is not usable (`cli.usage`; the status clap and
/// POSIX utilities give a usage error).
pub const EXIT_USAGE: u8 = 2;
/// An operational failure (spec/conventions.md §8: `io.*`, `hsm.*`, `node.start.*`, …).
pub const EXIT_OPERATIONAL: u8 = 3;

/// What a command printed on standard output with `--json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum Envelope {
    /// The command succeeded.
    Success(Success),
    /// The command failed.
    Failure(Failure),
}

/// `{"ok": true, "result": …}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Success {
    /// Always `true`.
    #[schemars(with = "True")]
    pub ok: bool,
    /// The command's result; its shape is the command's own.
    pub result: serde_json::Value,
}

/// `{"ok": false, "error": …}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Failure {
    /// Always `false`.
    #[schemars(with = "False")]
    pub ok: bool,
    /// What failed.
    pub error: ErrorBody,
}

/// A failure: its stable code and what to do about it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ErrorBody {
    /// The stable code (spec/conventions.md §7 or §8).
    pub code: String,
    /// A readable message.
    pub message: String,
    /// The file the failure concerns, when there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    /// What to do next, when the command knows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
    /// Machine-readable details, when the failure has any (e.g. `{"remaining": 9}` for
    /// `vault.code.invalid`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub details: Option<serde_json::Value>,
}

/// The JSON constant `true` (schema only).
#[derive(JsonSchema)]
#[schemars(transparent)]
#[allow(dead_code)]
struct True(#[schemars(schema_with = "const_true")] bool);

/// The JSON constant `false` (schema only).
#[derive(JsonSchema)]
#[schemars(transparent)]
#[allow(dead_code)]
struct False(#[schemars(schema_with = "const_false")] bool);

fn const_true(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({ "const": true })
}

fn const_false(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({ "const": false })
}

/// The JSON Schema of [`Envelope`].
pub fn schema() -> serde_json::Value {
    serde_json::to_value(schemars::schema_for!(Envelope)).expect("a schema serializes")
}

impl Envelope {
    /// A success carrying `result`.
    pub fn success(result: impl Serialize) -> Self {
        Envelope::Success(Success {
            ok: true,
            result: serde_json::to_value(result).expect("serializable result"),
        })
    }

    /// The failure of `e`.
    pub fn failure(e: &Error) -> Self {
        Envelope::Failure(Failure {
            ok: false,
            error: ErrorBody {
                code: e.code().to_owned(),
                message: e.message(),
                file: e.file(),
                hint: e.hint(),
                details: e.details(),
            },
        })
    }

    /// Print it as one line on standard output.
    pub fn print(&self) {
        println!("{}", serde_json::to_string(self).expect("serializable envelope"));
    }
}

/// The exit status for a failure with `e`.
pub fn exit_status(e: &Error) -> u8 {
    match e {
        // Availability and rate limits are not verification failures.
        Error::Protocol(
            bkv_protocol::Error::FleetUnavailable | bkv_protocol::Error::VaultAttemptRateLimited,
        ) => EXIT_OPERATIONAL,
        Error::Protocol(_)
        | Error::WrongCode { .. }
        | Error::InFile { .. }
        | Error::Findings { .. }
        | Error::AuditFailed { .. } => EXIT_VERIFICATION,
        Error::Published { .. } => EXIT_USAGE,
        e if e.code() == "cli.usage" => EXIT_USAGE,
        _ => EXIT_OPERATIONAL,
    }
}

/// Where a command writes an output file: a path, or standard output for `-`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OutputFile {
    /// Standard output.
    Stdout,
    /// A file, which must not exist unless `force`.
    Path {
        /// The file.
        path: PathBuf,
        /// Replace an existing file.
        force: bool,
    },
}

impl OutputFile {
    /// `-` is standard output; anything else a path.
    pub fn new(path: &Path, force: bool) -> Self {
        if path == Path::new("-") {
            OutputFile::Stdout
        } else {
            OutputFile::Path { path: path.to_owned(), force }
        }
    }

    /// Refuse early, before any work, when the file exists and `--force` was not given.
    pub fn check(&self) -> Result<(), Error> {
        match self {
            OutputFile::Path { path, force: false } if path.exists() => Err(Error::Write {
                path: path.clone(),
                source: std::io::Error::new(
                    std::io::ErrorKind::AlreadyExists,
                    "the file exists; pass --force to replace it",
                ),
            }),
            _ => Ok(()),
        }
    }

    /// Write `bytes`: to standard output, or to a temporary file beside the target that is
    /// synced and renamed into place (an existing file only with `--force`).
    pub fn write(&self, bytes: &[u8]) -> Result<(), Error> {
        match self {
            OutputFile::Stdout => {
                let mut out = std::io::stdout().lock();
                out.write_all(bytes)
                    .and_then(|_| out.flush())
                    .map_err(|source| Error::Write { path: "-".into(), source })
            }
            OutputFile::Path { path, force } => {
                self.check()?;
                let io = |source| Error::Write { path: path.clone(), source };
                let mut name = path.file_name().map(|n| n.to_os_string()).unwrap_or_default();
                name.push(format!(".partial-{}", std::process::id()));
                let tmp = path.with_file_name(name);
                let written = std::fs::File::create(&tmp)
                    .and_then(|mut f| f.write_all(bytes).and_then(|_| f.sync_all()))
                    .map_err(io);
                if let Err(e) = written {
                    let _ = std::fs::remove_file(&tmp);
                    return Err(e);
                }
                if !force && path.exists() {
                    let _ = std::fs::remove_file(&tmp);
                    return self.check();
                }
                std::fs::rename(&tmp, path).map_err(io)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_existing_file_is_not_replaced_without_force() {
        let dir = std::env::temp_dir().join(format!("bkv-contract-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("out.bin");
        std::fs::write(&path, b"old").unwrap();
        let err = OutputFile::new(&path, false).write(b"new").unwrap_err();
        assert_eq!(err.code(), "io.write");
        assert_eq!(std::fs::read(&path).unwrap(), b"old");
        OutputFile::new(&path, true).write(b"new").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"new");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn dash_is_standard_output() {
        assert_eq!(OutputFile::new(Path::new("-"), false), OutputFile::Stdout);
    }

    #[test]
    fn exit_statuses_separate_verification_operational_and_usage() {
        assert_eq!(
            exit_status(&Error::Protocol(bkv_protocol::Error::BundleSignerUnknown)),
            EXIT_VERIFICATION
        );
        assert_eq!(exit_status(&Error::Usage("x".into())), EXIT_USAGE);
        assert_eq!(exit_status(&Error::Http("x".into())), EXIT_OPERATIONAL);
    }
}
