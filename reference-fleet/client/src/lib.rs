//! `bkv-client`: what a phone or an auditor links.
//!
//! - [`fleet`]: fetch and verify a fleet's released bundle with every step of
//!   spec/validation-bundle.md §5.1, including log inclusion (step 12, spec/audit-log.md
//!   §7.2), then register and recover over sealed sessions (spec/session.md, spec/vault.md);
//! - [`backup`]: create and restore a backup file over the streaming envelope
//!   (spec/backup-envelope.md) with a key the fleet protects;
//! - [`log`]: the audit log's read API (checkpoints, proofs, entries; spec/audit-log.md §6)
//!   with one paginated fetch; [`monitor`]: walk a log and flag what §9 names;
//! - [`published`]: the published forms of an auditor's inputs (spec/audit.md §1.1);
//! - [`clock`]: the one clock, passed in wherever a step needs the time.
//!
//! It depends on `bkv-protocol` and one HTTP client (reqwest) and on nothing of the server
//! side: no axum, openraft, redb, clap or indicatif. All protocol decisions are made by
//! `bkv-protocol`; this crate moves bytes.
#![forbid(unsafe_code)]

pub mod backup;
pub mod clock;
pub mod error;
pub mod fleet;
pub mod http;
pub mod log;
pub mod monitor;
pub mod published;
pub mod tls;

pub use clock::{Clock, FixedClock, SharedClock, SystemClock};
pub use error::{Error, Result};
pub use fleet::{FleetClient, Persisted, Recovery, Trust, verify_step_12};
pub use log::LogClient;
