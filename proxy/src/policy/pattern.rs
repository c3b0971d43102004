//! String patterns: `exact`, `prefix*`, `*suffix` and `*` (any value).

use std::fmt;

/// A compiled match pattern, parsed once at load time.
///
/// `*` may appear only as the whole pattern, as the first character or as the
/// last character — never in the middle and never twice.
#[derive(Clone, PartialEq, Eq)]
pub enum Pattern {
    /// Matches exactly this string.
    Exact(Box<str>),
    /// Matches strings that start with this string (`prefix*`).
    Prefix(Box<str>),
    /// Matches strings that end with this string (`*suffix`).
    Suffix(Box<str>),
    /// Matches any value that is present (`*`).
    Any,
}

/// Why a pattern string was rejected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum PatternError {
    /// The pattern is the empty string.
    Empty,
    /// A `*` appears somewhere other than the first or last character, or twice.
    MisplacedWildcard,
}

impl fmt::Display for PatternError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Empty => "empty value; remove it or write `*` to match any value",
            Self::MisplacedWildcard => {
                "`*` may only be the whole value, its first character or its last character"
            }
        })
    }
}

// === impl Pattern ===

impl Pattern {
    /// Parses a pattern string.
    pub fn parse(s: &str) -> Result<Self, PatternError> {
        if s.is_empty() {
            return Err(PatternError::Empty);
        }
        if s == "*" {
            return Ok(Self::Any);
        }
        let stars = s.bytes().filter(|&b| b == b'*').count();
        if stars == 0 {
            return Ok(Self::Exact(s.into()));
        }
        if stars > 1 {
            return Err(PatternError::MisplacedWildcard);
        }
        if let Some(prefix) = s.strip_suffix('*') {
            Ok(Self::Prefix(prefix.into()))
        } else if let Some(suffix) = s.strip_prefix('*') {
            Ok(Self::Suffix(suffix.into()))
        } else {
            Err(PatternError::MisplacedWildcard)
        }
    }

    /// True if `value` matches, comparing bytes exactly.
    #[inline]
    pub fn matches(&self, value: &str) -> bool {
        match self {
            Self::Exact(p) => value == &**p,
            Self::Prefix(p) => value.starts_with(&**p),
            Self::Suffix(p) => value.ends_with(&**p),
            Self::Any => true,
        }
    }

    /// True if `value` matches, ignoring ASCII case (for host names).
    #[inline]
    pub fn matches_ignore_ascii_case(&self, value: &str) -> bool {
        let v = value.as_bytes();
        match self {
            Self::Exact(p) => v.eq_ignore_ascii_case(p.as_bytes()),
            Self::Prefix(p) => v
                .get(..p.len())
                .is_some_and(|h| h.eq_ignore_ascii_case(p.as_bytes())),
            Self::Suffix(p) => v
                .len()
                .checked_sub(p.len())
                .is_some_and(|start| v[start..].eq_ignore_ascii_case(p.as_bytes())),
            Self::Any => true,
        }
    }
}

impl fmt::Display for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Exact(p) => f.write_str(p),
            Self::Prefix(p) => write!(f, "{p}*"),
            Self::Suffix(p) => write!(f, "*{p}"),
            Self::Any => f.write_str("*"),
        }
    }
}

impl fmt::Debug for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Pattern({self})")
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_four_forms() {
        assert_eq!(Pattern::parse("a").unwrap(), Pattern::Exact("a".into()));
        assert_eq!(Pattern::parse("a*").unwrap(), Pattern::Prefix("a".into()));
        assert_eq!(Pattern::parse("*a").unwrap(), Pattern::Suffix("a".into()));
        assert_eq!(Pattern::parse("*").unwrap(), Pattern::Any);
        assert_eq!(Pattern::parse(""), Err(PatternError::Empty));
        assert_eq!(Pattern::parse("a*b"), Err(PatternError::MisplacedWildcard));
        assert_eq!(Pattern::parse("*a*"), Err(PatternError::MisplacedWildcard));
        assert_eq!(Pattern::parse("**"), Err(PatternError::MisplacedWildcard));
    }

    #[test]
    fn case_insensitive_matching_handles_short_and_non_ascii_values() {
        let p = Pattern::parse("*.Example.COM").unwrap();
        assert!(p.matches_ignore_ascii_case("api.example.com"));
        assert!(!p.matches_ignore_ascii_case("com"));
        let p = Pattern::parse("é*").unwrap();
        assert!(p.matches_ignore_ascii_case("é-x"));
        assert!(!p.matches_ignore_ascii_case("e"));
    }
}
