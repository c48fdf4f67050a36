//! spec/signer-api.md across processes: `bkv log witness` ×2, `bkv log serve` (writes only
//! on its admin listener), `bkv signer serve` (the third party's key only) and `bkv
//! operator countersign` (the operator's key only). The deployment is a `bkv fleet
//! ceremony`'s (its FleetKeySet, evidence, anchors and organisation keys); its trust file
//! is given the anchors of this test's own log.

use crate::node_run::ceremony;
use crate::support::{Running, bkv};
use bkv_client::{LogClient, Trust};
use bkv_protocol::audit_log::note::VerifierKey;
use bkv_protocol::audit_log::{EntryType, LogAnchors, LogEntry, LoggedBundle};
use bkv_protocol::crypto::{Ed25519Signer, Esp256Signer, sha256};
use bkv_protocol::signer_api::{CountersignRequest, SignRequest, SignResponse, seal_sign_request};
use bkv_protocol::validation_bundle::{Claims, ClientState, Parsed, countersignature, sign, verify_bundle};
use serde_bytes::ByteBuf;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::Stdio;

/// A served child: its process (killed on drop), its URL and, for a log, its admin URL.
struct Served {
    child: Running,
    url: String,
    admin: Option<String>,
}

/// Run `bkv ARGS` and wait for its `listening on URL` line.
fn serve(args: &[String]) -> Served {
    serve_env(args, &[])
}

/// [`serve`] with environment variables.
fn serve_env(args: &[String], env: &[(&str, &Path)]) -> Served {
    let mut cmd = bkv();
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.args(args).stdout(Stdio::piped()).stderr(Stdio::null()).spawn().unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut admin = None;
    let url = loop {
        let line = lines.next().expect("the server exited before listening").unwrap();
        if let Some(a) = line.strip_prefix("admin on ") {
            admin = a.split(' ').next().map(str::to_owned);
        }
        if let Some(u) = line.strip_prefix("listening on ") {
            break u.to_owned();
        }
    };
    Served { child: Running(child), url, admin }
}

fn p(path: &Path) -> String {
    path.to_str().unwrap().to_owned()
}

/// `bkv log keygen`: the key file and its verifier key.
fn keygen(dir: &Path, name: &str, kind: &str, file: &str) -> (PathBuf, String) {
    let key = dir.join(file);
    let out =
        bkv().args(["log", "keygen", "--name", name, "--kind", kind, "--out"]).arg(&key).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    (key, String::from_utf8(out.stdout).unwrap().trim().to_owned())
}

const ORIGIN: &str = "log.signer-test.example/bkv";

/// The third party's services and the operator's files.
struct World {
    dir: PathBuf,
    witnesses: Vec<Served>,
    witness_args: Vec<Vec<String>>,
    log: Served,
    signer: Served,
    signer_args: Vec<String>,
    trust: Trust,
    keyset: Vec<u8>,
    _serial: crate::support::Serial,
}

impl World {
    fn new(name: &str) -> World {
        World::with_keys(name, None)
    }

