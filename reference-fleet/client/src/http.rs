//! The HTTP exchanges of the client (one client library: reqwest). Every exchange has a
//! connect timeout, a read timeout and a cap on the answer's size fitted to the largest
//! valid answer of the endpoint, so a node or log that never answers, or answers without
//! end, gets a clear error instead of a hung or exhausted client.

use std::time::Duration;

/// The largest answer read (a log's entry batch, 1024 entries, is the largest valid one).
pub const MAX_RESPONSE: usize = 64 << 20;
/// The largest `GET /v1/bundle` answer read: a released bundle of a large fleet is a few KiB.
pub const MAX_BUNDLE: usize = 1 << 20;
/// The largest `GET /v1/node`, `POST /v1/session` or proof answer read.
pub const MAX_SMALL: usize = 64 << 10;
/// How long a connection may take to open.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long the client waits for the next bytes of an answer.
pub const READ_TIMEOUT: Duration = Duration::from_secs(10);

/// The HTTP client every part of `bkv-client` uses: [`builder`] as it is.
pub fn client() -> reqwest::Client {
    builder().build().expect("a client with timeouts and rustls builds")
}

/// The builder of [`client`]: [`CONNECT_TIMEOUT`], [`READ_TIMEOUT`], connections kept
/// alive and reused, and for `https://` URLs TLS with exactly the roots of
/// [`crate::tls::trust_roots`].
pub fn builder() -> reqwest::ClientBuilder {
    reqwest::Client::builder()
        .connect_timeout(CONNECT_TIMEOUT)
        .read_timeout(READ_TIMEOUT)
        .tls_backend_preconfigured(crate::tls::client_config())
}

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

/// Send `method url` with `body` (and its media type), return the status and the body.
pub async fn request(
    http: &reqwest::Client,
    method: reqwest::Method,
    url: &str,
    body: Option<(Vec<u8>, &str)>,
) -> Result<(u16, Vec<u8>), HttpError> {
    request_capped(http, method, url, body, MAX_RESPONSE).await
}

fn describe(url: &str, e: &reqwest::Error) -> HttpError {
    if e.is_timeout() {
        HttpError(format!("{url}: no answer within {} s", READ_TIMEOUT.as_secs()))
    } else if e.is_connect() {
        // The innermost cause says it best ("Connection refused", "invalid peer certificate").
        let mut cause: &dyn std::error::Error = e;
        while let Some(next) = cause.source() {
            cause = next;
        }
        let hint = if url.starts_with("https://") && !crate::tls::has_roots() {
            " (https needs the CA that signed the server's certificate: --ca FILE, or tls.ca in node.toml)"
        } else {
            ""
        };
        HttpError(format!("{url}: cannot connect: {cause}{hint}"))
    } else {
        HttpError(format!("{url}: {e}"))
    }
}

/// [`request`] reading at most `cap` bytes of the answer.
pub async fn request_capped(
    http: &reqwest::Client,
    method: reqwest::Method,
    url: &str,
    body: Option<(Vec<u8>, &str)>,
    cap: usize,
) -> Result<(u16, Vec<u8>), HttpError> {
    request_authorized(http, method, url, body, cap, None).await
}

/// [`request_capped`] with `Authorization: Bearer <bearer>` when `bearer` is given (the
/// audit log's admin listener, spec/audit-log.md §8.1).
pub async fn request_authorized(
    http: &reqwest::Client,
    method: reqwest::Method,
    url: &str,
    body: Option<(Vec<u8>, &str)>,
    cap: usize,
    bearer: Option<&str>,
) -> Result<(u16, Vec<u8>), HttpError> {
    let t = |e: reqwest::Error| describe(url, &e);
    let mut req = http.request(method, url);
    if let Some(token) = bearer {
        req = req.bearer_auth(token);
    }
    if let Some((bytes, media)) = body {
        req = req.header(reqwest::header::CONTENT_TYPE, media).body(bytes);
    }
    let mut r = req.send().await.map_err(t)?;
    let status = r.status().as_u16();
    let too_big =
        || HttpError(format!("{url}: the answer is larger than {cap} bytes, more than any valid one"));
    if r.content_length().is_some_and(|n| n > cap as u64) {
        return Err(too_big());
    }
    let mut out = Vec::new();
    while let Some(chunk) = r.chunk().await.map_err(t)? {
        if out.len() + chunk.len() > cap {
            return Err(too_big());
        }
        out.extend_from_slice(&chunk);
    }
    Ok((status, out))
}

/// GET expecting 200.
pub async fn get(http: &reqwest::Client, url: &str) -> Result<Vec<u8>, HttpError> {
    get_capped(http, url, MAX_RESPONSE).await
}

/// GET expecting 200, reading at most `cap` bytes.
pub async fn get_capped(http: &reqwest::Client, url: &str, cap: usize) -> Result<Vec<u8>, HttpError> {
    expect_ok("GET", url, request_capped(http, reqwest::Method::GET, url, None, cap).await?)
}

/// POST expecting 200.
pub async fn post(
    http: &reqwest::Client,
    url: &str,
    body: Vec<u8>,
    media: &str,
) -> Result<Vec<u8>, HttpError> {
    expect_ok(
        "POST",
        url,
        request_capped(http, reqwest::Method::POST, url, Some((body, media)), MAX_SMALL).await?,
    )
}

fn expect_ok(method: &str, url: &str, (status, body): (u16, Vec<u8>)) -> Result<Vec<u8>, HttpError> {
    if status != 200 {
        return Err(HttpError(format!("{method} {url}: {status} {}", String::from_utf8_lossy(&body))));
    }
    Ok(body)
}
