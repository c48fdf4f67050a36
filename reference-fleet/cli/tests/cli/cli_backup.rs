//! The `bkv` binary end to end: `fleet up` starts a replicated fleet, `backup create`
//! backs a file up through one node (code on standard input, client state kept in a file),
//! `backup restore` restores it through another node, and a wrong code is refused with its
//! spec code while the counter goes down.

use crate::support::{Running as Fleet, bkv_with_code, fleet_up as fleet_up_n};
use std::path::Path;

/// Start `bkv fleet up --json` with 3 nodes and read its description.
fn fleet_up(dir: &Path) -> (Fleet, serde_json::Value) {
    fleet_up_n(dir, 3)
}

#[test]
fn backup_create_and_restore_through_the_cli() {
    let _serial = crate::support::serial();
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("bkv-cli-backup-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let (_fleet, up) = fleet_up(&dir.join("fleet"));
    assert_eq!(up["nodes"].as_array().unwrap().len(), 3);
    let url = |i: usize| up["nodes"][i]["url"].as_str().unwrap().to_owned();
    let trust = up["trust"].as_str().unwrap().to_owned();

    let chat: Vec<u8> = (0..200_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let (input, backup, restored, state) =
        (dir.join("chat.db"), dir.join("chat.bkv"), dir.join("restored.db"), dir.join("state.json"));
    std::fs::write(&input, &chat).unwrap();
    let p = |x: &Path| x.to_str().unwrap().to_owned();
    let common = |node: usize| {
        vec!["--fleet".to_string(), url(node), "--trust".into(), trust.clone(), "--state".into(), p(&state)]
            .into_iter()
            .chain(["--code-stdin", "--insecure-test-ksf", "--json"].map(String::from))
            .collect::<Vec<_>>()
    };
    let args = |head: &[&str], node: usize, tail: &[String]| {
        head.iter().map(|s| s.to_string()).chain(common(node)).chain(tail.iter().cloned()).collect::<Vec<_>>()
    };
    let run =
        |a: Vec<String>, code: &str| bkv_with_code(&a.iter().map(String::as_str).collect::<Vec<_>>(), code);

    let out = run(args(&["backup", "create"], 0, &[p(&input), p(&backup)]), "482913");
    assert!(out.status.success(), "create: {}", String::from_utf8_lossy(&out.stderr));
    assert_ne!(std::fs::read(&backup).unwrap(), chat, "the backup is encrypted");
    let st: serde_json::Value = serde_json::from_slice(&std::fs::read(&state).unwrap()).unwrap();
    assert_eq!(st["epoch"], 1, "the verified bundle is remembered: {st}");
    assert!(st["log"]["size"].as_u64().unwrap() > 0, "and the largest checkpoint: {st}");

    let wrong = run(args(&["backup", "restore"], 2, &[p(&backup), p(&restored)]), "482914");
    assert_eq!(wrong.status.code(), Some(1), "{}", String::from_utf8_lossy(&wrong.stdout));
    let text =
        format!("{}{}", String::from_utf8_lossy(&wrong.stdout), String::from_utf8_lossy(&wrong.stderr));
    assert!(text.contains("vault.code.invalid"), "{text}");
    assert!(!restored.exists(), "nothing is written on failure");

    // The same code typed in groups and with full-width digits: the same normal form
    // (spec/vault.md §2.4).
    let out = run(args(&["backup", "restore"], 2, &[p(&backup), p(&restored)]), "４８２９-13");
    assert!(out.status.success(), "restore: {}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(std::fs::read(&restored).unwrap(), chat);
    let _ = std::fs::remove_dir_all(&dir);
}

/// spec/vault.md §2.4: the CLI refuses a weak or malformed recovery code with its code and
/// a clear message before it reads the trust file or sends anything.
#[test]
fn weak_and_malformed_codes_are_refused_before_anything_is_sent() {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("bkv-cli-code-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let input = dir.join("chat.db");
    std::fs::write(&input, b"chat").unwrap();
    let p = |x: &Path| x.to_str().unwrap().to_owned();
    // No fleet listens there and no trust file exists: a code check that came later would
    // fail with another code.
    let args = [
        "--json",
        "backup",
        "create",
        "--fleet",
        "http://127.0.0.1:9",
        "--trust",
        &p(&dir.join("absent.cbor")),
        "--state",
        &p(&dir.join("state.json")),
        "--code-stdin",
        "--insecure-test-ksf",
        &p(&input),
        &p(&dir.join("out.bkv")),
    ];
    for (code, want, words) in [
        ("123456", "vault.code.weak", "at least 6 digits"),
        ("4829", "vault.code.weak", "at least 6 digits"),
        ("482 91a", "vault.code.malformed", "not a digit"),
    ] {
        let out = bkv_with_code(&args, code);
        assert_eq!(out.status.code(), Some(1), "{code}");
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(v["error"]["code"], want, "{code}: {v}");
        assert!(v["error"]["message"].as_str().unwrap().contains(words), "{code}: {v}");
        assert!(!dir.join("out.bkv").exists() && !dir.join("state.json").exists());
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// The findings of issue 17 about `bkv backup` (F10, F12, F13, F16–F23, F29), each checked
/// through the binary against one running fleet by the function named after it.
#[test]
fn backup_findings_through_the_binary() {
    let _serial = crate::support::serial();
    let dir = crate::support::tempdir("backup-findings");
    std::fs::create_dir_all(&dir).unwrap();
    let (_fleet, up) = fleet_up(&dir.join("fleet"));
    let w = World::new(&dir, &up);
    f16_create_never_replaces_an_existing_backup(&w);
    f17_restore_never_replaces_an_existing_file(&w);
    f18_dash_is_standard_input_and_output(&w);
    f19_code_file_and_environment(&w);
    f20_the_prompt_comes_after_the_fleet_is_verified(&w);
    f25_f26_f27_urls_and_connection_errors(&w);
    f13_f23_f29_a_wrong_code_has_one_json_shape_one_code_and_plurals(&w);
    f21_f22_f12_the_last_guesses_are_announced_and_a_locked_record_is_explained(&w);
    let _ = std::fs::remove_dir_all(&dir);
}

/// F10: an empty code with `--json` is one failure envelope on stdout (`vault.code.weak`).
#[test]
fn f10_an_empty_code_with_json_prints_the_failure() {
    let dir = crate::support::tempdir("backup-f10");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("in"), b"x").unwrap();
    let p = |n: &str| dir.join(n).to_str().unwrap().to_owned();
    let args =
        ["--json", "backup", "create", "--fleet", "http://127.0.0.1:9", "--trust", &p("t"), "--code-stdin"];
    let out = bkv_with_code(&[&args[..], &[&p("in"), &p("out")]].concat(), "");
    assert_eq!(out.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("one JSON document on stdout");
    assert_eq!(
        (v["ok"].clone(), v["error"]["code"].clone()),
        (false.into(), "vault.code.weak".into()),
        "{v}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// The fleet of [`backup_findings_through_the_binary`] and a backup made on it.
struct World {
    dir: std::path::PathBuf,
    /// The node every command talks to (a node takes at most 10 attempts on a record at
    /// once, spec/node-api.md §6, so the guess-counting checks spread over the nodes).
    url: std::cell::RefCell<String>,
    urls: Vec<String>,
    trust: String,
    chat: Vec<u8>,
    backup: std::path::PathBuf,
}

impl World {
    fn new(dir: &Path, up: &serde_json::Value) -> World {
        let w = World {
            dir: dir.to_owned(),
            url: std::cell::RefCell::new(up["nodes"][1]["url"].as_str().unwrap().to_owned()),
            urls: up["nodes"]
                .as_array()
                .unwrap()
                .iter()
                .map(|n| n["url"].as_str().unwrap().to_owned())
                .collect(),
            trust: up["trust"].as_str().unwrap().to_owned(),
            chat: (0..5000u32).map(|i| (i % 251) as u8).collect(),
            backup: dir.join("chat.bkv"),
        };
        std::fs::write(dir.join("chat.db"), &w.chat).unwrap();
        let out = bkv_with_code(&w.args("create", &["chat.db", "chat.bkv"], &["--json"]), "482913");
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        w
    }

    /// Talk to node `i` from now on.
    fn use_node(&self, i: usize) {
        *self.url.borrow_mut() = self.urls[i].clone();
    }

    fn p(&self, name: &str) -> String {
        if name == "-" { name.into() } else { self.dir.join(name).to_str().unwrap().to_owned() }
    }

    /// `backup CMD` on this fleet with the code on stdin, `extra` flags and the files.
    fn args(&self, cmd: &str, files: &[&str], extra: &[&str]) -> Vec<String> {
        self.args_with(cmd, files, &[&["--code-stdin"], extra].concat())
    }

    /// `backup CMD` on this fleet with the test KSF, `extra` flags and the files.
    fn args_with(&self, cmd: &str, files: &[&str], extra: &[&str]) -> Vec<String> {
        let mut a: Vec<String> =
            ["backup", cmd, "--fleet", &self.url.borrow(), "--trust", &self.trust, "--insecure-test-ksf"]
                .map(String::from)
                .into();
        a.extend(extra.iter().map(|s| s.to_string()));
        a.extend(files.iter().map(|f| self.p(f)));
        a
    }

    fn json(out: &std::process::Output) -> serde_json::Value {
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!("{e}: {}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
        })
    }
}

fn f16_create_never_replaces_an_existing_backup(w: &World) {
    let before = std::fs::read(&w.backup).unwrap();
    let out = bkv_with_code(&w.args("create", &["chat.db", "chat.bkv"], &["--json"]), "482913");
    assert_eq!(out.status.code(), Some(3));
    let v = World::json(&out);
    assert_eq!(v["error"]["code"], "io.write", "{v}");
    assert!(v["error"]["hint"].as_str().unwrap().contains("--force"), "{v}");
    assert_eq!(std::fs::read(&w.backup).unwrap(), before, "F16: the backup is untouched");
}

fn f17_restore_never_replaces_an_existing_file(w: &World) {
    std::fs::write(w.dir.join("precious.txt"), b"keep me").unwrap();
    let out = bkv_with_code(&w.args("restore", &["chat.bkv", "precious.txt"], &["--json"]), "482913");
    assert_eq!(out.status.code(), Some(3), "{}", String::from_utf8_lossy(&out.stdout));
    assert_eq!(std::fs::read(w.dir.join("precious.txt")).unwrap(), b"keep me");
    let out =
        bkv_with_code(&w.args("restore", &["chat.bkv", "precious.txt"], &["--json", "--force"]), "482913");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(std::fs::read(w.dir.join("precious.txt")).unwrap(), w.chat, "F17: replaced only with --force");
}

fn f18_dash_is_standard_input_and_output(w: &World) {
    // restore to standard output: exactly the plaintext, the status on stderr.
    let out = bkv_with_code(&w.args("restore", &["chat.bkv", "-"], &[]), "482913");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(out.stdout, w.chat, "F18: - is standard output");
    assert!(!w.dir.join("-").exists(), "F18: no file named -");
    // create from standard input, the code in a file.
    std::fs::write(w.dir.join("code.txt"), "482 913\n").unwrap();
    let mut child = crate::support::bkv()
        .args(w.args_with("create", &["-", "piped.bkv"], &["--code-file", &w.p("code.txt"), "--json"]))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(&mut child.stdin.take().unwrap(), b"from a pipe").unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(World::json(&out)["ok"], true);
    let restored = bkv_with_code(&w.args("restore", &["piped.bkv", "-"], &[]), "482913");
    assert_eq!(restored.stdout, b"from a pipe");
    // One stream cannot carry two things.
    let out = bkv_with_code(&w.args("create", &["-", "x.bkv"], &["--json"]), "482913");
    assert_eq!(
        (out.status.code(), World::json(&out)["error"]["code"].clone()),
        (Some(2), "cli.usage".into())
    );
}

fn f19_code_file_and_environment(w: &World) {
    std::fs::write(w.dir.join("code-file.txt"), "4829-13\r\n").unwrap();
    let out = crate::support::bkv()
        .args(w.args_with("restore", &["chat.bkv", "r1.db"], &["--code-file", &w.p("code-file.txt")]))
        .output()
        .unwrap();
    assert!(out.status.success(), "F19 --code-file: {}", String::from_utf8_lossy(&out.stderr));
    let out = crate::support::bkv()
        .args(w.args_with("restore", &["chat.bkv", "r2.db"], &[]))
        .env("BKV_RECOVERY_CODE", "482913")
        .output()
        .unwrap();
    assert!(out.status.success(), "F19 BKV_RECOVERY_CODE: {}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(std::fs::read(w.dir.join("r2.db")).unwrap(), w.chat);
    // A code file that does not exist is named.
    let out = crate::support::bkv()
        .args(w.args_with("restore", &["chat.bkv", "r3.db"], &["--json", "--code-file", &w.p("absent.txt")]))
        .output()
        .unwrap();
    let v = World::json(&out);
    assert_eq!(
        (v["error"]["code"].as_str(), v["error"]["file"].as_str()),
        (Some("io.read"), Some(&*w.p("absent.txt")))
    );
}

/// Under a pseudo-terminal (python3's `pty`), the fleet is verified before the prompt.
fn f20_the_prompt_comes_after_the_fleet_is_verified(w: &World) {
    let script = r#"
import os, pty, sys, time
pid, fd = pty.fork()
if pid == 0:
    os.execv(sys.argv[1], sys.argv[1:])
seen, deadline = b"", time.time() + 60
while b"Recovery code:" not in seen and time.time() < deadline:
    seen += os.read(fd, 1024)
os.write(fd, b"482913\n")
rest = b""
while time.time() < deadline:
    try:
        chunk = os.read(fd, 1024)
    except OSError:
        break
    if not chunk:
        break
    rest += chunk
os.waitpid(pid, 0)
sys.stdout.write(seen.decode(errors="replace") + "\n--after--\n" + rest.decode(errors="replace"))
"#;
    let bkv = env!("CARGO_BIN_EXE_bkv");
    let out = std::process::Command::new("python3")
        .arg("-c")
        .arg(script)
        .arg(bkv)
        .args(w.args_with("restore", &["chat.bkv", "r4.db"], &[]))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let before_prompt = text.split("Recovery code:").next().unwrap();
    assert!(
        before_prompt.contains("verified fleet"),
        "F20: the fleet is verified before the prompt:\n{text}"
    );
    assert_eq!(std::fs::read(w.dir.join("r4.db")).unwrap(), w.chat, "{text}");
}

fn f13_f23_f29_a_wrong_code_has_one_json_shape_one_code_and_plurals(w: &World) {
    let out = bkv_with_code(&w.args("restore", &["chat.bkv", "wrong.db"], &["--json"]), "482914");
    assert_eq!(out.status.code(), Some(1));
    let v = World::json(&out);
    // F13: the failure envelope of every command, with the count as a detail.
    assert_eq!(v["ok"], false);
    assert_eq!(v["error"]["code"], "vault.code.invalid");
    let remaining = v["error"]["details"]["remaining"].as_u64().expect("details.remaining");
    assert!(v.get("remaining").is_none() && v["error"].get("error_code").is_none(), "{v}");
    // F23, F29: "N guesses", and the code printed once.
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains(&format!("{remaining} guesses left")), "{stderr}");
    assert_eq!(stderr.matches("vault.code.invalid").count(), 1, "F29: {stderr}");
    assert!(!w.dir.join("wrong.db").exists());
}

fn f21_f22_f12_the_last_guesses_are_announced_and_a_locked_record_is_explained(w: &World) {
    let wrong = || bkv_with_code(&w.args("restore", &["chat.bkv", "wrong.db"], &["--json"]), "482914");
    let remaining = |out: &std::process::Output| {
        let v = World::json(out);
        v["error"]["details"]["remaining"].as_u64().unwrap_or_else(|| panic!("no remaining count: {v}"))
    };
    w.use_node(2);
    let mut last = wrong();
    for _ in 0..10 {
        if remaining(&last) <= 1 {
            break;
        }
        last = wrong();
    }
    // F21, F23: one guess left is announced, in the singular.
    assert_eq!(remaining(&last), 1);
    let v = World::json(&last);
    assert!(v["error"]["hint"].as_str().unwrap().contains("one guess left"), "F21: {v}");
    assert!(String::from_utf8_lossy(&last.stderr).contains("1 guess left"), "F23");
    // F22: the last wrong guess says the backup is gone and what to do.
    w.use_node(0);
    let v = World::json(&wrong());
    assert_eq!(v["error"]["details"]["remaining"], 0);
    let hint = v["error"]["hint"].as_str().unwrap();
    assert!(hint.contains("destroyed") && hint.contains("create a new backup"), "F22: {v}");
    // F12: the locked record, with --json, is one envelope with its code and what it means.
    let out = bkv_with_code(&w.args("restore", &["chat.bkv", "late.db"], &["--json"]), "482913");
    assert_eq!(out.status.code(), Some(1));
    let v = World::json(&out);
    assert_eq!(v["error"]["code"], "vault.record.locked", "F12: {v}");
    assert!(v["error"]["hint"].as_str().unwrap().contains("never be restored"), "F12: {v}");
}

fn f25_f26_f27_urls_and_connection_errors(w: &World) {
    // F26: a bare host:port is a URL.
    let bare = w.urls[1].trim_start_matches("http://").to_owned();
    let mut args = w.args("restore", &["chat.bkv", "r5.db"], &["--json"]);
    let at = args.iter().position(|a| a == "--fleet").unwrap() + 1;
    args[at] = bare;
    let out = bkv_with_code(&args, "482913");
    assert!(out.status.success(), "F26: {}", String::from_utf8_lossy(&out.stdout));
    // F27: a dead port says so, with the URL.
    let last = args.len() - 1;
    args[last] = w.p("r6.db");
    args[at] = "127.0.0.1:9".into();
    let out = bkv_with_code(&args, "482913");
    let v = World::json(&out);
    assert_eq!(v["error"]["code"], "client.transport", "{v}");
    let message = v["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("http://127.0.0.1:9") && message.to_lowercase().contains("connection refused"),
        "F27: {v}"
    );
    // A URL that is no URL is a usage error naming the flag, before anything is read.
    args[at] = "http://127.0.0.1:9/v1".into();
    let v = World::json(&bkv_with_code(&args, "482913"));
    assert_eq!(v["error"]["code"], "cli.usage");
    assert!(v["error"]["message"].as_str().unwrap().contains("--fleet http://127.0.0.1:9/v1"), "{v}");
    // F25: a node given with its scheme is not given it twice.
    let out = crate::support::bkv()
        .args(["--json", "fleet", "status", "--node", "http://127.0.0.1:9"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("127.0.0.1:9") && !text.contains("http://http"), "F25: {text}");
}

/// F24: `fleet status` prints indexes as numbers, never `Some(17)`; a fleet without a leader
/// is an operational failure (exit 3, not the verification status 1) whose message names
/// each node and says "connection refused"; without --dir or --node it says what to pass.
#[test]
fn f24_fleet_status_is_readable_and_its_failure_is_operational() {
    let _serial = crate::support::serial();
    let dir = crate::support::tempdir("status");
    std::fs::create_dir_all(&dir).unwrap();
    let (_fleet, _) = fleet_up(&dir.join("fleet"));
    let mut text = String::new();
    for _ in 0..50 {
        let out =
            crate::support::bkv().args(["fleet", "status", "--dir"]).arg(dir.join("fleet")).output().unwrap();
        text = String::from_utf8_lossy(&out.stdout).into_owned();
        if out.status.success() && text.contains("leader: node") {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    assert!(text.contains("leader log index: ") && !text.contains("Some("), "F24: {text}");
    let out = crate::support::bkv()
        .args(["--json", "fleet", "status", "--dir"])
        .arg(dir.join("fleet"))
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["ok"], true, "{v}");
    assert!(v["result"]["leader"].is_u64(), "{v}");
    // No fleet there.
    let out =
        crate::support::bkv().args(["--json", "fleet", "status", "--node", "127.0.0.1:9"]).output().unwrap();
    assert_eq!(out.status.code(), Some(3));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["error"]["code"], "fleet.unavailable");
    assert!(
        v["error"]["message"].as_str().unwrap().contains("connection refused at http://127.0.0.1:9"),
        "{v}"
    );
    let out = crate::support::bkv().args(["--json", "fleet", "status"]).current_dir(&dir).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    f30_rotate_refuses_a_running_fleet(&dir);
    let _ = std::fs::remove_dir_all(&dir);
}

/// F30: `fleet rotate` on a running fleet says to stop it first, before it touches anything.
fn f30_rotate_refuses_a_running_fleet(dir: &Path) {
    let out = crate::support::bkv()
        .args(["--json", "fleet", "rotate", "--dir"])
        .arg(dir.join("fleet"))
        .arg("--out")
        .arg(dir.join("next"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", String::from_utf8_lossy(&out.stdout));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let message = v["error"]["message"].as_str().unwrap();
    assert!(message.contains("is running") && message.contains("bkv fleet stop --dir"), "F30: {v}");
    assert!(!dir.join("next").exists());
}

/// F32: `fleet ceremony` checks its arguments before it generates a key or creates its
/// directory, and never builds into a directory that holds something.
#[test]
fn f32_ceremony_checks_arguments_before_it_creates_anything() {
    let dir = crate::support::tempdir("ceremony-args");
    for bad in [["--guess-limit", "0"], ["--guess-limit", "101"], ["--nodes", "0"]] {
        let out = crate::support::bkv()
            .args(["--json", "fleet", "ceremony"])
            .args(bad)
            .arg("--out")
            .arg(&dir)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{bad:?}");
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert!(v["error"]["message"].as_str().unwrap().starts_with(bad[0]), "{bad:?}: {v}");
        assert!(!dir.exists(), "F32: {bad:?} left {}", dir.display());
    }
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("notes.txt"), b"mine").unwrap();
    let out = crate::support::bkv()
        .args(["--json", "fleet", "ceremony", "--nodes", "3", "--out"])
        .arg(&dir)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 1, "nothing added next to notes.txt");
    let _ = std::fs::remove_dir_all(&dir);
}

/// F31 (item 4): the successor does not depend on the retired folder: after a rotation the
/// audit log's and the third party's directories are the successor's, the retired folder can
/// be removed, and the successor starts, serves and audits from its own directory alone.
#[test]
fn f31_the_successor_runs_without_the_retired_folder() {
    let _serial = crate::support::serial();
    let dir = crate::support::tempdir("retired-removed");
    let (old, next) = (dir.join("epoch1"), dir.join("epoch2"));
    let run = |args: &[&str]| crate::support::bkv().args(args).output().unwrap();
    let p = |d: &Path| d.to_str().unwrap().to_owned();
    let out = run(&["fleet", "ceremony", "--nodes", "3", "--out", &p(&old)]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let out = run(&["--json", "fleet", "rotate", "--dir", &p(&old), "--out", &p(&next)]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let moved: Vec<&str> =
        v["result"]["moved"].as_array().unwrap().iter().map(|m| m.as_str().unwrap()).collect();
    assert!(moved.iter().any(|m| m.ends_with("epoch2/audit-log")), "{v}");
    assert!(moved.iter().any(|m| m.ends_with("epoch2/third-party")), "{v}");
    std::fs::remove_dir_all(&old).unwrap();
    let mut cmd = crate::support::bkv();
    cmd.args(["fleet", "up", "--processes", "--json", "--nodes", "3", "--dir", &p(&next)])
        .stderr(std::process::Stdio::null());
    let (fleet, report) = crate::support::fleet_up_with(cmd);
    assert_eq!(report["epoch"], 2, "{report}");
    let out = run(&["--json", "fleet", "status", "--dir", &p(&next)]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let out = run(&["fleet", "stop", "--dir", &p(&next)]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    drop(fleet);
    let _ = std::fs::remove_dir_all(&dir);
}

/// F31: `fleet up` on a retired directory does not start a fleet that would answer phones
/// with `rotation.fleet.retired`: it names the successor's directory.
#[test]
fn f31_a_retired_directory_points_to_its_successor() {
    let dir = crate::support::tempdir("retired");
    let (old, next) = (dir.join("epoch1"), dir.join("epoch2"));
    let run = |args: &[&str]| crate::support::bkv().args(args).output().unwrap();
    let p = |d: &Path| d.to_str().unwrap().to_owned();
    let out = run(&["--json", "fleet", "ceremony", "--nodes", "3", "--out", &p(&old)]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));
    let out = run(&["--json", "fleet", "rotate", "--dir", &p(&old), "--out", &p(&next)]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["ok"], true, "{v}");
    let out = run(&["--json", "fleet", "up", "--nodes", "3", "--dir", &p(&old)]);
    assert_eq!(out.status.code(), Some(2), "{}", String::from_utf8_lossy(&out.stdout));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let message = v["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("is retired") && message.contains(&format!("bkv fleet up --dir {}", p(&next))),
        "F31: {v}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