    /// The world with the organisations' keys in `tokens` when given (their public keys
    /// are added to the anchors beside the ceremony's software keys, which signed the
    /// evidence).
    fn with_keys(name: &str, tokens: Option<&Tokens>) -> World {
        let serial = crate::support::serial();
        let dir = ceremony(name);
        let (log_key, log_vkey) = keygen(&dir, ORIGIN, "log", "test-log.key");
        let mut witness_args = Vec::new();
        let mut witnesses = Vec::new();
        let mut wkeys = Vec::new();
        for i in 0..2 {
            let name = format!("w{i}.signer-test.example");
            let (key, vkey) = keygen(&dir, &name, "witness", &format!("w{i}.key"));
            let args: Vec<String> = vec![
                "log".into(),
                "witness".into(),
                "--addr".into(),
                "127.0.0.1:0".into(),
                "--name".into(),
                name,
                "--db".into(),
                p(&dir.join(format!("w{i}.redb"))),
                "--key-file".into(),
                p(&key),
                "--log-vkey".into(),
                log_vkey.clone(),
            ];
            let w = serve(&args);
            // A restart binds the same port.
            let mut args = args;
            args[3] = w.url.trim_start_matches("http://").to_owned();
            witness_args.push(args);
            witnesses.push(w);
            wkeys.push(VerifierKey::parse(&vkey).unwrap());
        }
        let mut args: Vec<String> = vec![
            "log".into(),
            "serve".into(),
            "--addr".into(),
            "127.0.0.1:0".into(),
            "--admin-addr".into(),
            "127.0.0.1:0".into(),
            "--origin".into(),
            ORIGIN.into(),
            "--db".into(),
            p(&dir.join("test-log.redb")),
            "--key-file".into(),
            p(&log_key),
            "--admin-token-file".into(),
            p(&dir.join("test-log.token")),
        ];
        for w in &witnesses {
            args.extend(["--witness".into(), w.url.clone()]);
        }
        let log = serve(&args);
        // The ceremony's anchors, with this log's (both witnesses required).
        let mut trust: Trust =
            bkv_protocol::cbor::from_slice(&std::fs::read(dir.join("trust.cbor")).unwrap()).unwrap();
        trust.log = LogAnchors {
            origin: ORIGIN.into(),
            log_key: VerifierKey::parse(&log_vkey).unwrap(),
            witnesses: wkeys,
            threshold: 2,
        };
        if let Some(t) = tokens {
            let mut tp = trust.anchors.third_party[0].clone();
            tp.key = t.third_party.clone();
            trust.anchors.third_party.push(tp);
            let mut op = trust.anchors.operator[0].clone();
            op.key = t.operator.clone();
            trust.anchors.operator.push(op);
        }
        std::fs::write(dir.join("test-trust.cbor"), bkv_protocol::cbor::to_vec(&trust)).unwrap();
        let keyset = Parsed::parse(&std::fs::read(dir.join("bundle.cbor")).unwrap()).unwrap().payload;
        std::fs::write(dir.join("keyset.cbor"), &keyset).unwrap();
        let node_binary = std::fs::read(env!("CARGO_BIN_EXE_bkv-node")).unwrap();
        let signer_args: Vec<String> = vec![
            "signer".into(),
            "serve".into(),
            "--addr".into(),
            "127.0.0.1:0".into(),
            "--db".into(),
            p(&dir.join("signer.redb")),
            "--trust".into(),
            p(&dir.join("test-trust.cbor")),
            "--vendor-roots".into(),
            p(&dir.join("vendor-roots.cbor")),
            "--software".into(),
            hex::encode(sha256(&node_binary)),
            "--firmware".into(),
            hex::encode(bkv_fleet::fleet::SOFT_HSM_FIRMWARE),
            "--log".into(),
            log.url.clone(),
            "--log-admin".into(),
            log.admin.clone().unwrap(),
            "--log-token-file".into(),
            p(&dir.join("test-log.token")),
        ];
        let mut signer_args = signer_args;
        let env: Vec<(&str, &Path)> = match tokens {
            Some(t) => {
                signer_args.extend(t.key_args("tp"));
                vec![("SOFTHSM2_CONF", t.conf("tp"))]
            }
            None => {
                signer_args.extend(["--key-file".into(), p(&dir.join("third-party/third-party.seed"))]);
                vec![]
            }
        };
        let signer = serve_env(&signer_args, &env);
        signer_args[3] = signer.url.trim_start_matches("http://").to_owned();
        World { dir, witnesses, witness_args, log, signer, signer_args, trust, keyset, _serial: serial }
    }

    /// `bkv operator countersign` with the operator's key file: its exit status and stdout.
    fn countersign(&self, out: &str) -> std::process::Output {
        let key = ["--key-file".to_owned(), p(&self.dir.join("orgs/operator.scalar"))];
        self.countersign_with(&key, &[], out)
    }

