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
    // spec/audit.md §1.2: a source archive (`git archive`) fills SOURCE_REVISION in
    // (`export-subst` in .gitattributes); a checkout leaves the placeholder and git names
    // the revision. Both give the same string, so both builds give the same executable.
    println!("cargo:rerun-if-changed=SOURCE_REVISION");
    let archived = std::fs::read_to_string("SOURCE_REVISION")
        .ok()
        .map(|s| s.trim().to_owned())
        .filter(|s| s.len() == 40 && s.bytes().all(|b| b.is_ascii_hexdigit()));
    let rev = archived
        .or_else(|| run("git", &["rev-parse", "HEAD"]))
        .unwrap_or_else(|| "unknown (not built from a git checkout or a source archive)".into());
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let version = run(&rustc, &["--version"]).unwrap_or_else(|| "unknown rustc".into());
    println!("cargo:rustc-env=BKV_SOURCE_REV={rev}");
    println!("cargo:rustc-env=BKV_RUSTC_VERSION={version}");
}
