//! spec/audit-log.md §8, §9: the log server, witnesses, the signer's release step, the
//! monitor, and crash safety of the log, over real HTTP on localhost.

use crate::support::Running;
use bkv_client::LogClient;
use bkv_client::monitor::{self, Announced};
use bkv_protocol::Error;
use bkv_protocol::audit_log::merkle::{leaf_hash, verify_inclusion};
use bkv_protocol::audit_log::note::{SIG_TYPE_ED25519, verifier_key};
use bkv_protocol::audit_log::{LogAnchors, LogEntry, LogState, verify_checkpoint, verify_logged_bundle};
use bkv_protocol::crypto::Ed25519Signer;
use bkv_third_party::log_server::{self as server, LogService};
use bkv_third_party::read_seed;
use bkv_third_party::signer::release;
use bkv_third_party::witness::{self, AddError, Witness};
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Arc;

/// Raw HTTP exchanges with the services, through the client's one HTTP client.
mod http {
    use bkv_client::http::HttpError;

    pub(crate) async fn request(method: &str, url: &str, body: &[u8]) -> Result<(u16, Vec<u8>), HttpError> {
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("a method name");
        let body = (!body.is_empty()).then(|| (body.to_vec(), "application/octet-stream"));
        bkv_client::http::request(&bkv_client::http::client(), method, url, body).await
    }

    /// POST `body` to `url` with the bearer token in the file `token`; status and body text.
    pub(crate) async fn post_bearer(url: &str, token: &std::path::Path, body: &[u8]) -> (u16, String) {
        let token = std::fs::read_to_string(token).unwrap();
        let body = Some((body.to_vec(), "application/octet-stream"));
        let http = bkv_client::http::client();
        let (status, body) = bkv_client::http::request_authorized(
            &http,
            reqwest::Method::POST,
            url,
            body,
            1 << 16,
            Some(token.trim()),
        )
        .await
        .unwrap();
        (status, String::from_utf8(body).unwrap())
    }

    pub(crate) async fn get(url: &str) -> Result<Vec<u8>, HttpError> {
        bkv_client::http::get(&bkv_client::http::client(), url).await
    }
}

const ORIGIN: &str = "log.example/bkv-it";

