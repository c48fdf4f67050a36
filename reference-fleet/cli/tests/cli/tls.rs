//! `https://` everywhere (reference-fleet/README.md, "TLS"): `bkv tls certs` makes a private
//! CA and a server certificate; three `bkv-node run` processes serve both listeners over
//! TLS (`[tls]` of `node.toml`, peers reached with `https://`); a backup is created and
//! restored through the CLI with `--ca`; a witness and a log serve over TLS, the log asks
//! the witness for cosignatures over `https://`, and `bkv log monitor` verifies the
//! witnessed checkpoint. Without `--ca` the client refuses, saying what to pass.

use crate::node_run::{Node, ceremony, get, run_node, wait_ready};
use crate::support::{Running, bkv, bkv_with_code};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::Stdio;

fn p(x: &Path) -> String {
    x.to_str().unwrap().to_owned()
}

/// `bkv log ...` printing `vkey ...` and `listening on URL`: the child, its vkey and URL.
pub(crate) fn serve(args: &[String]) -> (Running, String, String, Option<String>) {
    let mut child = bkv().args(args).stdout(Stdio::piped()).stderr(Stdio::null()).spawn().unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let vkey = lines.next().unwrap().unwrap().strip_prefix("vkey ").unwrap().to_owned();
    // A log also prints its admin listener ("admin on URL (token in FILE)") first.
    let mut admin = None;
    let url = loop {
        let line = lines.next().unwrap().unwrap();
        if let Some(a) = line.strip_prefix("admin on ") {
            admin = a.split(' ').next().map(str::to_owned);
        }
        if let Some(u) = line.strip_prefix("listening on ") {
            break u.to_owned();
        }
    };
    (Running(child), vkey, url, admin)
}

