//! meshid-identity: SPIFFE identity logic shared by the CA, agent and proxy.
//!
//! Pure logic: no I/O, no async. SPIFFE IDs and trust domains, selectors,
//! the X.509-SVID profile, trust bundles and JWT-SVIDs, the SPIFFE TLS
//! verifiers and the one TLS crypto provider ([`crypto::provider`]).
#![forbid(unsafe_code)]

pub mod bundle;
pub mod crypto;
mod der;
pub mod id;
pub mod jwt;
pub mod selector;

pub use bundle::{BundleError, BundleSet, JwtAuthority, TrustBundle};
pub use id::{IdError, SpiffeId, TrustDomain};
pub use jwt::{JwtError, JwtSigningKey, JwtSvidClaims};
pub use selector::{Selector, SelectorError};

pub mod key;
pub mod tls;
pub mod verify;
pub mod x509;

pub use key::{KeyError, PrivateKey};
pub use verify::{SvidError, VerifiedSvid, verify_x509_svid};
pub use x509::csr::{CsrError, VerifiedCsr, verify_csr};
pub use x509::{CaTemplate, SvidTemplate, X509Error};
