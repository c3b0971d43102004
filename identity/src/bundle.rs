//! Trust bundles: the X.509 roots and JWT keys of each trust domain.
//!
//! A bundle travels as SPIFFE bundle JSON ([`TrustBundle::to_spiffe_json`],
//! [`TrustBundle::from_spiffe_json`]) or, for its X.509 authorities only, as
//! PEM ([`TrustBundle::to_pem`], [`TrustBundle::from_pem`]). Parsing treats
//! its input as hostile: sizes are bounded and every key is checked.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use rustls_pki_types::CertificateDer;
use x509_parser::certificate::X509Certificate;

use crate::TrustDomain;

pub mod jwk;
mod pem;
mod spiffe_json;

/// Largest bundle document (JSON or PEM) meshid parses, in bytes.
pub const MAX_BUNDLE_LEN: usize = 1024 * 1024;

/// Why a bundle document could not be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BundleError {
    /// The document is larger than [`MAX_BUNDLE_LEN`].
    #[error("bundle is {size} bytes; the limit is {limit}: is this really a trust bundle?")]
    TooLarge {
        /// Size of the rejected document.
        size: usize,
        /// The limit it exceeded.
        limit: usize,
    },
    /// The document is not a JSON object with a `keys` array of JWKs.
    #[error("bundle is not valid SPIFFE bundle JSON (a JWK Set with \"keys\"): {0}")]
    Json(#[source] serde_json::Error),
    /// An `x509-svid` key does not carry exactly one certificate in `x5c`.
    #[error("an x509-svid key must carry exactly one certificate in \"x5c\", found {0}")]
    X5cCount(usize),
    /// A `jwt-svid` key has no (or an empty) `kid`.
    #[error("a jwt-svid key must have a non-empty \"kid\"")]
    MissingKeyId,
    /// Two `jwt-svid` keys share one `kid`.
    #[error("key ID {0:?} appears twice; every jwt-svid key needs its own kid")]
    DuplicateKeyId(String),
    /// A base64 field could not be decoded.
    #[error(
        "field {field:?} is not valid base64 (x5c: standard with padding; others: base64url without padding)"
    )]
    InvalidBase64 {
        /// The JWK member that was malformed.
        field: &'static str,
    },
    /// An `x5c` entry or PEM block is not a well-formed DER X.509 certificate.
    #[error("not a valid DER X.509 certificate: {0}")]
    InvalidCertificate(String),
    /// A JWK lacks a member its key type needs.
    #[error("JWK is missing the {0:?} member")]
    MissingKeyParameter(&'static str),
    /// The key type or curve is not one meshid supports (EC P-256/P-384, RSA).
    #[error("unsupported key: {0}; use EC P-256, EC P-384 or RSA")]
    UnsupportedKey(String),
    /// The key parameters are malformed.
    #[error("invalid public key: {0}")]
    InvalidKey(&'static str),
    /// A JWK's key members do not match the key of its `x5c` certificate.
    #[error("the JWK key parameters do not match the public key of its x5c certificate")]
    KeyMismatch,
    /// The text is not well-formed PEM.
    #[error("bundle is not valid PEM: {0}")]
    Pem(#[source] ::pem::PemError),
    /// A PEM block is not a `CERTIFICATE`.
    #[error("PEM block {0:?} is not a CERTIFICATE; a PEM bundle holds only CA certificates")]
    NotCertificate(String),
    /// The PEM text holds no certificate at all.
    #[error("PEM bundle holds no CERTIFICATE block")]
    NoCertificates,
}

/// One JWT signing key of a trust domain, as published in its bundle.
#[derive(Clone, PartialEq, Eq)]
pub struct JwtAuthority {
    /// The `kid` JWT-SVIDs carry to name this key.
    pub key_id: String,
    /// The public key as DER SubjectPublicKeyInfo.
    pub public_key_der: Vec<u8>,
    /// When the key stops being trusted, if it has an end (a key another
    /// CA published here); kept in the bundle JSON as the JWK member `exp`
    /// (Unix seconds), which other readers ignore (RFC 7517 section 4).
    pub expires_at: Option<SystemTime>,
}

/// The roots of trust of one trust domain.
#[derive(Clone, PartialEq, Eq)]
pub struct TrustBundle {
    /// The trust domain these authorities speak for.
    pub trust_domain: TrustDomain,
    /// X.509 authorities (DER certificates) for X.509-SVIDs.
    pub x509_authorities: Vec<CertificateDer<'static>>,
    /// Keys that sign JWT-SVIDs.
    pub jwt_authorities: Vec<JwtAuthority>,
    /// `spiffe_sequence`: grows with every change.
    pub sequence: u64,
    /// `spiffe_refresh_hint`: how often consumers should re-fetch.
    pub refresh_hint: Option<Duration>,
}

/// Bundles of several trust domains (own + federated), by trust domain.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct BundleSet {
    bundles: BTreeMap<TrustDomain, TrustBundle>,
}

// === impl TrustBundle ===

impl TrustBundle {
    /// An empty bundle for `trust_domain`.
    pub fn new(trust_domain: TrustDomain) -> Self {
        Self {
            trust_domain,
            x509_authorities: Vec::new(),
            jwt_authorities: Vec::new(),
            sequence: 0,
            refresh_hint: None,
        }
    }

    /// The JWT authority named `key_id`, if the bundle has one.
    pub fn jwt_authority(&self, key_id: &str) -> Option<&JwtAuthority> {
        self.jwt_authorities.iter().find(|a| a.key_id == key_id)
    }

    /// The bundle as a SPIFFE bundle JSON document (a JWK Set).
    ///
    /// An authority whose key meshid cannot express as a JWK (neither EC
    /// P-256/P-384 nor RSA, or malformed DER) is written without key
    /// parameters, and [`TrustBundle::from_spiffe_json`] will refuse it.
    pub fn to_spiffe_json(&self) -> String {
        spiffe_json::encode(self)
    }

    /// Parses a SPIFFE bundle JSON document published by `trust_domain`.
    ///
    /// Keys whose `use` is neither `x509-svid` nor `jwt-svid` are ignored.
    pub fn from_spiffe_json(trust_domain: TrustDomain, json: &[u8]) -> Result<Self, BundleError> {
        spiffe_json::decode(trust_domain, json)
    }

    /// The X.509 authorities as PEM `CERTIFICATE` blocks (JWT keys and the
    /// sequence number are not part of this format).
    pub fn to_pem(&self) -> String {
        pem::encode(self)
    }

    /// Reads X.509 authorities of `trust_domain` from PEM `CERTIFICATE`
    /// blocks; any other block is refused.
    pub fn from_pem(trust_domain: TrustDomain, text: &str) -> Result<Self, BundleError> {
        pem::decode(trust_domain, text)
    }
}

/// Parses `der` as exactly one X.509 certificate.
fn parse_certificate<'a>(der: &'a CertificateDer<'_>) -> Result<X509Certificate<'a>, BundleError> {
    match x509_parser::parse_x509_certificate(der.as_ref()) {
        Ok((rest, _)) if !rest.is_empty() => Err(BundleError::InvalidCertificate(
            "trailing bytes after the certificate".into(),
        )),
        Ok((_, cert)) => Ok(cert),
        Err(e) => Err(BundleError::InvalidCertificate(e.to_string())),
    }
}

impl std::fmt::Debug for TrustBundle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TrustBundle")
            .field("trust_domain", &self.trust_domain)
            .field("x509_authorities", &self.x509_authorities.len())
            .field("jwt_authorities", &self.jwt_authorities.len())
            .field("sequence", &self.sequence)
            .finish()
    }
}

