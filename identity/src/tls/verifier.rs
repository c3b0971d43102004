//! [`SpiffeVerifier`] and its builder: [`PeerCheck`]'s rules as rustls
//! verifier traits.

use std::fmt;
use std::sync::Arc;

use meshid_runtime::clock::SharedClock;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{
    CryptoProvider, WebPkiSupportedAlgorithms, verify_tls12_signature, verify_tls13_signature,
};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{
    CertificateError, DigitallySignedStruct, DistinguishedName, OtherError, SignatureScheme,
};

use super::{PeerCheck, PeerMatch, PeerRejection};
use crate::BundleSet;
use crate::verify::SvidError;

/// Verifies a peer's X.509-SVID against trust bundles, then checks its
/// SPIFFE ID with a [`PeerMatch`].
///
/// Implements both rustls verifier traits: give it to
/// `dangerous().with_custom_certificate_verifier` on a client, or to
/// `with_client_cert_verifier` on a server. Made by [`Self::builder`].
pub struct SpiffeVerifier {
    check: PeerCheck,
    algorithms: WebPkiSupportedAlgorithms,
    client_auth_mandatory: bool,
}

/// Configures a [`SpiffeVerifier`]; see [`SpiffeVerifier::builder`].
#[must_use = "call build() to get the verifier"]
pub struct SpiffeVerifierBuilder {
    bundles: Arc<BundleSet>,
    peer: PeerMatch,
    clock: Option<SharedClock>,
    provider: Option<Arc<CryptoProvider>>,
    allow_unauthenticated: bool,
}

/// Why a [`SpiffeVerifier`] could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum VerifierError {
    /// No bundle in the set has an X.509 authority, so no peer could ever
    /// verify.
    #[error(
        "no trust bundle with an X.509 root to verify peers against; load the trust domain's bundle (its root certificates) first"
    )]
    NoBundles,
    /// `PeerMatch::OneOf` lists no ID, so every peer would be refused.
    #[error("the list of accepted peer SPIFFE IDs is empty; name at least one ID to accept")]
    NoPeers,
}

// === impl SpiffeVerifier ===

impl SpiffeVerifier {
    /// Starts a verifier over `bundles` that accepts [`PeerMatch::Any`]
    /// verified peer, checks validity at the system clock, uses
    /// [`crate::crypto::provider`] and (on a server) requires a client
    /// certificate. Each of these can be changed on the builder.
    pub fn builder(bundles: Arc<BundleSet>) -> SpiffeVerifierBuilder {
        SpiffeVerifierBuilder {
            bundles,
            peer: PeerMatch::Any,
            clock: None,
            provider: None,
            allow_unauthenticated: false,
        }
    }

    /// The peer rules this verifier applies.
    pub fn peer_check(&self) -> &PeerCheck {
        &self.check
    }

    fn verify(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
    ) -> Result<(), rustls::Error> {
        let mut chain = Vec::with_capacity(intermediates.len() + 1);
        chain.push(end_entity.clone());
        chain.extend(intermediates.iter().cloned());
        self.check.check(&chain).map(drop).map_err(to_rustls)
    }
}

impl fmt::Debug for SpiffeVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SpiffeVerifier")
            .field("check", &self.check)
            .field("client_auth_mandatory", &self.client_auth_mandatory)
            .finish_non_exhaustive()
    }
}

/// The rustls error for a rejection; [`PeerRejection::reason`] and the
/// proxy's label of this error agree.
fn to_rustls(e: PeerRejection) -> rustls::Error {
    let ce = match e {
        PeerRejection::Svid(SvidError::Expired { .. }) => CertificateError::Expired,
        PeerRejection::Svid(SvidError::NotYetValid { .. }) => CertificateError::NotValidYet,
        PeerRejection::Svid(SvidError::BadSignature) => CertificateError::BadSignature,
        PeerRejection::Svid(SvidError::Malformed) => CertificateError::BadEncoding,
        PeerRejection::Svid(SvidError::UnknownTrustDomain(_) | SvidError::NoPathToRoot) => {
            CertificateError::UnknownIssuer
        }
        PeerRejection::Svid(other) => CertificateError::Other(OtherError(Arc::new(other))),
        PeerRejection::NotAllowed(refused) => {
            CertificateError::Other(OtherError(Arc::new(refused)))
        }
    };
    rustls::Error::InvalidCertificate(ce)
}

/// The half both rustls verifier traits share: handshake signatures are
/// checked with the provider's algorithms.
macro_rules! handshake_signatures {
    () => {
        fn verify_tls12_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            verify_tls12_signature(message, cert, dss, &self.algorithms)
        }

        fn verify_tls13_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            verify_tls13_signature(message, cert, dss, &self.algorithms)
        }

        fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
            self.algorithms.supported_schemes()
        }
    };
}

impl ServerCertVerifier for SpiffeVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        self.verify(end_entity, intermediates)?;
        Ok(ServerCertVerified::assertion())
    }

    handshake_signatures!();
}

impl ClientCertVerifier for SpiffeVerifier {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        self.client_auth_mandatory
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
        self.verify(end_entity, intermediates)?;
        Ok(ClientCertVerified::assertion())
    }

    handshake_signatures!();
}

// === impl SpiffeVerifierBuilder ===

impl SpiffeVerifierBuilder {
    /// Which verified peers to accept (default [`PeerMatch::Any`]).
    pub fn peer(mut self, peer: PeerMatch) -> Self {
        self.peer = peer;
        self
    }

    /// The clock that decides whether certificates are expired (default:
    /// the system clock).
    pub fn clock(mut self, clock: SharedClock) -> Self {
        self.clock = Some(clock);
        self
    }

    /// Whose signature algorithms check the handshake (default:
    /// [`crate::crypto::provider`]; pass the provider the TLS config uses).
    pub fn provider(mut self, provider: Arc<CryptoProvider>) -> Self {
        self.provider = Some(provider);
        self
    }

    /// Server side only: let clients connect without a certificate (e.g. a
    /// node attesting with a join token). A certificate that *is* presented
    /// is still verified in full and refused if it does not pass; the
    /// application must check `peer_certificates()` before trusting a caller.
    pub fn allow_unauthenticated(mut self) -> Self {
        self.allow_unauthenticated = true;
        self
    }

    /// The verifier, or why it would accept nobody.
    pub fn build(self) -> Result<Arc<SpiffeVerifier>, VerifierError> {
        let mut check = PeerCheck::new(self.bundles, self.peer)?;
        if let Some(clock) = self.clock {
            check = check.clock(clock);
        }
        let provider = self.provider.unwrap_or_else(crate::crypto::provider);
        Ok(Arc::new(SpiffeVerifier {
            check,
            algorithms: provider.signature_verification_algorithms,
            client_auth_mandatory: !self.allow_unauthenticated,
        }))
    }
}

impl fmt::Debug for SpiffeVerifierBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SpiffeVerifierBuilder")
            .field("trust_domains", &self.bundles.len())
            .field("peer", &self.peer)
            .field("allow_unauthenticated", &self.allow_unauthenticated)
            .finish_non_exhaustive()
    }
}

impl From<VerifierError> for rustls::Error {
    fn from(e: VerifierError) -> Self {
        rustls::Error::Other(OtherError(Arc::new(e)))
    }
}
