//! The HTTP listener of every bkv service (node client API, node-to-node traffic, audit
//! log, witness): an accept loop that survives hostile clients, with optional TLS.
//!
//! - Each connection gets a header read timeout (a client that does not send a whole
//!   request head in time, including the TLS handshake, is disconnected), a body read
//!   timeout (the whole body of a request must arrive in time), and an idle timeout (a
//!   connection that moves no byte for that long is closed once its request in flight, if
//!   any, is answered; one still stalled after a second idle timeout is dropped).
//! - Open connections are capped globally and per client address; a connection over a
//!   cap is closed at once, before any byte is read, so one client holding many
//!   connections cannot take the process's file descriptors or starve other clients.
//! - TLS is rustls with the ring provider ([`tls::server_config`]); the services' peer
//!   authentication is not TLS's business (spec/fleet-replication.md §4 signs every RPC).
//!
//! It holds no protocol logic: services hand it an axum router.
#![forbid(unsafe_code)]

pub mod tls;

use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use std::collections::HashMap;
use std::net::IpAddr;
use std::pin::pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

pub use tls::TlsError;

/// The limits of one listener (`[limits]` of `node.toml`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Open connections at most.
    pub max_connections: usize,
    /// Open connections from one client address at most.
    pub max_per_client: usize,
    /// How long a client may take to send a request's head (and to finish TLS).
    pub header_timeout: Duration,
    /// How long a client may take to send a request's body.
    pub body_timeout: Duration,
    /// How long a connection may stay without moving a byte.
    pub idle_timeout: Duration,
    /// The largest request body read (else `413`); a service's own, smaller limits apply
    /// after it.
    pub max_body: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_connections: 4096,
            max_per_client: 64,
            header_timeout: Duration::from_secs(5),
            body_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            max_body: 8 << 20,
        }
    }
}

/// What happened to a connection, for the service's metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectionEvent {
    /// Admitted.
    Accepted,
    /// Refused over a cap.
    Refused,
    /// Its TLS handshake failed or timed out.
    TlsFailed,
    /// Closed by the idle timeout.
    Idle,
}

impl ConnectionEvent {
    /// The metric label.
    pub fn label(self) -> &'static str {
        match self {
            ConnectionEvent::Accepted => "accepted",
            ConnectionEvent::Refused => "refused",
            ConnectionEvent::TlsFailed => "tls_failed",
            ConnectionEvent::Idle => "idle_closed",
        }
    }
}

/// Called once per [`ConnectionEvent`].
pub type Observer = Arc<dyn Fn(ConnectionEvent) + Send + Sync>;

#[derive(Default)]
struct Counts {
    total: usize,
    per_client: HashMap<IpAddr, usize>,
}

/// One admitted connection; its slot is given back when it drops.
struct Slot {
    counts: Arc<Mutex<Counts>>,
    ip: IpAddr,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut c = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        c.total = c.total.saturating_sub(1);
        if let Some(n) = c.per_client.get_mut(&self.ip) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                c.per_client.remove(&self.ip);
            }
        }
    }
}

fn admit(counts: &Arc<Mutex<Counts>>, ip: IpAddr, limits: &Limits) -> Option<Slot> {
    let mut c = counts.lock().unwrap_or_else(|p| p.into_inner());
    let mine = c.per_client.get(&ip).copied().unwrap_or(0);
    if c.total >= limits.max_connections || mine >= limits.max_per_client {
        return None;
    }
    c.total += 1;
    c.per_client.insert(ip, mine + 1);
    Some(Slot { counts: counts.clone(), ip })
}

/// An I/O stream that records when it last moved a byte.
struct Watched<T> {
    inner: T,
    last: Arc<AtomicU64>,
    epoch: Instant,
}

