//! JWT-SVIDs: signing and validating the JWT form of a SPIFFE identity
//! (SPIFFE JWT-SVID spec).
//!
//! A JWT-SVID is a JWS (compact form) whose `sub` is a SPIFFE ID, with an
//! `aud` and an `exp`, signed by a key of the subject's trust domain and
//! named by `kid` in the header. [`validate`] checks every one of these
//! against a [`BundleSet`](crate::BundleSet) and an injected time.
//!
//! ```
//! use std::time::{Duration, SystemTime};
//! use meshid_identity::{BundleSet, SpiffeId, TrustBundle};
//! use meshid_identity::jwt::{self, JwtSigningKey};
//!
//! let key = JwtSigningKey::generate("k1").unwrap();
//! let id: SpiffeId = "spiffe://example.org/api".parse().unwrap();
//! let mut bundle = TrustBundle::new(id.trust_domain());
//! bundle.jwt_authorities.push(key.public_authority());
//! let bundles: BundleSet = [bundle].into_iter().collect();
//!
//! let now = SystemTime::now();
//! let token = jwt::sign(&key, &id, &["payments".into()], now, now + Duration::from_secs(300)).unwrap();
//! let claims = jwt::validate(&token, "payments", &bundles, now).unwrap();
//! assert_eq!(claims.spiffe_id, id);
//! assert!(jwt::validate(&token, "other", &bundles, now).is_err());
//! ```

use std::time::SystemTime;

use crate::{IdError, SpiffeId, TrustDomain};

mod sign;
mod signing_key;
mod validate;

pub use sign::{JwtSigner, sign};
pub use signing_key::JwtSigningKey;
pub use validate::validate;

/// Longest token [`validate`] accepts, in bytes.
pub const MAX_TOKEN_LEN: usize = 8 * 1024;

/// The claims of a JWT-SVID that passed [`validate`].
#[derive(Debug, Clone, PartialEq)]
pub struct JwtSvidClaims {
    /// The subject (`sub`): whose identity the token asserts.
    pub spiffe_id: SpiffeId,
    /// The audience (`aud`), as a list even if the token had a single string.
    pub audience: Vec<String>,
    /// When the token expires (`exp`).
    pub expiry: SystemTime,
    /// All claims of the token, including the ones above.
    pub claims: serde_json::Map<String, serde_json::Value>,
}

/// Why a JWT-SVID could not be signed or was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum JwtError {
    /// The token is not a well-formed compact JWS with JSON header and claims.
    #[error("malformed JWT: {0}")]
    Malformed(&'static str),
    /// The token is longer than [`MAX_TOKEN_LEN`].
    #[error("JWT is {0} bytes; the limit is 8192")]
    TooLong(usize),
    /// The header's `alg` is not one the JWT-SVID spec allows (`none` and HMAC never are).
    #[error(
        "JWT algorithm {0:?} is not allowed; JWT-SVIDs use ES256/ES384, RS256/384/512 or PS256/384/512"
    )]
    UnsupportedAlgorithm(String),
    /// The header's `alg` does not fit the type or curve of the named key.
    #[error("JWT algorithm {alg} does not match the {key} key named by its kid")]
    AlgorithmKeyMismatch {
        /// The `alg` of the header.
        alg: String,
        /// The kind of key the bundle holds.
        key: &'static str,
    },
    /// The header's `typ` is present but neither `JWT` nor `JOSE`.
    #[error("JWT typ {0:?} is not allowed; use \"JWT\" or \"JOSE\"")]
    BadType(String),
    /// The header names critical extensions, which meshid does not support.
    #[error("JWT header has a \"crit\" member; no critical extensions are supported")]
    CriticalHeader,
    /// The header has no (or an empty) `kid`.
    #[error("JWT header has no kid; JWT-SVIDs must name their signing key")]
    MissingKeyId,
    /// No key with this `kid` in the bundle of the subject's trust domain.
    #[error(
        "no JWT authority with kid {0:?} in the subject's trust bundle; is the bundle up to date?"
    )]
    UnknownKeyId(String),
    /// No bundle for the subject's trust domain.
    #[error("no trust bundle for trust domain {0}; federate with it first")]
    UnknownTrustDomain(TrustDomain),
    /// The bundle key for this `kid` cannot be used to verify.
    #[error("the bundle's JWT authority {0:?} holds an unusable key")]
    InvalidAuthorityKey(String),
    /// The signature does not verify with the named key.
    #[error("JWT signature does not verify")]
    BadSignature,
    /// A required claim (`sub`, `exp`, `aud`) is missing or has the wrong JSON type.
    #[error("JWT claim {0:?} is missing or has the wrong type")]
    MissingClaim(&'static str),
    /// The token has expired at the time of validation.
    #[error("JWT-SVID expired; fetch a fresh one")]
    Expired,
    /// The token's `nbf` is still in the future.
    #[error("JWT-SVID is not valid yet (nbf in the future); check clocks")]
    NotYetValid,
    /// The token's `aud` does not contain the expected audience.
    #[error("JWT-SVID audience does not include {0:?}")]
    AudienceMismatch(String),
    /// The `sub` claim is not a valid SPIFFE ID.
    #[error("JWT sub is not a valid SPIFFE ID: {0}")]
    InvalidSubject(IdError),
    /// Signing: no audience given (the spec requires at least one).
    #[error("a JWT-SVID needs at least one audience")]
    EmptyAudience,
    /// Signing: expiry not after issue time, or a time before 1970.
    #[error("JWT-SVID lifetime is invalid: expiry must be after issue time, both after 1970")]
    InvalidLifetime,
    /// The signing key is not a P-256 PKCS#8 key, or has an empty key ID.
    #[error("invalid JWT signing key: {0}")]
    InvalidSigningKey(&'static str),
    /// The JWT library failed to sign.
    #[error("signing the JWT failed: {0}")]
    Signing(String),
}
