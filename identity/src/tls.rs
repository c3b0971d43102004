//! rustls verifiers that accept peers by SPIFFE ID instead of DNS name.
//!
//! rustls's WebPKI verifier wants a DNS or IP SAN matching a server name and
//! rejects URI-only certificates. SPIFFE peers are named by the URI SAN, so
//! these verifiers run [`verify_x509_svid`] and then a [`PeerMatch`]
//! authorization on the resulting ID. The TLS server name is ignored.

use std::fmt;
use std::sync::Arc;

use meshid_runtime::clock::SharedClock;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{WebPkiSupportedAlgorithms, verify_tls12_signature, verify_tls13_signature};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{
    CertificateError, DigitallySignedStruct, DistinguishedName, OtherError, SignatureScheme,
};

use crate::verify::{SvidError, verify_x509_svid};
use crate::{BundleSet, SpiffeId, TrustDomain};

/// Which verified peers to accept.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum PeerMatch {
    /// Any peer whose trust domain has a bundle in the set.
    Any,
    /// Only peers in this trust domain.
    TrustDomain(TrustDomain),
    /// Only these exact SPIFFE IDs.
    OneOf(Vec<SpiffeId>),
}

/// The peer's SPIFFE ID was verified but is not allowed by [`PeerMatch`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("peer {0} is not an allowed SPIFFE ID for this connection")]
pub struct PeerNotAllowed(pub SpiffeId);

/// Verifies a TLS server's X.509-SVID (use on the client side).
pub struct SpiffeServerVerifier {
    inner: Inner,
}

/// Verifies a TLS client's X.509-SVID (use on the server side); client
/// certificates are mandatory.
pub struct SpiffeClientVerifier {
    inner: Inner,
}

struct Inner {
    bundles: Arc<BundleSet>,
    peer: PeerMatch,
    clock: SharedClock,
    algorithms: WebPkiSupportedAlgorithms,
}

/// The SPIFFE ID of a peer's leaf certificate, if it has a valid one.
///
/// Does not verify the chain: call it on certificates a verifier above has
/// already accepted (e.g. `Connection::peer_certificates()`).
pub fn peer_spiffe_id(certs: &[CertificateDer<'_>]) -> Option<SpiffeId> {
    crate::x509::spiffe_id_of(certs.first()?).ok()
}

// === impl PeerMatch ===

impl PeerMatch {
    /// True if `id` is allowed.
    pub fn allows(&self, id: &SpiffeId) -> bool {
        match self {
            Self::Any => true,
            Self::TrustDomain(td) => id.is_member_of(td),
            Self::OneOf(ids) => ids.contains(id),
        }
    }
}

// === impl Inner ===

impl Inner {
    fn new(bundles: Arc<BundleSet>, peer: PeerMatch, clock: SharedClock) -> Self {
        let algorithms = rustls::crypto::ring::default_provider().signature_verification_algorithms;
        Self {
            bundles,
            peer,
            clock,
            algorithms,
        }
    }

    fn verify(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
    ) -> Result<(), rustls::Error> {
        let mut chain = Vec::with_capacity(intermediates.len() + 1);
        chain.push(end_entity.clone());
        chain.extend(intermediates.iter().cloned());
        let svid = verify_x509_svid(&chain, &self.bundles, self.clock.now()).map_err(to_rustls)?;
        if !self.peer.allows(&svid.spiffe_id) {
            return Err(CertificateError::Other(OtherError(Arc::new(PeerNotAllowed(
                svid.spiffe_id,
            ))))
            .into());
        }
        Ok(())
    }

    fn tls12(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn tls13(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

impl fmt::Debug for Inner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SpiffeVerifier")
            .field("trust_domains", &self.bundles.len())
            .field("peer", &self.peer)
            .finish()
    }
}

fn to_rustls(e: SvidError) -> rustls::Error {
    let ce = match e {
        SvidError::Expired { .. } => CertificateError::Expired,
        SvidError::NotYetValid { .. } => CertificateError::NotValidYet,
        SvidError::BadSignature => CertificateError::BadSignature,
        SvidError::Malformed => CertificateError::BadEncoding,
        SvidError::UnknownTrustDomain(_) | SvidError::NoPathToRoot => {
            CertificateError::UnknownIssuer
        }
        other => CertificateError::Other(OtherError(Arc::new(other))),
    };
    rustls::Error::InvalidCertificate(ce)
}

// === impl SpiffeServerVerifier ===

impl SpiffeServerVerifier {
    /// Accepts servers allowed by `peer`, checked against `bundles` at the wall clock.
    pub fn new(bundles: Arc<BundleSet>, peer: PeerMatch) -> Self {
        Self::with_clock(bundles, peer, meshid_runtime::clock::system())
    }

    /// Like [`Self::new`] with an injected clock.
    pub fn with_clock(bundles: Arc<BundleSet>, peer: PeerMatch, clock: SharedClock) -> Self {
        Self {
            inner: Inner::new(bundles, peer, clock),
        }
    }
}

impl fmt::Debug for SpiffeServerVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SpiffeServerVerifier({:?})", self.inner)
    }
}

impl ServerCertVerifier for SpiffeServerVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        self.inner.verify(end_entity, intermediates)?;
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.tls12(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.tls13(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.schemes()
    }
}

// === impl SpiffeClientVerifier ===

impl SpiffeClientVerifier {
    /// Requires clients allowed by `peer`, checked against `bundles` at the wall clock.
    pub fn new(bundles: Arc<BundleSet>, peer: PeerMatch) -> Self {
        Self::with_clock(bundles, peer, meshid_runtime::clock::system())
    }

    /// Like [`Self::new`] with an injected clock.
    pub fn with_clock(bundles: Arc<BundleSet>, peer: PeerMatch, clock: SharedClock) -> Self {
        Self {
            inner: Inner::new(bundles, peer, clock),
        }
    }
}

impl fmt::Debug for SpiffeClientVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SpiffeClientVerifier({:?})", self.inner)
    }
}

impl ClientCertVerifier for SpiffeClientVerifier {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        true
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        self.inner.verify(end_entity, intermediates)?;
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.tls12(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.tls13(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.schemes()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests;
