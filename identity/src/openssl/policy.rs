//! The algorithm lists each [`Algorithms`] choice gives OpenSSL.
//!
//! `Default` is what the rustls backend (ring) offers, so both backends
//! negotiate the same things; `Fips` keeps only FIPS-approved algorithms.

use crate::tls::Algorithms;

/// OpenSSL's spelling of one algorithm choice.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Policy {
    /// TLS 1.3 cipher suites (`SSL_CTX_set_ciphersuites`), preferred first.
    pub tls13_ciphersuites: &'static str,
    /// TLS 1.2 cipher list (`SSL_CTX_set_cipher_list`): ECDHE with an AEAD only.
    pub tls12_ciphers: &'static str,
    /// Key-exchange groups (`SSL_CTX_set1_groups_list`).
    pub groups: &'static str,
    /// Signature algorithms (`SSL_CTX_set1_sigalgs_list`).
    pub sigalgs: &'static str,
}

/// What rustls with ring offers: AES-GCM and ChaCha20-Poly1305, X25519,
/// P-256, P-384, ECDSA, Ed25519, RSA-PSS and RSA-PKCS#1 with SHA-2.
pub const DEFAULT: Policy = Policy {
    tls13_ciphersuites: "TLS_AES_256_GCM_SHA384:TLS_AES_128_GCM_SHA256:TLS_CHACHA20_POLY1305_SHA256",
    tls12_ciphers: "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-ECDSA-AES128-GCM-SHA256:\
                    ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-AES256-GCM-SHA384:\
                    ECDHE-RSA-AES128-GCM-SHA256:ECDHE-RSA-CHACHA20-POLY1305",
    groups: "X25519:P-256:P-384",
    sigalgs: "ECDSA+SHA384:ECDSA+SHA256:ed25519:rsa_pss_rsae_sha512:rsa_pss_rsae_sha384:\
              rsa_pss_rsae_sha256:RSA+SHA512:RSA+SHA384:RSA+SHA256",
};

/// FIPS-approved only: AES-GCM, P-256 and P-384, ECDSA and RSA with SHA-2
/// (no X25519, no ChaCha20-Poly1305, no Ed25519).
pub const FIPS: Policy = Policy {
    tls13_ciphersuites: "TLS_AES_256_GCM_SHA384:TLS_AES_128_GCM_SHA256",
    tls12_ciphers: "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-ECDSA-AES128-GCM-SHA256:\
                    ECDHE-RSA-AES256-GCM-SHA384:ECDHE-RSA-AES128-GCM-SHA256",
    groups: "P-256:P-384",
    sigalgs: "ECDSA+SHA384:ECDSA+SHA256:rsa_pss_rsae_sha512:rsa_pss_rsae_sha384:\
              rsa_pss_rsae_sha256:RSA+SHA512:RSA+SHA384:RSA+SHA256",
};

/// The lists for `algorithms`.
pub fn policy(algorithms: Algorithms) -> &'static Policy {
    match algorithms {
        Algorithms::Default => &DEFAULT,
        Algorithms::Fips => &FIPS,
    }
}