fn temp(name: &str) -> PathBuf {
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("bkv-audit-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

struct Net {
    log: LogClient,
    anchors: LogAnchors,
    _servers: Vec<server::Running>,
}

async fn start(dir: &std::path::Path, witnesses: usize, k: u64) -> Net {
    let log_key = Ed25519Signer::from_seed(&[1; 32]);
    let log_vkey = verifier_key(ORIGIN, SIG_TYPE_ED25519, &log_key).unwrap();
    let mut urls = Vec::new();
    let mut wkeys = Vec::new();
    let mut servers = Vec::new();
    for i in 0..witnesses {
        let db = dir.join(format!("witness{i}.redb"));
        let w = Witness::open(
            &db,
            &format!("w{i}.example/w"),
            Ed25519Signer::from_seed(&[20 + i as u8; 32]),
            log_vkey.clone(),
        )
        .unwrap();
        wkeys.push(w.vkey());
        let running = server::spawn("127.0.0.1:0", witness::router(Arc::new(w))).await.unwrap();
        urls.push(format!("http://{}", running.addr));
        servers.push(running);
    }
    let log = LogService::open(&dir.join("log.redb"), ORIGIN, log_key, urls).unwrap();
    let log = Arc::new(log);
    let token = server::AdminToken::generate(&mut rand_core::OsRng);
    let running = server::spawn("127.0.0.1:0", server::router(log.clone())).await.unwrap();
    let admin = server::spawn("127.0.0.1:0", server::admin_router(log, token.clone())).await.unwrap();
    let anchors = LogAnchors { origin: ORIGIN.into(), log_key: log_vkey, witnesses: wkeys, threshold: k };
    let log = LogClient::new(&format!("http://{}", running.addr))
        .with_admin(&format!("http://{}", admin.addr), token.expose());
    servers.push(running);
    servers.push(admin);
    Net { log, anchors, _servers: servers }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn release_is_logged_witnessed_and_verified_by_the_client() {
    let dir = temp("release");
    let net = start(&dir, 3, 2).await;
    let b0 = b"final bundle bytes, epoch 1".to_vec();
    let logged = release(&net.log, &net.anchors, b0.clone(), "fleet-a", 1).await.unwrap();
    assert_eq!(logged.bundle, b0);
    // The client, with its own state, accepts it; 3 witnesses cosigned.
    let v = verify_logged_bundle(&b0, "fleet-a", 1, &logged.proof, &net.anchors, &LogState::default(), None)
        .unwrap();
    assert_eq!(v.checkpoint.cosigners.len(), 3);
    assert!(!v.development_only);
    // The wrapper survives its CBOR encoding.
    let wire = logged.to_cbor();
    assert_eq!(bkv_protocol::audit_log::LoggedBundle::from_cbor(&wire).unwrap(), logged);

    // A second bundle: the client needs a consistency proof from its held checkpoint.
    let b1 = b"final bundle bytes, epoch 2".to_vec();
    let logged1 = release(&net.log, &net.anchors, b1.clone(), "fleet-a", 2).await.unwrap();
    assert_eq!(
        verify_logged_bundle(&b1, "fleet-a", 2, &logged1.proof, &net.anchors, &v.state, None).map(|_| ()),
        Err(Error::LogConsistencyMissing)
    );
    let size1 = logged1.proof.inclusion.tree_size;
    let cons = net.log.consistency_proof(1, size1).await.unwrap();
    let v1 =
        verify_logged_bundle(&b1, "fleet-a", 2, &logged1.proof, &net.anchors, &v.state, Some(&cons)).unwrap();
    assert_eq!(v1.state.largest.unwrap().size, 2);

    // A bundle that was never logged is refused even with a valid checkpoint.
    assert_eq!(
        verify_logged_bundle(b"not logged", "fleet-a", 2, &logged1.proof, &net.anchors, &v1.state, None)
            .map(|_| ()),
        Err(Error::LogInclusionInvalid)
    );

    // Another fleet's bundle; the monitor lists everything and flags what was not announced.
    release(&net.log, &net.anchors, b"other fleet".to_vec(), "fleet-b", 1).await.unwrap();
    let all = monitor::run(&net.log, &monitor::Options::default(), &|_, _| {}).await.unwrap();
    assert_eq!(all.size, 3);
    assert_eq!(all.bundles.len(), 3);
    assert!(all.findings.is_empty(), "{:?}", all.findings);
    let announced = vec![Announced {
        fleet_id: "fleet-a".into(),
        epoch: 1,
        digest: hex::encode(bkv_protocol::crypto::sha256(&b0)),
    }];
    let opts = monitor::Options {
        fleet: Some("fleet-a".into()),
        anchors: Some(net.anchors.clone()),
        announced: Some(announced),
        previous: Some(v.state.largest.unwrap()),
    };
    let r = monitor::run(&net.log, &opts, &|_, _| {}).await.unwrap();
    assert!(r.checkpoint_verified);
    assert_eq!(r.bundles.iter().map(|b| b.epoch).collect::<Vec<_>>(), vec![1, 2]);
    assert_eq!(r.findings.len(), 1);
    assert_eq!((r.findings[0].kind, r.findings[0].index), ("unannounced", Some(1)));
    // A monitor that remembers a different tree of size 1 reports a fork.
    let mut forked = v.state.largest.unwrap();
    forked.root[0] ^= 1;
    let r = monitor::run(
        &net.log,
        &monitor::Options { previous: Some(forked), ..Default::default() },
        &|_, _| {},
    )
    .await
    .unwrap();
    assert_eq!(r.findings.iter().map(|f| f.kind).collect::<Vec<_>>(), vec!["fork"]);

    // Retirements (spec/audit-log.md §9): epoch 1 retired for the logged epoch-2 bundle is
    // fine; a retirement naming an unlogged successor, or a second retirement of one epoch,
    // is flagged. An epoch logged with a second digest is an equivocation.
    use bkv_protocol::audit_log::LogEntry;
    let append = |e: LogEntry| {
        let log = &net.log;
        async move { log.append(&e.to_cbor()).await.unwrap() }
    };
    append(LogEntry::retirement("fleet-a", 1, &b1)).await;
    // A release waits for a checkpoint that covers everything appended before it.
    release(&net.log, &net.anchors, b"fleet-c epoch 1".to_vec(), "fleet-c", 1).await.unwrap();
    let healthy = monitor::run(&net.log, &monitor::Options::default(), &|_, _| {}).await.unwrap();
    assert!(healthy.findings.is_empty(), "{:?}", healthy.findings);
    let bad_retirement = append(LogEntry::retirement("fleet-a", 2, b"no such epoch 3")).await;
    let second_retirement = append(LogEntry::retirement("fleet-a", 1, &b1)).await;
    let equivocation = append(LogEntry::bundle("fleet-b", 1, b"another fleet-b epoch 1")).await;
    release(&net.log, &net.anchors, b"fleet-c epoch 2".to_vec(), "fleet-c", 2).await.unwrap();
    let r = monitor::run(&net.log, &monitor::Options::default(), &|_, _| {}).await.unwrap();
    let mut got: Vec<_> = r.findings.iter().map(|f| (f.kind, f.index)).collect();
    got.sort();
    assert_eq!(
        got,
        vec![
            ("equivocation", Some(equivocation)),
            ("retirement", Some(bad_retirement)),
            ("retirement", Some(second_retirement)),
        ]
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn release_fails_without_enough_witnesses() {
    let dir = temp("few");
    let mut net = start(&dir, 1, 1).await;
    // The client requires 2 of 2 pinned witnesses, but only one is running.
    let extra = Ed25519Signer::from_seed(&[77; 32]);
    net.anchors.witnesses.push(verifier_key("w9.example/w", 0x04, &extra).unwrap());
    net.anchors.threshold = 2;
    let r = release(&net.log, &net.anchors, b"bundle".to_vec(), "fleet-a", 1).await;
    assert_eq!(r.map(|_| ()).map_err(|e| e.code()), Err("log.witness.insufficient"));
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn witness_state_survives_restart_and_refuses_a_fork() {
    let dir = temp("witness");
    let net = start(&dir, 1, 1).await;
    release(&net.log, &net.anchors, b"b0".to_vec(), "f", 0).await.unwrap();
    release(&net.log, &net.anchors, b"b1".to_vec(), "f", 1).await.unwrap();
    // A second log with the same key but different entries (a fork) asks the same witness,
    // reopened from its database.
    drop(net);
    let log_key = Ed25519Signer::from_seed(&[1; 32]);
    let log_vkey = verifier_key(ORIGIN, SIG_TYPE_ED25519, &log_key).unwrap();
    let mut tree = bkv_protocol::audit_log::merkle::Tree::new();
    tree.push(&LogEntry::bundle("f", 0, b"evil").to_cbor());
    tree.push(&LogEntry::bundle("f", 1, b"evil").to_cbor());
    let body =
        bkv_protocol::audit_log::Checkpoint { origin: ORIGIN.into(), size: 2, root: tree.root() }.body();
    let sig = bkv_protocol::audit_log::note::sign_note(&body, ORIGIN, &log_key).unwrap();
    let note = bkv_protocol::audit_log::note::Note { text: body, signatures: vec![sig] }.encode();
    // The stopped server releases the database file once its last task has ended.
    let mut attempts = 0;
    let w = loop {
        let seed = Ed25519Signer::from_seed(&[20; 32]);
        match Witness::open(&dir.join("witness0.redb"), "w0.example/w", seed, log_vkey.clone()) {
            Ok(w) => break w,
            Err(e) if attempts < 250 => {
                attempts += 1;
                let _ = e;
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
            Err(e) => panic!("witness database still locked: {e}"),
        }
    };
    assert_eq!(w.held().unwrap().unwrap().size, 2);
    match w.add_checkpoint(2, &[], &note, 1) {
        Err(AddError::Failed(e)) => assert_eq!(e.code(), "log.fork"),
        other => panic!("expected fork, got {other:?}"),
    }
    match w.add_checkpoint(0, &[], &note, 1) {
        Err(AddError::Conflict(2)) => {}
        other => panic!("expected conflict, got {other:?}"),
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// A `bkv log serve` child process, killed on drop.
struct Server {
    child: Running,
    url: String,
    admin: String,
    token: PathBuf,
}

impl Server {
    /// A client that reads from the log and writes through its admin listener.
    fn client(&self) -> LogClient {
        let token = std::fs::read_to_string(&self.token).unwrap();
        LogClient::new(&self.url).with_admin(&self.admin, token.trim())
    }
}

fn serve(db: &std::path::Path, key: &std::path::Path, crash_after: Option<u64>) -> Server {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_bkv"));
    let token = db.with_file_name("admin.token");
    cmd.args(["log", "serve", "--addr", "127.0.0.1:0", "--admin-addr", "127.0.0.1:0", "--origin", ORIGIN])
        .arg("--admin-token-file")
        .arg(&token)
        .arg("--db")
        .arg(db)
        .arg("--key-file")
        .arg(key)
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    if let Some(n) = crash_after {
        cmd.args(["--crash-after-appends", &n.to_string()]);
    }
    let mut child = cmd.spawn().unwrap();
    // Readiness: the server prints its address once the listener is bound.
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut admin = String::new();
    let url = loop {
        let line = lines.next().expect("server exited before listening").unwrap();
        if let Some(a) = line.strip_prefix("admin on ") {
            admin = a.split(' ').next().unwrap().to_owned();
        }
        if let Some(u) = line.strip_prefix("listening on ") {
            break u.to_owned();
        }
    };
    Server { child: Running(child), url, admin, token }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_between_append_and_response_loses_no_acknowledged_entry() {
    let dir = temp("crash");
    let key = dir.join("log.key");
    std::fs::write(&key, hex::encode([1u8; 32])).unwrap();
    assert_eq!(read_seed(&key).unwrap(), [1u8; 32]);
    let db = dir.join("log.redb");
    let entries: Vec<Vec<u8>> =
        (0..4u64).map(|e| LogEntry::bundle("f", e, &[e as u8; 8]).to_cbor()).collect();

    // The server aborts right after the durable write of the 3rd append, before answering.
    let mut s = serve(&db, &key, Some(3));
    let log = s.client();
    assert_eq!(log.append(&entries[0]).await.unwrap(), 0);
    assert_eq!(log.append(&entries[1]).await.unwrap(), 1);
    assert!(log.append(&entries[2]).await.is_err(), "the 3rd append must not be acknowledged");
    let status = s.child.0.wait().unwrap();
    assert!(!status.success(), "the server crashed");

    // Restart on the same database.
    let s2 = serve(&db, &key, None);
    let log = s2.client();
    // The next append lands after everything that was durably written.
    assert_eq!(log.append(&entries[3]).await.unwrap(), 3);
    let stored = log.entries(0, 4).await.unwrap();
    assert_eq!(stored, entries, "acknowledged entries 0 and 1, the durable unacknowledged 2, and 3");
    // The tree still verifies: checkpoint root equals the recomputed root, proofs verify.
    let note = log.publish_checkpoint().await.unwrap();
    let anchors = LogAnchors {
        origin: ORIGIN.into(),
        log_key: verifier_key(ORIGIN, SIG_TYPE_ED25519, &Ed25519Signer::from_seed(&[1; 32])).unwrap(),
        witnesses: vec![],
        threshold: 0,
    };
    let cp = verify_checkpoint(&note, &anchors).unwrap();
    assert!(cp.development_only);
    assert_eq!(cp.checkpoint.size, 4);
    for (i, e) in entries.iter().enumerate() {
        let p = log.inclusion_proof(i as u64, 4).await.unwrap();
        verify_inclusion(&leaf_hash(e), i as u64, 4, &p.path, &cp.checkpoint.root).unwrap();
    }
    let r = monitor::run(&log, &monitor::Options::default(), &|_, _| {}).await.unwrap();
    assert!(r.findings.is_empty(), "{:?}", r.findings);
    // Malformed entries are refused and change nothing.
    let (status, body) = http::post_bearer(&format!("{}/add", s2.admin), &s2.token, b"\xff").await;
    assert_eq!((status, body.as_str()), (400, "cbor.malformed"));
    assert_eq!(log.entries(0, 10).await.unwrap().len(), 4);
    // Entries with a fleet_id over 255 bytes (a hostile client's 80 kB one could never be
    // served in an entry bundle) are refused before storage (spec/audit-log.md §5); the
    // tiles stay servable and the monitor still finds nothing.
    for len in [256, 80_000] {
        let entry = LogEntry::bundle(&"x".repeat(len), 1, b"b").to_cbor();
        let (status, body) = http::post_bearer(&format!("{}/add", s2.admin), &s2.token, &entry).await;
        assert_eq!((status, body.as_str()), (400, "cbor.schema"), "{len}");
    }
    assert_eq!(log.entries(0, 10).await.unwrap().len(), 4);
    let (status, _) = http::request("GET", &format!("{}/tile/entries/000.p/4", s2.url), b"").await.unwrap();
    assert_eq!(status, 200);
    let r = monitor::run(&log, &monitor::Options::default(), &|_, _| {}).await.unwrap();
    assert!(r.findings.is_empty(), "{:?}", r.findings);
    drop(s2);
    drop(s);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_log_for_the_demo() {
    use rand_core::SeedableRng;
    let dir = temp("local");
    let mut rng = rand_chacha::ChaCha20Rng::from_seed([5; 32]);
    let local =
        bkv_third_party::local::LocalLog::start(&dir, "demo.example/log", 3, 2, &mut rng).await.unwrap();
    let logged = release(&local.client, &local.anchors, b"bundle".to_vec(), "fleet", 1).await.unwrap();
    let v = verify_logged_bundle(
        b"bundle",
        "fleet",
        1,
        &logged.proof,
        &local.anchors,
        &LogState::default(),
        None,
    )
    .unwrap();
    assert_eq!(v.checkpoint.cosigners.len(), 3);
    drop(local);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tlog_tiles_match_the_tree() {
    use bkv_protocol::audit_log::merkle::Tree;
    let dir = temp("tiles");
    let net = start(&dir, 0, 0).await;
    let mut tree = Tree::new();
    let mut entries = Vec::new();
    for e in 0..300u64 {
        let entry = LogEntry::bundle("f", e, &e.to_be_bytes()).to_cbor();
        net.log.append(&entry).await.unwrap();
        tree.push(&entry);
        entries.push(entry);
    }
    let base = &net.log.base;
    let t00 = http::get(&format!("{base}/tile/0/000")).await.unwrap();
    assert_eq!(t00.len(), 256 * 32);
    for j in 0..256 {
        assert_eq!(&t00[j * 32..(j + 1) * 32], &leaf_hash(&entries[j])[..]);
    }
    let t01 = http::get(&format!("{base}/tile/0/001.p/44")).await.unwrap();
    assert_eq!(&t01[43 * 32..], &leaf_hash(&entries[299])[..]);
    // Level 1 hash 0 is the root of the first 256 leaves.
    let t10 = http::get(&format!("{base}/tile/1/000.p/1")).await.unwrap();
    assert_eq!(t10, tree.root_at(256).unwrap().to_vec());
    // Entry bundles: u16 length prefixes.
    let b1 = http::get(&format!("{base}/tile/entries/001.p/44")).await.unwrap();
    let mut rest = b1.as_slice();
    let mut got = Vec::new();
    while !rest.is_empty() {
        let n = u16::from_be_bytes([rest[0], rest[1]]) as usize;
        got.push(rest[2..2 + n].to_vec());
        rest = &rest[2 + n..];
    }
    assert_eq!(got, entries[256..300]);
    // The client reads the same tiles.
    assert_eq!(net.log.entry_bundle(1, 44).await.unwrap(), entries[256..300]);
    let hashes = net.log.hash_tile(0, 0, 256).await.unwrap();
    assert_eq!(hashes[255], leaf_hash(&entries[255]));
    assert_eq!(net.log.hash_tile(1, 0, 1).await.unwrap(), vec![tree.root_at(256).unwrap()]);
    assert!(net.log.entry_bundle(1, 45).await.is_err(), "a tile the log does not have");
    // Tiles that do not exist yet are 404.
    for missing in ["0/001", "0/001.p/45", "1/000", "entries/001", "2/000.p/1", "0/x1/000"] {
        let (status, _) = http::request("GET", &format!("{base}/tile/{missing}"), &[]).await.unwrap();
        assert_eq!(status, 404, "{missing}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn witness_http_status_codes_follow_tlog_witness() {
    use bkv_protocol::audit_log::Checkpoint;
    use bkv_protocol::audit_log::merkle::Tree;
    use bkv_protocol::audit_log::note::{Note, sign_note};
    use bkv_third_party::witness::encode_request;
    let dir = temp("witness-http");
    let log_key = Ed25519Signer::from_seed(&[1; 32]);
    let log_vkey = verifier_key(ORIGIN, SIG_TYPE_ED25519, &log_key).unwrap();
    let w = Witness::open(&dir.join("w.redb"), "w.example/w", Ed25519Signer::from_seed(&[3; 32]), log_vkey)
        .unwrap();
    let running = server::spawn("127.0.0.1:0", witness::router(Arc::new(w))).await.unwrap();
    let url = format!("http://{}/add-checkpoint", running.addr);
    let mut tree = Tree::new();
    for i in 0..5u8 {
        tree.push(&[i]);
    }
    let note = |origin: &str, size: u64, key: &Ed25519Signer| {
        let body = Checkpoint { origin: origin.into(), size, root: tree.root_at(size).unwrap() }.body();
        let sig = sign_note(&body, origin, key).unwrap();
        Note { text: body, signatures: vec![sig] }.encode()
    };
    let post = |body: String| {
        let url = url.clone();
        async move {
            let (s, b) = http::request("POST", &url, body.as_bytes()).await.unwrap();
            (s, String::from_utf8(b).unwrap())
        }
    };
    assert_eq!(post("garbage".into()).await.0, 400);
    let (s, b) = post(encode_request(0, &[], &note(ORIGIN, 3, &log_key))).await;
    assert_eq!(s, 200, "{b}");
    assert!(b.starts_with("\u{2014} w.example/w "));
    // Wrong old size: 409 with the held size.
    assert_eq!(post(encode_request(0, &[], &note(ORIGIN, 5, &log_key))).await, (409, "3\n".to_owned()));
    // Bad consistency proof: 422. Good one: 200.
    let mut proof = tree.consistency_proof(3, 5).unwrap();
    proof[0][0] ^= 1;
    assert_eq!(post(encode_request(3, &proof, &note(ORIGIN, 5, &log_key))).await.0, 422);
    let proof = tree.consistency_proof(3, 5).unwrap();
    assert_eq!(post(encode_request(3, &proof, &note(ORIGIN, 5, &log_key))).await.0, 200);
    // Unknown origin 404; signed by another key 403; old above the size 400.
    let other = Ed25519Signer::from_seed(&[9; 32]);
    assert_eq!(post(encode_request(5, &[], &note("other.example/log", 5, &other))).await.0, 404);
    // Also when `old` is not the held size: the origin is checked first, so the witness
    // never answers 409 with the size it holds for another log (spec/audit-log.md §8.3).
    let (s, b) = post(encode_request(0, &[], &note("other.example/log", 4, &other))).await;
    assert_eq!((s, b.as_str()), (404, "log.checkpoint.origin"));
    assert_eq!(post(encode_request(5, &[], &note(ORIGIN, 5, &other))).await.0, 403);
    assert_eq!(post(encode_request(5, &[], &note(ORIGIN, 4, &log_key))).await.0, 400);
    drop(running);
    let _ = std::fs::remove_dir_all(&dir);
}

/// spec/audit-log.md §9: a log that serves its entries and proofs but not its entry bundles
/// (as a log holding an entry too long for a bundle would) is flagged by the monitor, tile
/// by tile; the same log serving everything is not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_monitor_flags_a_tile_the_log_does_not_serve() {
    let dir = temp("tiles");
    let log = Arc::new(
        LogService::open(&dir.join("log.redb"), ORIGIN, Ed25519Signer::from_seed(&[1; 32]), vec![]).unwrap(),
    );
    for e in 0..3u64 {
        log.append(&LogEntry::bundle("f", e, &[e as u8; 8]).to_cbor()).await.unwrap();
    }
    log.publish_checkpoint().await.unwrap();
    let hide_bundles =
        axum::middleware::from_fn(|req: axum::extract::Request, next: axum::middleware::Next| async move {
            if req.uri().path().starts_with("/tile/entries/") {
                return axum::http::StatusCode::NOT_FOUND.into_response();
            }
            next.run(req).await
        });
    use axum::response::IntoResponse as _;
    let listen = || std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let whole = server::spawn_on(listen(), server::router(log.clone())).unwrap();
    let partial = server::spawn_on(listen(), server::router(log).layer(hide_bundles)).unwrap();
    let run = |addr: std::net::SocketAddr| async move {
        monitor::run(&LogClient::new(&format!("http://{addr}")), &monitor::Options::default(), &|_, _| {})
            .await
            .unwrap()
    };
    assert!(run(whole.addr).await.findings.is_empty());
    let findings = run(partial.addr).await.findings;
    assert_eq!(findings.len(), 1, "{findings:?}");
    assert_eq!((findings[0].kind, findings[0].index), ("tile_missing", Some(0)));
    assert!(findings[0].detail.starts_with("tile/entries/000.p/3: "), "{}", findings[0].detail);
    let _ = std::fs::remove_dir_all(&dir);
}
