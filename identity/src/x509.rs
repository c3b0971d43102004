//! The X.509-SVID profile: build SVIDs and signing certificates, read them back.
//!
//! Building: [`self_signed_ca`], [`sign_ca`] and [`sign_svid`] turn a template
//! plus a public key into a certificate that follows the X.509-SVID spec.
//! Reading: [`spiffe_id_of`], [`not_after`], [`public_key_of`],
//! [`serial_of`], [`authority_key_id`], [`pem_certs`], [`to_pem`], and [`split_chain`] for
//! concatenated DER (the Workload API's `x509_svid` and `bundle` fields).
//! Requests: [`csr::verify_csr`] accepts a PKCS#10 request for its key only.

mod chain;
pub mod csr;
mod profile;
mod template;

use std::time::{Duration, SystemTime};

use rustls_pki_types::CertificateDer;
use x509_parser::prelude::{FromDer, X509Certificate};

use crate::{SpiffeId, verify::SvidError};

pub use chain::{ChainError, MAX_SPLIT_CERTS, split_chain};
pub use profile::{MAX_CERT_LEN, MAX_CHAIN_LEN};
pub use template::{
    BACKDATE, CaTemplate, SvidTemplate, X509Error, self_signed_ca, sign_ca, sign_svid,
};

pub(crate) use profile::{check_ca, check_leaf, parse_cert};

/// Largest PEM text [`pem_certs`] accepts, in bytes.
pub const MAX_PEM_LEN: usize = 256 * 1024;

/// The SPIFFE ID in a certificate's single URI SAN.
///
/// Checks only the SAN rules of the profile, not the chain; use
/// [`crate::verify::verify_x509_svid`] to decide whether to trust it.
pub fn spiffe_id_of(cert_der: &[u8]) -> Result<SpiffeId, SvidError> {
    let cert = parse_cert(cert_der)?;
    profile::uri_san_id(&cert)
}

/// When a certificate expires.
pub fn not_after(cert_der: &[u8]) -> Result<SystemTime, SvidError> {
    let cert = parse_cert(cert_der)?;
    Ok(to_system_time(cert.validity().not_after.timestamp()))
}

/// The DER SubjectPublicKeyInfo of a certificate's key, e.g. to check that
/// a private key belongs to it.
pub fn public_key_of(cert_der: &[u8]) -> Result<Vec<u8>, SvidError> {
    Ok(parse_cert(cert_der)?.public_key().raw.to_vec())
}

/// A certificate's serial number as lower-case hex.
pub fn serial_of(cert_der: &[u8]) -> Result<String, SvidError> {
    Ok(hex::encode(
        parse_cert(cert_der)?.tbs_certificate.raw_serial(),
    ))
}

/// The keyIdentifier of a certificate's AuthorityKeyIdentifier extension
/// (raw bytes): which CA key signed it, as rotation state names keys.
/// `None` if the certificate is unreadable or carries none.
pub fn authority_key_id(cert_der: &[u8]) -> Option<Vec<u8>> {
    let cert = parse_cert(cert_der).ok()?;
    cert.extensions()
        .iter()
        .find_map(|ext| match ext.parsed_extension() {
            x509_parser::extensions::ParsedExtension::AuthorityKeyIdentifier(aki) => {
                aki.key_identifier.as_ref().map(|k| k.0.to_vec())
            }
            _ => None,
        })
}

/// Reads every `CERTIFICATE` block of a PEM text, in order.
///
/// Other block types are an error, so a key pasted by mistake is noticed.
pub fn pem_certs(pem_text: &str) -> Result<Vec<CertificateDer<'static>>, SvidError> {
    if pem_text.len() > MAX_PEM_LEN {
        return Err(SvidError::TooLong);
    }
    let blocks = pem::parse_many(pem_text).map_err(|_| SvidError::Malformed)?;
    blocks
        .into_iter()
        .map(|b| match b.tag() {
            "CERTIFICATE" => Ok(CertificateDer::from(b.into_contents())),
            _ => Err(SvidError::Malformed),
        })
        .collect()
}

/// Encodes certificates as consecutive `CERTIFICATE` PEM blocks.
pub fn to_pem(certs: &[CertificateDer<'_>]) -> String {
    let blocks: Vec<pem::Pem> = certs
        .iter()
        .map(|c| pem::Pem::new("CERTIFICATE", c.to_vec()))
        .collect();
    pem::encode_many(&blocks)
}

/// Seconds since the epoch (may be negative) to `SystemTime`.
pub(crate) fn to_system_time(secs: i64) -> SystemTime {
    match u64::try_from(secs) {
        Ok(s) => SystemTime::UNIX_EPOCH + Duration::from_secs(s),
        Err(_) => SystemTime::UNIX_EPOCH - Duration::from_secs(secs.unsigned_abs()),
    }
}

/// Parses DER with no trailing bytes; used by [`parse_cert`].
fn parse_exact(der: &[u8]) -> Option<X509Certificate<'_>> {
    match parse_first(der) {
        Some(([], cert)) => Some(cert),
        _ => None,
    }
}

/// Parses the certificate at the start of `der`: `(rest, certificate)`.
fn parse_first(der: &[u8]) -> Option<(&[u8], X509Certificate<'_>)> {
    // The parser tolerates a primitive outer SEQUENCE tag; DER does not.
    if der.first() != Some(&0x30) {
        return None;
    }
    match X509Certificate::from_der(der) {
        // A signature BIT STRING with unused bits would let one certificate
        // have several encodings that all verify; refuse it.
        Ok((rest, cert)) if cert.signature_value.unused_bits == 0 => Some((rest, cert)),
        _ => None,
    }
}
