//! `bkv-fleet`: the `bkv` command line, the demo and [`fleet::LocalFleet`], the supervisor
//! of a local fleet. The only crate of the reference with clap and indicatif: the client
//! (`bkv-client`), the node (`bkv-node`) and the third party's services
//! (`bkv-third-party`) are libraries that know nothing of it.
#![forbid(unsafe_code)]

pub mod cli;
pub mod demo;
pub mod error;
pub mod fleet;
pub mod third_party;

pub use error::{Error, Result};
