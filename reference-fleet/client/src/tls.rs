//! TLS for every bkv client (node, log, witness, monitor, audit, bench) and, through
//! `bkv-serve`, for the services' listeners: rustls with the ring provider, and an explicit
//! root store (a private CA is the normal case; no platform or WebPKI roots are trusted
//! implicitly). TLS gives confidentiality; who a node is stays the business of the
//! verified FleetKeySet (spec/session.md, spec/fleet-replication.md §4), so a TLS
//! certificate never stands in for a fleet key.
//!
//! [`trust_roots`] sets the roots of this process once (the CLI's `--ca`, a node's
//! `tls.ca`); [`crate::http::client`] then trusts exactly those for `https://` URLs.
//! Plain `http://` stays the loopback default.

use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

/// A certificate, key or root file that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {detail}")]
pub struct TlsError {
    /// The file.
    pub path: PathBuf,
    /// What is wrong.
    pub detail: String,
}

/// A [`TlsError`] about `path`.
pub fn error(path: &Path, detail: impl std::fmt::Display) -> TlsError {
    TlsError { path: path.to_owned(), detail: detail.to_string() }
}

/// The ring provider every bkv TLS configuration uses. rustls 0.23.48 deprecates it for
/// lacking a post-quantum key exchange; bkv keeps it so that clients cross-build without
/// the C toolchain aws-lc needs. Every request and answer inside TLS is already sealed end
/// to end by the session layer (spec/session.md), so TLS is a second layer here.
#[expect(deprecated, reason = "ring on purpose: see the doc comment")]
pub fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The certificates of a PEM file (at least one).
pub fn certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs: Vec<_> = CertificateDer::pem_file_iter(path)
        .map_err(|e| error(path, e))?
        .collect::<Result<_, _>>()
        .map_err(|e| error(path, e))?;
    if certs.is_empty() {
        return Err(error(path, "no CERTIFICATE in this PEM file"));
    }
    Ok(certs)
}

static ROOTS: OnceLock<Vec<CertificateDer<'static>>> = OnceLock::new();

/// Trust the CA certificates in the PEM file `path` for every `https://` URL this process
/// opens. Once per process; a second call with other roots is refused.
pub fn trust_roots(path: &Path) -> Result<(), TlsError> {
    let certs = certificates(path)?;
    let mut store = rustls::RootCertStore::empty();
    for c in &certs {
        store.add(c.clone()).map_err(|e| error(path, format!("not a usable CA certificate: {e}")))?;
    }
    match ROOTS.set(certs.clone()) {
        Ok(()) => Ok(()),
        Err(_) if ROOTS.get() == Some(&certs) => Ok(()),
        Err(_) => Err(error(path, "this process already trusts other TLS roots")),
    }
}

/// Whether [`trust_roots`] was called.
pub fn has_roots() -> bool {
    ROOTS.get().is_some()
}

/// The client configuration: the roots of [`trust_roots`] (none before it is called, so an
/// `https://` URL then fails with an unknown issuer).
pub fn client_config() -> rustls::ClientConfig {
    let mut store = rustls::RootCertStore::empty();
    for c in ROOTS.get().into_iter().flatten() {
        let _ = store.add(c.clone());
    }
    let mut config = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .expect("ring supports the default protocol versions")
        .with_root_certificates(store)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    config
}
