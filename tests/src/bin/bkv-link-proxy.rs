//! `bkv-link-proxy`: the delaying TCP proxy of the network-namespace lab (this kernel has
//! no `netem`). One process runs in each node's namespace and carries that node's
//! connections to its peers: `--link LISTEN=TARGET` (repeated) listens on `LISTEN` and
//! forwards each connection to `TARGET`.
//!
//! Commands on standard input, one per line:
//! - `delay I MS`: every chunk on link `I` (both directions) is held `MS` milliseconds
//!   (order is kept; throughput is not limited);
//! - `loss I PERMILLE`: each chunk on link `I` resets its connection with that probability
//!   (what a lossy path looks like to an application: stalls and broken connections);
//! - `clear`: no delay and no loss anywhere.
//!
//! It prints `ready` once every listener is bound, and exits when its standard input
//! closes, so it never outlives the test that started it.
#![forbid(unsafe_code)]

use rand_core::{RngCore, SeedableRng};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

#[derive(Default)]
struct Link {
    delay_ms: AtomicU64,
    loss_permille: AtomicU64,
}

/// Copy `from` to `to`, holding each chunk for the link's delay, and resetting with the
/// link's loss probability.
async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    link: Arc<Link>,
    seed: u64,
) {
    let (tx, mut rx) = tokio::sync::mpsc::channel::<(tokio::time::Instant, Vec<u8>)>(256);
    let reader = async move {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            let n = match from.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            let loss = link.loss_permille.load(Ordering::Relaxed);
            if loss > 0 && rng.next_u64() % 1000 < loss {
                return;
            }
            let due =
                tokio::time::Instant::now() + Duration::from_millis(link.delay_ms.load(Ordering::Relaxed));
            if tx.send((due, buf[..n].to_vec())).await.is_err() {
                return;
            }
        }
    };
    let writer = async move {
        while let Some((due, chunk)) = rx.recv().await {
            tokio::time::sleep_until(due).await;
            if to.write_all(&chunk).await.is_err() {
                return;
            }
        }
        let _ = to.shutdown().await;
    };
    // A loss ends the reader; dropping both halves resets the connection.
    tokio::select! {
        _ = reader => {}
        _ = writer => {}
    }
}

async fn serve(listener: TcpListener, target: String, link: Arc<Link>) {
    let mut n = 0u64;
    loop {
        let Ok((inbound, _)) = listener.accept().await else { continue };
        n += 1;
        let (target, link) = (target.clone(), link.clone());
        tokio::spawn(async move {
            let Ok(Ok(outbound)) =
                tokio::time::timeout(Duration::from_secs(5), TcpStream::connect(&target)).await
            else {
                return;
            };
            let _ = (inbound.set_nodelay(true), outbound.set_nodelay(true));
            let (ir, iw) = inbound.into_split();
            let (or, ow) = outbound.into_split();
            tokio::join!(pump(ir, ow, link.clone(), n), pump(or, iw, link, !n));
        });
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let mut links = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match (a.as_str(), args.next()) {
            ("--link", Some(spec)) => {
                let (listen, target) =
                    spec.split_once('=').unwrap_or_else(|| panic!("--link LISTEN=TARGET, not {spec}"));
                links.push((listen.to_owned(), target.to_owned()));
            }
            _ => panic!("usage: bkv-link-proxy --link LISTEN=TARGET ..."),
        }
    }
    let state: Vec<Arc<Link>> = links.iter().map(|_| Arc::new(Link::default())).collect();
    for ((listen, target), link) in links.iter().zip(&state) {
        let l = TcpListener::bind(listen).await.unwrap_or_else(|e| panic!("bind {listen}: {e}"));
        tokio::spawn(serve(l, target.clone(), link.clone()));
    }
    println!("ready");
    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        let words: Vec<&str> = line.split_whitespace().collect();
        let arg = |i: usize| words.get(i).and_then(|w| w.parse::<u64>().ok());
        match (words.first().copied(), arg(1), arg(2)) {
            (Some("delay"), Some(i), Some(ms)) if (i as usize) < state.len() => {
                state[i as usize].delay_ms.store(ms, Ordering::Relaxed)
            }
            (Some("loss"), Some(i), Some(p)) if (i as usize) < state.len() => {
                state[i as usize].loss_permille.store(p, Ordering::Relaxed)
            }
            (Some("clear"), _, _) => {
                for l in &state {
                    l.delay_ms.store(0, Ordering::Relaxed);
                    l.loss_permille.store(0, Ordering::Relaxed);
                }
            }
            _ => eprintln!("bkv-link-proxy: unknown command {line:?}"),
        }
    }
}
