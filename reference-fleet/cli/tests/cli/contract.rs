//! The output and exit-code contract through the binary (README "Output and exit codes"):
//! `--json` output validates against `bkv schema output` for a success and for failures,
//! exit statuses separate verification, usage and operational failures, a wrong KEK keeps
//! its `hsm.*` code, and `--log-format json` prints the node's events with their fields.

use crate::support::{bkv, fleet_up, fleet_up_with, tempdir};
use serde_json::{Value, json};
use std::io::Read;
use std::process::{Output, Stdio};

fn run(args: &[&str]) -> Output {
    bkv().args(args).output().expect("run bkv")
}

fn validator() -> jsonschema::Validator {
    let out = run(&["schema", "output"]);
    assert!(out.status.success());
    let schema: Value = serde_json::from_slice(&out.stdout).expect("the schema is JSON");
    jsonschema::validator_for(&schema).expect("a valid JSON Schema")
}

/// Standard output as the one JSON document the contract promises, validated.
fn envelope(v: &jsonschema::Validator, out: &Output) -> Value {
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!("stdout is not one JSON document ({e}): {}", String::from_utf8_lossy(&out.stdout))
    });
    let errors: Vec<String> = v.iter_errors(&doc).map(|e| e.to_string()).collect();
    assert!(errors.is_empty(), "{doc} does not match the output schema: {errors:?}");
    doc
}

#[test]
fn json_success_and_failures_match_the_output_schema() {
    let _serial = crate::support::serial();
    let v = validator();
    // The schema itself refuses what the contract forbids, so it can fail.
    assert!(!v.is_valid(&json!({"ok": true, "error": {"code": "x", "message": "y"}})));
    assert!(!v.is_valid(&json!({"ok": false, "result": 1})));
    assert!(!v.is_valid(&json!({"ok": false, "error": {"code": "x"}})));

    let ok = run(&["version", "--json"]);
    assert_eq!(ok.status.code(), Some(0));
    let doc = envelope(&v, &ok);
    assert_eq!(doc["ok"], true);
    assert_eq!(doc["result"]["version"], env!("CARGO_PKG_VERSION"));
    assert!(!doc["result"]["source_rev"].as_str().unwrap().is_empty());

    // An operational failure: the file is named.
    let missing = tempdir("contract").join("no-such-bundle.cbor");
    let io = run(&["bundle", "inspect", missing.to_str().unwrap(), "--json"]);
    assert_eq!(io.status.code(), Some(3), "{}", String::from_utf8_lossy(&io.stderr));
    let doc = envelope(&v, &io);
    assert_eq!(doc["ok"], false);
    assert_eq!(doc["error"]["code"], "io.read");
    assert_eq!(doc["error"]["file"], missing.to_str().unwrap());

    // A usage error, found by the argument parser before any command runs.
    let usage = run(&["bundle", "inspect", "--json"]);
    assert_eq!(usage.status.code(), Some(2));
    let doc = envelope(&v, &usage);
    assert_eq!(doc["error"]["code"], "cli.usage");
}

