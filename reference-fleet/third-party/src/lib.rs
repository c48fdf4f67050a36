//! `bkv-third-party`: the third party's services (spec/audit-log.md §8).
//!
//! The log server ([`log_server`]) stores entries and checkpoints in redb ([`storage`])
//! and serves tiles (`bkv_protocol::audit_log::tiles`); witnesses ([`witness`]) cosign checkpoints after checking
//! consistency; the third-party signer releases a bundle only through
//! [`signer::release`]; [`local`] runs a log and its witnesses on loopback. Clients of the
//! log (the monitor, the auditor, the signer itself) are in `bkv-client`. All protocol
//! decisions are made by `bkv_protocol::audit_log`; this crate moves bytes.
#![forbid(unsafe_code)]

pub mod local;
pub mod log_server;
pub mod signer;
pub mod signer_service;
pub mod storage;
pub mod witness;

/// The one error type of the third party's services.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A protocol failure with its stable spec code.
    #[error("{0}")]
    Protocol(#[from] bkv_protocol::Error),
    /// The embedded database failed; nothing was acknowledged.
    #[error("storage: {0}")]
    Storage(String),
    /// An HTTP exchange failed or returned an error status.
    #[error("{0}")]
    Http(String),
}

impl Error {
    /// The stable code: the protocol code, or `io.storage` / `io.http`.
    pub fn code(&self) -> &'static str {
        match self {
            Error::Protocol(e) => e.code(),
            Error::Storage(_) => "io.storage",
            Error::Http(_) => "io.http",
        }
    }
}

macro_rules! storage_from {
    ($($t:ty),*) => {$(
        impl From<$t> for Error {
            fn from(e: $t) -> Self {
                Error::Storage(e.to_string())
            }
        }
    )*};
}
storage_from!(
    redb::DatabaseError,
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError,
    redb::SetDurabilityError
);

impl From<bkv_client::Error> for Error {
    fn from(e: bkv_client::Error) -> Self {
        match e {
            bkv_client::Error::Protocol(p) => Error::Protocol(p),
            other => Error::Http(other.to_string()),
        }
    }
}

impl From<serde_json::Error> for Error {
    fn from(e: serde_json::Error) -> Self {
        Error::Storage(e.to_string())
    }
}

/// `Result` of the audit-log services.
pub type Result<T, E = Error> = core::result::Result<T, E>;

/// Write the secret `bytes` to a new file at `path`, readable by its owner only, and sync
/// it (seed files, the log's admin token). An existing file is never replaced.
pub fn write_secret_file(path: &std::path::Path, bytes: &[u8]) -> Result<()> {
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    use std::io::Write;
    opts.open(path)
        .and_then(|mut f| f.write_all(bytes).and_then(|_| f.sync_all()))
        .map_err(|e| Error::Storage(format!("{}: {e}", path.display())))
}

/// Read a 32-byte Ed25519 seed stored as hex in a file (secrets never on the command line).
pub fn read_seed(path: &std::path::Path) -> Result<[u8; 32]> {
    let text =
        std::fs::read_to_string(path).map_err(|e| Error::Storage(format!("{}: {e}", path.display())))?;
    hex::decode(text.trim())
        .ok()
        .and_then(|b| <[u8; 32]>::try_from(b).ok())
        .ok_or_else(|| Error::Storage(format!("{}: not a hex 32-byte seed", path.display())))
}
