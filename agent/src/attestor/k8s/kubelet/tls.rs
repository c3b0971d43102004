//! The kubelet connection's TLS: the kubelet certificate verified against
//! the CA file (re-read at each connection; the config is rebuilt only
//! when its content changed), or not verified at all when configured so
//! (the handshake signatures are still checked).

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use rustls::ClientConfig;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{WebPkiSupportedAlgorithms, verify_tls12_signature, verify_tls13_signature};
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};

use super::K8sError;

/// How the kubelet's certificate is checked.
#[derive(Debug)]
pub(super) enum Tls {
    /// Against the CA in this file; the config built from its last content.
    Verify {
        ca_path: PathBuf,
        last: Mutex<Option<(String, Arc<ClientConfig>)>>,
    },
    /// Not at all (`skip_kubelet_verification`).
    Skip(Arc<ClientConfig>),
}

/// Accepts any certificate; still checks the handshake signatures.
#[derive(Debug)]
struct NoVerify(WebPkiSupportedAlgorithms);

// === impl Tls ===

impl Tls {
    /// Verifying against the CA in `ca_path`, read at each connection.
    pub(super) fn verify(ca_path: PathBuf) -> Self {
        Self::Verify {
            ca_path,
            last: Mutex::new(None),
        }
    }

    /// Accepting any kubelet certificate (`skip_kubelet_verification`).
    pub(super) fn skip() -> Result<Self, String> {
        let provider = meshid_identity::crypto::provider();
        let verifier = Arc::new(NoVerify(provider.signature_verification_algorithms));
        let cfg = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .dangerous()
            .with_custom_certificate_verifier(verifier)
            .with_no_client_auth();
        Ok(Self::Skip(Arc::new(cfg)))
    }

    /// The client config: with the CA file's current content (the config
    /// built last is reused while the file is unchanged).
    pub(super) fn config(&self) -> Result<Arc<ClientConfig>, K8sError> {
        match self {
            Tls::Skip(cfg) => Ok(cfg.clone()),
            Tls::Verify { ca_path, last } => {
                let pem = read_ca(ca_path)?;
                let mut last = last.lock().unwrap_or_else(|p| p.into_inner());
                if let Some((seen, cfg)) = last.as_ref()
                    && *seen == pem
                {
                    return Ok(cfg.clone());
                }
                let cfg = verifying_config(ca_path, &pem)?;
                *last = Some((pem, cfg.clone()));
                Ok(cfg)
            }
        }
    }
}

// === impl NoVerify ===

impl ServerCertVerifier for NoVerify {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(message, cert, dss, &self.0)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(message, cert, dss, &self.0)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.supported_schemes()
    }
}

/// The PEM text of the kubelet CA file.
fn read_ca(path: &Path) -> Result<String, K8sError> {
    meshid_runtime::fs::read_to_string(path, meshid_runtime::fs::MAX_SMALL_FILE).map_err(|e| {
        K8sError::Ca {
            path: path.to_owned(),
            reason: e.to_string(),
        }
    })
}

/// A client config trusting the certificates in `pem`.
fn verifying_config(path: &Path, pem: &str) -> Result<Arc<ClientConfig>, K8sError> {
    let err = |reason: String| K8sError::Ca {
        path: path.to_owned(),
        reason,
    };
    let certs = meshid_identity::x509::pem_certs(pem).map_err(|e| err(e.to_string()))?;
    let mut roots = rustls::RootCertStore::empty();
    for cert in certs {
        roots.add(cert).map_err(|e| err(e.to_string()))?;
    }
    if roots.is_empty() {
        return Err(err("holds no certificate".into()));
    }
    let cfg = ClientConfig::builder_with_provider(meshid_identity::crypto::provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| err(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(cfg))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_ca_file_without_certificates_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ca.crt");
        std::fs::write(&path, "not pem").unwrap();
        let pem = read_ca(&path).unwrap();
        let err = verifying_config(&path, &pem).unwrap_err().to_string();
        assert!(
            err.contains("kubelet CA") && err.contains("ca.crt"),
            "{err}"
        );
        let err = read_ca(&dir.path().join("missing"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("kubelet_ca_path"), "{err}");
    }
}
