//! URLs given on the command line: `http://host:port`, `https://host:port` or a bare
//! `host:port` (taken as `http://`), with a message that says exactly what is wrong.

use crate::error::{Error, Result};

/// The URL of `--flag value`: a bare `host:port` becomes `http://host:port`; a scheme other
/// than http or https, a missing host or port, a path, a query or a fragment is a usage
/// error naming the flag.
pub fn service_url(flag: &str, value: &str) -> Result<String> {
    let bad = |what: &str| {
        Error::Usage(format!(
            "--{flag} {value}: {what}; give http://HOST:PORT, https://HOST:PORT or HOST:PORT (e.g. 127.0.0.1:8080)"
        ))
    };
    let (scheme, rest) = match value.split_once("://") {
        Some((s, rest)) if s == "http" || s == "https" => (s, rest),
        Some((s, _)) => return Err(bad(&format!("the scheme {s}:// is not http:// or https://"))),
        None => ("http", value),
    };
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    if rest.contains(['/', '?', '#']) {
        return Err(bad("a node or service URL has no path, query or fragment"));
    }
    let (host, port) = match rest.rsplit_once(':') {
        Some((h, p)) if !h.is_empty() && !p.is_empty() => (h, p),
        _ => return Err(bad("the host and the port are both needed")),
    };
    if port.parse::<u16>().map_or(true, |p| p == 0) {
        return Err(bad(&format!("the port {port} is not a number from 1 to 65535")));
    }
    if host.contains(char::is_whitespace) {
        return Err(bad("the host has a space"));
    }
    Ok(format!("{scheme}://{host}:{port}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bare_and_full_urls_are_accepted_and_everything_else_is_explained() {
        assert_eq!(service_url("fleet", "127.0.0.1:42569").unwrap(), "http://127.0.0.1:42569");
        assert_eq!(service_url("node", "http://127.0.0.1:1/").unwrap(), "http://127.0.0.1:1");
        assert_eq!(service_url("fleet", "https://node.example:443").unwrap(), "https://node.example:443");
        assert_eq!(service_url("node", "[::1]:8080").unwrap(), "http://[::1]:8080");
        for (bad, words) in [
            ("ftp://h:1", "scheme"),
            ("127.0.0.1", "port are both needed"),
            ("http://h:99999", "from 1 to 65535"),
            ("http://h:1/v1/session", "no path"),
            ("http://:80", "both needed"),
        ] {
            let e = service_url("fleet", bad).unwrap_err().to_string();
            assert!(e.contains(words) && e.contains("--fleet"), "{bad}: {e}");
        }
    }
}