fn keygen(dir: &Path, name: &str, kind: &str) -> (PathBuf, String) {
    let key = dir.join(format!("{kind}.key"));
    let out =
        bkv().args(["log", "keygen", "--name", name, "--kind", kind, "--out"]).arg(&key).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    (key, String::from_utf8(out.stdout).unwrap().trim().to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_for_nodes_peers_log_and_witness() {
    let _serial = crate::support::serial();
    let dir = ceremony("tls");
    let certs = dir.join("tls");
    let out = bkv()
        .args(["tls", "certs", "--json", "--cert", "server=127.0.0.1,localhost", "--out"])
        .arg(&certs)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let ca = certs.join("ca.pem");
    let (cert, key) = (certs.join("server.pem"), certs.join("server.key"));
    for i in 1..=3 {
        let config = dir.join(format!("node-{i}/node.toml"));
        let mut text = std::fs::read_to_string(&config).unwrap();
        text.push_str(&format!("\n[tls]\ncert = {:?}\nkey = {:?}\nca = {:?}\n", p(&cert), p(&key), p(&ca)));
        std::fs::write(&config, text).unwrap();
    }
    let nodes: Vec<Node> = (1..=3).map(|i| run_node(&dir.join(format!("node-{i}/node.toml")))).collect();
    for n in &nodes {
        assert!(n.url.starts_with("https://127.0.0.1:"), "{}", n.url);
    }
    // This test process trusts the CA too (for its readiness polls and the log client).
    bkv_client::tls::trust_roots(&ca).unwrap();
    // Ready means a leader is known: the nodes reached each other over https://.
    wait_ready(&nodes.iter().collect::<Vec<_>>()).await;
    let (status, body) = get(&format!("{}/healthz", nodes[0].url)).await;
    assert_eq!((status, body.as_str()), (200, "ok\n"));

    let (input, backup, restored, state) =
        (dir.join("chat.db"), dir.join("chat.bkv"), dir.join("restored.db"), dir.join("state.json"));
    std::fs::write(&input, b"end-to-end encrypted chat history").unwrap();
    let args = |cmd: &str, node: usize, files: [&Path; 2]| -> Vec<String> {
        let mut a: Vec<String> =
            ["--ca", &p(&ca), "backup", cmd, "--fleet", &nodes[node].url].map(String::from).into();
        a.extend(["--trust".into(), p(&dir.join("trust.cbor")), "--state".into(), p(&state)]);
        a.extend(["--code-stdin", "--insecure-test-ksf", "--json"].map(String::from));
        a.extend(files.iter().map(|f| p(f)));
        a
    };
    let out = bkv_with_code(&args("create", 0, [&input, &backup]), "482913");
    assert!(out.status.success(), "create: {}", String::from_utf8_lossy(&out.stderr));
    let out = bkv_with_code(&args("restore", 2, [&backup, &restored]), "482913");
    assert!(out.status.success(), "restore: {}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(std::fs::read(&restored).unwrap(), std::fs::read(&input).unwrap());

    // Without --ca the https:// node is refused, and the message says what to pass.
    let mut bare = args("restore", 1, [&backup, &dir.join("again.db")]);
    bare.drain(0..2);
    let out = bkv_with_code(&bare, "482913");
    assert_eq!(out.status.code(), Some(3), "{}", String::from_utf8_lossy(&out.stderr));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["error"]["code"], "client.transport", "{doc}");
    assert!(doc["error"]["message"].as_str().unwrap().contains("--ca"), "{doc}");

    // A witness and a log over TLS; the log reaches the witness with https://.
    let origin = "log.example/tls";
    let (log_key, log_vkey) = keygen(&dir, origin, "log");
    let (w_key, w_vkey) = keygen(&dir, "witness.example/w", "witness");
    let tls = ["--tls-cert".to_owned(), p(&cert), "--tls-key".into(), p(&key)];
    let mut w_args: Vec<String> =
        ["log", "witness", "--addr", "127.0.0.1:0", "--name", "witness.example/w"].map(String::from).into();
    w_args.extend(["--db".into(), p(&dir.join("w.redb")), "--key-file".into(), p(&w_key)]);
    w_args.extend(["--log-vkey".into(), log_vkey.clone()]);
    w_args.extend(tls.clone());
    let (_witness, _, w_url, _) = serve(&w_args);
    assert!(w_url.starts_with("https://"), "{w_url}");
    let mut l_args: Vec<String> =
        ["--ca", &p(&ca), "log", "serve", "--addr", "127.0.0.1:0", "--origin", origin]
            .map(String::from)
            .into();
    l_args.extend(["--db".into(), p(&dir.join("log.redb")), "--key-file".into(), p(&log_key)]);
    l_args.extend(["--admin-token-file".into(), p(&dir.join("admin.token"))]);
    l_args.extend(["--admin-addr".into(), "127.0.0.1:0".into()]);
    l_args.extend(["--witness".into(), w_url.clone()]);
    l_args.extend(tls);
    let (_log, _, log_url, admin) = serve(&l_args);
    let admin = admin.expect("the log's admin listener");
    assert!(admin.starts_with("https://"), "{admin}");
    assert!(log_url.starts_with("https://"), "{log_url}");
    let token = std::fs::read_to_string(dir.join("admin.token")).unwrap();
    let log = bkv_client::LogClient::new(&log_url).with_admin(&admin, token.trim());
    let entry = bkv_protocol::audit_log::LogEntry::bundle("fleet-tls", 1, b"a bundle");
    log.append(&entry.to_cbor()).await.unwrap();
    log.publish_checkpoint().await.unwrap();
    let anchors = dir.join("anchors.json");
    std::fs::write(
        &anchors,
        serde_json::json!({ "origin": origin, "log_key": log_vkey, "witnesses": [w_vkey], "threshold": 1 })
            .to_string(),
    )
    .unwrap();
    let out = bkv()
        .args(["--ca", &p(&ca), "log", "monitor", "--json", "--url", &log_url, "--anchors"])
        .arg(&anchors)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["ok"], true, "{doc}");
    let report = &doc["result"];
    assert_eq!(report["size"], 1, "F8: the monitor reads an https:// log: {report}");
    assert_eq!(report["checkpoint_verified"], true, "the witness cosigned over https: {report}");

    // A CA file that is not PEM is one clear error naming it.
    let out = bkv().args(["--ca", &p(&input), "--json", "version"]).output().unwrap();
    assert_eq!(out.status.code(), Some(3));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["error"]["code"], "tls.config.invalid", "{doc}");
    assert_eq!(doc["error"]["file"], p(&input));
    drop(nodes);
    let _ = std::fs::remove_dir_all(&dir);
}
