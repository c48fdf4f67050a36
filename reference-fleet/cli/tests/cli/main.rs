//! The integration tests of `bkv-fleet`, one binary (one link step) with a module per
//! area; shared helpers in [`support`].

mod audit_log;
mod auditor;
mod cli_backup;
mod cli_bench;
mod cli_bundle;
mod contract;
mod log_cli;
mod node_run;
mod reproducible;
mod signer;
mod supervisor;
mod support;
mod tls;
