//! spec/audit.md §1.2: two clean builds of one revision, in different directories, give the
//! same `bkv-node` measurement: one from a source archive (`git archive`, which fills
//! SOURCE_REVISION in), one from a git checkout. Ignored by default (two release builds take
//! many minutes); run it with
//! `cargo test -p bkv-fleet --test cli -- --ignored reproducible --nocapture`.

use std::path::{Path, PathBuf};
use std::process::Command;

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(out.status.success(), "{cmd:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

/// Build `bkv-node` in `src` with its own target directory; its SHA-256 and its version line.
fn build(src: &Path) -> (String, String) {
    run(Command::new("cargo")
        .current_dir(src)
        .env("CARGO_TARGET_DIR", src.join("target"))
        .env_remove("RUSTFLAGS")
        .args(["build", "--release", "--locked", "-p", "bkv-fleet", "--bin", "bkv-node"]));
    let bin = src.join("target/release/bkv-node");
    let digest = hex::encode(bkv_protocol::crypto::sha256(&std::fs::read(&bin).unwrap()));
    (digest, run(Command::new(&bin).arg("--version")))
}

#[test]
#[ignore = "two clean release builds: many minutes"]
fn reproducible_node_binary_from_archive_and_checkout() {
    let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let rev = run(Command::new("git").current_dir(&repo).args(["rev-parse", "HEAD"])).trim().to_owned();
    let root = crate::support::tempdir("reproducible");
    let (archive, checkout) = (root.join("from-archive"), root.join("from-checkout"));
    std::fs::create_dir_all(&archive).unwrap();
    let tar = root.join("src.tar");
    run(Command::new("git").current_dir(&repo).args(["archive", "--format=tar", "-o"]).arg(&tar).arg(&rev));
    run(Command::new("tar").arg("-xf").arg(&tar).arg("-C").arg(&archive));
    let filled = std::fs::read_to_string(archive.join("reference-fleet/cli/SOURCE_REVISION")).unwrap();
    assert_eq!(filled.trim(), rev, "the archive fills SOURCE_REVISION in (export-subst)");
    run(Command::new("git").args(["clone", "-q", "--no-local"]).arg(&repo).arg(&checkout));
    run(Command::new("git").current_dir(&checkout).args(["checkout", "-q", &rev]));

    let (a, version_a) = build(&archive);
    let (b, version_b) = build(&checkout);
    println!("from the archive: {a}\nfrom a checkout: {b}\n{version_a}");
    assert!(version_a.contains(&rev), "{version_a}");
    assert!(version_a.contains("rustc 1.95.0"), "the pinned toolchain (spec/audit.md §1.2): {version_a}");
    assert_eq!(version_a, version_b);
    assert_eq!(a, b, "two clean builds of {rev} differ");
    let _ = std::fs::remove_dir_all(&root);
}
