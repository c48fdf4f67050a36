//! spec/audit-log.md §8.1: the log server (axum over HTTP, redb storage).

use crate::storage::LogStore;
use crate::{Error, Result};
use axum::extract::{Path as UrlPath, State};
use axum::http::StatusCode;
use axum::response::IntoResponse as _;
use axum::routing::{get, post};
pub use bkv_client::log::{ConsistencyJson, InclusionJson, MAX_ENTRIES_PER_REQUEST};
use bkv_protocol::audit_log::Checkpoint;
use bkv_protocol::audit_log::note::{self, Note, NoteSignature, SIG_TYPE_ED25519, VerifierKey};
use bkv_protocol::crypto::Ed25519Signer;
use serde::Serialize;
use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::Mutex;

/// One append waiting for the writer, and where its index goes.
type Waiting = (Vec<u8>, tokio::sync::oneshot::Sender<Result<u64>>);

/// The most entries one batch (one transaction, one fsync) carries.
const MAX_BATCH: usize = 1024;

/// The log: storage, signing key, and the witnesses it asks for cosignatures.
pub struct LogService {
    origin: String,
    signer: Ed25519Signer,
    store: Arc<Mutex<LogStore>>,
    /// The batch writer: its queue and its thread (joined on drop, so the database is
    /// closed when the service is gone).
    writer: Option<(std::sync::mpsc::Sender<Waiting>, std::thread::JoinHandle<()>)>,
    witnesses: Vec<String>,
    witness_sizes: Mutex<HashMap<String, u64>>,
    publish: tokio::sync::Mutex<()>,
    /// Fault injection: the writer aborts the process right after this many appends of
    /// this process are durable (0: never).
    crash_after: Arc<std::sync::atomic::AtomicU64>,
    http: reqwest::Client,
}

impl LogService {
    /// Open the log stored at `db` with origin `origin`, signing with `signer` and asking
    /// the witnesses at `witnesses` (base URLs) to cosign.
    pub fn open(db: &Path, origin: &str, signer: Ed25519Signer, witnesses: Vec<String>) -> Result<Self> {
        note::verifier_key(origin, SIG_TYPE_ED25519, &signer)?;
        let store = Arc::new(Mutex::new(LogStore::open(db)?));
        let crash_after = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let (tx, rx) = std::sync::mpsc::channel();
        let (writer_store, writer_crash) = (store.clone(), crash_after.clone());
        let thread = std::thread::Builder::new()
            .name("log-writer".into())
            .spawn(move || write_batches(&writer_store, &rx, &writer_crash))
            .map_err(|e| Error::Storage(format!("cannot start the log writer: {e}")))?;
        Ok(LogService {
            origin: origin.to_owned(),
            signer,
            store,
            writer: Some((tx, thread)),
            witnesses,
            witness_sizes: Mutex::new(HashMap::new()),
            publish: tokio::sync::Mutex::new(()),
            crash_after,
            http: bkv_client::http::client(),
        })
    }

    /// Fault injection for crash tests: abort the process right after the n-th durable
    /// append of this process, before the append is acknowledged. Only a build with the
    /// test-only `fault-injection` feature has the hook; any other build refuses.
    pub fn crash_after_appends(self, n: Option<u64>) -> Result<Self> {
        if n.is_some() && !cfg!(feature = "fault-injection") {
            return Err(Error::Storage(
                "this build has no fault injection (feature `fault-injection`, tests only)".into(),
            ));
        }
        // The writer checks the count after each durable batch.
        self.crash_after.store(n.unwrap_or(0), std::sync::atomic::Ordering::SeqCst);
        Ok(self)
    }

    /// The log's verifier key.
    pub fn vkey(&self) -> VerifierKey {
        note::verifier_key(&self.origin, SIG_TYPE_ED25519, &self.signer).expect("checked in open")
    }