impl<T> Watched<T> {
    fn touch(&self) {
        self.last.store(self.epoch.elapsed().as_millis() as u64, Ordering::Relaxed);
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Watched<T> {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let r = std::pin::Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.touch();
        }
        r
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Watched<T> {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let r = std::pin::Pin::new(&mut self.inner).poll_write(cx, buf);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            self.touch();
        }
        r
    }
    fn poll_flush(mut self: std::pin::Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: std::pin::Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// Read the whole body of each request within the body timeout (else `408`) and up to the
/// body cap (else `413`), before the handler.
async fn read_body_in_time(
    axum::extract::State(limits): axum::extract::State<Limits>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let (parts, body) = request.into_parts();
    match tokio::time::timeout(limits.body_timeout, axum::body::to_bytes(body, limits.max_body)).await {
        Ok(Ok(bytes)) => {
            next.run(axum::extract::Request::from_parts(parts, axum::body::Body::from(bytes))).await
        }
        Ok(Err(_)) => (
            axum::http::StatusCode::PAYLOAD_TOO_LARGE,
            format!("request body unreadable or over {} bytes\n", limits.max_body),
        )
            .into_response(),
        Err(_) => {
            (axum::http::StatusCode::REQUEST_TIMEOUT, "request body not received in time\n").into_response()
        }
    }
}

async fn serve_connection<IO>(
    io: IO,
    peer: std::net::SocketAddr,
    router: axum::Router,
    limits: Limits,
    observe: Observer,
) where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let epoch = Instant::now();
    let last = Arc::new(AtomicU64::new(0));
    let io = Watched { inner: io, last: last.clone(), epoch };
    // Handlers see the client's address as axum's `ConnectInfo`.
    let router = router.layer(axum::Extension(axum::extract::ConnectInfo(peer)));
    let service = TowerToHyperService::new(router);
    let mut conn = pin!(
        hyper::server::conn::http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(limits.header_timeout)
            .serve_connection(TokioIo::new(io), service)
    );
    let tick = (limits.idle_timeout / 4).max(Duration::from_millis(50));
    let mut closing = false;
    loop {
        tokio::select! {
            _ = conn.as_mut() => return,
            _ = tokio::time::sleep(tick) => {
                let idle = epoch.elapsed().saturating_sub(Duration::from_millis(last.load(Ordering::Relaxed)));
                if !closing && idle >= limits.idle_timeout {
                    // Finish the request in flight, if any, then close.
                    closing = true;
                    observe(ConnectionEvent::Idle);
                    conn.as_mut().graceful_shutdown();
                } else if closing && idle >= 2 * limits.idle_timeout {
                    // A request in flight that moved no byte for another idle timeout is
                    // stalled: drop the connection.
                    return;
                }
            }
        }
    }
}

/// Serve `router` on `listener` with `limits`, over TLS when `tls` is given, until
/// `shutdown` completes (or the task is aborted). `observe` hears of every connection. When
/// it returns, every connection it opened is closed, requests in flight included.
pub async fn serve(
    listener: tokio::net::TcpListener,
    router: axum::Router,
    limits: Limits,
    tls: Option<Arc<rustls::ServerConfig>>,
    observe: Observer,
    shutdown: impl Future<Output = ()>,
) {
    let router = router.layer(axum::middleware::from_fn_with_state(limits, read_body_in_time));
    let acceptor = tls.map(tokio_rustls::TlsAcceptor::from);
    let counts = Arc::new(Mutex::new(Counts::default()));
    // The connections; dropping the set (when this returns) aborts them.
    let mut connections = tokio::task::JoinSet::new();
    let mut shutdown = pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            _ = shutdown.as_mut() => return,
            Some(_) = connections.join_next(), if !connections.is_empty() => continue,
            accepted = listener.accept() => accepted,
        };
        let (stream, peer) = match accepted {
            Ok(c) => c,
            Err(e) => {
                // Out of file descriptors or a transient error: back off a little.
                tracing::warn!("accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Some(slot) = admit(&counts, peer.ip(), &limits) else {
            observe(ConnectionEvent::Refused);
            drop(stream);
            continue;
        };
        observe(ConnectionEvent::Accepted);
        let _ = stream.set_nodelay(true);
        let (router, observe, acceptor) = (router.clone(), observe.clone(), acceptor.clone());
        connections.spawn(async move {
            let _slot = slot;
            match acceptor {
                None => serve_connection(stream, peer, router, limits, observe).await,
                Some(acceptor) => {
                    match tokio::time::timeout(limits.header_timeout, acceptor.accept(stream)).await {
                        Ok(Ok(tls)) => serve_connection(tls, peer, router, limits, observe).await,
                        Ok(Err(e)) => {
                            tracing::debug!(%peer, "TLS handshake failed: {e}");
                            observe(ConnectionEvent::TlsFailed);
                        }
                        Err(_) => observe(ConnectionEvent::TlsFailed),
                    }
                }
            }
        });
    }
}

/// Raise this process's open-file limit towards its hard limit where the OS allows (each
/// connection is a descriptor); returns the soft limit now in force.
pub fn raise_fd_limit() -> std::io::Result<u64> {
    rlimit::increase_nofile_limit(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_capped_per_client_and_in_total_and_given_back() {
        let counts = Arc::new(Mutex::new(Counts::default()));
        let limits = Limits { max_connections: 3, max_per_client: 2, ..Limits::default() };
        let (a, b): (IpAddr, IpAddr) = ("127.0.0.2".parse().unwrap(), "127.0.0.3".parse().unwrap());
        let a1 = admit(&counts, a, &limits).unwrap();
        let _a2 = admit(&counts, a, &limits).unwrap();
        assert!(admit(&counts, a, &limits).is_none(), "a third from one address");
        let _b1 = admit(&counts, b, &limits).unwrap();
        assert!(admit(&counts, b, &limits).is_none(), "a fourth in total");
        drop(a1);
        assert!(admit(&counts, b, &limits).is_some(), "a slot given back is free again");
    }
}
