//! The one error type of `bkv-client`.

/// A failure of the client.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The fleet, the log or the protocol refused (carries the spec code).
    #[error(transparent)]
    Protocol(#[from] bkv_protocol::Error),
    /// A fleet node could not be reached or answered outside the protocol.
    #[error("{0}")]
    Transport(String),
    /// An audit-log or witness exchange failed or returned an error status
    /// (spec/audit-log.md §6).
    #[error("{0}")]
    Http(String),
    /// The node refused the request for its client address's rate (spec/node-api.md §6
    /// point 1): nothing was opened; retry after the seconds it named.
    #[error("{url}: rate limited by the node; retry in {retry_after_secs} s")]
    RateLimited {
        /// The endpoint.
        url: String,
        /// Its `Retry-After`, in seconds.
        retry_after_secs: u64,
    },
    /// A published auditor input cannot be used (spec/audit.md §1.1).
    #[error("{what}: {detail}")]
    Published {
        /// The input and field.
        what: String,
        /// What is wrong and what it should be.
        detail: String,
    },
    /// A file of the backup could not be written.
    #[error("cannot write {}: {detail}", path.display())]
    Io {
        /// The file.
        path: std::path::PathBuf,
        /// What failed.
        detail: String,
    },
}

impl Error {
    /// Stable code (spec/conventions.md §7 for protocol codes, §8 for operational ones).
    pub fn code(&self) -> &'static str {
        match self {
            Error::Protocol(e) => e.code(),
            Error::Transport(_) => "client.transport",
            Error::Http(_) => "io.http",
            Error::RateLimited { .. } => "client.rate_limited",
            Error::Io { .. } => "io.write",
            Error::Published { .. } => "published.invalid",
        }
    }
}

/// `Result` of the client.
pub type Result<T, E = Error> = core::result::Result<T, E>;
