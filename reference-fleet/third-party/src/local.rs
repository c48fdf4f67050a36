//! An in-process log with witnesses on localhost, for `bkv demo`, `bkv fleet up` and tests
//! (spec/audit-log.md §8): a redb log and `witnesses` redb witnesses under `dir`, served
//! over HTTP on 127.0.0.1, with anchors that require `threshold` cosignatures. Keys are
//! kept as seed files in `dir`, so starting it again on the same `dir` resumes the same log.

use crate::log_server::{self as server, AdminToken, LogService, Running};
use crate::witness::{self, Witness};
use crate::{Error, Result};
use bkv_client::LogClient;
use bkv_protocol::audit_log::LogAnchors;
use bkv_protocol::audit_log::note::{SIG_TYPE_ED25519, VerifierKey, verifier_key};
use bkv_protocol::crypto::Ed25519Signer;
use std::path::Path;
use std::sync::Arc;

/// The key whose seed is in `path`, or a new one whose seed is written there (owner-only),
/// so that a restarted local log keeps its identity and its clients' anchors stay valid.
fn persistent_key(
    path: &Path,
    rng: &mut (impl rand_core::CryptoRng + rand_core::RngCore),
) -> Result<Ed25519Signer> {
    if path.exists() {
        return Ok(Ed25519Signer::from_seed(&crate::read_seed(path)?));
    }
    let key = Ed25519Signer::generate(rng);
    let text = zeroize::Zeroizing::new(hex::encode(&key.seed()[..]));
    crate::write_secret_file(path, text.as_bytes())?;
    Ok(key)
}

/// `DIR/ports.json`: where the log and its witnesses listen.
#[derive(serde::Serialize, serde::Deserialize)]
struct Ports {
    log: String,
    admin: String,
    witnesses: Vec<String>,
}

impl Ports {
    /// The ports stored in `file` by an earlier start, if any.
    fn read(file: &Path) -> Result<Option<Ports>> {
        match std::fs::read(file) {
            Ok(b) => serde_json::from_slice(&b)
                .map(Some)
                .map_err(|e| Error::Storage(format!("{}: not the log's ports: {e}", file.display()))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::Storage(format!("{}: {e}", file.display()))),
        }
    }
}

/// A running local log; dropping it stops the servers (tasks of this process, or child
/// processes).
pub struct LocalLog {
    /// Client of the log server.
    pub client: LogClient,
    /// Anchors a client pins for this log.
    pub anchors: LogAnchors,
    /// The admin listener's URL: where its writer, the third party's signer, writes with the
    /// token in `DIR/admin.token` (a log in this process also gives `client` that token).
    pub admin: String,
    _servers: Vec<Running>,
    /// The child processes of [`LocalLog::spawn`], killed when dropped.
    _children: Vec<tokio::process::Child>,
}

/// Read a `bkv` child's standard output until `listening on URL` (within 30 s), then keep
/// draining it; the URL and, for a log, its admin URL (`admin on URL`). `what` names the
/// child in errors.
pub async fn listening(child: &mut tokio::process::Child, what: &str) -> Result<(String, Option<String>)> {
    use tokio::io::AsyncBufReadExt;
    let out = child.stdout.take().ok_or_else(|| Error::Http(format!("{what}: no standard output")))?;
    let mut lines = tokio::io::BufReader::new(out).lines();
    let mut admin = None;
    loop {
        let line = tokio::time::timeout(std::time::Duration::from_secs(30), lines.next_line())
            .await
            .map_err(|_| Error::Http(format!("{what} did not start within 30 s")))?
            .map_err(|e| Error::Http(format!("{what}: {e}")))?
            .ok_or_else(|| Error::Http(format!("{what} exited before it listened; see its error above")))?;
        if let Some(a) = line.strip_prefix("admin on ") {
            admin = a.split(' ').next().map(str::to_owned);
        }
        if let Some(u) = line.strip_prefix("listening on ") {
            // Keep reading, so that the child never blocks on a full pipe.
            tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
            return Ok((u.to_owned(), admin));
        }
    }
}

