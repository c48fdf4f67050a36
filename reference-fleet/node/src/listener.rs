//! The node's client listener: an accept loop that survives hostile clients.
//!
//! Each connection gets a header read timeout (a client that does not send a whole request
//! head in time is disconnected); the number of open connections is capped globally and per
//! client address, and a connection over a cap is closed at once, before any byte is read,
//! so one client holding many connections cannot take the node's file descriptors or
//! starve other clients.

use crate::metrics::{Kind, NodeMetrics};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The limits of one listener (`[limits]` of `node.toml`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Open connections at most.
    pub max_connections: usize,
    /// Open connections from one client address at most.
    pub max_per_client: usize,
    /// How long a client may take to send a request's head.
    pub header_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits { max_connections: 4096, max_per_client: 64, header_timeout: Duration::from_secs(5) }
    }
}

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

/// Serve `router` on `listener` with `limits` until the task is aborted.
pub async fn serve(
    listener: tokio::net::TcpListener,
    router: axum::Router,
    limits: Limits,
    metrics: Arc<NodeMetrics>,
) {
    let counts = Arc::new(Mutex::new(Counts::default()));
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                // Out of file descriptors or a transient error: back off a little.
                tracing::warn!("accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Some(slot) = admit(&counts, peer.ip(), &limits) else {
            metrics.connections.get_or_create(&Kind { kind: "refused".into() }).inc();
            drop(stream);
            continue;
        };
        metrics.connections.get_or_create(&Kind { kind: "accepted".into() }).inc();
        let _ = stream.set_nodelay(true);
        let service = TowerToHyperService::new(router.clone());
        tokio::spawn(async move {
            let _slot = slot;
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(limits.header_timeout)
                .serve_connection(TokioIo::new(stream), service);
            let _ = conn.await;
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_capped_per_client_and_in_total_and_given_back() {
        let counts = Arc::new(Mutex::new(Counts::default()));
        let limits = Limits { max_connections: 3, max_per_client: 2, header_timeout: Duration::from_secs(1) };
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
