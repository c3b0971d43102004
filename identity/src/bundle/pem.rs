//! X.509 authorities as a PEM file of `CERTIFICATE` blocks, the format
//! most TLS stacks read as a CA file.

use rustls_pki_types::CertificateDer;

use super::{BundleError, MAX_BUNDLE_LEN, TrustBundle, parse_certificate};
use crate::TrustDomain;

const CERTIFICATE: &str = "CERTIFICATE";

/// The X.509 authorities of `bundle` as concatenated PEM blocks.
pub(super) fn encode(bundle: &TrustBundle) -> String {
    let blocks: Vec<pem::Pem> = bundle
        .x509_authorities
        .iter()
        .map(|c| pem::Pem::new(CERTIFICATE, c.as_ref()))
        .collect();
    pem::encode_many(&blocks)
}

/// Reads a bundle of X.509 authorities for `trust_domain` from PEM.
pub(super) fn decode(trust_domain: TrustDomain, text: &str) -> Result<TrustBundle, BundleError> {
    if text.len() > MAX_BUNDLE_LEN {
        return Err(BundleError::TooLarge {
            size: text.len(),
            limit: MAX_BUNDLE_LEN,
        });
    }
    let blocks = pem::parse_many(text).map_err(BundleError::Pem)?;
    if blocks.is_empty() {
        return Err(BundleError::NoCertificates);
    }
    let mut bundle = TrustBundle::new(trust_domain);
    for block in blocks {
        if block.tag() != CERTIFICATE {
            return Err(BundleError::NotCertificate(
                block.tag().chars().take(64).collect(),
            ));
        }
        let der = CertificateDer::from(block.into_contents());
        parse_certificate(&der)?;
        bundle.x509_authorities.push(der);
    }
    Ok(bundle)
}