#[test]
fn a_wrong_kek_is_hsm_unseal_failed() {
    let _serial = crate::support::serial();
    let dir = tempdir("wrong-kek");
    drop(fleet_up(&dir, 1));
    let out = bkv()
        .env("BKV_HSM_KEK", "11".repeat(32))
        .args(["fleet", "up", "--nodes", "1", "--dir", dir.to_str().unwrap(), "--json"])
        .output()
        .expect("run bkv");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(stderr.contains("error [hsm.unseal.failed]"), "{stderr}");
    let doc: Value = serde_json::from_slice(&out.stdout).expect("the failure envelope");
    assert_eq!(doc["error"]["code"], "hsm.unseal.failed");
    assert!(doc["error"]["hint"].as_str().is_some_and(|h| h.contains("BKV_HSM_KEK")), "{doc}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// `RUST_LOG=info bkv fleet up --log-format json` prints one JSON object per event on
/// stderr, with the event's fields: a leader elected (with its term) and the vote gates.
#[test]
fn json_logs_carry_the_events_and_their_fields() {
    let _serial = crate::support::serial();
    let dir = tempdir("json-logs");
    let mut cmd = bkv();
    cmd.env("RUST_LOG", "bkv_node=info")
        .args([
            "fleet",
            "up",
            "--nodes",
            "3",
            "--dir",
            dir.to_str().unwrap(),
            "--json",
            "--log-format",
            "json",
        ])
        .stderr(Stdio::piped());
    let (mut fleet, _) = fleet_up_with(cmd);
    let mut stderr = fleet.0.stderr.take().expect("piped stderr");
    drop(fleet); // killed and reaped: its stderr ends
    let mut text = String::new();
    stderr.read_to_string(&mut text).unwrap();
    let events: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not a JSON event ({e}): {l}")))
        .collect();
    let find = |message: &str| events.iter().find(|e| e["fields"]["message"] == message).cloned();
    let leader = find("leader elected").unwrap_or_else(|| panic!("no leader event in {text}"));
    assert!(leader["fields"]["term"].as_u64().is_some_and(|t| t >= 1), "{leader}");
    assert!(leader["fields"]["leader"].is_u64(), "{leader}");
    let gate = find("vote gate open").unwrap_or_else(|| panic!("no vote-gate event in {text}"));
    assert!(gate["fields"]["node"].is_u64() && gate["fields"]["term"].is_u64(), "{gate}");
    assert_eq!(gate["level"], "INFO");
    let _ = std::fs::remove_dir_all(&dir);
}

/// F34: `--version` of both programs names the source revision and the compiler the
/// measurement recipe embeds (spec/audit.md §1.2).
#[test]
fn f34_version_names_the_source_revision_and_the_compiler() {
    for mut cmd in [bkv(), crate::support::bkv_node()] {
        let out = cmd.arg("--version").output().unwrap();
        assert!(out.status.success());
        let text = String::from_utf8(out.stdout).unwrap();
        let rev = text
            .split("(source ")
            .nth(1)
            .and_then(|r| r.split(',').next())
            .unwrap_or_else(|| panic!("{text}"));
        assert!(
            rev.len() == 40 && rev.bytes().all(|b| b.is_ascii_hexdigit()) || rev.starts_with("unknown"),
            "{text}"
        );
        assert!(text.contains("rustc 1."), "{text}");
    }
}

/// Every visible leaf subcommand of `bkv` and `bkv-node`, from their clap definitions: a
/// subcommand added without a case below fails [`f9_f13_every_subcommand_by_the_contract`].
fn leaves() -> Vec<String> {
    use clap::CommandFactory;
    fn walk(prefix: &str, c: &clap::Command, out: &mut Vec<String>) {
        let subs: Vec<&clap::Command> =
            c.get_subcommands().filter(|s| s.get_name() != "help" && !s.is_hide_set()).collect();
        if subs.is_empty() {
            out.push(prefix.to_owned());
        }
        for s in subs {
            walk(&format!("{prefix} {}", s.get_name()), s, out);
        }
    }
    let mut out = Vec::new();
    walk("bkv", &bkv_fleet::cli::Cli::command(), &mut out);
    walk("bkv-node", &bkv_fleet::cli::NodeCli::command(), &mut out);
    out
}

/// Runs commands with `--json` and records which subcommands succeeded and failed by the
/// contract: stdout one envelope valid against `bkv schema output`, `ok` and the exit
/// status agreeing.
struct Contract {
    schema: jsonschema::Validator,
    seen: std::collections::BTreeMap<String, (bool, bool)>,
}

impl Contract {
    fn command(path: &str, args: &[&str]) -> std::process::Command {
        let mut words = path.split(' ');
        let program = words.next().unwrap();
        let mut cmd = if program == "bkv-node" { crate::support::bkv_node() } else { bkv() };
        cmd.arg("--json").args(words).args(args);
        cmd
    }

    /// `path ARGS` succeeds: exit 0 and a success envelope; its result.
    fn ok(&mut self, path: &str, args: &[&str]) -> Value {
        let out = Self::command(path, args).output().unwrap();
        assert_eq!(out.status.code(), Some(0), "{path} {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        let doc = envelope(&self.schema, &out);
        assert_eq!(doc["ok"], true, "{path}: {doc}");
        self.seen.entry(path.to_owned()).or_default().0 = true;
        doc["result"].clone()
    }

    /// `path ARGS` fails with `status` and `code`: a failure envelope.
    fn fails(&mut self, path: &str, args: &[&str], status: i32, code: &str) -> Value {
        let out = Self::command(path, args).output().unwrap();
        assert_eq!(
            out.status.code(),
            Some(status),
            "{path} {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let doc = envelope(&self.schema, &out);
        assert_eq!(doc["ok"], false, "{path}: {doc}");
        assert_eq!(doc["error"]["code"], code, "{path}: {doc}");
        self.seen.entry(path.to_owned()).or_default().1 = true;
        doc["error"].clone()
    }

    /// A server: its first line is a success envelope (its readiness); it keeps running.
    fn serves(&mut self, path: &str, args: &[&str]) -> (crate::support::Running, Value) {
        use std::io::BufRead;
        let mut child =
            Self::command(path, args).stdout(Stdio::piped()).stderr(Stdio::null()).spawn().unwrap();
        let line = std::io::BufReader::new(child.stdout.take().unwrap()).lines().next();
        let running = crate::support::Running(child);
        let line = line.unwrap_or_else(|| panic!("{path} {args:?} printed nothing")).unwrap();
        let doc: Value =
            serde_json::from_str(&line).unwrap_or_else(|e| panic!("{path}: not JSON ({e}): {line}"));
        let errors: Vec<String> = self.schema.iter_errors(&doc).map(|e| e.to_string()).collect();
        assert!(errors.is_empty(), "{path}: {doc} does not match the output schema: {errors:?}");
        assert_eq!(doc["ok"], true, "{path}: {doc}");
        self.seen.entry(path.to_owned()).or_default().0 = true;
        (running, doc["result"].clone())
    }
}

/// Issue 17 item 2 (F9–F13: one JSON shape for every outcome): every subcommand once in a
/// success and once in a failure, stdout
/// validated against `bkv schema output`, the exit status by the contract (0; 1 for a
/// verification failure, 2 for usage, 3 for an operational failure).
#[test]
fn f9_f13_every_subcommand_by_the_contract() {
    let _serial = crate::support::serial();
    let mut c = Contract { schema: validator(), seen: Default::default() };
    let d = tempdir("every-subcommand");
    std::fs::create_dir_all(&d).unwrap();
    let p = |x: &str| d.join(x).to_str().unwrap().to_owned();
    let node_bin = crate::support::node_binary();
    let node_bin = node_bin.to_str().unwrap();

    c.ok("bkv version", &[]);
    c.fails("bkv version", &["--bogus"], 2, "cli.usage");
    c.ok("bkv schema output", &[]);
    c.fails("bkv schema output", &["--bogus"], 2, "cli.usage");

    // A key ceremony (one node), its configs, the node's own program.
    let cer = p("ceremony");
    c.ok("bkv fleet ceremony", &["--nodes", "1", "--out", &cer]);
    c.fails(
        "bkv fleet ceremony",
        &["--nodes", "1", "--guess-limit", "0", "--out", &p("no-ceremony")],
        2,
        "cli.usage",
    );
    c.ok("bkv fleet configs", &["--dir", &cer]);
    c.fails("bkv fleet configs", &["--dir", &p("nothing")], 3, "io.read");
    let config = format!("{cer}/node-1/node.toml");
    c.ok("bkv node check", &["--config", &config]);
    c.fails("bkv node check", &["--config", &p("none.toml")], 3, "node.config.invalid");
    c.ok("bkv-node check", &["--config", &config]);
    c.fails("bkv-node check", &["--config", &p("none.toml")], 3, "node.config.invalid");
    c.fails("bkv node run", &["--config", &config], 2, "cli.usage");
    let (node, _) = c.serves("bkv-node run", &["--config", &config]);
    drop(node);
    c.fails("bkv-node run", &["--config", &p("none.toml")], 3, "node.config.invalid");

    // Published files: trust, vendor roots, evidence.
    let published = format!("{cer}/published");
    c.ok("bkv trust build", &[&format!("{published}/trust.toml"), "--out", &p("trust.cbor")]);
    c.fails(
        "bkv trust build",
        &[&format!("{published}/evidence.cbor"), "--out", &p("t2.cbor")],
        2,
        "cli.usage",
    );
    c.ok("bkv trust inspect", &[&p("trust.cbor")]);
    c.fails("bkv trust inspect", &[&format!("{published}/evidence.cbor")], 1, "cbor.tag.unknown");
    c.ok("bkv trust vendor-roots", &[&format!("{published}/vendor-root.pem"), "--out", &p("roots.cbor")]);
    c.fails(
        "bkv trust vendor-roots",
        &[&format!("{published}/operator.pem"), "--out", "-"],
        2,
        "published.invalid",
    );
    c.ok("bkv evidence inspect", &[&format!("{published}/evidence.cbor")]);
    c.fails("bkv evidence inspect", &[&p("trust.cbor")], 1, "evidence.malformed");
    c.ok("bkv bundle inspect", &[&format!("{cer}/released-bundle.cbor")]);
    c.fails("bkv bundle inspect", &[&format!("{cer}/evidence.cbor")], 1, "bundle.header.content_type");
    c.ok(
        "bkv bundle verify",
        &[&format!("{cer}/released-bundle.cbor"), "--trust", &format!("{cer}/trust.cbor")],
    );
    c.fails(
        "bkv bundle verify",
        &[&format!("{cer}/released-bundle.cbor"), "--trust", &format!("{cer}/trust.cbor"), "--now", "1"],
        1,
        "bundle.signer.expired",
    );

    // Keys, TLS.
    c.ok("bkv keys file", &["--alg", "ed25519", "--out", &p("tp.key")]);
    c.fails("bkv keys file", &["--alg", "ed25519", "--out", &p("tp.key")], 3, "io.write");
    c.ok("bkv tls certs", &["--cert", "s=127.0.0.1", "--out", &p("tls")]);
    c.fails("bkv tls certs", &["--cert", "s=127.0.0.1", "--out", &p("tls")], 2, "cli.usage");
    let module = "/usr/lib/softhsm/libsofthsm2.so";
    c.fails(
        "bkv keys init",
        &["--pkcs11-module", &p("no-module.so"), "--token-label", "t", "--key-label", "k"],
        3,
        "hsm.pkcs11",
    );
    c.fails(
        "bkv keys inspect",
        &["--pkcs11-module", &p("no-module.so"), "--token-label", "t", "--key-label", "k"],
        3,
        "hsm.pkcs11",
    );
    if std::path::Path::new(module).exists() {
        let conf = d.join("softhsm2.conf");
        std::fs::create_dir_all(d.join("tokens")).unwrap();
        std::fs::write(
            &conf,
            format!("directories.tokendir = {}\nobjectstore.backend = file\n", p("tokens")),
        )
        .unwrap();
        std::fs::write(d.join("pin"), "5678\n").unwrap();
        let out = std::process::Command::new("softhsm2-util")
            .env("SOFTHSM2_CONF", &conf)
            .args(["--init-token", "--free", "--label", "t", "--so-pin", "1234", "--pin", "5678"])
            .output()
            .expect("softhsm2-util beside the module");
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let token =
            ["--pkcs11-module", module, "--token-label", "t", "--key-label", "k", "--pin-file", &p("pin")];
        // The child gets SOFTHSM2_CONF; this process's environment does not change.
        let with_conf = |path: &str, c: &mut Contract| {
            let out = Contract::command(path, &token).env("SOFTHSM2_CONF", &conf).output().unwrap();
            assert_eq!(out.status.code(), Some(0), "{path}: {}", String::from_utf8_lossy(&out.stderr));
            assert_eq!(envelope(&c.schema, &out)["ok"], true);
            c.seen.entry(path.to_owned()).or_default().0 = true;
        };
        with_conf("bkv keys init", &mut c);
        with_conf("bkv keys inspect", &mut c);
    } else {
        eprintln!("SKIPPED: bkv keys init|inspect successes need SoftHSM2 ({module}); .ci/run installs it");
    }

    // The audit log and a witness, each its own server.
    let log_key = p("log.key");
    let log = c.ok("bkv log keygen", &["--name", "log.contract.example", "--kind", "log", "--out", &log_key]);
    c.fails(
        "bkv log keygen",
        &["--name", "log.contract.example", "--kind", "log", "--out", &log_key],
        3,
        "io.write",
    );
    let log_vkey = log["vkey"].as_str().unwrap().to_owned();
    let w =
        c.ok("bkv log keygen", &["--name", "w.contract.example", "--kind", "witness", "--out", &p("w.key")]);
    assert!(w["vkey"].as_str().unwrap().starts_with("w.contract.example+"));
    let (_witness, _) = c.serves(
        "bkv log witness",
        &[
            "--addr",
            "127.0.0.1:0",
            "--name",
            "w.contract.example",
            "--db",
            &p("w.redb"),
            "--key-file",
            &p("w.key"),
            "--log-vkey",
            &log_vkey,
        ],
    );
    c.fails(
        "bkv log witness",
        &["--name", "w", "--db", &p("w2.redb"), "--key-file", &p("w.key"), "--log-vkey", "not a vkey"],
        1,
        "log.vkey.malformed",
    );
    let log_args = [
        "--addr",
        "127.0.0.1:0",
        "--admin-addr",
        "127.0.0.1:0",
        "--origin",
        "log.contract.example",
        "--db",
        &p("log.redb"),
        "--key-file",
        &log_key,
        "--admin-token-file",
        &p("admin.token"),
    ];
    let (_log, served) = c.serves("bkv log serve", &log_args);
    assert!(served["url"].as_str().unwrap().starts_with("http://127.0.0.1:"), "{served}");
    let mut bad_log = log_args;
    bad_log[9] = "/nonexistent/log.key";
    c.fails("bkv log serve", &bad_log, 3, "io.read");

    // A running fleet (each node its own process): status, backups, supervisor actions, audit.
    let up = p("up");
    let (fleet, report) = c.serves("bkv fleet up", &["--processes", "--nodes", "1", "--dir", &up]);
    c.fails("bkv fleet up", &["--nodes", "0", "--dir", &p("up0")], 2, "cli.usage");
    let node_url = report["nodes"][0]["url"].as_str().unwrap().to_owned();
    let fleet_log = report["log"].as_str().unwrap().to_owned();
    c.ok("bkv log monitor", &["--url", &fleet_log]);
    c.fails("bkv log monitor", &["--url", "http://127.0.0.1:9"], 3, "io.http");
    c.ok("bkv fleet status", &["--dir", &up]);
    c.fails("bkv fleet status", &["--dir", &cer], 3, "fleet.unavailable");
    std::fs::write(d.join("chat.db"), b"history").unwrap();
    std::fs::write(d.join("code"), "482916\n").unwrap();
    std::fs::write(d.join("wrong"), "135792\n").unwrap();
    let trust = format!("{up}/trust.cbor");
    let common = ["--fleet", &node_url, "--trust", &trust, "--insecure-test-ksf"];
    fn with<'a>(common: &[&'a str], extra: &[&'a str]) -> Vec<&'a str> {
        [common, extra].concat()
    }
    c.ok("bkv backup create", &with(&common, &["--code-file", &p("code"), &p("chat.db"), &p("chat.bkv")]));
    c.fails(
        "bkv backup create",
        &with(&common, &["--code-file", &p("code"), &p("chat.db"), &p("chat.bkv")]),
        3,
        "io.write",
    );
    c.fails(
        "bkv backup restore",
        &with(&common, &["--code-file", &p("wrong"), &p("chat.bkv"), &p("out.db")]),
        1,
        "vault.code.invalid",
    );
    c.ok("bkv backup restore", &with(&common, &["--code-file", &p("code"), &p("chat.bkv"), &p("out.db")]));
    assert_eq!(std::fs::read(d.join("out.db")).unwrap(), b"history");
    let audit = |measure: &str| {
        vec![
            "--evidence".to_owned(),
            format!("{up}/evidence.cbor"),
            "--bundle".into(),
            format!("{up}/released-bundle.cbor"),
            "--trust".into(),
            trust.clone(),
            "--vendor-roots".into(),
            format!("{up}/vendor-roots.cbor"),
            "--log".into(),
            fleet_log.clone(),
            "--measure".into(),
            measure.into(),
            "--out".into(),
            p("report"),
        ]
    };
    let args = audit(node_bin);
    c.ok("bkv audit", &args.iter().map(String::as_str).collect::<Vec<_>>());
    let args = audit(env!("CARGO_BIN_EXE_bkv"));
    c.fails(
        "bkv audit",
        &args.iter().map(String::as_str).collect::<Vec<_>>(),
        1,
        "audit.measurement.mismatch",
    );

    // The third party's signer and the operator's countersignature, over the fleet's log.
    let ports: Value =
        serde_json::from_slice(&std::fs::read(format!("{up}/audit-log/ports.json")).unwrap()).unwrap();
    let admin = format!("http://{}", ports["admin"].as_str().unwrap());
    let software = hex::encode(bkv_protocol::crypto::sha256(&std::fs::read(node_bin).unwrap()));
    let firmware = hex::encode(bkv_fleet::fleet::SOFT_HSM_FIRMWARE);
    let signer_args = |db: &str, trust: &str| {
        vec![
            "--addr".to_owned(),
            "127.0.0.1:0".into(),
            "--db".into(),
            p(db),
            "--key-file".into(),
            format!("{up}/third-party/third-party.seed"),
            "--trust".into(),
            trust.into(),
            "--vendor-roots".into(),
            format!("{up}/vendor-roots.cbor"),
            "--software".into(),
            software.clone(),
            "--firmware".into(),
            firmware.clone(),
            "--log".into(),
            fleet_log.clone(),
            "--log-admin".into(),
            admin.clone(),
            "--log-token-file".into(),
            format!("{up}/audit-log/admin.token"),
        ]
    };
    let args = signer_args("signer.redb", &trust);
    let (_signer, s) = c.serves("bkv signer serve", &args.iter().map(String::as_str).collect::<Vec<_>>());
    let args = signer_args("signer2.redb", &p("nothing.cbor"));
    c.fails("bkv signer serve", &args.iter().map(String::as_str).collect::<Vec<_>>(), 3, "io.read");
    let bundle = std::fs::read(format!("{up}/bundle.cbor")).unwrap();
    let keyset = bkv_protocol::validation_bundle::Parsed::parse(&bundle).unwrap().payload;
    std::fs::write(d.join("keyset.cbor"), keyset).unwrap();
    let countersign = |out: &str| {
        vec![
            "--signer".to_owned(),
            s["url"].as_str().unwrap().into(),
            "--key-file".into(),
            format!("{up}/orgs/operator.scalar"),
            "--trust".into(),
            trust.clone(),
            "--keyset".into(),
            p("keyset.cbor"),
            "--evidence".into(),
            format!("{up}/evidence.cbor"),
            "--out".into(),
            out.into(),
        ]
    };
    let args = countersign(&p("released.cbor"));
    c.ok("bkv operator countersign", &args.iter().map(String::as_str).collect::<Vec<_>>());
    c.fails("bkv operator countersign", &args.iter().map(String::as_str).collect::<Vec<_>>(), 3, "io.write");

    c.ok("bkv fleet kill", &["--dir", &up, "--node", "node-1"]);
    c.fails("bkv fleet kill", &["--dir", &up], 2, "cli.usage");
    c.ok("bkv fleet start", &["--dir", &up, "--node", "node-1"]);
    c.fails("bkv fleet start", &["--dir", &up], 2, "cli.usage");
    c.ok("bkv fleet stop", &["--dir", &up]);
    drop(fleet);
    let e = c.fails("bkv fleet stop", &["--dir", &up], 2, "cli.usage");
    assert!(e["message"].as_str().unwrap().contains("no fleet is running"), "{e}");

    // Rotation of the stopped ceremony fleet; benchmarks, briefly; the demo.
    c.ok("bkv fleet rotate", &["--dir", &cer, "--out", &p("epoch2")]);
    c.fails("bkv fleet rotate", &["--dir", &cer, "--out", &p("epoch3")], 1, "rotation.fleet.retired");
    let bench = ["--nodes", "1", "--clients", "1", "--secs", "1", "--dir"];
    c.ok("bkv bench replication", &[&bench[..], &[&p("bench-r")]].concat());
    c.fails("bkv bench replication", &["--nodes", "0"], 2, "cli.usage");
    c.ok("bkv bench recovery", &[&bench[..], &[&p("bench-v")]].concat());
    c.fails("bkv bench recovery", &["--nodes", "0"], 2, "cli.usage");
    let scale = ["--records", "200", "--nodes", "3", "--clients", "2", "--secs", "1", "--dir"];
    c.ok("bkv bench scale", &[&scale[..], &[&p("bench-s")]].concat());
    c.fails("bkv bench scale", &["--nodes", "2"], 2, "cli.usage");
    let forged = ["--guesses", "300", "--live", "100", "--nodes", "3", "--clients", "4", "--dir"];
    let rows = c.ok("bkv bench forged", &[&forged[..], &[&p("bench-f")]].concat());
    assert_eq!(rows["rows"][0]["guesses"], 300, "{rows}");
    assert_eq!(rows["rows"][0]["errors"], 0, "{rows}");
    c.fails("bkv bench forged", &["--guesses", "10", "--rate", "0"], 2, "cli.usage");
    c.ok("bkv bench log", &["--clients", "2", "--secs", "1", "--dir", &p("bench-l")]);
    c.fails("bkv bench log", &["--clients", "0"], 2, "cli.usage");
    let demo = c.ok("bkv demo", &["--nodes", "1", "--insecure-test-ksf", "--dir", &p("demo")]);
    assert!(demo["trust"].as_str().unwrap().ends_with("trust.cbor"), "{demo}");
    c.fails("bkv demo", &["--nodes", "1", "--insecure-test-ksf", "--dir", &p("demo")], 2, "cli.usage");

    let missing: Vec<String> = leaves()
        .into_iter()
        .filter(|l| c.seen.get(l) != Some(&(true, true)))
        .map(|l| format!("{l} {:?}", c.seen.get(&l)))
        .collect();
    assert!(missing.is_empty(), "subcommands not run in both a success and a failure: {missing:?}");
    let _ = std::fs::remove_dir_all(&d);
}
