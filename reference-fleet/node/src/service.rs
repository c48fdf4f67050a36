//! A fleet node's client-facing HTTP service.
//!
//! spec/vault.md §7.1: for each request the node drives the node step of
//! spec/node-api.md §5 inside its HSM ([`Boundary`], spec/hsm.md): N1–N2 in
//! [`Boundary::begin`], N3 [`CommandLog::propose`] of the HSM's `LogEntry` (durable on a
//! majority before anything else happens), then the acknowledgements of the entry's
//! position from the other nodes' HSMs ([`CommandLog::acks`]), and N4–N5 in
//! [`Boundary::resume`], which answers only if it can verify a quorum itself. This module
//! only moves bytes between HTTP and those calls, and reads the time from the [`Clock`] it
//! is given.
//!
//! Endpoints (bodies are `application/cbor`):
//! - `POST /v1/session`: a `SealedRequest` (spec/session.md §3.1); the answer is a
//!   `SessionResponse` (§4.1), always with status 200: errors travel inside it, sealed
//!   when the request opened (so only its sender learns them).
//! - `GET /v1/bundle`: the released bundle with its log proof (spec/audit-log.md §6).
//! - `GET /v1/node`: [`NodeInfo`], which node this is, so a client picks the right
//!   `session` key of the verified FleetKeySet.
//! - `GET /v1/log/consistency/{size1}/{size2}`: a consistency proof of the audit log,
//!   relayed from the log (spec/node-api.md §1; the client verifies it).

use crate::metrics::{NodeMetrics, Status};
use crate::rate::{Limiter, RateLimits};
use crate::replication::CommandLog;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use bkv_client::LogClient;
use bkv_client::clock::{SharedClock, SystemClock};
use bkv_protocol::cbor;
use bkv_protocol::hsm::{AppliedOutput, Boundary};
use bkv_protocol::node_api::{Begun, ConsistencyPath};
pub use bkv_protocol::node_api::{CBOR, MAX_REQUEST, NodeInfo};
use rand_core::OsRng;
use std::sync::Arc;

/// One node's service: its HSM-backed engines, its command log, and what it publishes.
pub struct NodeService<L> {
    hsm: Arc<Boundary>,
    clock: SharedClock,
    log: L,
    info: NodeInfo,
    released_bundle: Vec<u8>,
    audit_log: Option<LogClient>,
    metrics: Arc<NodeMetrics>,
    health: Option<Arc<dyn Fn() -> Readiness + Send + Sync>>,
    per_record: Limiter<Vec<u8>>,
    per_node: Limiter<()>,
    per_client: Limiter<std::net::IpAddr>,
}

/// What `GET /readyz` reports: the vote gate (spec/fleet-replication.md §6.3) and the
/// leader this node knows, with the consensus state `/metrics` exports.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Readiness {
    /// The vote gate is open.
    pub gate_open: bool,
    /// A leader is known.
    pub leader_known: bool,
    /// The current term.
    pub term: u64,
    /// The last applied index.
    pub applied: u64,
    /// On the leader: how many entries each other node is behind (the leader's last log
    /// index minus what that node is known to have stored), by node position.
    pub lag: Vec<(u64, u64)>,
    /// Leader changes the node has seen.
    pub leader_changes: u64,
}

impl<L: CommandLog> NodeService<L> {
    /// A node answering through its HSM `hsm`, committing through `log` (whose state
    /// machine is the same HSM), publishing `released_bundle` (a `LoggedBundle` in CBOR).
    pub fn new(hsm: Arc<Boundary>, log: L, info: NodeInfo, released_bundle: Vec<u8>) -> Self {
        Self {
            hsm,
            clock: SystemClock::shared(),
            log,
            info,
            released_bundle,
            audit_log: None,
            metrics: Arc::new(NodeMetrics::new()),
            health: None,
            per_record: Limiter::new(RateLimits::OFF.per_record),
            per_node: Limiter::new(RateLimits::OFF.per_node),
            per_client: Limiter::new(RateLimits::OFF.per_client),
        }
    }

    /// Apply `limits` (spec/node-api.md §6); a new service has none, `bkv-node run`
    /// applies its `[limits]` (defaults [`RateLimits::default`]).
    pub fn with_rate_limits(mut self, limits: RateLimits) -> Self {
        self.per_record = Limiter::new(limits.per_record);
        self.per_node = Limiter::new(limits.per_node);
        self.per_client = Limiter::new(limits.per_client);
        self
    }

