//! The HTTP exchanges of the client (one client library: reqwest), with a size cap on
//! every answer so a hostile server cannot exhaust the client's memory.

/// The largest answer read (a log's entry batch is the largest valid one).
pub const MAX_RESPONSE: usize = 64 << 20;

/// Media type of every CBOR body (spec/node-api.md).
pub use bkv_protocol::node_api::CBOR;

/// A failed exchange: what happened, with the URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpError(pub String);

impl core::fmt::Display for HttpError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Send `method url` with `body` (CBOR when `cbor`), return the status and the body.
pub async fn request(
    http: &reqwest::Client,
    method: reqwest::Method,
    url: &str,
    body: Option<(Vec<u8>, &str)>,
) -> Result<(u16, Vec<u8>), HttpError> {
    let t = |e: reqwest::Error| HttpError(format!("{url}: {e}"));
    let mut req = http.request(method, url);
    if let Some((bytes, media)) = body {
        req = req.header(reqwest::header::CONTENT_TYPE, media).body(bytes);
    }
    let mut r = req.send().await.map_err(t)?;
    let status = r.status().as_u16();
    if r.content_length().is_some_and(|n| n > MAX_RESPONSE as u64) {
        return Err(HttpError(format!("{url}: response larger than {MAX_RESPONSE} bytes")));
    }
    let mut out = Vec::new();
    while let Some(chunk) = r.chunk().await.map_err(t)? {
        if out.len() + chunk.len() > MAX_RESPONSE {
            return Err(HttpError(format!("{url}: response larger than {MAX_RESPONSE} bytes")));
        }
        out.extend_from_slice(&chunk);
    }
    Ok((status, out))
}

/// GET expecting 200.
pub async fn get(http: &reqwest::Client, url: &str) -> Result<Vec<u8>, HttpError> {
    expect_ok("GET", url, request(http, reqwest::Method::GET, url, None).await?)
}

/// POST expecting 200.
pub async fn post(
    http: &reqwest::Client,
    url: &str,
    body: Vec<u8>,
    media: &str,
) -> Result<Vec<u8>, HttpError> {
    expect_ok("POST", url, request(http, reqwest::Method::POST, url, Some((body, media))).await?)
}

fn expect_ok(method: &str, url: &str, (status, body): (u16, Vec<u8>)) -> Result<Vec<u8>, HttpError> {
    if status != 200 {
        return Err(HttpError(format!("{method} {url}: {status} {}", String::from_utf8_lossy(&body))));
    }
    Ok(body)
}
