//! Helpers shared by the modules of this test binary.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

/// The `bkv` binary under test.
pub(crate) fn bkv() -> Command {
    Command::new(env!("CARGO_BIN_EXE_bkv"))
}

/// The `bkv-node` binary under test (the measured node software, spec/audit.md §1.2).
pub(crate) fn node_binary() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_bkv-node"))
}

/// `bkv-node`.
pub(crate) fn bkv_node() -> Command {
    Command::new(node_binary())
}

/// Run `bkv ARGS` with `code` and a newline on its standard input (`--code-stdin`).
pub(crate) fn bkv_with_code(args: &[impl AsRef<std::ffi::OsStr>], code: &str) -> std::process::Output {
    use std::io::Write;
    let mut child = bkv()
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run bkv");
    child.stdin.take().unwrap().write_all(format!("{code}\n").as_bytes()).unwrap();
    child.wait_with_output().unwrap()
}

/// A child process that is killed and reaped when dropped, also when a test panics.
pub(crate) struct Running(pub(crate) Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// An empty directory under cargo's temporary directory for tests (`target/tmp`), unique to
/// this process, so that what a failed test leaves behind stays out of the system's /tmp.
pub(crate) fn tempdir(name: &str) -> PathBuf {
    let d =
        Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("bkv-cli-test-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

/// Start `cmd` (a `bkv fleet up --json`) and read the fleet's description from its standard
/// output: the readiness signal, one success envelope (`{"ok": true, "result": …}`).
pub(crate) fn fleet_up_with(mut cmd: Command) -> (Running, serde_json::Value) {
    let mut child = cmd.stdout(Stdio::piped()).spawn().expect("run bkv fleet up");
    let line =
        BufReader::new(child.stdout.take().unwrap()).lines().next().expect("a readiness line").unwrap();
    let doc: serde_json::Value = serde_json::from_str(&line).expect("fleet up --json");
    assert_eq!(doc["ok"], true, "{doc}");
    (Running(child), doc["result"].clone())
}

/// `bkv fleet up --nodes N --dir DIR --json`, its standard error discarded.
pub(crate) fn fleet_up(dir: &Path, nodes: usize) -> (Running, serde_json::Value) {
    let mut cmd = bkv();
    cmd.args(["fleet", "up", "--nodes", &nodes.to_string(), "--dir", dir.to_str().unwrap(), "--json"])
        .stderr(Stdio::null());
    fleet_up_with(cmd)
}

/// A phone of the fleet in `dir` (its `trust.cbor`) talking to the node at `url`, with a
/// fresh client state and the test KSF profile.
pub(crate) async fn phone(dir: &Path, url: &str) -> bkv_client::FleetClient {
    let trust: bkv_client::Trust =
        bkv_protocol::cbor::from_slice(&std::fs::read(dir.join("trust.cbor")).unwrap()).unwrap();
    let now = bkv_client::clock::system_now();
    bkv_client::FleetClient::connect(
        url,
        &trust,
        &bkv_client::Persisted::default(),
        bkv_protocol::vault::KsfParams::TEST,
        now,
    )
    .await
    .unwrap_or_else(|e| panic!("connect to {url}: {e}"))
    .0
}

/// Held by the tests that start fleets or benchmarks or measure how fast a node answers, so
/// that they run one at a time: on a 2-core machine the others would otherwise stretch the
/// hostile-client test's timings beyond its bounds. Each test has
/// its own runtime, so holding it across `.await` blocks no other test's progress.
pub(crate) struct Serial(#[allow(dead_code)] std::sync::MutexGuard<'static, ()>);

/// Wait for the other [`Serial`] tests.
pub(crate) fn serial() -> Serial {
    static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());
    Serial(SERIAL.lock().unwrap_or_else(|p| p.into_inner()))
}
