//! TLS peers accepted by SPIFFE ID instead of DNS name.
//!
//! [`PeerCheck`] holds the rules (SVID verification, then a [`PeerMatch`])
//! once for every backend; [`TlsBackend`] and [`Algorithms`] are the
//! backend choice every component's config shares.
//!
//! rustls's WebPKI verifier wants a DNS or IP SAN matching a server name and
//! rejects URI-only certificates. SPIFFE peers are named by the URI SAN, so
//! [`SpiffeVerifier`] runs [`verify_x509_svid`](crate::verify_x509_svid)
//! and then a [`PeerMatch`] authorization on the resulting ID. The TLS
//! server name is ignored. One verifier serves both sides: as a rustls
//! `ServerCertVerifier` on clients and as a `ClientCertVerifier` on servers.
//!
//! ```
//! # use std::sync::Arc;
//! use meshid_identity::tls::{PeerMatch, SpiffeVerifier, VerifierError};
//! use meshid_identity::{BundleSet, TrustDomain};
//!
//! let none = Arc::new(BundleSet::new());
//! let td = TrustDomain::new("example.org").unwrap();
//! let refused = SpiffeVerifier::builder(none).peer(PeerMatch::TrustDomain(td)).build();
//! assert!(matches!(refused, Err(VerifierError::NoBundles)));
//! ```
//!
//! [`pinned_client_config`] is the client config for a meshid CA: the
//! verifier pinned to the CA's SPIFFE ID, TLS 1.3, h2.
//!
//! After a handshake, [`peer_spiffe_id`] reads the verified peer's ID from
//! the connection's peer certificates.

mod backend;
mod check;
mod client;
mod peer;
mod verifier;

use rustls::pki_types::CertificateDer;

use crate::SpiffeId;

pub use backend::{Algorithms, BackendError, TlsBackend};
pub use check::{PeerCheck, PeerRejection};
pub use client::{ClientCert, pinned_client_config};
pub use peer::{PeerMatch, PeerNotAllowed};
pub use verifier::{SpiffeVerifier, SpiffeVerifierBuilder, VerifierError};

/// The SPIFFE ID of a peer's leaf certificate, if it has a valid one.
///
/// Does not verify the chain: call it on certificates a [`SpiffeVerifier`]
/// has already accepted (e.g. `Connection::peer_certificates()`).
pub fn peer_spiffe_id(certs: &[CertificateDer<'_>]) -> Option<SpiffeId> {
    crate::x509::spiffe_id_of(certs.first()?).ok()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests;
