//! Why an X.509-SVID chain was refused: one variant per rule.

use std::time::SystemTime;

use crate::{IdError, TrustDomain};

/// Why a certificate or chain is not a valid X.509-SVID.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SvidError {
    /// No certificate was presented.
    #[error("no certificate was presented; send the SVID leaf first")]
    EmptyChain,
    /// A certificate or the chain is larger than the limits.
    #[error("certificate or chain is too long (at most 8 certificates of 16 KiB each)")]
    TooLong,
    /// A certificate is not valid DER X.509.
    #[error("certificate is not valid DER X.509")]
    Malformed,
    /// The leaf has no URI SAN.
    #[error("leaf has no URI SAN; an X.509-SVID carries its SPIFFE ID as a URI SAN")]
    NoUriSan,
    /// The leaf has more than one URI SAN.
    #[error("leaf has more than one URI SAN; an X.509-SVID carries exactly one")]
    MultipleUriSans,
    /// The URI SAN is not a `spiffe://` URI.
    #[error("URI SAN is not a spiffe:// URI")]
    NotSpiffe,
    /// The URI SAN is a `spiffe://` URI that breaks the SPIFFE-ID rules.
    #[error("URI SAN is not a valid SPIFFE ID: {0}")]
    InvalidId(IdError),
    /// The leaf's SPIFFE ID is a trust domain ID (no path).
    #[error("leaf SPIFFE ID has no path; only signing certificates name the trust domain itself")]
    LeafIsTrustDomain,
    /// The leaf says CA:true.
    #[error("leaf is a CA certificate (basicConstraints CA:true); an SVID leaf must be CA:false")]
    LeafIsCa,
    /// The leaf lacks keyUsage digitalSignature.
    #[error("leaf keyUsage lacks digitalSignature")]
    MissingDigitalSignature,
    /// The leaf may sign certificates or CRLs.
    #[error("leaf keyUsage has keyCertSign or cRLSign; a leaf must not")]
    LeafHasCertSign,
    /// A certificate had expired at the verification time.
    #[error("certificate at chain position {position} expired")]
    Expired {
        /// 0 for the leaf, then intermediates, then the root.
        position: usize,
        /// When it expired.
        not_after: SystemTime,
    },
    /// A certificate was not yet valid at the verification time.
    #[error("certificate at chain position {position} is not yet valid (check clocks)")]
    NotYetValid {
        /// 0 for the leaf, then intermediates, then the root.
        position: usize,
        /// When it becomes valid.
        not_before: SystemTime,
    },
    /// No bundle is known for the leaf's trust domain.
    #[error("no trust bundle for trust domain {0}; federate with it or fix the peer")]
    UnknownTrustDomain(TrustDomain),
    /// An issuer was found by name but its signature does not verify.
    #[error("certificate signature does not verify with its issuer's key")]
    BadSignature,
    /// No chain leads from the leaf to a root of its trust domain.
    #[error("no path from the leaf to a root in the trust domain's bundle")]
    NoPathToRoot,
    /// An intermediate is not a CA with keyCertSign.
    #[error("an intermediate is not a CA (needs basicConstraints CA:true and keyCertSign)")]
    IntermediateNotCa,
    /// A CA's pathLenConstraint is exceeded.
    #[error("a CA's pathLenConstraint is exceeded by the intermediates below it")]
    PathLenExceeded,
    /// A name is outside the subtrees a CA's nameConstraints permit.
    #[error(
        "{name} in the certificate at chain position {position} is outside the names permitted \
         by the nameConstraints of the CA at position {ca}; issue it under a CA allowed to name it"
    )]
    NameNotPermitted {
        /// The certificate carrying the name (0 for the leaf).
        position: usize,
        /// The CA whose constraints it breaks.
        ca: usize,
        /// The name, readable.
        name: String,
    },
    /// A name is inside a subtree a CA's nameConstraints exclude.
    #[error(
        "{name} in the certificate at chain position {position} is excluded by the \
         nameConstraints of the CA at position {ca}; issue it under a CA allowed to name it"
    )]
    NameExcluded {
        /// The certificate carrying the name (0 for the leaf).
        position: usize,
        /// The CA whose constraints it breaks.
        ca: usize,
        /// The name, readable.
        name: String,
    },
    /// A CA's nameConstraints cannot be checked for a name, so the chain
    /// fails closed.
    #[error(
        "cannot check {name} in the certificate at chain position {position} against the \
         nameConstraints of the CA at position {ca}: {reason}"
    )]
    NameConstraintUnsupported {
        /// The certificate carrying the name (0 for the leaf).
        position: usize,
        /// The CA whose constraints cannot be applied.
        ca: usize,
        /// The name, readable.
        name: String,
        /// Why it cannot be checked.
        reason: &'static str,
    },
}