    /// Report readiness (`/readyz`) and the consensus gauges of `/metrics` from `health`.
    pub fn with_health(mut self, health: impl Fn() -> Readiness + Send + Sync + 'static) -> Self {
        self.health = Some(Arc::new(health));
        self
    }

    /// The node's metrics.
    pub fn metrics(&self) -> &Arc<NodeMetrics> {
        &self.metrics
    }

    /// Read the node's time from `clock` (tests fix it).
    pub fn with_clock(mut self, clock: SharedClock) -> Self {
        self.clock = clock;
        self
    }

    /// The node's HSM (its status, its pending logins).
    pub fn hsm(&self) -> &Arc<Boundary> {
        &self.hsm
    }

    /// Relay consistency proofs from the audit log at `log` (spec/node-api.md §1).
    pub fn with_audit_log(mut self, log: LogClient) -> Self {
        self.audit_log = Some(log);
        self
    }

    /// spec/vault.md §7.1 steps N1–N5 for one request at node time `now` (the resume
    /// step is given the same `now`).
    pub async fn handle(&self, request: &[u8], now: u64) -> Vec<u8> {
        match self.hsm.begin(&mut OsRng, request, now) {
            Begun::Reply(sealed) => {
                self.metrics.request("replied");
                sealed
            }
            Begun::Commit(pending) => {
                let started = std::time::Instant::now();
                // spec/node-api.md §6 points 2 and 3: an attempt over its record's rate, or
                // over the node's rate for every id alike, is refused before anything is
                // committed. The node's bucket never looks at the vault (spec/vault.md §5.3).
                if let Some(record) = pending.attempt_record() {
                    let over = if self.per_record.take(&record.to_vec(), started).is_err() {
                        Some("rate_limited")
                    } else if self.per_node.take(&(), started).is_err() {
                        Some("rate_limited_node")
                    } else {
                        None
                    };
                    if let Some(outcome) = over {
                        self.metrics.request(outcome);
                        tracing::warn!(node = %self.info.node_id, outcome, "refused request: vault.attempt.rate_limited");
                        return pending.rate_limited(&mut OsRng);
                    }
                }
                let committed = match self.log.propose(self.hsm.entry(&pending)).await {
                    Ok(out) => match AppliedOutput::decode(&out) {
                        Ok(applied) => match self.log.acks(applied.position).await {
                            Ok(acks) => Ok((applied, acks)),
                            Err(e) => Err(e.to_string()),
                        },
                        Err(e) => Err(format!("the log's output is no AppliedOutput: {e}")),
                    },
                    Err(e) => Err(e.to_string()),
                };
                match committed {
                    // N3 failed: nothing else happens, in particular no KE2.
                    Err(why) => {
                        self.metrics.request("unavailable");
                        tracing::warn!(node = %self.info.node_id, "refused request: fleet.unavailable: {why}");
                        pending.unavailable(&mut OsRng)
                    }
                    Ok((applied, acks)) => {
                        let r = self.hsm.resume(&mut OsRng, pending, applied.position, &acks, now);
                        self.metrics.hsm(&self.hsm.status());
                        match r.refused {
                            None => {
                                self.metrics.commits.inc();
                                self.metrics.commit_seconds.observe(started.elapsed().as_secs_f64());
                                self.metrics.request("committed");
                                self.metrics.vault_output(&applied.output);
                            }
                            Some(code) => {
                                self.metrics.request("hsm_refused");
                                tracing::warn!(
                                    node = %self.info.node_id,
                                    position = applied.position,
                                    acks = acks.len(),
                                    "HSM refused to answer: {}",
                                    code.code()
                                );
                            }
                        }
                        r.sealed
                    }
                }
            }
        }
    }

    /// The axum router of this node.
    pub fn router(self: Arc<Self>) -> Router {
        Router::new()
            .route("/v1/session", post(session_endpoint::<L>))
            .route("/v1/bundle", get(bundle_endpoint::<L>))
            .route("/v1/node", get(node_endpoint::<L>))
            .route("/v1/log/consistency/{size1}/{size2}", get(consistency_endpoint::<L>))
            .route("/healthz", get(|| async { "ok\n" }))
            .route("/readyz", get(readyz_endpoint::<L>))
            .route("/metrics", get(metrics_endpoint::<L>))
            .layer(axum::middleware::from_fn_with_state(self.metrics.clone(), count_status))
            .layer(DefaultBodyLimit::max(MAX_REQUEST))
            .with_state(self)
    }
}