    /// `bkv operator countersign` with the operator's key in its token.
    fn countersign_with_token(&self, t: &Tokens, out: &str) -> std::process::Output {
        self.countersign_with(&t.key_args("op"), &[("SOFTHSM2_CONF", t.conf("op"))], out)
    }

    fn countersign_with(&self, key: &[String], env: &[(&str, &Path)], out: &str) -> std::process::Output {
        let mut cmd = bkv();
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd.args(["--json", "operator", "countersign", "--signer", &self.signer.url])
            .args(key)
            .args(["--trust", &p(&self.dir.join("test-trust.cbor"))])
            .args(["--keyset", &p(&self.dir.join("keyset.cbor"))])
            .args(["--evidence", &p(&self.dir.join("evidence.cbor"))])
            .args(["--out", &p(&self.dir.join(out))])
            .output()
            .unwrap()
    }

    fn operator_key(&self) -> Esp256Signer {
        let text = std::fs::read_to_string(self.dir.join("orgs/operator.scalar")).unwrap();
        Esp256Signer::from_scalar(&hex::decode(text.trim()).unwrap().try_into().unwrap()).unwrap()
    }

    fn evidence(&self) -> Vec<u8> {
        std::fs::read(self.dir.join("evidence.cbor")).unwrap()
    }

    /// POST `body` to the signer's `path`: status and body text.
    async fn post(&self, path: &str, body: Vec<u8>) -> (u16, Vec<u8>) {
        let http = bkv_client::http::client();
        let url = format!("{}{path}", self.signer.url);
        bkv_client::http::request(&http, reqwest::Method::POST, &url, Some((body, "application/cbor")))
            .await
            .unwrap()
    }

    fn request(&self, keyset: Vec<u8>, id: u8) -> SignRequest {
        SignRequest {
            v: 1,
            request_id: [id; 16],
            iat: bkv_client::clock::system_now(),
            keyset: ByteBuf::from(keyset),
            evidence: ByteBuf::from(self.evidence()),
        }
    }

    /// Every entry of the test log of `kind`.
    async fn entries(&self, kind: EntryType) -> Vec<LogEntry> {
        let log = LogClient::new(&self.log.url);
        let all = log.entries(0, 1024).await.unwrap();
        all.iter().map(|e| LogEntry::from_cbor(e).unwrap()).filter(|e| e.kind == kind).collect()
    }
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Two processes, two keys: the signer signs only what the operator asked for after
/// checking its evidence, and the operator's release verifies with the existing verifier;
/// a second release of the same request is the same bundle, logged once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_and_signer_release_a_bundle_clients_accept() {
    let w = World::new("signer-release");
    // The ceremony's operator keys and the third party's key are apart: the third party's
    // was made by its own process, in its own directory.
    assert!(w.dir.join("orgs/operator.scalar").exists());
    assert!(!w.dir.join("orgs/third-party.seed").exists());
    assert!(w.dir.join("third-party/third-party.seed").exists());
    let out = w.countersign("released.cbor");
    assert!(out.status.success(), "{}", text(&out.stderr));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let released = LoggedBundle::from_cbor(&std::fs::read(w.dir.join("released.cbor")).unwrap()).unwrap();
    assert_eq!(doc["result"]["bundle_sha256"], hex::encode(sha256(&released.bundle)));
    let verified = verify_bundle(
        &released.bundle,
        &w.trust.anchors,
        &ClientState::default(),
        bkv_client::clock::system_now(),
    )
    .unwrap();
    assert_eq!(Parsed::parse(&released.bundle).unwrap().payload, w.keyset);
    assert_eq!(verified.keyset().epoch, 1);
    // The operator asks again (a retry): the same bundle, and the log holds one entry each.
    let again = w.countersign("released-again.cbor");
    assert!(again.status.success(), "{}", text(&again.stderr));
    assert_eq!(
        std::fs::read(w.dir.join("released-again.cbor")).unwrap(),
        std::fs::read(w.dir.join("released.cbor")).unwrap()
    );
    assert_eq!(w.entries(EntryType::Bundle).await.len(), 1);
    assert_eq!(w.entries(EntryType::Evidence).await.len(), 1);
    let _ = std::fs::remove_dir_all(&w.dir);
}