/// The verifier key in `DIR/NAME.vkey`, or a new key that a `bkv log keygen` child writes
/// to `DIR/NAME.seed` (this process reads only the verifier key it prints).
async fn child_key(bkv: &Path, dir: &Path, name: &str, key_name: &str, kind: &str) -> Result<VerifierKey> {
    let vkey_file = dir.join(format!("{name}.vkey"));
    let seed = dir.join(format!("{name}.seed"));
    if !vkey_file.exists() {
        if seed.exists() {
            // A log started in-process before (its seed, no verifier key file).
            let t = if kind == "log" {
                SIG_TYPE_ED25519
            } else {
                bkv_protocol::audit_log::note::SIG_TYPE_COSIGNATURE
            };
            let vkey = verifier_key(key_name, t, &Ed25519Signer::from_seed(&crate::read_seed(&seed)?))?;
            std::fs::write(&vkey_file, vkey.encode())
                .map_err(|e| Error::Storage(format!("{}: {e}", vkey_file.display())))?;
        } else {
            let out = tokio::process::Command::new(bkv)
                .args(["log", "keygen", "--name", key_name, "--kind", kind, "--out"])
                .arg(&seed)
                .output()
                .await
                .map_err(|e| Error::Http(format!("cannot run {} log keygen: {e}", bkv.display())))?;
            if !out.status.success() {
                return Err(Error::Storage(format!(
                    "bkv log keygen {key_name}: {}",
                    String::from_utf8_lossy(&out.stderr).trim()
                )));
            }
            std::fs::write(&vkey_file, String::from_utf8_lossy(&out.stdout).trim())
                .map_err(|e| Error::Storage(format!("{}: {e}", vkey_file.display())))?;
        }
    }
    let text = std::fs::read_to_string(&vkey_file)
        .map_err(|e| Error::Storage(format!("{}: {e}", vkey_file.display())))?;
    Ok(VerifierKey::parse(text.trim())?)
}

