//! `bkv log keygen|serve|monitor` as a user runs them (spec/audit-log.md §8, §9).

use crate::support::{Running, bkv};
use bkv_client::LogClient;
use bkv_protocol::audit_log::LogEntry;
use std::io::{BufRead, BufReader};
use std::process::Stdio;

struct Server {
    _child: Running,
    url: String,
    vkey: String,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn f3_f11_f15_keygen_serve_and_monitor() {
    let dir =
        std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("bkv-log-cli-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let key = dir.join("log.key");
    let origin = "log.example/cli";

    let out =
        bkv().args(["log", "keygen", "--name", origin, "--kind", "log", "--out"]).arg(&key).output().unwrap();
    assert!(out.status.success());
    let vkey = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    assert!(vkey.starts_with("log.example/cli+"));
    // The key file is never overwritten.
    let again =
        bkv().args(["log", "keygen", "--name", origin, "--kind", "log", "--out"]).arg(&key).output().unwrap();
    assert_eq!(again.status.code(), Some(3), "I/O errors exit 3");
    assert!(String::from_utf8_lossy(&again.stderr).contains("io.write"));

    let mut child = bkv()
        .args([
            "log",
            "serve",
            "--addr",
            "127.0.0.1:0",
            "--admin-addr",
            "127.0.0.1:0",
            "--origin",
            origin,
            "--db",
        ])
        .arg(dir.join("log.redb"))
        .arg("--admin-token-file")
        .arg(dir.join("admin.token"))
        .arg("--key-file")
        .arg(&key)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let served_vkey = lines.next().unwrap().unwrap().strip_prefix("vkey ").unwrap().to_owned();
    let admin_line = lines.next().unwrap().unwrap();
    let admin = admin_line.strip_prefix("admin on ").unwrap().split(' ').next().unwrap().to_owned();
    let url = lines.next().unwrap().unwrap().strip_prefix("listening on ").unwrap().to_owned();
    let server = Server { _child: Running(child), url, vkey: served_vkey };
    assert_eq!(server.vkey, vkey);

    // spec/audit-log.md §8.1: the public listener takes no write, the admin listener only
    // with the token; a refused write changes nothing.
    let entry = LogEntry::bundle("fleet-x", 1, b"unauthenticated").to_cbor();
    let post = |url: String, token: Option<&'static str>| {
        let entry = entry.clone();
        async move {
            let mut req = bkv_client::http::client().post(url).body(entry);
            if let Some(t) = token {
                req = req.bearer_auth(t);
            }
            let r = req.send().await.unwrap();
            (r.status().as_u16(), r.text().await.unwrap())
        }
    };
    assert_eq!(post(format!("{}/add", server.url), None).await.0, 404);
    assert_eq!(post(format!("{}/checkpoint", server.url), None).await.0, 405);
    for (path, token) in
        [("add", None), ("add", Some("not-the-token-not-the-token-not-the-token")), ("checkpoint", None)]
    {
        let (status, body) = post(format!("{admin}/{path}"), token).await;
        assert_eq!((status, body.as_str()), (401, "log.admin.unauthorized"), "{path} {token:?}");
    }
    let reader = LogClient::new(&server.url);
    assert!(reader.checkpoint().await.is_err(), "no checkpoint was published");
    let e = reader.append(&entry).await.unwrap_err();
    assert!(e.to_string().contains("admin listener"), "{e}");

    let token = std::fs::read_to_string(dir.join("admin.token")).unwrap();
    let log = LogClient::new(&server.url).with_admin(&admin, token.trim());
    let b0 = LogEntry::bundle("fleet-a", 1, b"bundle one");
    let b1 = LogEntry::bundle("fleet-b", 1, b"bundle two");
    log.append(&b0.to_cbor()).await.unwrap();
    log.append(&b1.to_cbor()).await.unwrap();
    log.publish_checkpoint().await.unwrap();

    let anchors = dir.join("anchors.json");
    std::fs::write(
        &anchors,
        serde_json::json!({ "origin": origin, "log_key": vkey, "witnesses": [], "threshold": 0 }).to_string(),
    )
    .unwrap();
    let state = dir.join("state.json");
    let out = bkv()
        .args(["log", "monitor", "--json", "--url", &server.url, "--anchors"])
        .arg(&anchors)
        .arg("--state")
        .arg(&state)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["ok"], true, "{doc}");
    let report = &doc["result"];
    assert_eq!(report["size"], 2);
    assert_eq!(report["checkpoint_verified"], true);
    assert_eq!(report["development_only"], true);
    assert_eq!(report["bundles"].as_array().unwrap().len(), 2);
    assert_eq!(report["bundles"][1]["fleet_id"], "fleet-b");
    assert_eq!(report["bundles"][0]["digest"], hex::encode(b0.digest));
    assert!(state.exists(), "a clean run saves the tree head");
    // F15: the state holds the root as hex, as `bundle verify --state` does.
    let saved: serde_json::Value = serde_json::from_slice(&std::fs::read(&state).unwrap()).unwrap();
    assert_eq!(
        (saved["size"].as_u64(), saved["root"].as_str().map(str::len)),
        (Some(2), Some(64)),
        "F15: {saved}"
    );
    // F3: the same anchors as CBOR are read too (detected), and the saved state is accepted.
    let anchors_cbor = dir.join("anchors.cbor");
    let parsed: bkv_protocol::audit_log::LogAnchors =
        serde_json::from_slice(&std::fs::read(&anchors).unwrap()).unwrap();
    std::fs::write(&anchors_cbor, bkv_protocol::cbor::to_vec(&parsed)).unwrap();
    let out = bkv()
        .args(["--json", "log", "monitor", "--url", &server.url, "--anchors"])
        .arg(&anchors_cbor)
        .arg("--state")
        .arg(&state)
        .output()
        .unwrap();
    assert!(out.status.success(), "F3: {}", String::from_utf8_lossy(&out.stdout));
    // F11: an unreachable log, with --json, is one failure envelope on stdout.
    let out = bkv().args(["--json", "log", "monitor", "--url", "127.0.0.1:9"]).output().unwrap();
    assert_eq!(out.status.code(), Some(3));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("F11: an envelope on stdout");
    assert_eq!(v["ok"], false, "F11: {v}");