    fn store(&self) -> std::sync::MutexGuard<'_, LogStore> {
        self.store.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Durably append an entry and return its index (spec/audit-log.md §8.1). Appends that
    /// arrive while a batch is being written go into the next batch: one transaction and
    /// one fsync for all of them, each answered with its own index after that commit.
    pub async fn append(&self, entry: &[u8]) -> Result<u64> {
        // Only well-formed, bounded entries are logged (spec/audit-log.md §5): one the entry
        // bundles of §8.1 could not serve would stop every tile client.
        bkv_protocol::audit_log::LogEntry::from_cbor(entry)?;
        let (tx, rx) = tokio::sync::oneshot::channel();
        let stopped = || Error::Storage("the log writer stopped".into());
        self.writer.as_ref().ok_or_else(stopped)?.0.send((entry.to_vec(), tx)).map_err(|_| stopped())?;
        rx.await.map_err(|_| stopped())?
    }

    /// Sign a checkpoint at the current size, collect witness cosignatures, store and
    /// return the note.
    pub async fn publish_checkpoint(&self) -> Result<String> {
        let _one_at_a_time = self.publish.lock().await;
        let (size, root) = {
            let s = self.store();
            (s.tree().size(), s.tree().root())
        };
        let body = Checkpoint { origin: self.origin.clone(), size, root }.body();
        let mut signatures = vec![note::sign_note(&body, &self.origin, &self.signer)?];
        let signed = Note { text: body.clone(), signatures: signatures.clone() }.encode();
        for url in &self.witnesses {
            match self.ask_witness(url, size, &signed).await {
                Ok(sig) => signatures.push(sig),
                Err(e) => tracing::warn!("witness {url} did not cosign: {e}"),
            }
        }
        let note = Note { text: body, signatures }.encode();
        self.store().put_checkpoint(size, &note)?;
        Ok(note)
    }

    async fn ask_witness(&self, url: &str, size: u64, signed: &str) -> Result<NoteSignature> {
        let mut old =
            self.witness_sizes.lock().unwrap_or_else(|p| p.into_inner()).get(url).copied().unwrap_or(0);
        for _ in 0..2 {
            let proof = if old > 0 && old < size {
                self.store().tree().consistency_proof(old, size).unwrap_or_default()
            } else {
                Vec::new()
            };
            let body = crate::witness::encode_request(old, &proof, signed);
            let (status, resp) = bkv_client::http::request(
                &self.http,
                reqwest::Method::POST,
                &format!("{url}/add-checkpoint"),
                Some((body.into_bytes(), "text/plain")),
            )
            .await
            .map_err(|e| Error::Http(e.0))?;
            match status {
                200 => {
                    let lines = String::from_utf8(resp).map_err(|_| Error::Http("bad cosignature".into()))?;
                    let parsed = Note::parse(&format!("x\n\n{lines}"))?;
                    self.witness_sizes.lock().unwrap_or_else(|p| p.into_inner()).insert(url.to_owned(), size);
                    return parsed.signatures.into_iter().next().ok_or(Error::Http("no cosignature".into()));
                }
                409 => {
                    old = std::str::from_utf8(&resp)
                        .ok()
                        .and_then(|s| s.trim_end_matches('\n').parse().ok())
                        .ok_or_else(|| Error::Http("bad 409 body".into()))?;
                }
                s => return Err(Error::Http(format!("{s} {}", String::from_utf8_lossy(&resp)))),
            }
        }
        Err(Error::Http("witness conflict persists".into()))
    }
}

