//! `bkv-node`: one node of a bkv fleet, the node software the deployment evidence measures
//! (spec/audit.md §1.2). See `bkv-node --help`.
#![forbid(unsafe_code)]

fn main() -> std::process::ExitCode {
    bkv_fleet::cli::node_main()
}