impl LocalLog {
    /// Start (or resume) the log in `dir` as child processes of this one: `witnesses`
    /// `bkv log witness` and one `bkv log serve` (binary `bkv`), each with its own key,
    /// made by a `bkv log keygen` child; this process holds no log or witness key, only the
    /// log's admin token (`DIR/admin.token`, for the third party's signer). Each child
    /// stops when this process exits (its standard input closes) or the log is dropped.
    pub async fn spawn(
        bkv: &Path,
        dir: &Path,
        origin: &str,
        witnesses: usize,
        threshold: u64,
    ) -> Result<LocalLog> {
        std::fs::create_dir_all(dir).map_err(|e| Error::Storage(format!("{}: {e}", dir.display())))?;
        let ports_file = dir.join("ports.json");
        let stored = Ports::read(&ports_file)?;
        let at = |a: Option<&String>| a.cloned().unwrap_or_else(|| "127.0.0.1:0".into());
        let log_vkey = child_key(bkv, dir, "log", origin, "log").await?;
        let spawn = |args: Vec<std::ffi::OsString>| {
            tokio::process::Command::new(bkv)
                .args(args)
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::piped())
                .kill_on_drop(true)
                .spawn()
                .map_err(|e| Error::Http(format!("cannot start {}: {e}", bkv.display())))
        };
        let (mut urls, mut wkeys, mut children) = (Vec::new(), Vec::new(), Vec::new());
        for i in 0..witnesses {
            let name = format!("witness{i}.{origin}");
            wkeys.push(child_key(bkv, dir, &format!("witness{i}"), &name, "witness").await?);
            let mut child = spawn(vec![
                "log".into(),
                "witness".into(),
                "--supervised".into(),
                "--addr".into(),
                at(stored.as_ref().and_then(|p| p.witnesses.get(i))).into(),
                "--name".into(),
                name.into(),
                "--db".into(),
                dir.join(format!("witness{i}.redb")).into(),
                "--key-file".into(),
                dir.join(format!("witness{i}.seed")).into(),
                "--log-vkey".into(),
                log_vkey.encode().into(),
            ])?;
            urls.push(listening(&mut child, &format!("witness {i}")).await?.0);
            children.push(child);
        }
        let mut args: Vec<std::ffi::OsString> = vec![
            "log".into(),
            "serve".into(),
            "--supervised".into(),
            "--addr".into(),
            at(stored.as_ref().map(|p| &p.log)).into(),
            "--admin-addr".into(),
            at(stored.as_ref().map(|p| &p.admin)).into(),
            "--origin".into(),
            origin.into(),
            "--db".into(),
            dir.join("log.redb").into(),
            "--key-file".into(),
            dir.join("log.seed").into(),
            "--admin-token-file".into(),
            dir.join("admin.token").into(),
        ];
        for u in &urls {
            args.extend(["--witness".into(), u.into()]);
        }
        let mut child = spawn(args)?;
        let (url, admin) = listening(&mut child, "the log").await?;
        children.push(child);
        let admin = admin.ok_or_else(|| Error::Http("the log printed no admin listener".into()))?;
        // This process only reads the log: its writer is the third party's signer, which
        // reads the admin token itself (`admin_token`) and is told the admin URL.
        let client = LogClient::new(&url);
        let hostport = |u: &str| u.trim_start_matches("http://").trim_start_matches("https://").to_owned();
        if stored.is_none() {
            let ports = Ports {
                log: hostport(&url),
                admin: hostport(&admin),
                witnesses: urls.iter().map(|u| hostport(u)).collect(),
            };
            std::fs::write(&ports_file, serde_json::to_vec_pretty(&ports).expect("serializable"))
                .map_err(|e| Error::Storage(format!("{}: {e}", ports_file.display())))?;
        }
        let anchors =
            LogAnchors { origin: origin.to_owned(), log_key: log_vkey, witnesses: wkeys, threshold };
        anchors.validate()?;
        Ok(LocalLog { client, anchors, admin, _servers: Vec::new(), _children: children })
    }

    /// Start (or resume) the log in `dir` with origin `origin` as tasks of this process
    /// (library tests); new keys come from `rng`. [`LocalLog::spawn`] runs it as processes.
    pub async fn start(
        dir: &Path,
        origin: &str,
        witnesses: usize,
        threshold: u64,
        rng: &mut (impl rand_core::CryptoRng + rand_core::RngCore),
    ) -> Result<LocalLog> {
        std::fs::create_dir_all(dir).map_err(|e| Error::Storage(format!("{}: {e}", dir.display())))?;
        let log_key = persistent_key(&dir.join("log.seed"), rng)?;
        let log_vkey = verifier_key(origin, SIG_TYPE_ED25519, &log_key)?;
        // The ports of an earlier start, so that a restart serves where clients and nodes
        // were told the log is; a new log takes ports the OS picks and stores them.
        let ports_file = dir.join("ports.json");
        let stored = Ports::read(&ports_file)?;
        let listen = |at: Option<&str>| -> Result<std::net::TcpListener> {
            let addr = at.unwrap_or("127.0.0.1:0");
            std::net::TcpListener::bind(addr).map_err(|e| {
                Error::Http(format!("cannot listen on {addr} (stored in {}): {e}", ports_file.display()))
            })
        };
        let (mut urls, mut wkeys, mut servers) = (Vec::new(), Vec::new(), Vec::new());
        for i in 0..witnesses {
            let name = format!("witness{i}.{origin}");
            let w = Witness::open(
                &dir.join(format!("witness{i}.redb")),
                &name,
                persistent_key(&dir.join(format!("witness{i}.seed")), rng)?,
                log_vkey.clone(),
            )?;
            wkeys.push(w.vkey());
            let at = stored.as_ref().and_then(|p| p.witnesses.get(i)).map(String::as_str);
            let running = server::spawn_on(listen(at)?, witness::router(Arc::new(w)))?;
            urls.push(format!("http://{}", running.addr));
            servers.push(running);
        }
        let log = LogService::open(&dir.join("log.redb"), origin, log_key, urls)?;
        let log = Arc::new(log);
        let token = AdminToken::load_or_create(&dir.join("admin.token"), rng)?;
        let running =
            server::spawn_on(listen(stored.as_ref().map(|p| p.log.as_str()))?, server::router(log.clone()))?;
        let admin = server::spawn_on(
            listen(stored.as_ref().map(|p| p.admin.as_str()))?,
            server::admin_router(log, token.clone()),
        )?;
        let admin_url = format!("http://{}", admin.addr);
        let client =
            LogClient::new(&format!("http://{}", running.addr)).with_admin(&admin_url, token.expose());
        let ports = Ports {
            log: running.addr.to_string(),
            admin: admin.addr.to_string(),
            witnesses: servers[..witnesses].iter().map(|r| r.addr.to_string()).collect(),
        };
        servers.push(running);
        servers.push(admin);
        if stored.is_none() {
            std::fs::write(&ports_file, serde_json::to_vec_pretty(&ports).expect("serializable"))
                .map_err(|e| Error::Storage(format!("{}: {e}", ports_file.display())))?;
        }
        let anchors =
            LogAnchors { origin: origin.to_owned(), log_key: log_vkey, witnesses: wkeys, threshold };
        anchors.validate()?;
        Ok(LocalLog { client, anchors, admin: admin_url, _servers: servers, _children: Vec::new() })
    }
}