type Reply = (StatusCode, [(axum::http::header::HeaderName, &'static str); 1], Vec<u8>);

fn reply(status: StatusCode, ctype: &'static str, body: Vec<u8>) -> Reply {
    (status, [(axum::http::header::CONTENT_TYPE, ctype)], body)
}

fn fail(e: Error) -> Reply {
    let status = if matches!(e, Error::Protocol(_)) {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::INTERNAL_SERVER_ERROR
    };
    reply(status, "text/plain", e.code().as_bytes().to_vec())
}

fn not_found() -> Reply {
    reply(StatusCode::NOT_FOUND, "text/plain", b"not found".to_vec())
}

fn json<T: Serialize>(v: &T) -> Reply {
    reply(StatusCode::OK, "application/json", serde_json::to_vec(v).unwrap_or_default())
}

/// The public read API of spec/audit-log.md §8.1: checkpoints, entries, proofs and tiles.
/// It has no write endpoint: those are on [`admin_router`], on another listener.
pub fn router(log: Arc<LogService>) -> axum::Router {
    axum::Router::new()
        .route("/checkpoint", get(latest_checkpoint))
        .route("/checkpoint/{size}", get(checkpoint_at))
        .route("/entries/{start}/{end}", get(entries))
        .route("/proof/inclusion/{index}/{size}", get(inclusion))
        .route("/proof/consistency/{size1}/{size2}", get(consistency))
        .route("/tile/{*path}", get(tile))
        .with_state(log)
}

/// The bearer token of the log's admin listener (spec/audit-log.md §8.1): only the
/// third-party signer holds it. Compared in constant time, through SHA-256 digests so that
/// not even its length leaks.
#[derive(Clone)]
pub struct AdminToken(zeroize::Zeroizing<String>);

impl AdminToken {
    /// The token in `path` (its text, trimmed); an empty or short one is refused.
    pub fn from_file(path: &Path) -> Result<Self> {
        let text = zeroize::Zeroizing::new(
            std::fs::read_to_string(path).map_err(|e| Error::Storage(format!("{}: {e}", path.display())))?,
        );
        let token = text.trim();
        if token.len() < 32 || token.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(Error::Storage(format!(
                "{}: an admin token is at least 32 characters, without spaces",
                path.display()
            )));
        }
        Ok(AdminToken(zeroize::Zeroizing::new(token.to_owned())))
    }

    /// A new random token (32 bytes, hex).
    pub fn generate(rng: &mut (impl rand_core::CryptoRng + rand_core::RngCore)) -> Self {
        let mut bytes = zeroize::Zeroizing::new([0u8; 32]);
        rng.fill_bytes(&mut bytes[..]);
        AdminToken(zeroize::Zeroizing::new(hex::encode(&bytes[..])))
    }

    /// The token in `path`, or a new one written there (owner-only) when it does not exist.
    pub fn load_or_create(
        path: &Path,
        rng: &mut (impl rand_core::CryptoRng + rand_core::RngCore),
    ) -> Result<Self> {
        if path.exists() {
            return Self::from_file(path);
        }
        let token = Self::generate(rng);
        crate::write_secret_file(path, token.0.as_bytes())?;
        Ok(token)
    }

    /// The token's text (for the signer's client).
    pub fn expose(&self) -> &str {
        &self.0
    }

    fn admits(&self, header: Option<&axum::http::HeaderValue>) -> bool {
        use bkv_protocol::crypto::{ct_eq, sha256};
        let given = header.and_then(|h| h.to_str().ok()).and_then(|h| h.strip_prefix("Bearer "));
        given.is_some_and(|g| ct_eq(&sha256(g.as_bytes()), &sha256(self.0.as_bytes())))
    }
}

/// spec/conventions.md §8: the admin listener's answer to a request without its token.
pub const ADMIN_UNAUTHORIZED: &str = "log.admin.unauthorized";

/// The admin API of spec/audit-log.md §8.1, for its own listener: `POST /add` and
/// `POST /checkpoint`, each only with `Authorization: Bearer <token>`; any request without
/// it is `401` (`log.admin.unauthorized`) and changes nothing.
pub fn admin_router(log: Arc<LogService>, token: AdminToken) -> axum::Router {
    let guard =
        axum::middleware::from_fn(move |req: axum::extract::Request, next: axum::middleware::Next| {
            let admitted = token.admits(req.headers().get(axum::http::header::AUTHORIZATION));
            async move {
                if !admitted {
                    return (
                        StatusCode::UNAUTHORIZED,
                        [(axum::http::header::WWW_AUTHENTICATE, "Bearer")],
                        ADMIN_UNAUTHORIZED,
                    )
                        .into_response();
                }
                next.run(req).await
            }
        });
    axum::Router::new()
        .route("/checkpoint", post(publish))
        .route("/add", post(add))
        .with_state(log)
        .layer(guard)
}

async fn latest_checkpoint(State(log): State<Arc<LogService>>) -> Reply {
    match log.store().checkpoint(None) {
        Ok(Some(n)) => reply(StatusCode::OK, "text/plain; charset=utf-8", n.into_bytes()),
        Ok(None) => not_found(),
        Err(e) => fail(e),
    }
}

async fn checkpoint_at(State(log): State<Arc<LogService>>, UrlPath(size): UrlPath<u64>) -> Reply {
    match log.store().checkpoint(Some(size)) {
        Ok(Some(n)) => reply(StatusCode::OK, "text/plain; charset=utf-8", n.into_bytes()),
        Ok(None) => not_found(),
        Err(e) => fail(e),
    }
}

async fn publish(State(log): State<Arc<LogService>>) -> Reply {
    match log.publish_checkpoint().await {
        Ok(n) => reply(StatusCode::OK, "text/plain; charset=utf-8", n.into_bytes()),
        Err(e) => fail(e),
    }
}

async fn entries(State(log): State<Arc<LogService>>, UrlPath((start, end)): UrlPath<(u64, u64)>) -> Reply {
    if end < start || end - start > MAX_ENTRIES_PER_REQUEST {
        return reply(StatusCode::BAD_REQUEST, "text/plain", b"bad range".to_vec());
    }
    match log.store().entries(start, end) {
        Ok(list) => json(&list.iter().map(hex::encode).collect::<Vec<_>>()),
        Err(e) => fail(e),
    }
}

async fn inclusion(State(log): State<Arc<LogService>>, UrlPath((index, size)): UrlPath<(u64, u64)>) -> Reply {
    match log.store().tree().inclusion_proof(index, size) {
        Some(p) => json(&InclusionJson {
            tree_size: size,
            leaf_index: index,
            path: p.iter().map(hex::encode).collect(),
        }),
        None => not_found(),
    }
}

async fn consistency(
    State(log): State<Arc<LogService>>,
    UrlPath((size1, size2)): UrlPath<(u64, u64)>,
) -> Reply {
    match log.store().tree().consistency_proof(size1, size2) {
        Some(p) => json(&ConsistencyJson { size1, size2, path: p.iter().map(hex::encode).collect() }),
        None => not_found(),
    }
}

async fn tile(State(log): State<Arc<LogService>>, UrlPath(path): UrlPath<String>) -> Reply {
    let Some(t) = bkv_protocol::audit_log::tiles::parse(&path) else {
        return not_found();
    };
    let store = log.store();
    let body = match t.level {
        Some(level) => bkv_protocol::audit_log::tiles::hash_tile(store.tree(), level, t.index, t.width),
        None => {
            let start = t.index.saturating_mul(bkv_protocol::audit_log::tiles::WIDTH);
            match store.entries(start, start.saturating_add(t.width)) {
                Ok(list) if list.len() as u64 == t.width => {
                    bkv_protocol::audit_log::tiles::entry_bundle(&list)
                }
                Ok(_) => None,
                Err(e) => return fail(e),
            }
        }
    };
    match body {
        Some(b) => reply(StatusCode::OK, "application/octet-stream", b),
        None => not_found(),
    }
}

async fn add(State(log): State<Arc<LogService>>, body: axum::body::Bytes) -> Reply {
    match log.append(&body).await {
        Ok(index) => json(&bkv_client::log::IndexJson { index }),
        Err(e) => fail(e),
    }
}

impl Drop for LogService {
    fn drop(&mut self) {
        if let Some((tx, thread)) = self.writer.take() {
            drop(tx);
            let _ = thread.join();
        }
    }
}

/// The batch writer of a [`LogService`]: takes every queued append (at most [`MAX_BATCH`]),
/// writes them with one fsync, then answers each; ends when the service is dropped.
fn write_batches(
    store: &Mutex<LogStore>,
    rx: &std::sync::mpsc::Receiver<Waiting>,
    crash_after: &std::sync::atomic::AtomicU64,
) {
    let mut appended = 0u64;
    while let Ok(first) = rx.recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(w) => batch.push(w),
                Err(_) => break,
            }
        }
        let (entries, waiting): (Vec<Vec<u8>>, Vec<_>) = batch.into_iter().unzip();
        let written = store.lock().unwrap_or_else(|p| p.into_inner()).append_batch(&entries);
        let before = appended;
        appended += entries.len() as u64;
        #[cfg(feature = "fault-injection")]
        {
            let n = crash_after.load(std::sync::atomic::Ordering::SeqCst);
            if written.is_ok() && before < n && n <= appended {
                // Simulated crash between the durable write and the acknowledgement.
                std::process::abort();
            }
        }
        #[cfg(not(feature = "fault-injection"))]
        let _ = (before, crash_after);
        for (i, tx) in waiting.into_iter().enumerate() {
            let _ = tx.send(match &written {
                Ok(first) => Ok(first + i as u64),
                Err(e) => Err(Error::Storage(e.to_string())),
            });
        }
    }
}

