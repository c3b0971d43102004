//! Wire bundles ([`ca::Bundle`]) as [`TrustBundle`]s: the one conversion
//! agents and downstream CAs use for what a meshid CA sends.

use std::time::{Duration, UNIX_EPOCH};

use meshid_identity::{JwtAuthority, TrustBundle, TrustDomain};
use rustls_pki_types::CertificateDer;

use crate::ca;

/// Why a wire bundle is not a usable trust bundle.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WireBundleError {
    /// The bundle names another trust domain than the one expected.
    #[error("bundle is for {got:?}, expected {expected}")]
    OtherTrustDomain {
        /// The trust domain the bundle names.
        got: String,
        /// The trust domain expected.
        expected: TrustDomain,
    },
    /// The bundle's trust domain is not a valid name.
    #[error("bundle's trust domain {name:?}: {reason}")]
    BadTrustDomain {
        /// The name as sent.
        name: String,
        /// Why it is refused.
        reason: String,
    },
    /// The bundle has no X.509 roots, so nothing could be verified with it.
    #[error("bundle of {0} has no X.509 authorities")]
    NoRoots(TrustDomain),
}

/// The wire bundle `b`, which must be of trust domain `td`.
pub fn trust_bundle_of(td: &TrustDomain, b: &ca::Bundle) -> Result<TrustBundle, WireBundleError> {
    if b.trust_domain != td.as_str() {
        return Err(WireBundleError::OtherTrustDomain {
            got: b.trust_domain.clone(),
            expected: td.clone(),
        });
    }
    trust_bundle(b)
}

/// The wire bundle `b` of any trust domain (a federated one): roots, JWT
/// keys, sequence and refresh hint. Refused without X.509 roots.
pub fn trust_bundle(b: &ca::Bundle) -> Result<TrustBundle, WireBundleError> {
    let td = TrustDomain::new(&b.trust_domain).map_err(|e| WireBundleError::BadTrustDomain {
        name: b.trust_domain.clone(),
        reason: e.to_string(),
    })?;
    if b.x509_authorities.is_empty() {
        return Err(WireBundleError::NoRoots(td));
    }
    let mut out = TrustBundle::new(td);
    out.x509_authorities = b
        .x509_authorities
        .iter()
        .map(|c| CertificateDer::from(c.clone()))
        .collect();
    out.jwt_authorities = b
        .jwt_authorities
        .iter()
        .map(|k| JwtAuthority {
            key_id: k.key_id.clone(),
            public_key_der: k.public_key.clone(),
            expires_at: u64::try_from(k.expires_at)
                .ok()
                .filter(|s| *s > 0)
                .map(|s| UNIX_EPOCH + Duration::from_secs(s)),
        })
        .collect();
    out.sequence = u64::try_from(b.sequence).unwrap_or(0);
    out.refresh_hint = u64::try_from(b.refresh_hint_seconds)
        .ok()
        .filter(|s| *s > 0)
        .map(Duration::from_secs);
    Ok(out)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn wire(td: &str, roots: usize) -> ca::Bundle {
        ca::Bundle {
            trust_domain: td.into(),
            x509_authorities: vec![vec![0x30, 0x00]; roots],
            jwt_authorities: vec![ca::JwtKey {
                key_id: "k1".into(),
                public_key: vec![1, 2, 3],
                expires_at: 0,
            }],
            sequence: 7,
            refresh_hint_seconds: 60,
        }
    }

    #[test]
    fn carries_roots_keys_sequence_and_hint() {
        let td = TrustDomain::new("example.org").unwrap();
        let b = trust_bundle_of(&td, &wire("example.org", 2)).unwrap();
        assert_eq!(b.x509_authorities.len(), 2);
        assert_eq!(b.jwt_authorities[0].key_id, "k1");
        assert_eq!(b.jwt_authorities[0].public_key_der, vec![1, 2, 3]);
        assert_eq!(b.sequence, 7);
        assert_eq!(b.refresh_hint, Some(Duration::from_secs(60)));
    }

    #[test]
    fn refuses_another_trust_domain_a_bad_name_and_no_roots() {
        let td = TrustDomain::new("example.org").unwrap();
        assert!(matches!(
            trust_bundle_of(&td, &wire("other.org", 1)),
            Err(WireBundleError::OtherTrustDomain { .. })
        ));
        assert!(matches!(
            trust_bundle(&wire("Not A Domain", 1)),
            Err(WireBundleError::BadTrustDomain { .. })
        ));
        assert!(matches!(
            trust_bundle(&wire("example.org", 0)),
            Err(WireBundleError::NoRoots(_))
        ));
    }
}
