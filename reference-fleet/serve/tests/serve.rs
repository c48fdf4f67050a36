//! `bkv_serve::serve` against slow and stalled clients: a request body that stops arriving
//! is answered `408` after the body timeout; a connection stalled in the middle of a body,
//! with a longer body timeout, is dropped after twice the idle timeout; a TLS
//! listener refuses a plain-HTTP client and counts the failed handshake.

use bkv_serve::{ConnectionEvent, Limits, serve};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

async fn start(
    limits: Limits,
    tls: Option<Arc<rustls::ServerConfig>>,
) -> (std::net::SocketAddr, Arc<Mutex<Vec<ConnectionEvent>>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let events = Arc::new(Mutex::new(Vec::new()));
    let seen = events.clone();
    let router = axum::Router::new()
        .route("/echo", axum::routing::post(|body: axum::body::Bytes| async move { body }));
    tokio::spawn(serve(
        listener,
        router,
        limits,
        tls,
        Arc::new(move |e| seen.lock().unwrap().push(e)),
        std::future::pending(),
    ));
    (addr, events)
}

#[tokio::test]
async fn a_body_that_stops_arriving_gets_408_after_the_body_timeout() {
    let limits = Limits { body_timeout: Duration::from_millis(300), ..Limits::default() };
    let (addr, _) = start(limits, None).await;
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let t = Instant::now();
    s.write_all(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nabc").await.unwrap();
    let mut answer = vec![0u8; 256];
    let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut answer)).await.unwrap().unwrap();
    let text = String::from_utf8_lossy(&answer[..n]);
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    assert!(
        t.elapsed() >= Duration::from_millis(300) && t.elapsed() < Duration::from_secs(2),
        "{:?}",
        t.elapsed()
    );
    // A whole body is echoed.
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc").await.unwrap();
    let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut answer)).await.unwrap().unwrap();
    let text = String::from_utf8_lossy(&answer[..n]);
    assert!(text.starts_with("HTTP/1.1 200") && text.ends_with("abc"), "{text}");
}

#[tokio::test]
async fn a_body_over_the_cap_gets_413_without_being_buffered() {
    let limits = Limits { max_body: 1024, ..Limits::default() };
    let (addr, _) = start(limits, None).await;
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000000\r\n\r\n").await.unwrap();
    s.write_all(&[0u8; 4096]).await.unwrap();
    let mut answer = vec![0u8; 256];
    let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut answer)).await.unwrap().unwrap();
    let text = String::from_utf8_lossy(&answer[..n]);
    assert!(text.starts_with("HTTP/1.1 413"), "{text}");
}

#[tokio::test]
async fn a_connection_stalled_mid_request_is_dropped_after_twice_the_idle_timeout() {
    // The body timeout is longer than the idle timeout: only the idle timeout can close it.
    let limits = Limits {
        body_timeout: Duration::from_secs(30),
        idle_timeout: Duration::from_millis(400),
        ..Limits::default()
    };
    let (addr, events) = start(limits, None).await;
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let t = Instant::now();
    s.write_all(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nabc").await.unwrap();
    let mut buf = [0u8; 64];
    let r = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf)).await.expect("closed within 5 s");
    assert!(matches!(r, Ok(0) | Err(_)), "{r:?}");
    assert!(
        t.elapsed() >= Duration::from_millis(800) && t.elapsed() < Duration::from_secs(2),
        "{:?}",
        t.elapsed()
    );
    assert!(events.lock().unwrap().contains(&ConnectionEvent::Idle));
}

#[tokio::test]
async fn a_tls_listener_refuses_plain_http_and_counts_it() {
    let key = rcgen::KeyPair::generate().unwrap();
    let cert =
        rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned()]).unwrap().self_signed(&key).unwrap();
    let dir = std::env::temp_dir().join(format!("bkv-serve-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("c.pem"), cert.pem()).unwrap();
    std::fs::write(dir.join("k.pem"), key.serialize_pem()).unwrap();
    let tls = bkv_serve::tls::server_config(&dir.join("c.pem"), &dir.join("k.pem")).unwrap();
    // A key that is not the certificate's is refused, naming the key file.
    let other = rcgen::KeyPair::generate().unwrap();
    std::fs::write(dir.join("other.pem"), other.serialize_pem()).unwrap();
    let e = bkv_serve::tls::server_config(&dir.join("c.pem"), &dir.join("other.pem")).unwrap_err();
    assert_eq!(e.path, dir.join("other.pem"), "{e}");
    let (addr, events) = start(Limits::default(), Some(tls)).await;
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").await.unwrap();
    let mut buf = [0u8; 64];
    let _ = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf)).await.expect("closed");
    let deadline = Instant::now() + Duration::from_secs(5);
    while !events.lock().unwrap().contains(&ConnectionEvent::TlsFailed) {
        assert!(Instant::now() < deadline, "no failed handshake counted");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let _ = std::fs::remove_dir_all(&dir);
}
