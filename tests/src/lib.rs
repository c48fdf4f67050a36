//! The shared parts of bkv's cross-crate, multi-process and fault tests: the history
//! checker every fault run uses ([`history`]), the network-namespace lab of the
//! multi-process runs ([`netns`]), the background load of the liveness tests
//! ([`load`]), and one client request mapped to its answer ([`ops`]).
#![forbid(unsafe_code)]

pub mod history;
pub mod load;
pub mod netns;
pub mod ops;
