//! The `bkv` command line, one module per area.

pub mod log;
