//! A fleet node's client-facing HTTP service.
//!
//! spec/vault.md §7.1: for each request the node runs N1 [`SessionServer::open`], N2
//! [`VaultServer::handle`], N3 [`CommandLog::propose`] (durable on a majority before
//! anything else happens), N4 [`Proposal::committed`] and N5 the responder's seal. This
//! module only moves bytes between HTTP and those calls.
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

use crate::audit_log::signer::LogClient;
use crate::replication::CommandLog;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use bkv_protocol::session::{self, SessionServer};
use bkv_protocol::vault::{Step, VaultServer};
use bkv_protocol::{Error, cbor};
use rand_core::OsRng;
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// Media type of every body.
pub const CBOR: &str = "application/cbor";
/// Largest request body a node reads (a `register_finish` is well under 1 KiB).
pub const MAX_REQUEST: usize = 16 * 1024;

/// `GET /v1/node`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeInfo {
    /// Version, 1.
    pub v: u64,
    /// Fleet id.
    pub fleet_id: String,
    /// Epoch.
    pub epoch: u64,
    /// This node's id in the FleetKeySet.
    pub node_id: String,
    /// Datacenter label.
    pub datacenter: String,
}

/// One node's service: its HSM-backed engines, its command log, and what it publishes.
pub struct NodeService<L> {
    session: SessionServer,
    vault: VaultServer,
    log: L,
    info: NodeInfo,
    released_bundle: Vec<u8>,
    audit_log: Option<LogClient>,
}

impl<L: CommandLog> NodeService<L> {
    /// A node answering with `session` and `vault` (from its HSM), committing through
    /// `log`, publishing `released_bundle` (a `LoggedBundle` in CBOR).
    pub fn new(
        session: SessionServer,
        vault: VaultServer,
        log: L,
        info: NodeInfo,
        released_bundle: Vec<u8>,
    ) -> Self {
        Self { session, vault, log, info, released_bundle, audit_log: None }
    }

    /// Relay consistency proofs from the audit log at `log` (spec/node-api.md §1).
    pub fn with_audit_log(mut self, log: LogClient) -> Self {
        self.audit_log = Some(log);
        self
    }

    /// spec/vault.md §7.1 steps N1–N5 for one request at node time `now`.
    pub async fn handle(&self, request: &[u8], now: u64) -> Vec<u8> {
        let opened = match self.session.open(request, now) {
            Ok(o) => o,
            Err(e) => return session::reject(e),
        };
        let result = match self.vault.handle(&mut OsRng, opened.request_id, opened.time, &opened.body, now) {
            Err(e) => Err(e),
            Ok(Step::Reply(body)) => Ok(body),
            Ok(Step::Propose(p)) => match self.log.propose(p.command().to_vec()).await {
                // N3 failed: nothing else happens, in particular no KE2.
                Err(unavailable) => {
                    tracing::warn!(node = %self.info.node_id, "{unavailable}");
                    Err(Error::FleetUnavailable)
                }
                Ok(output) => p.committed(&self.vault, &mut OsRng, &output, crate::cli::output::now()),
            },
        };
        opened.responder.seal(&mut OsRng, result)
    }

    /// The axum router of this node.
    pub fn router(self: Arc<Self>) -> Router {
        Router::new()
            .route("/v1/session", post(session_endpoint::<L>))
            .route("/v1/bundle", get(bundle_endpoint::<L>))
            .route("/v1/node", get(node_endpoint::<L>))
            .route("/v1/log/consistency/{size1}/{size2}", get(consistency_endpoint::<L>))
            .layer(DefaultBodyLimit::max(MAX_REQUEST))
            .with_state(self)
    }
}

fn cbor_response(body: Vec<u8>) -> Response {
    ([(header::CONTENT_TYPE, CBOR)], body).into_response()
}

async fn session_endpoint<L: CommandLog>(
    State(svc): State<Arc<NodeService<L>>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let is_cbor = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).is_some_and(|v| v == CBOR);
    if !is_cbor {
        return (StatusCode::UNSUPPORTED_MEDIA_TYPE, "requests are application/cbor").into_response();
    }
    cbor_response(svc.handle(&body, crate::cli::output::now()).await)
}

async fn bundle_endpoint<L: CommandLog>(State(svc): State<Arc<NodeService<L>>>) -> Response {
    cbor_response(svc.released_bundle.clone())
}

async fn node_endpoint<L: CommandLog>(State(svc): State<Arc<NodeService<L>>>) -> Response {
    cbor_response(cbor::to_vec(&svc.info))
}

async fn consistency_endpoint<L: CommandLog>(
    State(svc): State<Arc<NodeService<L>>>,
    Path((size1, size2)): Path<(u64, u64)>,
) -> Response {
    let Some(log) = &svc.audit_log else {
        return (StatusCode::NOT_FOUND, "this node relays no audit log").into_response();
    };
    match log.consistency_proof(size1, size2).await {
        Ok(path) => {
            let path: Vec<serde_bytes::ByteBuf> =
                path.iter().map(|h| serde_bytes::ByteBuf::from(h.to_vec())).collect();
            cbor_response(cbor::to_vec(&path))
        }
        Err(e) => (StatusCode::BAD_GATEWAY, e.to_string()).into_response(),
    }
}
