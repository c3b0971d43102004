//! SPIFFE IDs and trust domains, parsed exactly per the SPIFFE-ID specification.
//!
//! A [`SpiffeId`] or [`TrustDomain`] you hold is always valid: the only way to
//! get one is to parse it, and parsing enforces every rule of the spec.
//!
//! ```
//! use meshid_identity::{SpiffeId, TrustDomain};
//! let id: SpiffeId = "spiffe://example.org/ns/payments/sa/api".parse().unwrap();
//! assert_eq!(id.trust_domain().as_str(), "example.org");
//! assert_eq!(id.path(), "/ns/payments/sa/api");
//! assert!("spiffe://example.org/a/../b".parse::<SpiffeId>().is_err());
//! let td = TrustDomain::new("example.org").unwrap();
//! assert_eq!(td.id().as_str(), "spiffe://example.org");
//! ```

use std::fmt;
use std::str::FromStr;

/// Longest trust domain name the spec allows, in bytes.
pub const MAX_TRUST_DOMAIN_LEN: usize = 255;
/// Longest SPIFFE ID the spec allows (as a URI), in bytes.
pub const MAX_SPIFFE_ID_LEN: usize = 2048;

/// The path meshid reserves for its own components: the CA is
/// `<td>/meshid/ca`, agents are `<td>/meshid/agent/...`. See
/// [`SpiffeId::is_reserved`].
pub const RESERVED_PATH: &str = "/meshid";
/// The path of the CA's own SPIFFE ID, `spiffe://<td>/meshid/ca`: what its
/// node API serves as and what agents pin by default.
pub const CA_PATH: &str = "/meshid/ca";

const SCHEME: &str = "spiffe://";

/// Why a string is not a valid SPIFFE ID or trust domain.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum IdError {
    /// The input was empty.
    #[error("SPIFFE ID is empty")]
    Empty,
    /// The scheme was not `spiffe://`.
    #[error("SPIFFE ID must start with \"spiffe://\"")]
    WrongScheme,
    /// Nothing between `spiffe://` and the path.
    #[error("trust domain is missing")]
    EmptyTrustDomain,
    /// Trust domain longer than 255 bytes.
    #[error("trust domain is {0} bytes; the limit is 255")]
    TrustDomainTooLong(usize),
    /// A character outside `[a-z0-9.-_]` in the trust domain.
    #[error(
        "trust domain contains {0:?}; only lowercase letters, digits, '.', '-' and '_' are allowed"
    )]
    TrustDomainChar(char),
    /// A port (`:443`) after the trust domain.
    #[error("trust domain must not carry a port")]
    Port,
    /// User info (`user@`) before the trust domain.
    #[error("trust domain must not carry user info ('@')")]
    UserInfo,
    /// A `%` escape anywhere in the ID.
    #[error("percent-encoding is not allowed in a SPIFFE ID")]
    PercentEncoded,
    /// A query (`?…`).
    #[error("a SPIFFE ID must not have a query ('?')")]
    Query,
    /// A fragment (`#…`).
    #[error("a SPIFFE ID must not have a fragment ('#')")]
    Fragment,
    /// Two slashes in a row, i.e. an empty path segment.
    #[error("path has an empty segment ('//')")]
    EmptySegment,
    /// A `.` or `..` path segment.
    #[error("path segments '.' and '..' are not allowed")]
    DotSegment,
    /// The path ends with `/`.
    #[error("path must not end with '/'")]
    TrailingSlash,
    /// A character outside `[a-zA-Z0-9.-_]` in a path segment.
    #[error("path contains {0:?}; only letters, digits, '.', '-' and '_' are allowed")]
    PathChar(char),
    /// The whole ID is longer than 2048 bytes.
    #[error("SPIFFE ID is {0} bytes; the limit is 2048")]
    TooLong(usize),
    /// A path given on its own does not start with `/`.
    #[error("path must be empty or start with '/'")]
    RelativePath,
}

/// A SPIFFE trust domain name such as `example.org`.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TrustDomain(String);

/// A SPIFFE ID such as `spiffe://example.org/ns/default/sa/api`.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SpiffeId {
    uri: String,
    path_start: usize,
}

// === impl TrustDomain ===

impl TrustDomain {
    /// Parses a bare trust domain name (`example.org`) or a SPIFFE ID whose
    /// trust domain is taken (`spiffe://example.org/x`).
    pub fn new(s: &str) -> Result<Self, IdError> {
        if s.contains("://") {
            return SpiffeId::parse(s).map(|id| id.trust_domain());
        }
        check_trust_domain(s)?;
        Ok(Self(s.to_owned()))
    }

    /// The trust domain name.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The SPIFFE ID of the trust domain itself (`spiffe://example.org`).
    pub fn id(&self) -> SpiffeId {
        SpiffeId {
            uri: format!("{SCHEME}{}", self.0),
            path_start: SCHEME.len() + self.0.len(),
        }
    }

    /// Builds a SPIFFE ID in this trust domain from a path such as `/ns/a`.
    pub fn id_with_path(&self, path: &str) -> Result<SpiffeId, IdError> {
        if !path.is_empty() && !path.starts_with('/') {
            return Err(IdError::RelativePath);
        }
        SpiffeId::parse(&format!("{SCHEME}{}{path}", self.0))
    }
}

impl fmt::Display for TrustDomain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for TrustDomain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TrustDomain({})", self.0)
    }
}

impl FromStr for TrustDomain {
    type Err = IdError;
    fn from_str(s: &str) -> Result<Self, IdError> {
        Self::new(s)
    }
}