/// Neither organisation alone: a request not signed by the operator's key gets nothing;
/// what the signer hands out before the countersignature is refused by every client; a
/// countersignature over another intermediate (replayed from another request) or by the
/// signer's own key is refused; the operator signing as "third party" is refused too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn neither_organisation_alone_makes_a_bundle_clients_accept() {
    let w = World::new("signer-alone");
    let now = bkv_client::clock::system_now();
    let operator = w.operator_key();
    let third_party_seed = std::fs::read_to_string(w.dir.join("third-party/third-party.seed")).unwrap();
    let third_party =
        Ed25519Signer::from_seed(&hex::decode(third_party_seed.trim()).unwrap().try_into().unwrap());
    // The operator's key on both sides: no third-party signature, no bundle.
    let forged = bkv_protocol::validation_bundle::countersign(
        &sign(
            &w.keyset,
            &Claims { iss: "anyone".into(), sub: w.trust.anchors.fleet_id.clone(), iat: now },
            &operator,
        ),
        &operator,
    )
    .unwrap();
    let e = verify_bundle(&forged, &w.trust.anchors, &ClientState::default(), now).unwrap_err();
    assert_eq!(e.code(), "bundle.signer.unknown");
    // A request signed by another key than the operator's.
    let stranger = Esp256Signer::generate(&mut rand_core::OsRng);
    let (status, body) =
        w.post("/v1/sign", seal_sign_request(&w.request(w.keyset.clone(), 1), &stranger)).await;
    assert_eq!((status, text(&body)), (400, "signer.request.unauthenticated".into()));
    // The operator's request: the intermediate alone is refused by clients.
    let (status, body) =
        w.post("/v1/sign", seal_sign_request(&w.request(w.keyset.clone(), 2), &operator)).await;
    assert_eq!(status, 200, "{}", text(&body));
    let response = SignResponse::from_cbor(&body).unwrap();
    let e =
        verify_bundle(&response.intermediate, &w.trust.anchors, &ClientState::default(), now).unwrap_err();
    assert_eq!(e.code(), "bundle.countersignature.missing");
    // A countersignature over another request's intermediate, and one by the signer's key.
    let mut other = bkv_protocol::validation_bundle::FleetKeySet::from_bytes(&w.keyset).unwrap();
    other.guess_limit += 1;
    let theirs = sign(
        &other.to_bytes(),
        &Claims { iss: "x".into(), sub: other.fleet_id.clone(), iat: now },
        &third_party,
    );
    for cs in [
        countersignature(&theirs, &operator).unwrap(),
        countersignature(&response.intermediate, &third_party).unwrap(),
    ] {
        let req = CountersignRequest { v: 1, request_id: [2; 16], countersignature: ByteBuf::from(cs) };
        let (status, body) = w.post("/v1/countersign", req.to_cbor()).await;
        assert_eq!((status, text(&body)), (400, "signer.countersignature.invalid".into()));
    }
    assert!(w.entries(EntryType::Bundle).await.is_empty(), "nothing was logged as a bundle");
    let _ = std::fs::remove_dir_all(&w.dir);
}

/// spec/signer-api.md §3 S6: the signer signs one keyset per fleet and epoch.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_keyset_for_the_same_epoch_is_refused() {
    let w = World::new("signer-epoch");
    let operator = w.operator_key();
    let (status, body) =
        w.post("/v1/sign", seal_sign_request(&w.request(w.keyset.clone(), 1), &operator)).await;
    assert_eq!(status, 200, "{}", text(&body));
    let mut other = bkv_protocol::validation_bundle::FleetKeySet::from_bytes(&w.keyset).unwrap();
    other.guess_limit += 1;
    let (status, body) =
        w.post("/v1/sign", seal_sign_request(&w.request(other.to_bytes(), 2), &operator)).await;
    assert_eq!((status, text(&body)), (409, "signer.epoch.taken".into()));
    let _ = std::fs::remove_dir_all(&w.dir);
}

