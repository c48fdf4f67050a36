//! The cross-crate integration and fault tests, one binary (one link step) with a module
//! per area; the fault harness shared by the replication and vault fault tests is
//! [`replication_common`]. libtest runs as many tests at once as the machine has cores,
//! as each of the former binaries did.

mod replication_common;

mod audit_cli;
mod demo_artifacts;
mod netns_fault;
mod process_rollback;
mod replication_basic;
mod replication_fault;
mod replication_rollback;
mod rotation;
mod vault_fault;
mod vault_http;