impl serde::Serialize for TrustDomain {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> serde::Deserialize<'de> for TrustDomain {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_str(ParseVisitor::new("trust domain", "example.org"))
    }
}

// === impl SpiffeId ===

impl SpiffeId {
    /// Parses a SPIFFE ID, enforcing every rule of the SPIFFE-ID spec.
    pub fn parse(s: &str) -> Result<Self, IdError> {
        if s.is_empty() {
            return Err(IdError::Empty);
        }
        if s.len() > MAX_SPIFFE_ID_LEN {
            return Err(IdError::TooLong(s.len()));
        }
        let scheme_ok = s
            .get(..SCHEME.len())
            .is_some_and(|p| p.eq_ignore_ascii_case(SCHEME));
        if !scheme_ok {
            return Err(IdError::WrongScheme);
        }
        let rest = &s[SCHEME.len()..];
        if rest.contains('#') {
            return Err(IdError::Fragment);
        }
        if rest.contains('?') {
            return Err(IdError::Query);
        }
        let (td, path) = match rest.find('/') {
            Some(i) => rest.split_at(i),
            None => (rest, ""),
        };
        check_trust_domain(td)?;
        check_path(path)?;
        Ok(Self {
            uri: format!("{SCHEME}{td}{path}"),
            path_start: SCHEME.len() + td.len(),
        })
    }

    /// The trust domain this ID belongs to.
    pub fn trust_domain(&self) -> TrustDomain {
        TrustDomain(self.trust_domain_str().to_owned())
    }

    /// The trust domain name, borrowed.
    pub fn trust_domain_str(&self) -> &str {
        &self.uri[SCHEME.len()..self.path_start]
    }

    /// The path, starting with `/`, or `""` for a trust domain's own ID.
    pub fn path(&self) -> &str {
        &self.uri[self.path_start..]
    }

    /// The whole ID as a URI string.
    pub fn as_str(&self) -> &str {
        &self.uri
    }

    /// True if this ID is in `td`.
    pub fn is_member_of(&self, td: &TrustDomain) -> bool {
        self.trust_domain_str() == td.as_str()
    }

    /// True if this ID is in the space meshid reserves for its own
    /// components: the path is [`RESERVED_PATH`] or lies under it, compared
    /// by whole segments (`/meshid/ca` and `/meshid/agent/x` are reserved,
    /// `/meshidfoo` is not; paths are case-sensitive, so neither is
    /// `/MeshID`). Such an ID names the CA or an agent, so it must never be
    /// a registration entry's ID or a node alias.
    pub fn is_reserved(&self) -> bool {
        self.path()
            .strip_prefix(RESERVED_PATH)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
    }
}

impl fmt::Display for SpiffeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.uri)
    }
}

impl fmt::Debug for SpiffeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SpiffeId({})", self.uri)
    }
}

impl FromStr for SpiffeId {
    type Err = IdError;
    fn from_str(s: &str) -> Result<Self, IdError> {
        Self::parse(s)
    }
}

impl serde::Serialize for SpiffeId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.uri)
    }
}

impl<'de> serde::Deserialize<'de> for SpiffeId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_str(ParseVisitor::new(
            "SPIFFE ID",
            "spiffe://example.org/ns/default/sa/api",
        ))
    }
}

/// Deserializes a [`FromStr`] ID type from a string. Errors are raised inside
/// the deserializer, so config parsers report them with the key's path.
struct ParseVisitor<T> {
    what: &'static str,
    example: &'static str,
    target: std::marker::PhantomData<T>,
}

impl<T> ParseVisitor<T> {
    fn new(what: &'static str, example: &'static str) -> Self {
        Self {
            what,
            example,
            target: std::marker::PhantomData,
        }
    }
}

impl<T: FromStr<Err = IdError>> serde::de::Visitor<'_> for ParseVisitor<T> {
    type Value = T;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "a {} such as {:?}", self.what, self.example)
    }

    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<T, E> {
        v.parse().map_err(|e: IdError| {
            E::custom(format_args!("{v:?} is not a valid {}: {e}", self.what))
        })
    }
}

fn check_trust_domain(td: &str) -> Result<(), IdError> {
    if td.is_empty() {
        return Err(IdError::EmptyTrustDomain);
    }
    if td.len() > MAX_TRUST_DOMAIN_LEN {
        return Err(IdError::TrustDomainTooLong(td.len()));
    }
    if td.contains('@') {
        return Err(IdError::UserInfo);
    }
    if td.contains(':') {
        return Err(IdError::Port);
    }
    if td.contains('%') {
        return Err(IdError::PercentEncoded);
    }
    match td.chars().find(|c| !is_td_char(*c)) {
        Some(c) => Err(IdError::TrustDomainChar(c)),
        None => Ok(()),
    }
}

fn check_path(path: &str) -> Result<(), IdError> {
    if path.is_empty() {
        return Ok(());
    }
    if path.contains('%') {
        return Err(IdError::PercentEncoded);
    }
    if path.ends_with('/') {
        return Err(IdError::TrailingSlash);
    }
    // `path` starts with '/', so the first split item is empty and skipped.
    for seg in path.split('/').skip(1) {
        if seg.is_empty() {
            return Err(IdError::EmptySegment);
        }
        if seg == "." || seg == ".." {
            return Err(IdError::DotSegment);
        }
        if let Some(c) = seg.chars().find(|c| !is_path_char(*c)) {
            return Err(IdError::PathChar(c));
        }
    }
    Ok(())
}

fn is_td_char(c: char) -> bool {
    c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '-' | '_')
}

fn is_path_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_')
}