/// spec/signer-api.md §3 C1: a countersignature for no pending signing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_countersignature_for_no_pending_request_is_unknown() {
    let w = World::new("signer-unknown");
    let req = CountersignRequest { v: 1, request_id: [9; 16], countersignature: ByteBuf::from(vec![0xa0]) };
    let (status, body) = w.post("/v1/countersign", req.to_cbor()).await;
    assert_eq!((status, text(&body)), (404, "signer.request.unknown".into()));
    let _ = std::fs::remove_dir_all(&w.dir);
}

/// The signer killed between the countersignature and the checkpoint (a witness is down,
/// so no checkpoint can be cosigned after the bundle entry is appended), then restarted:
/// the operator's retry releases exactly one bundle for the epoch, logged once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signer_killed_before_the_checkpoint_releases_one_bundle_logged_once() {
    let mut w = World::new("signer-crash");
    drop(w.witnesses.pop());
    let failed = w.countersign("released.cbor");
    assert_eq!(failed.status.code(), Some(3), "{}", text(&failed.stderr));
    assert!(!w.dir.join("released.cbor").exists());
    assert_eq!(w.entries(EntryType::Bundle).await.len(), 1, "the bundle entry was appended");
    // SIGKILL the signer, bring the witness back, restart the signer on its state.
    w.signer.child.0.kill().unwrap();
    w.signer.child.0.wait().unwrap();
    w.witnesses.push(serve(&w.witness_args[1]));
    w.signer = serve(&w.signer_args);
    let out = w.countersign("released.cbor");
    assert!(out.status.success(), "{}", text(&out.stderr));
    let released = LoggedBundle::from_cbor(&std::fs::read(w.dir.join("released.cbor")).unwrap()).unwrap();
    verify_bundle(
        &released.bundle,
        &w.trust.anchors,
        &ClientState::default(),
        bkv_client::clock::system_now(),
    )
    .unwrap();
    assert_eq!(w.entries(EntryType::Bundle).await.len(), 1, "logged once");
    assert_eq!(w.entries(EntryType::Evidence).await.len(), 1);
    let _ = std::fs::remove_dir_all(&w.dir);
}

/// The two organisations' key stores: one SoftHSM2 token each, in its own directory and
/// configuration, with a key generated in it by `bkv keys init`.
struct Tokens {
    root: PathBuf,
    module: PathBuf,
    third_party: bkv_protocol::crypto::PublicKey,
    operator: bkv_protocol::crypto::PublicKey,
    confs: Vec<PathBuf>,
}

impl Tokens {
    /// The SoftHSM2 configuration of `org` (`tp` or `op`).
    fn conf(&self, org: &str) -> &Path {
        &self.confs[usize::from(org == "op")]
    }

    fn key_args(&self, org: &str) -> Vec<String> {
        vec![
            "--pkcs11-module".into(),
            p(&self.module),
            "--token-label".into(),
            org.into(),
            "--key-label".into(),
            format!("{org}-signing"),
            "--pin-file".into(),
            p(&self.root.join("pin")),
        ]
    }

