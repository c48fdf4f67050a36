//! A minimal HTTP/1.1 client for `http://host:port/path` URLs (reference use between the
//! bkv services and the monitor; no TLS, one request per connection).

use super::{Error, Result};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The largest response accepted (a hostile server cannot exhaust memory).
pub const MAX_RESPONSE: u64 = 64 << 20;

/// Send a request and return the status and body.
pub async fn request(method: &str, url: &str, body: &[u8]) -> Result<(u16, Vec<u8>)> {
    let rest =
        url.strip_prefix("http://").ok_or_else(|| Error::Http(format!("not an http:// URL: {url}")))?;
    let (host, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let mut s = tokio::net::TcpStream::connect(host).await.map_err(|e| Error::Http(format!("{url}: {e}")))?;
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {host}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let io = |e: std::io::Error| Error::Http(format!("{url}: {e}"));
    s.write_all(head.as_bytes()).await.map_err(io)?;
    s.write_all(body).await.map_err(io)?;
    let mut buf = Vec::new();
    (&mut s).take(MAX_RESPONSE + 1).read_to_end(&mut buf).await.map_err(io)?;
    if buf.len() as u64 > MAX_RESPONSE {
        return Err(Error::Http(format!("{url}: response larger than {MAX_RESPONSE} bytes")));
    }
    let split = buf
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| Error::Http(format!("{url}: truncated response")))?;
    let headers = String::from_utf8_lossy(&buf[..split]).to_ascii_lowercase();
    let status: u16 = headers
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| Error::Http(format!("{url}: bad status line")))?;
    let raw = &buf[split + 4..];
    let body = if headers.contains("transfer-encoding: chunked") { dechunk(raw)? } else { raw.to_vec() };
    Ok((status, body))
}

fn dechunk(mut raw: &[u8]) -> Result<Vec<u8>> {
    let bad = || Error::Http("bad chunked body".into());
    let mut out = Vec::new();
    loop {
        let eol = raw.windows(2).position(|w| w == b"\r\n").ok_or_else(bad)?;
        let size_str = std::str::from_utf8(&raw[..eol]).map_err(|_| bad())?;
        let size =
            usize::from_str_radix(size_str.split(';').next().unwrap_or("").trim(), 16).map_err(|_| bad())?;
        raw = &raw[eol + 2..];
        if size == 0 {
            return Ok(out);
        }
        if raw.len() < size + 2 {
            return Err(bad());
        }
        out.extend_from_slice(&raw[..size]);
        raw = &raw[size + 2..];
    }
}

/// GET expecting 200.
pub async fn get(url: &str) -> Result<Vec<u8>> {
    let (status, body) = request("GET", url, &[]).await?;
    if status != 200 {
        return Err(Error::Http(format!("GET {url}: {status} {}", String::from_utf8_lossy(&body))));
    }
    Ok(body)
}

/// POST expecting 200.
pub async fn post(url: &str, body: &[u8]) -> Result<Vec<u8>> {
    let (status, resp) = request("POST", url, body).await?;
    if status != 200 {
        return Err(Error::Http(format!("POST {url}: {status} {}", String::from_utf8_lossy(&resp))));
    }
    Ok(resp)
}
