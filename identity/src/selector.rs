//! Selectors: `type:value` facts about a node or workload (`unix:uid:1000`,
//! `k8s:ns:payments`). A registration entry matches a caller when every one
//! of its selectors is among the caller's.

use std::fmt;
use std::str::FromStr;

/// Longest selector type, in bytes.
pub const MAX_SELECTOR_TYPE_LEN: usize = 64;
/// Longest selector value, in bytes.
pub const MAX_SELECTOR_VALUE_LEN: usize = 1024;

/// Why a string is not a valid selector.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SelectorError {
    /// No `:` between type and value.
    #[error("selector {0:?} must have the form type:value (e.g. unix:uid:1000)")]
    MissingColon(String),
    /// The type part is empty, too long or not `[a-z0-9_]`.
    #[error("selector type {0:?} must be 1-64 chars of lowercase letters, digits or '_'")]
    BadType(String),
    /// The value part is empty.
    #[error("selector value is empty")]
    EmptyValue,
    /// The value part is over 1024 bytes.
    #[error("selector value is {0} bytes; the limit is 1024")]
    ValueTooLong(usize),
    /// The value contains a control character.
    #[error("selector value contains a control character")]
    ControlChar,
}

/// One selector: a type (the attestor, such as `unix`) and a value
/// (such as `uid:1000`).
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Selector {
    kind: String,
    value: String,
}

// === impl Selector ===

impl Selector {
    /// Builds a selector from its two parts, validating both.
    pub fn new(kind: &str, value: &str) -> Result<Self, SelectorError> {
        let kind_ok = !kind.is_empty()
            && kind.len() <= MAX_SELECTOR_TYPE_LEN
            && kind
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
        if !kind_ok {
            return Err(SelectorError::BadType(kind.chars().take(80).collect()));
        }
        if value.is_empty() {
            return Err(SelectorError::EmptyValue);
        }
        if value.len() > MAX_SELECTOR_VALUE_LEN {
            return Err(SelectorError::ValueTooLong(value.len()));
        }
        if value.chars().any(char::is_control) {
            return Err(SelectorError::ControlChar);
        }
        Ok(Self {
            kind: kind.to_owned(),
            value: value.to_owned(),
        })
    }

    /// Parses `type:value`; the value may itself contain `:`.
    pub fn parse(s: &str) -> Result<Self, SelectorError> {
        match s.split_once(':') {
            Some((kind, value)) => Self::new(kind, value),
            None => Err(SelectorError::MissingColon(s.chars().take(80).collect())),
        }
    }

    /// The selector type (`unix`, `k8s`, `join_token`, …).
    pub fn kind(&self) -> &str {
        &self.kind
    }

    /// The selector value (`uid:1000`, `ns:payments`, …).
    pub fn value(&self) -> &str {
        &self.value
    }
}

/// True if every selector in `required` is in `have` (an empty `required`
/// never matches: an entry without selectors selects nothing).
pub fn all_match(required: &[Selector], have: &[Selector]) -> bool {
    !required.is_empty() && required.iter().all(|r| have.contains(r))
}

impl fmt::Display for Selector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.kind, self.value)
    }
}

impl fmt::Debug for Selector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Selector({}:{})", self.kind, self.value)
    }
}

impl FromStr for Selector {
    type Err = SelectorError;
    fn from_str(s: &str) -> Result<Self, SelectorError> {
        Self::parse(s)
    }
}

impl serde::Serialize for Selector {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Selector {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Self::parse(&s).map_err(serde::de::Error::custom)
    }
}
