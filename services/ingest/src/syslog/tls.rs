//! The TLS side of syslog over TLS (RFC 5425): the server's certificate chain and key, read
//! from PEM files at start (a file that cannot be read or holds no usable key stops the service
//! with a message naming the setting). The connections themselves are read as over TCP.

use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::PrivateKeyDer;
use tokio_rustls::TlsAcceptor;

/// An acceptor presenting the certificate chain of `cert` with the key of `key` (TLS 1.2 and
/// 1.3; no client certificates asked).
pub fn acceptor(cert: &Path, key: &Path) -> anyhow::Result<TlsAcceptor> {
    let chain = crate::pem::certificates(cert, "LOGSTREAM_SYSLOG_TLS_CERT")?;
    if chain.is_empty() {
        anyhow::bail!(
            "LOGSTREAM_SYSLOG_TLS_CERT: {} holds no PEM certificate",
            cert.display()
        );
    }
    let key = PrivateKeyDer::from_pem_file(key).map_err(|e| {
        anyhow::anyhow!(
            "LOGSTREAM_SYSLOG_TLS_KEY: cannot read a private key from {}: {e}",
            key.display()
        )
    })?;
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| anyhow::anyhow!("TLS: {e}"))?
    .with_no_client_auth()
    .with_single_cert(chain, key)
    .map_err(|e| {
        anyhow::anyhow!(
            "LOGSTREAM_SYSLOG_TLS_CERT / LOGSTREAM_SYSLOG_TLS_KEY: the key does not fit the certificate or is not usable: {e}"
        )
    })?;
    Ok(TlsAcceptor::from(Arc::new(config)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unreadable_files_name_the_setting() {
        let dir = std::env::temp_dir().join(format!("ingest-tls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let empty = dir.join("empty.pem");
        std::fs::write(&empty, "").expect("write");
        let missing = dir.join("missing.pem");
        let error = |cert: &Path, key: &Path| match acceptor(cert, key) {
            Ok(_) => String::new(),
            Err(e) => e.to_string(),
        };
        assert!(error(&missing, &empty).starts_with("LOGSTREAM_SYSLOG_TLS_CERT"));
        assert!(error(&empty, &empty).starts_with("LOGSTREAM_SYSLOG_TLS_CERT"));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
