//! TLS to the CA: TLS 1.3, the CA verified against pinned roots *and*
//! pinned to its SPIFFE ID (another SVID of the trust domain, e.g. a
//! workload's, is refused before anything is sent), optionally with the
//! agent SVID as client certificate.

use std::sync::Arc;

use meshid_identity::tls::{PeerMatch, PeerNotAllowed, SpiffeServerVerifier};
use meshid_identity::{BundleSet, SpiffeId};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, ClientConfig, DigitallySignedStruct, OtherError, SignatureScheme};
use rustls_pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};

use super::{AgentCredentials, CaError};

/// The server's SVID is valid but names another SPIFFE ID than the CA's.
///
/// Travels inside the rustls handshake error; [`CaError::wrong_ca_in`](super::CaError::wrong_ca_in) turns
/// it into [`CaError::WrongCa`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the server presented {presented}, not the CA's ID {expected}")]
pub(super) struct CaIdMismatch {
    pub(super) expected: SpiffeId,
    pub(super) presented: SpiffeId,
}

/// [`SpiffeServerVerifier`] for exactly the CA's ID, reporting a mismatch
/// with both IDs.
#[derive(Debug)]
struct CaVerifier {
    inner: SpiffeServerVerifier,
    expected: SpiffeId,
}

/// A rustls client config for the CA that serves as `ca_id`.
pub(super) fn client_config(
    ca_id: &SpiffeId,
    bundles: Arc<BundleSet>,
    creds: Option<&AgentCredentials>,
) -> Result<Arc<ClientConfig>, CaError> {
    let td = ca_id.trust_domain();
    if bundles.get(&td).is_none() {
        return Err(CaError::Tls(format!(
            "no trust bundle for {td}: set trust_bundle_file to the CA's root certificates"
        )));
    }
    let verifier = CaVerifier {
        inner: SpiffeServerVerifier::new(bundles, PeerMatch::OneOf(vec![ca_id.clone()])),
        expected: ca_id.clone(),
    };
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| CaError::Tls(e.to_string()))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier));
    let mut config = match creds {
        Some(c) => {
            let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(c.key.pkcs8_der().to_vec()));
            builder
                .with_client_auth_cert(c.chain.clone(), key)
                .map_err(|e| CaError::Tls(e.to_string()))?
        }
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(Arc::new(config))
}

/// The [`CaIdMismatch`] inside a rustls error, if that is what it is.
pub(super) fn mismatch_in(e: &rustls::Error) -> Option<&CaIdMismatch> {
    match e {
        rustls::Error::InvalidCertificate(CertificateError::Other(OtherError(inner))) => {
            inner.downcast_ref::<CaIdMismatch>()
        }
        _ => None,
    }
}

// === impl CaVerifier ===

impl ServerCertVerifier for CaVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        self.inner
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
            .map_err(|e| match &e {
                rustls::Error::InvalidCertificate(CertificateError::Other(OtherError(inner))) => {
                    match inner.downcast_ref::<PeerNotAllowed>() {
                        Some(PeerNotAllowed(presented)) => {
                            CertificateError::Other(OtherError(Arc::new(CaIdMismatch {
                                expected: self.expected.clone(),
                                presented: presented.clone(),
                            })))
                            .into()
                        }
                        None => e,
                    }
                }
                _ => e,
            })
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}
