//! PEM files named by settings (syslog TLS's certificate chain, the WebSocket client's trusted
//! certificates), read at start; an error names the setting.

use std::path::Path;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;

/// The certificates in the PEM file at `path` (`setting` names where it was set).
pub fn certificates(path: &Path, setting: &str) -> anyhow::Result<Vec<CertificateDer<'static>>> {
    CertificateDer::pem_file_iter(path)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| anyhow::anyhow!("{setting}: cannot read {}: {e}", path.display()))
}
