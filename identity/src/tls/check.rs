//! [`PeerCheck`]: the one implementation of the SPIFFE peer rules that
//! every TLS backend applies (rustls through [`super::SpiffeVerifier`],
//! OpenSSL from its verify callback).

use std::fmt;
use std::sync::Arc;

use meshid_runtime::clock::SharedClock;
use rustls_pki_types::CertificateDer;

use super::{PeerMatch, PeerNotAllowed, VerifierError};
use crate::BundleSet;
use crate::verify::{SvidError, VerifiedSvid, verify_x509_svid};

/// Verifies a peer's X.509-SVID chain against trust bundles at a clock's
/// time, then authorizes its SPIFFE ID with a [`PeerMatch`].
#[derive(Clone)]
pub struct PeerCheck {
    bundles: Arc<BundleSet>,
    peer: PeerMatch,
    clock: SharedClock,
}

/// Why [`PeerCheck::check`] refused a peer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PeerRejection {
    /// The chain is not a valid X.509-SVID under the bundles.
    #[error(transparent)]
    Svid(SvidError),
    /// The SVID verified, but its SPIFFE ID is not one this connection accepts.
    #[error(transparent)]
    NotAllowed(PeerNotAllowed),
}

// === impl PeerCheck ===

impl PeerCheck {
    /// A check of peers against `bundles` accepting `peer`, at the system
    /// clock; refused if no peer could ever pass.
    pub fn new(bundles: Arc<BundleSet>, peer: PeerMatch) -> Result<Self, VerifierError> {
        if bundles.iter().all(|b| b.x509_authorities.is_empty()) {
            return Err(VerifierError::NoBundles);
        }
        if matches!(&peer, PeerMatch::OneOf(ids) if ids.is_empty()) {
            return Err(VerifierError::NoPeers);
        }
        Ok(Self {
            bundles,
            peer,
            clock: meshid_runtime::clock::system(),
        })
    }

    /// The same check at `clock`'s time.
    #[must_use]
    pub fn clock(mut self, clock: SharedClock) -> Self {
        self.clock = clock;
        self
    }

    /// The bundles peers are verified against.
    pub fn bundles(&self) -> &Arc<BundleSet> {
        &self.bundles
    }

    /// Which verified peers are accepted.
    pub fn peer(&self) -> &PeerMatch {
        &self.peer
    }

    /// Verifies `chain` (leaf first, then intermediates in any order) and
    /// authorizes the leaf's SPIFFE ID.
    pub fn check(&self, chain: &[CertificateDer<'_>]) -> Result<VerifiedSvid, PeerRejection> {
        let svid = verify_x509_svid(chain, &self.bundles, self.clock.now())
            .map_err(PeerRejection::Svid)?;
        if !self.peer.allows(&svid.spiffe_id) {
            return Err(PeerRejection::NotAllowed(PeerNotAllowed {
                presented: svid.spiffe_id,
                allowed: self.peer.clone(),
            }));
        }
        Ok(svid)
    }
}

impl fmt::Debug for PeerCheck {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PeerCheck")
            .field("trust_domains", &self.bundles.len())
            .field("peer", &self.peer)
            .finish_non_exhaustive()
    }
}

// === impl PeerRejection ===

impl PeerRejection {
    /// The handshake-error label of this rejection, the same on every
    /// backend: `cert_expired`, `cert_not_yet_valid`, `unknown_issuer`,
    /// `bad_signature`, `bad_encoding`, `peer_id_mismatch` or `invalid_cert`.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Svid(SvidError::Expired { .. }) => "cert_expired",
            Self::Svid(SvidError::NotYetValid { .. }) => "cert_not_yet_valid",
            Self::Svid(SvidError::UnknownTrustDomain(_) | SvidError::NoPathToRoot) => {
                "unknown_issuer"
            }
            Self::Svid(SvidError::BadSignature) => "bad_signature",
            Self::Svid(SvidError::Malformed) => "bad_encoding",
            Self::Svid(_) => "invalid_cert",
            Self::NotAllowed(_) => "peer_id_mismatch",
        }
    }

    /// The refused SPIFFE ID, when the SVID verified but was not allowed.
    pub fn not_allowed(&self) -> Option<&PeerNotAllowed> {
        match self {
            Self::NotAllowed(p) => Some(p),
            Self::Svid(_) => None,
        }
    }
}