    /// A token per organisation and a key in each: the attributes the token reports for
    /// each key are checked (never extractable, sensitive).
    fn init(root: &Path) -> Tokens {
        let module = PathBuf::from(
            std::env::var("BKV_PKCS11_MODULE").unwrap_or_else(|_| "/usr/lib/softhsm/libsofthsm2.so".into()),
        );
        std::fs::create_dir_all(root).unwrap();
        std::fs::write(root.join("pin"), "5678\n").unwrap();
        let (mut keys, mut confs) = (Vec::new(), Vec::new());
        for (org, alg) in [("tp", "ed25519"), ("op", "esp256")] {
            let dir = root.join(org);
            std::fs::create_dir_all(dir.join("tokens")).unwrap();
            let conf = dir.join("softhsm2.conf");
            let settings =
                format!("directories.tokendir = {}\nobjectstore.backend = file\n", p(&dir.join("tokens")));
            std::fs::write(&conf, settings).unwrap();
            let out = std::process::Command::new("softhsm2-util")
                .env("SOFTHSM2_CONF", &conf)
                .args(["--init-token", "--free", "--label", org, "--so-pin", "1234", "--pin", "5678"])
                .output()
                .expect("softhsm2-util (Debian's softhsm2; .ci/run installs it)");
            assert!(out.status.success(), "{}", text(&out.stderr));
            let out = bkv()
                .env("SOFTHSM2_CONF", &conf)
                .args([
                    "--json",
                    "keys",
                    "init",
                    "--alg",
                    alg,
                    "--pkcs11-module",
                    &p(&module),
                    "--token-label",
                    org,
                ])
                .args(["--key-label", &format!("{org}-signing"), "--pin-file", &p(&root.join("pin"))])
                .output()
                .unwrap();
            assert!(out.status.success(), "{}", text(&out.stderr));
            let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
            let attrs = &doc["result"]["attributes"];
            assert_eq!(attrs["extractable"].as_bool(), Some(false), "{doc}");
            assert_eq!(attrs["sensitive"].as_bool(), Some(true), "{doc}");
            assert_eq!(attrs["never_extractable"].as_bool(), Some(true), "{doc}");
            let cbor = hex::decode(doc["result"]["public_key_cbor"].as_str().unwrap()).unwrap();
            keys.push(bkv_protocol::cbor::from_slice::<bkv_protocol::crypto::PublicKey>(&cbor).unwrap());
            confs.push(conf);
        }
        let operator = keys.pop().unwrap();
        let third_party = keys.pop().unwrap();
        Tokens { root: root.to_owned(), module, third_party, operator, confs }
    }
}

/// Whether the PKCS#11 tests run here (`.ci/run` sets `BKV_PKCS11_TESTS=1` and installs
/// SoftHSM2); elsewhere they say loudly that they were skipped. A test that runs records
/// its name in `BKV_PKCS11_RAN`, so `.ci/run` can check that they all ran.
fn pkcs11_enabled(test: &str) -> bool {
    if std::env::var("BKV_PKCS11_TESTS").as_deref() != Ok("1") {
        eprintln!(
            "\n*** SKIPPED {test}: set BKV_PKCS11_TESTS=1 to run it (needs SoftHSM2; .ci/run does) ***\n"
        );
        return false;
    }
    if let Ok(path) = std::env::var("BKV_PKCS11_RAN") {
        use std::io::Write as _;
        let mut f = std::fs::OpenOptions::new().create(true).append(true).open(path).expect("BKV_PKCS11_RAN");
        writeln!(f, "{test}").unwrap();
    }
    true
}

