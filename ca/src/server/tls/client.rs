//! Agents' client certificates, verified against the bundle the CA serves
//! now: a [`SpiffeVerifier`] per published bundle, rebuilt when
//! [`CurrentAuthority::bundle`] changes (after a replaced intermediate or a
//! dropped old root), so agents holding SVIDs of a new root are accepted at
//! once and those of a dropped root no longer are.

use std::sync::{Arc, Mutex};

use meshid_identity::TrustBundle;
use meshid_identity::tls::SpiffeVerifier;
use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::CryptoProvider;
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{DigitallySignedStruct, DistinguishedName, SignatureScheme};
use rustls_pki_types::{CertificateDer, UnixTime};

use crate::authority::CurrentAuthority;

/// A client verifier that follows the current bundle.
#[derive(Debug)]
pub(super) struct CurrentBundleVerifier {
    authority: CurrentAuthority,
    provider: Arc<CryptoProvider>,
    /// The verifier of the bundle it was built for.
    cached: Mutex<(Arc<TrustBundle>, Arc<SpiffeVerifier>)>,
}

// === impl CurrentBundleVerifier ===

impl CurrentBundleVerifier {
    pub(super) fn new(
        authority: CurrentAuthority,
        provider: Arc<CryptoProvider>,
    ) -> Result<Self, rustls::Error> {
        let bundle = authority.bundle();
        let verifier = super::agent_verifier(&bundle, provider.clone())?;
        Ok(Self {
            authority,
            provider,
            cached: Mutex::new((bundle, verifier)),
        })
    }

    /// The verifier of the bundle served now.
    fn current(&self) -> Result<Arc<SpiffeVerifier>, rustls::Error> {
        let bundle = self.authority.bundle();
        let mut cached = self.cached.lock().unwrap_or_else(|p| p.into_inner());
        if !Arc::ptr_eq(&cached.0, &bundle) {
            let verifier = super::agent_verifier(&bundle, self.provider.clone())?;
            *cached = (bundle, verifier);
        }
        Ok(Arc::clone(&cached.1))
    }
}

impl ClientCertVerifier for CurrentBundleVerifier {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        false
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        self.current()?
            .verify_client_cert(end_entity, intermediates, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        ClientCertVerifier::verify_tls12_signature(&*self.current()?, message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        ClientCertVerifier::verify_tls13_signature(&*self.current()?, message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}
