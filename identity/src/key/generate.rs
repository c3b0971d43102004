//! Fresh keys of the algorithms a CA may sign with: [`KeyAlgorithm`].
//!
//! EC keys come from rcgen (ring). ring cannot generate RSA keys, so those
//! come from the RustCrypto `rsa` crate, used for generation only: its
//! PKCS#8 output is handed to [`PrivateKey::from_pkcs8_der`] like any other
//! key, and ring signs with it.

use std::fmt;
use std::str::FromStr;

use rsa::pkcs8::EncodePrivateKey;

use super::{KeyError, PrivateKey};

/// A key algorithm meshid generates keys for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum KeyAlgorithm {
    /// ECDSA on P-256, signing with SHA-256 (the default everywhere).
    EcP256,
    /// ECDSA on P-384, signing with SHA-384.
    EcP384,
    /// RSA with a 3072-bit modulus, signing PKCS#1 v1.5 with SHA-256.
    Rsa3072,
}

// === impl KeyAlgorithm ===

impl KeyAlgorithm {
    /// Every algorithm, in the order help texts list them.
    pub const ALL: [Self; 3] = [Self::EcP256, Self::EcP384, Self::Rsa3072];

    /// The name flags and config files use: `ec-p256`, `ec-p384`, `rsa-3072`.
    pub fn name(self) -> &'static str {
        match self {
            Self::EcP256 => "ec-p256",
            Self::EcP384 => "ec-p384",
            Self::Rsa3072 => "rsa-3072",
        }
    }
}

impl fmt::Display for KeyAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The name is not one of [`KeyAlgorithm::ALL`].
#[derive(Debug, Clone, thiserror::Error)]
#[error("unknown key type {0:?}; use ec-p256, ec-p384 or rsa-3072")]
pub struct UnknownKeyAlgorithm(String);

impl FromStr for KeyAlgorithm {
    type Err = UnknownKeyAlgorithm;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|a| a.name() == s)
            .ok_or_else(|| UnknownKeyAlgorithm(s.chars().take(40).collect()))
    }
}

// === impl PrivateKey ===

impl PrivateKey {
    /// Generates a fresh key of `alg` (an RSA-3072 key takes a moment).
    pub fn generate(alg: KeyAlgorithm) -> Result<Self, KeyError> {
        match alg {
            KeyAlgorithm::EcP256 => Self::generate_p256(),
            KeyAlgorithm::EcP384 => Self::generate_with(&rcgen::PKCS_ECDSA_P384_SHA384),
            KeyAlgorithm::Rsa3072 => generate_rsa(3072),
        }
    }
}

/// An RSA key of `bits` from the `rsa` crate, as PKCS#8 for ring.
fn generate_rsa(bits: usize) -> Result<PrivateKey, KeyError> {
    let fail = |e: &dyn fmt::Display| KeyError::Generate(format!("RSA-{bits}: {e}"));
    let key = rsa::RsaPrivateKey::new(&mut rsa::rand_core::OsRng, bits).map_err(|e| fail(&e))?;
    // A SecretDocument: zeroed on drop, like the copy PrivateKey keeps.
    let der = key.to_pkcs8_der().map_err(|e| fail(&e))?;
    PrivateKey::from_pkcs8_der(der.as_bytes().to_vec())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::der::{OID_P256, OID_P384};

    fn holds(spki: &[u8], oid: &[u8]) -> bool {
        spki.windows(oid.len()).any(|w| w == oid)
    }

    #[test]
    fn names_round_trip_and_unknown_names_are_refused() {
        for alg in KeyAlgorithm::ALL {
            assert_eq!(alg.to_string().parse::<KeyAlgorithm>().unwrap(), alg);
        }
        let e = "rsa-1024".parse::<KeyAlgorithm>().unwrap_err().to_string();
        assert!(e.contains("use ec-p256, ec-p384 or rsa-3072"), "{e}");
    }

    #[test]
    fn ec_keys_are_on_their_curve_and_sign() {
        let p256 = PrivateKey::generate(KeyAlgorithm::EcP256).unwrap();
        assert!(holds(&p256.public_key_der(), OID_P256));
        let p384 = PrivateKey::generate(KeyAlgorithm::EcP384).unwrap();
        assert!(holds(&p384.public_key_der(), OID_P384));
        let pair = p384.key_pair().unwrap();
        assert_eq!(pair.algorithm(), &rcgen::PKCS_ECDSA_P384_SHA384);
    }

    #[test]
    fn an_rsa_3072_key_is_accepted_by_ring_and_survives_pem() {
        let key = PrivateKey::generate(KeyAlgorithm::Rsa3072).unwrap();
        let pair = key.key_pair().unwrap();
        assert_eq!(pair.algorithm(), &rcgen::PKCS_RSA_SHA256);
        assert!(rcgen::SigningKey::sign(&pair, b"probe").is_ok());
        let back = PrivateKey::from_pem(&key.to_pkcs8_pem()).unwrap();
        assert_eq!(back.public_key_der(), key.public_key_der());
        // A 3072-bit modulus: its DER INTEGER is 385 bytes (leading zero).
        assert!(key.public_key_der().len() > 384);
    }
}