async fn count_status(
    State(metrics): State<Arc<NodeMetrics>>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let response = next.run(request).await;
    metrics.http.get_or_create(&Status { status: response.status().as_u16().to_string() }).inc();
    response
}

impl<L> NodeService<L> {
    fn readiness(&self) -> Option<Readiness> {
        self.metrics.hsm(&self.hsm.status());
        let r = self.health.as_ref().map(|h| h())?;
        self.metrics.term.set(r.term);
        self.metrics.applied.set(r.applied);
        self.metrics.gate_open.set(u64::from(r.gate_open));
        self.metrics.leader_known.set(u64::from(r.leader_known));
        let counted = self.metrics.leader_changes.get();
        if r.leader_changes > counted {
            self.metrics.leader_changes.inc_by(r.leader_changes - counted);
        }
        self.metrics.peer_lag.clear();
        for (peer, lag) in &r.lag {
            self.metrics.peer_lag.get_or_create(&crate::metrics::Peer { peer: peer.to_string() }).set(*lag);
        }
        Some(r)
    }
}

async fn readyz_endpoint<L: CommandLog>(State(svc): State<Arc<NodeService<L>>>) -> Response {
    match svc.readiness() {
        Some(r) if r.gate_open && r.leader_known => (StatusCode::OK, "ready\n").into_response(),
        Some(r) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: vote gate {}, leader {}\n", open(r.gate_open), known(r.leader_known)),
        )
            .into_response(),
        // A node without consensus (the unreplicated baseline) is ready when it serves.
        None => (StatusCode::OK, "ready\n").into_response(),
    }
}

fn open(b: bool) -> &'static str {
    if b { "open" } else { "closed" }
}

fn known(b: bool) -> &'static str {
    if b { "known" } else { "unknown" }
}

