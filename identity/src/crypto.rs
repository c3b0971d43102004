//! The one place that chooses the TLS crypto backend.
//!
//! Every rustls config and verifier in meshid (CA, agent, proxy, CLI, tests,
//! benchmarks) takes its [`CryptoProvider`] from [`provider`], and loads
//! private keys for TLS with [`signing_key`]. Today that is rustls's ring
//! provider. A different backend (e.g. OpenSSL for FIPS-bound deployments)
//! plugs in here and nowhere else.

use std::sync::{Arc, OnceLock};

use rustls::crypto::CryptoProvider;
use rustls::sign::SigningKey;
use rustls_pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};

use crate::PrivateKey;

/// The crypto provider every rustls config and verifier uses.
///
/// Built once per process; each call returns the same provider.
pub fn provider() -> Arc<CryptoProvider> {
    static PROVIDER: OnceLock<Arc<CryptoProvider>> = OnceLock::new();
    Arc::clone(PROVIDER.get_or_init(|| Arc::new(rustls::crypto::ring::default_provider())))
}

/// `key` as rustls wants it for `with_single_cert` / `with_client_auth_cert`.
pub fn private_key_der(key: &PrivateKey) -> PrivateKeyDer<'static> {
    PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.pkcs8_der().to_vec()))
}

/// Loads `key` into [`provider`]'s key provider, for a certificate resolver
/// that builds its own `CertifiedKey`.
pub fn signing_key(key: &PrivateKey) -> Result<Arc<dyn SigningKey>, rustls::Error> {
    provider()
        .key_provider
        .load_private_key(private_key_der(key))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn one_provider_and_it_loads_our_keys() {
        assert!(Arc::ptr_eq(&provider(), &provider()));
        assert!(!provider().cipher_suites.is_empty());
        let key = PrivateKey::generate_p256().unwrap();
        let signer = signing_key(&key).unwrap();
        assert_eq!(signer.algorithm(), rustls::SignatureAlgorithm::ECDSA);
    }
}
