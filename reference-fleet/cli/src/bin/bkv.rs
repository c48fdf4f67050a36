//! The `bkv` command line (see `bkv --help`).
#![forbid(unsafe_code)]

fn main() -> std::process::ExitCode {
    bkv_fleet::cli::main()
}
