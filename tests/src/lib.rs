//! The shared parts of bkv's cross-crate, multi-process and fault tests: the history
//! checker every fault run uses ([`history`]), and the network-namespace lab of the
//! multi-process runs ([`netns`]).
#![forbid(unsafe_code)]

pub mod history;
pub mod netns;
