//! The TLS client of `wss://` upstreams (rustls with ring, TLS 1.2 and 1.3): the server's
//! certificate is checked against the PEM certificates of `LOGSTREAM_WS_CA_FILE`, by default the
//! system's bundle (Debian's ca-certificates and the like). Read once at start; a file that
//! cannot be read or holds no certificate stops the service with a message naming the setting.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio_rustls::TlsConnector;

/// Where systems keep their bundle of trusted certificates, looked at in this order.
const SYSTEM_BUNDLES: [&str; 4] = [
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/ssl/ca-bundle.pem",
    "/etc/ssl/cert.pem",
];

/// A TLS client trusting the certificates of `ca_file`, or of the system's bundle.
pub fn connector(ca_file: Option<&Path>) -> anyhow::Result<TlsConnector> {
    let path = match ca_file {
        Some(path) => path.to_path_buf(),
        None => system_bundle().ok_or_else(|| {
            anyhow::anyhow!(
                "LOGSTREAM_WS_CA_FILE: a wss:// upstream needs trusted certificates and no system bundle was found ({}); set LOGSTREAM_WS_CA_FILE to a PEM file",
                SYSTEM_BUNDLES.join(", ")
            )
        })?,
    };
    let certificates = crate::pem::certificates(&path, "LOGSTREAM_WS_CA_FILE")?;
    let mut roots = rustls::RootCertStore::empty();
    let (added, _unusable) = roots.add_parsable_certificates(certificates);
    if added == 0 {
        anyhow::bail!(
            "LOGSTREAM_WS_CA_FILE: {} holds no usable PEM certificate",
            path.display()
        );
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| anyhow::anyhow!("TLS: {e}"))?
    .with_root_certificates(roots)
    .with_no_client_auth();
    Ok(TlsConnector::from(Arc::new(config)))
}

fn system_bundle() -> Option<PathBuf> {
    SYSTEM_BUNDLES
        .iter()
        .map(Path::new)
        .find(|p| p.is_file())
        .map(Path::to_path_buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unreadable_or_empty_files_name_the_setting() {
        let dir = std::env::temp_dir().join(format!("ingest-ws-tls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let empty = dir.join("empty.pem");
        std::fs::write(&empty, "").expect("write");
        let error = |path: &Path| match connector(Some(path)) {
            Ok(_) => String::new(),
            Err(e) => e.to_string(),
        };
        assert!(error(&dir.join("missing.pem")).starts_with("LOGSTREAM_WS_CA_FILE: cannot read"));
        assert!(error(&empty).contains("holds no usable"));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