    // Only fleet-a, and the operator announced nothing: the bundle is flagged, exit fails.
    let announced = dir.join("announced.json");
    std::fs::write(&announced, "[]").unwrap();
    let out = bkv()
        .args(["log", "monitor", "--url", &server.url, "--fleet", "fleet-a", "--announced"])
        .arg(&announced)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "findings exit 1");
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("bundles  1"), "{text}");
    assert!(text.contains("unannounced at #0"), "{text}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("log.monitor.findings"));
    // With --json: the failure envelope, its details the report.
    let out = bkv()
        .args(["--json", "log", "monitor", "--url", &server.url, "--fleet", "fleet-a", "--announced"])
        .arg(&announced)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["error"]["code"], "log.monitor.findings", "{v}");
    assert_eq!(v["error"]["details"]["findings"][0]["kind"], "unannounced", "{v}");

    // A wrong log key is refused with its code.
    std::fs::write(
        &anchors,
        serde_json::json!({
            "origin": origin,
            "log_key": "log.example/cli+530d903a+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k",
            "witnesses": [], "threshold": 0
        })
        .to_string(),
    )
    .unwrap();
    let out =
        bkv().args(["log", "monitor", "--url", &server.url, "--anchors"]).arg(&anchors).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("log.vkey.malformed"));
    // A well-formed key of another signer: the checkpoint carries no signature from it.
    let out = bkv()
        .args(["log", "keygen", "--name", origin, "--kind", "log", "--out"])
        .arg(dir.join("other.key"))
        .output();
    let other = String::from_utf8(out.unwrap().stdout).unwrap().trim().to_owned();
    std::fs::write(
        &anchors,
        serde_json::json!({ "origin": origin, "log_key": other, "witnesses": [], "threshold": 0 })
            .to_string(),
    )
    .unwrap();
    let out =
        bkv().args(["log", "monitor", "--url", &server.url, "--anchors"]).arg(&anchors).output().unwrap();
    assert_eq!(out.status.code(), Some(1), "verification failures exit 1");
    assert!(String::from_utf8_lossy(&out.stderr).contains("log.checkpoint.unsigned"));
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}
