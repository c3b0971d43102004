//! meshid-identity: SPIFFE identity logic shared by the CA, agent and proxy.
//!
//! Pure logic: no I/O, no async — except the OpenSSL backend (cargo
//! feature `openssl`), whose handshakes run over any tokio stream.
//!
//! - [`id`]: SPIFFE IDs and trust domains, and the reserved `/meshid` space.
//! - [`selector`]: workload and node selectors (`type:value`).
//! - [`join_token`]: the one-time secret a node attests with.
//! - [`key`]: private keys (generation of EC P-256/P-384 and RSA-3072,
//!   PKCS#8/SEC1/PKCS#1 import, public key).
//! - [`x509`]: the X.509-SVID and CA certificate profiles, CSRs, chain
//!   splitting.
//! - [`verify`]: X.509-SVID verification against trust bundles (RFC 5280
//!   path rules, name constraints, the SPIFFE profile).
//! - [`bundle`]: trust bundles (X.509 roots and JWT keys) and bundle sets.
//! - [`jwt`]: JWT-SVID signing and validation.
//! - [`tls`]: the SPIFFE verifier for rustls ([`tls::SpiffeVerifier::builder`]),
//!   client and server side.
//! - [`crypto`]: the one TLS crypto provider ([`crypto::provider`]).
//! - `openssl` (feature `openssl`): the OpenSSL TLS backend, the same
//!   peer rules ([`tls::PeerCheck`]) from OpenSSL's verify callback.
// Denied, not forbidden: the OpenSSL backend needs two `unsafe` calls
// (`SslRef::set_session` for the client session cache, and
// `X509VerifyResult::from_raw` for the alert of a refused peer), each
// allowed on its one small function with its SAFETY argument.
#![deny(unsafe_code)]

pub mod bundle;
pub mod crypto;
mod der;
pub mod id;
pub mod join_token;
pub mod jwt;
pub mod k8s_psat;
pub mod key;
#[cfg(feature = "openssl")]
pub mod openssl;
pub mod selector;
pub mod tls;
pub mod verify;
pub mod x509;

pub use bundle::{BundleError, BundleSet, JwtAuthority, TrustBundle};
pub use id::{IdError, SpiffeId, TrustDomain};
pub use join_token::JoinToken;
pub use jwt::{JwtError, JwtSigningKey, JwtSvidClaims};
pub use key::{KeyAlgorithm, KeyError, PrivateKey};
pub use selector::{Selector, SelectorError};
pub use verify::{SvidError, VerifiedSvid, verify_x509_svid};
pub use x509::csr::{CsrError, VerifiedCaCsr, VerifiedCsr, verify_ca_csr, verify_csr};
pub use x509::{CaTemplate, SvidTemplate, X509Error};