/// Both organisation keys generated in (separate) SoftHSM2 tokens, never extractable; the
/// signer and the operator, each its own process with its own token, release a bundle that
/// the existing verifier accepts, signed by the token keys (Ed25519 by `CKM_EDDSA`, ESP256
/// by SHA-256 then `CKM_ECDSA`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_in_pkcs11_tokens_sign_and_countersign_a_bundle_clients_accept() {
    if !pkcs11_enabled("keys_in_pkcs11_tokens_sign_and_countersign_a_bundle_clients_accept") {
        return;
    }
    let root = crate::support::tempdir("pkcs11-tokens");
    let tokens = Tokens::init(&root);
    let w = World::with_keys("signer-pkcs11", Some(&tokens));
    let out = w.countersign_with_token(&tokens, "released.cbor");
    assert!(out.status.success(), "{}", text(&out.stderr));
    let released = LoggedBundle::from_cbor(&std::fs::read(w.dir.join("released.cbor")).unwrap()).unwrap();
    let now = bkv_client::clock::system_now();
    verify_bundle(&released.bundle, &w.trust.anchors, &ClientState::default(), now).unwrap();
    // Signed by the token keys, not the ceremony's software keys.
    let parsed = Parsed::parse(&released.bundle).unwrap();
    assert_eq!(parsed.kid, tokens.third_party.kid().to_vec());
    assert_eq!(parsed.countersignature.as_ref().unwrap().kid, tokens.operator.kid().to_vec());
    // A client pinning only the token keys accepts it too.
    let mut only_tokens = w.trust.anchors.clone();
    only_tokens.third_party.remove(0);
    only_tokens.operator.remove(0);
    verify_bundle(&released.bundle, &only_tokens, &ClientState::default(), now).unwrap();
    let _ = std::fs::remove_dir_all(&w.dir);
    let _ = std::fs::remove_dir_all(&root);
}

/// No process holds both organisations' keys, by construction: outside tests, no source
/// file names both key types (`ThirdPartyKey` of bkv-third-party, `OperatorKey` of
/// bkv-operator, crates that do not depend on each other), so no function uses both.
#[test]
fn no_source_file_outside_tests_names_both_organisations_key_types() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let mut files = Vec::new();
    let mut todo = vec![root.clone()];
    while let Some(dir) = todo.pop() {
        for entry in std::fs::read_dir(&dir).unwrap().flatten() {
            let path = entry.path();
            let name = entry.file_name().to_string_lossy().into_owned();
            if path.is_dir() {
                if !matches!(name.as_str(), "target" | "tests" | ".git" | "fuzz" | "benches") {
                    todo.push(path);
                }
            } else if name.ends_with(".rs") && path.components().any(|c| c.as_os_str() == "src") {
                files.push(path);
            }
        }
    }
    assert!(files.len() > 50, "{} source files", files.len());
    let code =
        |text: &str, word: &str| text.lines().any(|l| !l.trim_start().starts_with("//") && l.contains(word));
    let both: Vec<_> = files
        .iter()
        .filter(|f| {
            let text = std::fs::read_to_string(f).unwrap();
            code(&text, "ThirdPartyKey") && code(&text, "OperatorKey")
        })
        .collect();
    assert!(both.is_empty(), "these name both organisations' key types: {both:?}");
}

/// spec/signer-api.md §3.1 R2: the signer logs a retirement only of an epoch it released,
/// for the successor it released; the operator's key alone cannot write to the log.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retirement_the_signer_did_not_release_is_refused() {
    use bkv_protocol::signer_api::{RetireRequest, seal_retire_request};
    let w = World::new("signer-retire");
    let out = w.countersign("released.cbor");
    assert!(out.status.success(), "{}", text(&out.stderr));
    let operator = w.operator_key();
    let fleet_id = w.trust.anchors.fleet_id.clone();
    let retire = |epoch: u64, successor: [u8; 32]| RetireRequest {
        v: 1,
        fleet_id: fleet_id.clone(),
        epoch,
        successor,
        iat: bkv_client::clock::system_now(),
    };
    // Epoch 1 was released, but no epoch 2; epoch 7 was never released.
    for r in [retire(1, [7; 32]), retire(7, [7; 32])] {
        let (status, body) = w.post("/v1/retire", seal_retire_request(&r, &operator)).await;
        assert_eq!((status, text(&body)), (409, "signer.retirement.invalid".into()), "{r:?}");
    }
    let stranger = Esp256Signer::generate(&mut rand_core::OsRng);
    let (status, body) = w.post("/v1/retire", seal_retire_request(&retire(1, [7; 32]), &stranger)).await;
    assert_eq!((status, text(&body)), (400, "signer.request.unauthenticated".into()));
    assert!(w.entries(EntryType::Retirement).await.is_empty());
    let _ = std::fs::remove_dir_all(&w.dir);
}
