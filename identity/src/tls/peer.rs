//! Which verified peers a connection accepts, and the error when one is not.

use std::fmt;

use rustls::{CertificateError, OtherError};

use crate::{SpiffeId, TrustDomain};

/// How many IDs [`PeerMatch`]'s `Display` names before "and N more".
const MAX_IDS_SHOWN: usize = 5;

/// Which verified peers to accept.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum PeerMatch {
    /// Any peer whose trust domain has a bundle in the set.
    Any,
    /// Only peers in this trust domain.
    TrustDomain(TrustDomain),
    /// Only these exact SPIFFE IDs.
    OneOf(Vec<SpiffeId>),
}

/// The peer's SVID verified but its SPIFFE ID is not allowed by the
/// [`PeerMatch`]; the message names both the presented and the expected IDs.
///
/// It travels inside the handshake's `rustls::Error` (as
/// `CertificateError::Other`); [`PeerNotAllowed::in_error`] finds it there.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the peer presented {presented}, but this connection accepts only {allowed}")]
#[non_exhaustive]
pub struct PeerNotAllowed {
    /// The verified ID in the peer's certificate.
    pub presented: SpiffeId,
    /// What the connection accepts.
    pub allowed: PeerMatch,
}

// === impl PeerMatch ===

impl PeerMatch {
    /// True if `id` is allowed.
    pub fn allows(&self, id: &SpiffeId) -> bool {
        match self {
            Self::Any => true,
            Self::TrustDomain(td) => id.is_member_of(td),
            Self::OneOf(ids) => ids.contains(id),
        }
    }
}

impl fmt::Display for PeerMatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Any => f.write_str("any SPIFFE ID of a trusted trust domain"),
            Self::TrustDomain(td) => write!(f, "SPIFFE IDs in trust domain {td}"),
            Self::OneOf(ids) => {
                if ids.len() != 1 {
                    f.write_str("one of ")?;
                }
                for (i, id) in ids.iter().take(MAX_IDS_SHOWN).enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{id}")?;
                }
                match ids.len().saturating_sub(MAX_IDS_SHOWN) {
                    0 => Ok(()),
                    more => write!(f, " and {more} more"),
                }
            }
        }
    }
}

// === impl PeerNotAllowed ===

impl PeerNotAllowed {
    /// The exact IDs that would have been accepted (empty unless the
    /// connection accepts [`PeerMatch::OneOf`]).
    pub fn expected_ids(&self) -> &[SpiffeId] {
        match &self.allowed {
            PeerMatch::OneOf(ids) => ids,
            _ => &[],
        }
    }

    /// The [`PeerNotAllowed`] inside a handshake error, if that is why the
    /// handshake failed.
    pub fn in_error(e: &rustls::Error) -> Option<&Self> {
        match e {
            rustls::Error::InvalidCertificate(CertificateError::Other(OtherError(inner))) => {
                inner.downcast_ref::<Self>()
            }
            _ => None,
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn id(s: &str) -> SpiffeId {
        SpiffeId::parse(s).unwrap()
    }

    #[test]
    fn the_error_names_what_was_expected() {
        let one = PeerNotAllowed {
            presented: id("spiffe://example.org/impostor"),
            allowed: PeerMatch::OneOf(vec![id("spiffe://example.org/meshid/ca")]),
        };
        assert_eq!(
            one.to_string(),
            "the peer presented spiffe://example.org/impostor, but this connection accepts only spiffe://example.org/meshid/ca"
        );
        assert_eq!(one.expected_ids(), &[id("spiffe://example.org/meshid/ca")]);

        let ids: Vec<_> = (0..7)
            .map(|i| id(&format!("spiffe://example.org/s{i}")))
            .collect();
        let shown = PeerMatch::OneOf(ids).to_string();
        assert!(
            shown.starts_with("one of spiffe://example.org/s0, "),
            "{shown}"
        );
        assert!(
            shown.ends_with("spiffe://example.org/s4 and 2 more"),
            "{shown}"
        );

        let td = PeerMatch::TrustDomain(TrustDomain::new("example.org").unwrap());
        assert_eq!(td.to_string(), "SPIFFE IDs in trust domain example.org");
    }
}