/// A server task; dropping it stops the server.
pub struct Running {
    /// The bound address.
    pub addr: std::net::SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Running {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Bind `addr`, then serve `router` until the returned [`Running`] is dropped; returns
/// as soon as the listener is ready.
pub async fn spawn(addr: &str, router: axum::Router) -> Result<Running> {
    spawn_tls(addr, router, None).await
}

/// [`spawn`], over TLS when `tls` is given.
pub async fn spawn_tls(
    addr: &str,
    router: axum::Router,
    tls: Option<Arc<rustls::ServerConfig>>,
) -> Result<Running> {
    let listener = tokio::net::TcpListener::bind(addr).await.map_err(|e| Error::Http(e.to_string()))?;
    serve(listener, router, tls)
}

/// Serve `router` on a listener bound before (so that its address was known before the
/// server started, with no window in which another process could take the port).
pub fn spawn_on(listener: std::net::TcpListener, router: axum::Router) -> Result<Running> {
    let io = |e: std::io::Error| Error::Http(e.to_string());
    listener.set_nonblocking(true).map_err(io)?;
    serve(tokio::net::TcpListener::from_std(listener).map_err(io)?, router, None)
}

/// The hardened listener of `bkv-serve` (connection caps, header, body and idle timeouts).
fn serve(
    listener: tokio::net::TcpListener,
    router: axum::Router,
    tls: Option<Arc<rustls::ServerConfig>>,
) -> Result<Running> {
    let local = listener.local_addr().map_err(|e| Error::Http(e.to_string()))?;
    let task = tokio::spawn(bkv_serve::serve(
        listener,
        router,
        bkv_serve::Limits::default(),
        tls,
        Arc::new(|_| {}),
        std::future::pending(),
    ));
    Ok(Running { addr: local, task })
}

#[cfg(test)]
mod tests {
    use super::*;
    use bkv_protocol::audit_log::LogEntry;

    /// spec/audit-log.md §8.1: appends made concurrently are written in batches; each
    /// caller gets the index its own entry is stored at, the indices are exactly
    /// `0..n`, and after the service is dropped (its writer joined) and the log reopened,
    /// every acknowledged entry is there, in the tree with the same root.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_appends_each_get_their_own_durable_index() {
        let dir = std::env::temp_dir().join(format!("bkv-log-batch-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("log.redb");
        let log = Arc::new(
            LogService::open(&path, "test.example/log", Ed25519Signer::from_seed(&[3; 32]), vec![]).unwrap(),
        );
        let entries: Vec<Vec<u8>> =
            (0..64u64).map(|e| LogEntry::bundle("f", e + 1, &[e as u8; 16]).to_cbor()).collect();
        let mut tasks = Vec::new();
        for e in entries.clone() {
            let log = log.clone();
            tasks.push(tokio::spawn(async move { (log.append(&e).await.unwrap(), e) }));
        }
        let mut indices = Vec::new();
        for t in tasks {
            let (index, e) = t.await.unwrap();
            assert_eq!(log.store().entry(index).unwrap(), Some(e), "index {index} holds its caller's entry");
            indices.push(index);
        }
        indices.sort();
        assert_eq!(indices, (0..64).collect::<Vec<_>>());
        let root = log.store().tree().root();
        // A malformed entry is refused before it is queued, and changes nothing.
        assert!(log.append(b"not an entry").await.is_err());
        drop(log);
        let reopened = LogStore::open(&path).unwrap();
        assert_eq!((reopened.tree().size(), reopened.tree().root()), (64, root));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