// === impl JwtAuthority ===

impl JwtAuthority {
    /// Longest key ID accepted from another CA, in bytes.
    pub const MAX_KEY_ID_LEN: usize = 128;
    /// Largest public key accepted from another CA, in bytes of DER.
    pub const MAX_KEY_LEN: usize = 2048;

    /// Checks a key another party sent: a key ID of 1 to
    /// [`Self::MAX_KEY_ID_LEN`] printable ASCII bytes and a public key of a
    /// type JWT-SVIDs may use (EC P-256/P-384, RSA), at most
    /// [`Self::MAX_KEY_LEN`] bytes.
    pub fn check(&self) -> Result<(), BundleError> {
        let kid = &self.key_id;
        if kid.is_empty()
            || kid.len() > Self::MAX_KEY_ID_LEN
            || !kid.bytes().all(|b| b.is_ascii_graphic())
        {
            return Err(BundleError::InvalidKey(
                "the key ID must be 1 to 128 printable ASCII characters",
            ));
        }
        if self.public_key_der.len() > Self::MAX_KEY_LEN {
            return Err(BundleError::InvalidKey(
                "the public key is larger than 2048 bytes",
            ));
        }
        jwk::KeyParams::from_spki_der(&self.public_key_der).map(|_| ())
    }
}

impl std::fmt::Debug for JwtAuthority {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "JwtAuthority({})", self.key_id)
    }
}

// === impl BundleSet ===

impl BundleSet {
    /// An empty set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds or replaces the bundle of its trust domain.
    pub fn insert(&mut self, bundle: TrustBundle) {
        self.bundles.insert(bundle.trust_domain.clone(), bundle);
    }

    /// The bundle of `td`, if known.
    pub fn get(&self, td: &TrustDomain) -> Option<&TrustBundle> {
        self.bundles.get(td)
    }

    /// All bundles, ordered by trust domain.
    pub fn iter(&self) -> impl Iterator<Item = &TrustBundle> {
        self.bundles.values()
    }

    /// Number of trust domains in the set.
    pub fn len(&self) -> usize {
        self.bundles.len()
    }

    /// True if the set holds no bundle.
    pub fn is_empty(&self) -> bool {
        self.bundles.is_empty()
    }
}

impl std::fmt::Debug for BundleSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.bundles.values()).finish()
    }
}

impl FromIterator<TrustBundle> for BundleSet {
    fn from_iter<I: IntoIterator<Item = TrustBundle>>(iter: I) -> Self {
        let mut set = Self::new();
        for b in iter {
            set.insert(b);
        }
        set
    }
}
