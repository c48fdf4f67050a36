//! Records what spec/evidence.md §2 `Software.recipe` names: the source revision this
//! build comes from and the compiler that built it.

use std::process::Command;

fn run(cmd: &str, args: &[&str]) -> Option<String> {
    let out = Command::new(cmd).args(args).output().ok()?;
    out.status.success().then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    // Rebuild when HEAD moves: the HEAD file of this checkout and the branch refs.
    if let Some(dir) = run("git", &["rev-parse", "--git-dir"]) {
        println!("cargo:rerun-if-changed={dir}/HEAD");
    }
    if let Some(dir) = run("git", &["rev-parse", "--git-common-dir"]) {
        println!("cargo:rerun-if-changed={dir}/refs/heads");
        println!("cargo:rerun-if-changed={dir}/packed-refs");
    }
    let rev = run("git", &["rev-parse", "HEAD"])
        .unwrap_or_else(|| "unknown (not built from a git checkout)".into());
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let version = run(&rustc, &["--version"]).unwrap_or_else(|| "unknown rustc".into());
    println!("cargo:rustc-env=BKV_SOURCE_REV={rev}");
    println!("cargo:rustc-env=BKV_RUSTC_VERSION={version}");
}
