//! The one error type of `bkv-fleet`.
//!
//! Protocol failures keep their stable spec code (spec/conventions.md §7); failures of
//! the fleet's own I/O get codes in the `io.*` and `cli.*` families, which are local to
//! this implementation and never appear on the wire.

use std::path::PathBuf;

/// A failure of the reference fleet, its services or the CLI.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A protocol verification failed; carries the spec code.
    #[error(transparent)]
    Protocol(#[from] bkv_protocol::Error),
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
    /// An audit-log service failed (storage or HTTP; spec/audit-log.md §8).
    #[error(transparent)]
    AuditLog(crate::audit_log::Error),
    /// A fleet could not be reached.
    #[error("{0}")]
    Transport(String),
}

impl From<crate::client::ClientError> for Error {
    fn from(e: crate::client::ClientError) -> Self {
        match e {
            crate::client::ClientError::Protocol(p) => Error::Protocol(p),
            crate::client::ClientError::Transport(t) => Error::Transport(t),
        }
    }
}

impl From<crate::audit_log::Error> for Error {
    fn from(e: crate::audit_log::Error) -> Self {
        match e {
            crate::audit_log::Error::Protocol(p) => Error::Protocol(p),
            other => Error::AuditLog(other),
        }
    }
}

impl Error {
    /// The stable code printed by the CLI and carried in `--json` output.
    pub fn code(&self) -> &'static str {
        match self {
            Error::Protocol(e) => e.code(),
            Error::Read { .. } => "io.read",
            Error::Write { .. } => "io.write",
            Error::Usage(_) => "cli.usage",
            Error::AuditLog(e) => e.code(),
            Error::Transport(_) => "client.transport",
        }
    }
}

/// `Result` with the fleet [`Error`].
pub type Result<T, E = Error> = core::result::Result<T, E>;

/// Read a whole file, naming it in the error.
pub fn read_file(path: &std::path::Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|source| Error::Read { path: path.to_owned(), source })
}

/// Write a whole file, naming it in the error.
pub fn write_file(path: &std::path::Path, bytes: &[u8]) -> Result<()> {
    std::fs::write(path, bytes).map_err(|source| Error::Write { path: path.to_owned(), source })
}
