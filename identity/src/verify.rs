//! X.509-SVID chain verification against trust bundles.
//!
//! [`verify_x509_svid`] applies the X.509-SVID rules to the leaf, builds a
//! path through the presented intermediates to a root in the bundle of the
//! leaf's own trust domain, checks every signature and validity period at
//! the injected time `now`, and applies the name constraints of every CA in
//! that path (RFC 5280 §4.2.1.10).

mod error;
mod name_constraints;

use std::time::SystemTime;

use rustls_pki_types::CertificateDer;
use x509_parser::prelude::X509Certificate;

use crate::x509::{MAX_CHAIN_LEN, check_ca, check_leaf, parse_cert, to_system_time};
use crate::{BundleSet, SpiffeId};

pub use error::SvidError;

/// A chain that passed [`verify_x509_svid`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedSvid {
    /// The peer's identity.
    pub spiffe_id: SpiffeId,
    /// When the leaf expires.
    pub not_after: SystemTime,
}

/// Verifies `chain` (leaf first, then intermediates in any order) at `now`.
pub fn verify_x509_svid(
    chain: &[CertificateDer<'_>],
    bundles: &BundleSet,
    now: SystemTime,
) -> Result<VerifiedSvid, SvidError> {
    let (leaf_der, rest) = chain.split_first().ok_or(SvidError::EmptyChain)?;
    if chain.len() > MAX_CHAIN_LEN {
        return Err(SvidError::TooLong);
    }
    let leaf = parse_cert(leaf_der)?;
    let intermediates = rest
        .iter()
        .map(|c| parse_cert(c))
        .collect::<Result<Vec<_>, _>>()?;
    let spiffe_id = check_leaf(&leaf)?;
    check_validity(&leaf, 0, now)?;
    let td = spiffe_id.trust_domain();
    let bundle = bundles
        .get(&td)
        .ok_or_else(|| SvidError::UnknownTrustDomain(td.clone()))?;
    // Unparseable bundle entries can never anchor a path; skip them.
    let roots: Vec<X509Certificate<'_>> = bundle
        .x509_authorities
        .iter()
        .filter_map(|c| parse_cert(c).ok())
        .collect();

    let mut used = vec![false; intermediates.len()];
    // The path so far, leaf first.
    let mut path = vec![&leaf];
    let mut current = &leaf;
    let mut saw_bad_signature = false;
    // `depth` counts intermediates between the leaf and the next issuer.
    for depth in 0..=intermediates.len() {
        for root in roots.iter().filter(|r| issued_by(current, r)) {
            if current.verify_signature(Some(root.public_key())).is_err() {
                saw_bad_signature = true;
                continue;
            }
            check_ca(root)?;
            check_validity(root, depth + 1, now)?;
            check_path_len(root, depth)?;
            path.push(root);
            name_constraints::check_path(&path)?;
            return Ok(VerifiedSvid {
                not_after: to_system_time(leaf.validity().not_after.timestamp()),
                spiffe_id,
            });
        }
        let next = (0..intermediates.len()).find(|&i| {
            !used[i] && issued_by(current, &intermediates[i]) && {
                let ok = current
                    .verify_signature(Some(intermediates[i].public_key()))
                    .is_ok();
                saw_bad_signature |= !ok;
                ok
            }
        });
        let Some(i) = next else { break };
        used[i] = true;
        let inter = &intermediates[i];
        check_ca(inter)?;
        check_validity(inter, depth + 1, now)?;
        check_path_len(inter, depth)?;
        path.push(inter);
        current = inter;
    }
    Err(if saw_bad_signature {
        SvidError::BadSignature
    } else {
        SvidError::NoPathToRoot
    })
}

fn issued_by(child: &X509Certificate<'_>, issuer: &X509Certificate<'_>) -> bool {
    child.issuer().as_raw() == issuer.subject().as_raw()
}

fn check_path_len(ca: &X509Certificate<'_>, intermediates_below: usize) -> Result<(), SvidError> {
    match check_ca(ca)? {
        Some(n) if usize::try_from(n).is_ok_and(|n| intermediates_below > n) => {
            Err(SvidError::PathLenExceeded)
        }
        _ => Ok(()),
    }
}

fn check_validity(
    cert: &X509Certificate<'_>,
    position: usize,
    now: SystemTime,
) -> Result<(), SvidError> {
    let not_before = to_system_time(cert.validity().not_before.timestamp());
    let not_after = to_system_time(cert.validity().not_after.timestamp());
    if now < not_before {
        return Err(SvidError::NotYetValid {
            position,
            not_before,
        });
    }
    if now > not_after {
        return Err(SvidError::Expired {
            position,
            not_after,
        });
    }
    Ok(())
}
