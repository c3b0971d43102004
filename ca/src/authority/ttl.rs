//! The lifetime policy of issued SVIDs.

use std::time::{Duration, SystemTime};

use rustls_pki_types::CertificateDer;

use crate::upstream::cert_facts;

/// The lifetime of a new SVID: the entry's TTL (or `default` when the entry
/// sets none), shortened to the requested TTL if one is given, and never
/// above `max`.
pub fn svid_lifetime(
    requested: Duration,
    entry: Duration,
    default: Duration,
    max: Duration,
) -> Duration {
    let base = if entry.is_zero() { default } else { entry };
    let wanted = if requested.is_zero() {
        base
    } else {
        requested.min(base)
    };
    wanted.min(max)
}

/// The earliest notAfter in `chain` (the signing certificate up to and
/// including the root): an SVID must not outlive any certificate it chains
/// to, or agents would hold one that no longer verifies. `None` for an
/// empty chain or an unreadable certificate.
pub fn chain_not_after(chain: &[CertificateDer<'_>]) -> Option<SystemTime> {
    chain
        .iter()
        .map(|c| cert_facts(c).map(|(_, not_after, _)| not_after))
        .collect::<Option<Vec<_>>>()?
        .into_iter()
        .min()
}

/// `now + lifetime`, cut to the CA chain's notAfter
/// ([`chain_not_after`]); `None` if the CA has no time left.
pub fn clamp_to_ca(
    now: SystemTime,
    lifetime: Duration,
    ca_not_after: SystemTime,
) -> Option<SystemTime> {
    let wanted = now.checked_add(lifetime)?;
    let not_after = wanted.min(ca_not_after);
    (not_after > now).then_some(not_after)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const H: Duration = Duration::from_secs(3600);
    const M: Duration = Duration::from_secs(60);

    #[test]
    fn lifetime_is_the_minimum_of_request_entry_and_max() {
        assert_eq!(svid_lifetime(Duration::ZERO, Duration::ZERO, H, H), H);
        assert_eq!(svid_lifetime(M, Duration::ZERO, H, H), M);
        assert_eq!(svid_lifetime(Duration::ZERO, 10 * M, H, H), 10 * M);
        assert_eq!(svid_lifetime(20 * M, 10 * M, H, H), 10 * M);
        assert_eq!(svid_lifetime(Duration::ZERO, 5 * H, H, 2 * H), 2 * H);
        assert_eq!(svid_lifetime(3 * H, Duration::ZERO, H, 10 * H), H);
    }

    #[test]
    fn expiry_never_outlives_the_ca() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        assert_eq!(clamp_to_ca(now, H, now + 2 * H), Some(now + H));
        assert_eq!(clamp_to_ca(now, H, now + M), Some(now + M));
        assert_eq!(clamp_to_ca(now, H, now), None);
    }

    #[test]
    fn the_earliest_notafter_of_the_whole_chain_bounds_the_svid() {
        use meshid_identity::x509::{self_signed_ca, sign_ca};
        use meshid_identity::{CaTemplate, TrustDomain};
        let now = SystemTime::now();
        let template = |name: &str, not_after| CaTemplate {
            trust_domain: TrustDomain::new("example.org").unwrap(),
            common_name: name.into(),
            not_before: now,
            not_after,
            path_len: None,
        };
        let root_key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let policy_key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let mesh_key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        // The root ends first, then the policy CA, then the intermediate.
        let secs = |s| now + Duration::from_secs(s);
        let root = self_signed_ca(&template("root", secs(3 * 3600)), &root_key).unwrap();
        let policy_spki = rcgen::PublicKeyData::subject_public_key_info(&policy_key);
        let policy = sign_ca(
            &template("policy", secs(5 * 3600)),
            &policy_spki,
            &root,
            &root_key,
        )
        .unwrap();
        let mesh_spki = rcgen::PublicKeyData::subject_public_key_info(&mesh_key);
        let mesh = sign_ca(
            &template("mesh", secs(9 * 3600)),
            &mesh_spki,
            &policy,
            &policy_key,
        )
        .unwrap();
        let whole = chain_not_after(&[mesh.clone(), policy.clone(), root.clone()]).unwrap();
        let at = |t: SystemTime| t.duration_since(SystemTime::UNIX_EPOCH).unwrap().as_secs();
        assert_eq!(at(whole), at(secs(3 * 3600)), "the root's notAfter");
        let alone = chain_not_after(std::slice::from_ref(&mesh)).unwrap();
        assert_eq!(at(alone), at(secs(9 * 3600)), "the signing certificate's");
        let issued = clamp_to_ca(now, 24 * H, whole).unwrap();
        assert_eq!(at(issued), at(secs(3 * 3600)));
        assert_eq!(chain_not_after(&[]), None);
        assert_eq!(
            chain_not_after(&[CertificateDer::from(vec![1, 2, 3])]),
            None
        );
    }
}