async fn metrics_endpoint<L: CommandLog>(State(svc): State<Arc<NodeService<L>>>) -> Response {
    svc.readiness();
    (
        [(header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")],
        svc.metrics.encode(),
    )
        .into_response()
}

fn cbor_response(body: Vec<u8>) -> Response {
    ([(header::CONTENT_TYPE, CBOR)], body).into_response()
}

async fn session_endpoint<L: CommandLog>(
    State(svc): State<Arc<NodeService<L>>>,
    peer: Option<axum::Extension<axum::extract::ConnectInfo<std::net::SocketAddr>>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    // spec/node-api.md §6 point 1: a client address over its rate, before anything opens.
    if let Some(axum::Extension(axum::extract::ConnectInfo(addr))) = peer
        && let Err(wait) = svc.per_client.take(&addr.ip(), std::time::Instant::now())
    {
        svc.metrics.request("rate_limited_client");
        let secs = wait.ceil().max(1.0) as u64;
        return (
            StatusCode::TOO_MANY_REQUESTS,
            [(header::RETRY_AFTER, secs.to_string())],
            format!("rate limited: retry in {secs} s\n"),
        )
            .into_response();
    }
    let is_cbor = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).is_some_and(|v| v == CBOR);
    if !is_cbor {
        return (StatusCode::UNSUPPORTED_MEDIA_TYPE, "requests are application/cbor").into_response();
    }
    cbor_response(svc.handle(&body, svc.clock.now()).await)
}

async fn bundle_endpoint<L: CommandLog>(State(svc): State<Arc<NodeService<L>>>) -> Response {
    cbor_response(svc.released_bundle.clone())
}

async fn node_endpoint<L: CommandLog>(State(svc): State<Arc<NodeService<L>>>) -> Response {
    cbor_response(cbor::to_vec(&svc.info))
}

/// spec/conventions.md §8: the relay's answer to sizes that are no range of the log.
pub const LOG_RANGE: &str = "node.log.range";
/// spec/conventions.md §8: the relay's answer when the log does not answer.
pub const LOG_UNREACHABLE: &str = "node.log.unreachable";

async fn consistency_endpoint<L: CommandLog>(
    State(svc): State<Arc<NodeService<L>>>,
    Path((size1, size2)): Path<(u64, u64)>,
) -> Response {
    let Some(log) = &svc.audit_log else {
        return (StatusCode::NOT_FOUND, "this node relays no audit log").into_response();
    };
    // spec/node-api.md §1: a range the log cannot have is 400 `node.log.range`; a log that
    // does not answer is 502 `node.log.unreachable`, and the log's address (internal to the
    // deployment) never leaves the node.
    let range = || (StatusCode::BAD_REQUEST, LOG_RANGE).into_response();
    if size1 == 0 || size1 > size2 {
        return range();
    }
    match log.consistency_proof_in_range(size1, size2).await {
        Ok(Some(path)) => cbor_response(ConsistencyPath::encode(&path)),
        Ok(None) => range(),
        Err(e) => {
            tracing::warn!(size1, size2, "audit log relay failed: {e}");
            (StatusCode::BAD_GATEWAY, LOG_UNREACHABLE).into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::replication::Unavailable;
    use bkv_client::clock::{Clock, FixedClock};
    use bkv_protocol::session::{self, SessionSecretKey, SessionServer, SessionTarget};
    use bkv_protocol::vault::state::{RecordState, RecordStatus, VaultQuery};
    use bkv_protocol::vault::{RegistrationClient, VaultServer, VaultServerSetup};
    use rand_chacha::ChaCha20Rng;
    use rand_core::SeedableRng;

    /// Node `n1` of fleet `f` epoch 1 with guess limit 10: its HSM (a one-node fleet), the
    /// session target of its key, its info.
    fn test_node(rng: &mut ChaCha20Rng) -> (Arc<Boundary>, SessionTarget, NodeInfo) {
        use bkv_protocol::crypto::{Ed25519Signer, Signer};
        use bkv_protocol::hsm::{BoundaryConfig, HsmState, MemoryStateStore};
        let key = SessionSecretKey::generate(rng);
        let target = SessionTarget {
            fleet_id: "f".into(),
            epoch: 1,
            node_id: "n1".into(),
            session_key: key.public_key(),
        };
        let vault = VaultServer::new(VaultServerSetup::generate(rng), "f");
        let signing = Ed25519Signer::generate(rng);
        let cfg = BoundaryConfig {
            fleet: "f".into(),
            epoch: 1,
            node: 0,
            quorum: 1,
            signing_keys: vec![signing.public_key().clone()],
            guess_limit: 10,
            awaiting_import: false,
        };
        let hsm = Boundary::new(
            cfg,
            SessionServer::new("f", 1, "n1", key),
            vault,
            signing,
            HsmState::fresh("f", 1, 0),
            Box::new(MemoryStateStore::default()),
        )
        .unwrap();
        let info =
            NodeInfo { v: 1, fleet_id: "f".into(), epoch: 1, node_id: "n1".into(), datacenter: "dc".into() };
        (Arc::new(hsm), target, info)
    }

    /// A log that commits nothing (the requests of this test need no commit).
    struct NoLog;

    impl CommandLog for NoLog {
        async fn propose(&self, _: Vec<u8>) -> Result<Vec<u8>, Unavailable> {
            Err(Unavailable("no log in this test".into()))
        }
        async fn read(&self, _: Vec<u8>) -> Result<Vec<u8>, Unavailable> {
            Err(Unavailable("no log in this test".into()))
        }
        async fn acks(&self, _: u64) -> Result<Vec<Vec<u8>>, Unavailable> {
            Err(Unavailable("no log in this test".into()))
        }
    }

    /// The node's HTTP endpoint reads the time from the clock it is given, not from the
    /// host: at a fixed clock far from the host's, a request timed at the fixed clock opens
    /// and one timed at the host's clock is stale (spec/session.md §5).
    #[tokio::test]
    async fn the_session_endpoint_uses_the_clock_it_is_given() {
        let fixed = 4_000_000_000;
        let mut rng = ChaCha20Rng::seed_from_u64(9);
        let (hsm, target, info) = test_node(&mut rng);
        let svc = NodeService::new(hsm, NoLog, info, vec![]).with_clock(FixedClock::at(fixed));
        let svc = Arc::new(svc);
        let ask = |time: u64, rng: &mut ChaCha20Rng| {
            let (body, _) = RegistrationClient::start(rng, &[7u8; 32], b"123456").unwrap();
            session::seal_request(rng, &target, time, &body).unwrap()
        };
        let endpoint = |sealed: Vec<u8>| {
            let svc = svc.clone();
            async move {
                let mut headers = HeaderMap::new();
                headers.insert(header::CONTENT_TYPE, CBOR.parse().unwrap());
                let response = session_endpoint(State(svc), None, headers, Bytes::from(sealed)).await;
                axum::body::to_bytes(response.into_body(), MAX_REQUEST).await.unwrap().to_vec()
            }
        };
        let (sealed, awaiting) = ask(fixed, &mut rng);
        assert!(awaiting.open(&endpoint(sealed).await).is_ok(), "a request at the node's clock opens");
        let host = SystemClock.now();
        let (sealed, awaiting) = ask(host, &mut rng);
        assert_eq!(
            awaiting.open(&endpoint(sealed).await).unwrap_err(),
            bkv_protocol::Error::SessionRequestStale,
            "a request at the host's clock is stale for a node whose clock says {fixed}"
        );
    }

    /// spec/node-api.md §1: the relay answers a range the log cannot have with 400
    /// `node.log.range` and a log that does not answer with 502 `node.log.unreachable`;
    /// neither body names the log's address.
    #[tokio::test]
    async fn the_log_relay_refuses_bad_ranges_and_hides_the_log_address() {
        // A stand-in log of 4 entries: only ranges within 4 have proofs.
        let log = Router::new().route(
            "/proof/consistency/{a}/{b}",
            get(|Path((a, b)): Path<(u64, u64)>| async move {
                if a <= b && b <= 4 {
                    let path = vec![hex::encode([7u8; 32])];
                    let json = serde_json::json!({ "size1": a, "size2": b, "path": path });
                    (StatusCode::OK, json.to_string()).into_response()
                } else {
                    (StatusCode::NOT_FOUND, "not found").into_response()
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move { axum::serve(listener, log).await.unwrap() });
        let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
        let mut rng = ChaCha20Rng::seed_from_u64(3);
        let relay = |url: String, rng: &mut ChaCha20Rng| {
            let (hsm, _, info) = test_node(rng);
            Arc::new(NodeService::new(hsm, NoLog, info, vec![]).with_audit_log(LogClient::new(&url)))
        };
        let ask = |svc: Arc<NodeService<NoLog>>, a: u64, b: u64| async move {
            let response = consistency_endpoint(State(svc), Path((a, b))).await;
            let status = response.status().as_u16();
            let body = axum::body::to_bytes(response.into_body(), MAX_REQUEST).await.unwrap();
            (status, String::from_utf8_lossy(&body).into_owned())
        };
        let svc = relay(format!("http://{addr}"), &mut rng);
        assert_eq!(ask(svc.clone(), 2, 4).await.0, 200);
        for (a, b) in [(5, 3), (0, 0), (3, 9)] {
            assert_eq!(ask(svc.clone(), a, b).await, (400, "node.log.range".to_owned()), "{a}/{b}");
        }
        let (status, body) = ask(relay(format!("http://{dead}"), &mut rng), 1, 2).await;
        assert_eq!((status, body.as_str()), (502, "node.log.unreachable"));
        server.abort();
    }

    /// A one-node log that applies each entry at once to the node's HSM.
    struct MemLog(Arc<Boundary>);

    impl CommandLog for MemLog {
        async fn propose(&self, entry: Vec<u8>) -> Result<Vec<u8>, Unavailable> {
            Ok(self.0.apply(&entry))
        }
        async fn read(&self, query: Vec<u8>) -> Result<Vec<u8>, Unavailable> {
            Ok(self.0.query(&query))
        }
        async fn acks(&self, _: u64) -> Result<Vec<Vec<u8>>, Unavailable> {
            Ok(Vec::new())
        }
    }

    /// A one-node service with rate limits `limits` on a [`MemLog`], and a client of it.
    struct Limited {
        svc: NodeService<MemLog>,
        target: SessionTarget,
        ctx: bkv_protocol::vault::VaultContext,
        rng: ChaCha20Rng,
    }

    impl Limited {
        fn new(seed: u64, limits: RateLimits) -> Self {
            let mut rng = ChaCha20Rng::seed_from_u64(seed);
            let (hsm, target, info) = test_node(&mut rng);
            let ctx = bkv_protocol::vault::VaultContext {
                fleet_id: "f".into(),
                opaque_server_key: hsm.opaque_public_key(),
                ksf: bkv_protocol::vault::KsfParams::TEST,
            };
            let svc = NodeService::new(hsm.clone(), MemLog(hsm), info, vec![]).with_rate_limits(limits);
            Limited { svc, target, ctx, rng }
        }

        async fn call(&mut self, body: Vec<u8>) -> bkv_protocol::Result<Vec<u8>> {
            let now = SystemClock.now();
            let (sealed, wait) = session::seal_request(&mut self.rng, &self.target, now, &body).unwrap();
            wait.open(&self.svc.handle(&sealed, now).await)
        }

        /// Register `record` with code 123456.
        async fn register(&mut self, record: [u8; 32]) {
            use bkv_protocol::vault::BackupKey;
            let (body, rc) = RegistrationClient::start(&mut self.rng, &record, b"123456").unwrap();
            let resp = self.call(body).await.unwrap();
            let (body, wait) = rc
                .finish(&mut self.rng, &self.ctx, &BackupKey::from_bytes([3; 32]), &resp)
                .unwrap()
                .into_request();
            let resp = self.call(body).await.unwrap();
            assert_eq!(wait.finish(&resp).unwrap(), 10);
        }

        /// What the vault holds for `record` (spec/vault.md §8.3).
        fn status(&self, record: [u8; 32]) -> RecordStatus {
            let query = cbor::to_vec(&VaultQuery::Record { record: record.to_vec() });
            cbor::from_slice(&self.svc.hsm.query(&query)).unwrap()
        }

        /// One wrong guess against `record`: the count it reports, or the sealed refusal.
        async fn guess(&mut self, record: [u8; 32]) -> bkv_protocol::Result<u32> {
            use bkv_protocol::vault::{ClientAction, RecoveryClient};
            let (body, rc) = RecoveryClient::start(&mut self.rng, &record, b"000000").unwrap();
            let resp = self.call(body).await?;
            let ke2 = rc.receive(&resp)?;
            let n = ke2.remaining();
            assert!(
                ke2.finish(&mut ChaCha20Rng::seed_from_u64(1), &self.ctx, ClientAction::Recover).is_err()
            );
            Ok(n)
        }
    }

    /// spec/node-api.md §6 point 2: with a burst of 2 attempts per record and one more a
    /// second, the third attempt at once is refused with the sealed
    /// `vault.attempt.rate_limited` and counted nowhere: the next attempt, a second later,
    /// reports the count the third would have had. Another record is not limited by it.
    #[tokio::test]
    async fn attempts_over_the_record_rate_are_refused_uncounted() {
        use crate::rate::{Rate, RateLimits};
        let mut node = Limited::new(
            11,
            RateLimits {
                per_record: Rate { burst: 2.0, per_second: 1.0 },
                per_node: Rate::OFF,
                per_client: Rate::OFF,
            },
        );
        for record in [[1u8; 32], [2u8; 32]] {
            node.register(record).await;
        }
        assert_eq!(node.guess([1; 32]).await, Ok(9));
        assert_eq!(node.guess([1; 32]).await, Ok(8));
        assert_eq!(node.guess([1; 32]).await, Err(bkv_protocol::Error::VaultAttemptRateLimited));
        assert_eq!(node.guess([2; 32]).await, Ok(9), "another record has its own bucket");
        tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
        assert_eq!(node.guess([1; 32]).await, Ok(7), "the refused attempt was not counted");
    }

    /// spec/node-api.md §6 point 3, spec/vault.md §5.3 and §5.5: one bucket serves every
    /// id. With a burst of 3 attempts per node, a registered id and two unknown ones use it
    /// up, and then the next attempt is refused the same way whether its id is registered
    /// or unknown, and counted nowhere; a second later one more attempt is admitted.
    #[tokio::test]
    async fn attempts_over_the_node_rate_are_refused_alike_for_every_id() {
        use crate::rate::{Rate, RateLimits};
        let mut node = Limited::new(
            12,
            RateLimits {
                per_record: Rate::OFF,
                per_node: Rate { burst: 3.0, per_second: 1.0 },
                per_client: Rate::OFF,
            },
        );
        node.register([1; 32]).await;
        assert_eq!(node.guess([1; 32]).await, Ok(9), "registration takes no attempt token");
        assert_eq!(node.guess([5; 32]).await, Ok(9));
        assert_eq!(node.guess([6; 32]).await, Ok(9));
        let refused = Err(bkv_protocol::Error::VaultAttemptRateLimited);
        assert_eq!(node.guess([1; 32]).await, refused, "registered id");
        assert_eq!(node.guess([7; 32]).await, refused, "unknown id");
        assert_eq!(node.guess([5; 32]).await, refused, "unregistered id");
        assert_eq!(node.status([7; 32]).state, RecordState::Absent, "the refusal created nothing");
        let kind = crate::metrics::Kind { kind: "rate_limited_node".into() };
        assert_eq!(node.svc.metrics.requests.get_or_create(&kind).get(), 3, "counted as the node's refusals");
        assert_eq!(node.status([5; 32]).remaining, 9, "nor counted anything");
        tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
        assert_eq!(node.guess([7; 32]).await, Ok(9), "one token back after a second");
        assert_eq!(node.guess([1; 32]).await, refused);
        assert_eq!(node.status([1; 32]).remaining, 9);
    }
}
