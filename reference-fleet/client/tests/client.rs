//! The client against hostile servers on loopback: a node that answers a 200 MB "bundle" is
//! cut off at the bundle cap with a clear error and the client's memory stays small; a node
//! that never answers is given up after the read timeout; a dead port is a clear
//! "cannot connect".

use bkv_client::{Error, FleetClient, Persisted, Trust};
use bkv_protocol::audit_log::LogAnchors;
use bkv_protocol::validation_bundle::TrustAnchors;
use bkv_protocol::vault::KsfParams;
use std::io::{Read, Write};
use std::net::TcpListener;
use std::time::{Duration, Instant};

fn trust() -> Trust {
    let anchors =
        TrustAnchors { v: 1, fleet_id: "f".into(), third_party: vec![], operator: vec![], pinned: vec![] };
    let log = LogAnchors {
        origin: "o".into(),
        log_key: bkv_protocol::audit_log::note::VerifierKey::parse(
            "example.com/foo+530d903a+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k",
        )
        .unwrap(),
        witnesses: vec![],
        threshold: 0,
    };
    Trust { anchors, log }
}

/// A one-connection server on loopback that reads the request head, then runs `answer`.
fn serve(answer: impl FnOnce(std::net::TcpStream) + Send + 'static) -> String {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", l.local_addr().unwrap());
    std::thread::spawn(move || {
        if let Ok((mut s, _)) = l.accept() {
            let mut head = [0u8; 4096];
            let _ = s.read(&mut head);
            answer(s);
        }
    });
    url
}

/// The process's peak resident memory (`VmHWM`), in bytes.
fn peak_rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

async fn connect(url: &str) -> Result<FleetClient, Error> {
    FleetClient::connect(url, &trust(), &Persisted::default(), KsfParams::TEST, 1_800_000_000)
        .await
        .map(|c| c.0)
}

#[tokio::test]
async fn a_200_mb_bundle_is_cut_off_at_the_cap_in_small_memory() {
    const SIZE: u64 = 200 << 20;
    let url = serve(|mut s| {
        let _ = write!(
            s,
            "HTTP/1.1 200 OK\r\nContent-Type: application/cbor\r\nTransfer-Encoding: chunked\r\n\r\n"
        );
        let chunk = vec![0u8; 64 << 10];
        let mut sent = 0u64;
        while sent < SIZE {
            if write!(s, "{:x}\r\n", chunk.len())
                .and_then(|_| s.write_all(&chunk))
                .and_then(|_| s.write_all(b"\r\n"))
                .is_err()
            {
                return; // the client hung up, as it should
            }
            sent += chunk.len() as u64;
        }
    });
    let before = peak_rss();
    let e = connect(&url).await.unwrap_err();
    assert_eq!(e.code(), "client.transport");
    assert!(e.to_string().contains("larger than 1048576 bytes"), "{e}");
    let grown = peak_rss().saturating_sub(before);
    assert!(grown < 32 << 20, "the client's peak memory grew by {grown} bytes for a 200 MB answer");
}

#[tokio::test]
async fn an_announced_oversize_answer_is_refused_before_reading() {
    let url = serve(|mut s| {
        let _ = write!(s, "HTTP/1.1 200 OK\r\nContent-Length: 209715200\r\n\r\n");
        std::thread::sleep(Duration::from_secs(2));
    });
    let e = connect(&url).await.unwrap_err();
    assert!(e.to_string().contains("larger than"), "{e}");
}

#[tokio::test]
async fn a_node_that_never_answers_is_given_up_after_the_read_timeout() {
    let url = serve(|_s| std::thread::sleep(Duration::from_secs(30)));
    let started = Instant::now();
    let e = connect(&url).await.unwrap_err();
    let took = started.elapsed();
    assert_eq!(e.code(), "client.transport");
    assert!(e.to_string().contains("no answer within 10 s"), "{e}");
    assert!(took >= Duration::from_secs(9) && took < Duration::from_secs(20), "gave up after {took:?}");
}

#[tokio::test]
async fn a_dead_port_is_cannot_connect() {
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let e = connect(&format!("http://{port}")).await.unwrap_err();
    assert_eq!(e.code(), "client.transport");
    assert!(e.to_string().contains("cannot connect"), "{e}");
}
