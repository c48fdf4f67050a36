//! TLS for the services' listeners: rustls with the ring provider of
//! [`bkv_client::tls::provider`], certificate and key from PEM files.

pub use bkv_client::tls::TlsError;
use bkv_client::tls::{certificates, error, provider};
use rustls_pki_types::PrivateKeyDer;
use rustls_pki_types::pem::PemObject;
use std::path::Path;
use std::sync::Arc;

/// A listener's TLS configuration: the certificate chain in `cert` (PEM, leaf first) and
/// its private key in `key` (PEM: PKCS#8, SEC1 or PKCS#1). HTTP/1.1 only.
pub fn server_config(cert: &Path, key: &Path) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    let chain = certificates(cert)?;
    let private = PrivateKeyDer::from_pem_file(key).map_err(|e| error(key, e))?;
    let mut config = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| error(cert, e))?
        .with_no_client_auth()
        .with_single_cert(chain, private)
        .map_err(|e| error(key, format!("does not fit the certificate: {e}")))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}
