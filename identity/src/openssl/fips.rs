//! OpenSSL's FIPS provider, for `fips = true`.
//!
//! [`enable`] loads the `fips` provider for the whole process with the
//! fallback (default) provider disabled, plus `base` for key and
//! certificate decoding, and keeps them loaded. It then proves the
//! default provider is not in use: a non-approved digest (MD5) must be
//! unavailable. Anything else is an error, so a process asked for FIPS
//! refuses to start rather than run on non-validated code.
//!
//! Debian's OpenSSL ships no `fips` provider; there [`enable`] fails.

use std::sync::OnceLock;

use openssl::hash::{MessageDigest, hash};
use openssl::provider::Provider;

/// Why the FIPS provider could not be enabled.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FipsError {
    /// OpenSSL could not load its `fips` provider.
    #[error(
        "{openssl} has no \"fips\" provider: {detail} (install a FIPS-validated OpenSSL build and its fipsmodule.cnf)"
    )]
    NoProvider {
        /// `OpenSSL <version>`.
        openssl: String,
        /// OpenSSL's own error text.
        detail: String,
    },
    /// The `base` provider (decoders) could not be loaded next to `fips`.
    #[error("{openssl} loaded its \"fips\" provider but not \"base\": {detail}")]
    NoBase {
        /// `OpenSSL <version>`.
        openssl: String,
        /// OpenSSL's own error text.
        detail: String,
    },
    /// Non-approved algorithms were still available after loading `fips`:
    /// the default provider was already in use.
    #[error(
        "{openssl} loaded its \"fips\" provider, but non-FIPS algorithms are still available \
         (OpenSSL's default provider was used before fips was enabled); enable fips before any \
         other use of OpenSSL in the process"
    )]
    NotExclusive {
        /// `OpenSSL <version>`.
        openssl: String,
    },
}

/// The providers kept loaded for the life of the process.
struct Loaded {
    _fips: Provider,
    _base: Provider,
}

static ENABLED: OnceLock<Result<Loaded, FipsError>> = OnceLock::new();

/// Makes OpenSSL's FIPS provider the only source of algorithms in this
/// process, once; later calls return the first call's result.
pub fn enable() -> Result<(), FipsError> {
    match ENABLED.get_or_init(load) {
        Ok(_) => Ok(()),
        Err(e) => Err(e.clone()),
    }
}

/// Whether this OpenSSL has a loadable `fips` provider (for `meshid
/// version`); loads and unloads it without changing what the process uses.
pub fn available() -> bool {
    if let Some(Ok(_)) = ENABLED.get() {
        return true;
    }
    Provider::try_load(None, "fips", true).is_ok()
}

fn load() -> Result<Loaded, FipsError> {
    let openssl = short_version();
    let fips = Provider::try_load(None, "fips", false).map_err(|e| FipsError::NoProvider {
        openssl: openssl.clone(),
        detail: e.to_string(),
    })?;
    let base = Provider::try_load(None, "base", false).map_err(|e| FipsError::NoBase {
        openssl: openssl.clone(),
        detail: e.to_string(),
    })?;
    if hash(MessageDigest::md5(), b"").is_ok() {
        return Err(FipsError::NotExclusive { openssl });
    }
    Ok(Loaded {
        _fips: fips,
        _base: base,
    })
}

/// `OpenSSL 3.0.19` from `OpenSSL 3.0.19 27 Jan 2026`.
fn short_version() -> String {
    super::version()
        .split_whitespace()
        .take(2)
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Debian's OpenSSL has no FIPS provider: enabling it is refused with a
    /// message that says what to install, and the process keeps working.
    #[test]
    fn enable_is_refused_without_a_fips_provider() {
        if available() {
            eprintln!("this OpenSSL has a fips provider; the refusal path is not testable here");
            return;
        }
        let err = enable().expect_err("no fips provider on this OpenSSL");
        let text = err.to_string();
        assert!(
            text.starts_with(&format!("{} has no \"fips\" provider: ", short_version())),
            "{text}"
        );
        assert!(
            text.ends_with("(install a FIPS-validated OpenSSL build and its fipsmodule.cnf)"),
            "{text}"
        );
        assert!(
            short_version().starts_with("OpenSSL 3."),
            "{}",
            short_version()
        );
        // The same answer every time, and the default provider still works.
        assert_eq!(enable(), Err(err));
        assert!(hash(MessageDigest::sha256(), b"").is_ok());

        let refused = crate::tls::TlsBackend::Openssl
            .check(true)
            .expect_err("fips refused");
        assert!(
            refused
                .to_string()
                .starts_with("fips = true, but OpenSSL 3."),
            "{refused}"
        );
    }
}
