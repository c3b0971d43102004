//! Which TLS implementation a component uses, and which algorithms it may
//! negotiate: the `tls_backend`, `fips` and `algorithms` settings every
//! component's config shares.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// The TLS (and signing) implementation behind a component.
///
/// Parsing `"openssl"` works in every build; [`TlsBackend::check`] refuses
/// it where the OpenSSL backend is not compiled in.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TlsBackend {
    /// rustls with ring (the default, always compiled in).
    #[default]
    Rustls,
    /// The system's OpenSSL (cargo feature `openssl`).
    Openssl,
}

/// Which algorithm lists a TLS endpoint offers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Algorithms {
    /// Everything the rustls backend offers: AES-GCM and ChaCha20-Poly1305,
    /// X25519, P-256 and P-384, ECDSA, Ed25519 and RSA signatures.
    #[default]
    Default,
    /// FIPS-approved only: AES-GCM, P-256 and P-384, ECDSA and RSA with
    /// SHA-2. Does not by itself require a FIPS-validated module.
    Fips,
}

/// Why a backend setting cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BackendError {
    /// `tls_backend = "openssl"` on a build without the OpenSSL backend.
    #[error(
        "tls_backend = \"openssl\" needs a meshid built with the OpenSSL backend (cargo build --features openssl)"
    )]
    NotCompiled,
    /// `fips = true` with the rustls backend.
    #[error(
        "fips = true needs tls_backend = \"openssl\" (rustls here uses ring, which is not a FIPS-validated module)"
    )]
    FipsNeedsOpenssl,
    /// `fips = true`, but OpenSSL's FIPS provider could not be enabled.
    #[error("fips = true, but {0}")]
    Fips(String),
    /// A backend name that is neither `rustls` nor `openssl`.
    #[error("unknown TLS backend {0:?}; expected \"rustls\" or \"openssl\"")]
    Unknown(String),
    /// An algorithms name that is neither `default` nor `fips`.
    #[error("unknown TLS algorithms {0:?}; expected \"default\" or \"fips\"")]
    UnknownAlgorithms(String),
}

// === impl TlsBackend ===

impl TlsBackend {
    /// The config spelling: `rustls` or `openssl`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Rustls => "rustls",
            Self::Openssl => "openssl",
        }
    }

    /// The backends compiled into this build, rustls first.
    pub fn compiled() -> &'static [TlsBackend] {
        if cfg!(feature = "openssl") {
            &[Self::Rustls, Self::Openssl]
        } else {
            &[Self::Rustls]
        }
    }

    /// Whether a component may start with this backend and `fips`: the
    /// backend is compiled in, `fips` is only asked of OpenSSL, and (when
    /// `fips`) OpenSSL's FIPS provider is loaded now, for the whole process.
    pub fn check(self, fips: bool) -> Result<(), BackendError> {
        match self {
            Self::Rustls if fips => Err(BackendError::FipsNeedsOpenssl),
            Self::Rustls => Ok(()),
            Self::Openssl => check_openssl(fips),
        }
    }
}

#[cfg(feature = "openssl")]
fn check_openssl(fips: bool) -> Result<(), BackendError> {
    if fips {
        crate::openssl::fips::enable().map_err(|e| BackendError::Fips(e.to_string()))?;
    }
    Ok(())
}

#[cfg(not(feature = "openssl"))]
fn check_openssl(_fips: bool) -> Result<(), BackendError> {
    Err(BackendError::NotCompiled)
}

impl fmt::Display for TlsBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for TlsBackend {
    type Err = BackendError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "rustls" => Ok(Self::Rustls),
            "openssl" => Ok(Self::Openssl),
            other => Err(BackendError::Unknown(other.chars().take(64).collect())),
        }
    }
}

// === impl Algorithms ===

impl Algorithms {
    /// The config spelling: `default` or `fips`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Default => "default",
            Self::Fips => "fips",
        }
    }
}

impl fmt::Display for Algorithms {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Algorithms {
    type Err = BackendError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "default" => Ok(Self::Default),
            "fips" => Ok(Self::Fips),
            other => Err(BackendError::UnknownAlgorithms(
                other.chars().take(64).collect(),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_unknown_ones_are_refused() {
        for b in [TlsBackend::Rustls, TlsBackend::Openssl] {
            assert_eq!(b.as_str().parse::<TlsBackend>(), Ok(b));
            let json = serde_json::to_string(&b).expect("serialize");
            assert_eq!(json, format!("\"{b}\""));
        }
        assert_eq!(TlsBackend::default(), TlsBackend::Rustls);
        let err = "boringssl".parse::<TlsBackend>().expect_err("unknown");
        assert_eq!(
            err.to_string(),
            "unknown TLS backend \"boringssl\"; expected \"rustls\" or \"openssl\""
        );
        assert_eq!("fips".parse::<Algorithms>(), Ok(Algorithms::Fips));
        assert!("fast".parse::<Algorithms>().is_err());
    }

    #[test]
    fn fips_needs_openssl_and_openssl_needs_the_feature() {
        assert_eq!(TlsBackend::Rustls.check(false), Ok(()));
        let err = TlsBackend::Rustls.check(true).expect_err("fips on rustls");
        assert_eq!(err, BackendError::FipsNeedsOpenssl);
        assert!(err.to_string().contains("not a FIPS-validated module"));
        if cfg!(feature = "openssl") {
            assert_eq!(TlsBackend::Openssl.check(false), Ok(()));
            assert_eq!(TlsBackend::compiled().len(), 2);
        } else {
            let err = TlsBackend::Openssl.check(false).expect_err("not compiled");
            assert_eq!(
                err.to_string(),
                "tls_backend = \"openssl\" needs a meshid built with the OpenSSL backend (cargo build --features openssl)"
            );
            assert_eq!(TlsBackend::compiled(), &[TlsBackend::Rustls]);
        }
    }
}
