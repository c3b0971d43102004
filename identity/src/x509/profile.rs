//! Profile checks shared by the SVID reader and the chain verifier.

use x509_parser::extensions::GeneralName;
use x509_parser::prelude::X509Certificate;

use crate::SpiffeId;
use crate::verify::SvidError;

/// Largest DER certificate accepted, in bytes.
pub const MAX_CERT_LEN: usize = 16 * 1024;
/// Most certificates accepted in a presented chain (leaf + intermediates).
pub const MAX_CHAIN_LEN: usize = 8;

/// Parses one DER certificate, bounded in size, with no trailing bytes.
pub(crate) fn parse_cert(der: &[u8]) -> Result<X509Certificate<'_>, SvidError> {
    if der.len() > MAX_CERT_LEN {
        return Err(SvidError::TooLong);
    }
    super::parse_exact(der).ok_or(SvidError::Malformed)
}

/// The SPIFFE ID of the single URI SAN.
pub(crate) fn uri_san_id(cert: &X509Certificate<'_>) -> Result<SpiffeId, SvidError> {
    let san = cert
        .subject_alternative_name()
        .map_err(|_| SvidError::Malformed)?
        .ok_or(SvidError::NoUriSan)?;
    let mut uris = san.value.general_names.iter().filter_map(|n| match n {
        GeneralName::URI(u) => Some(*u),
        _ => None,
    });
    let uri = uris.next().ok_or(SvidError::NoUriSan)?;
    if uris.next().is_some() {
        return Err(SvidError::MultipleUriSans);
    }
    let is_spiffe = uri
        .get(..9)
        .is_some_and(|s| s.eq_ignore_ascii_case("spiffe://"));
    if !is_spiffe {
        return Err(SvidError::NotSpiffe);
    }
    SpiffeId::parse(uri).map_err(SvidError::InvalidId)
}

/// Leaf rules: SPIFFE ID, CA:false, digitalSignature, no signing usages.
pub(crate) fn check_leaf(cert: &X509Certificate<'_>) -> Result<SpiffeId, SvidError> {
    let id = uri_san_id(cert)?;
    if id.path().is_empty() {
        return Err(SvidError::LeafIsTrustDomain);
    }
    let bc = cert.basic_constraints().map_err(|_| SvidError::Malformed)?;
    if bc.is_some_and(|bc| bc.value.ca) {
        return Err(SvidError::LeafIsCa);
    }
    let ku = cert
        .key_usage()
        .map_err(|_| SvidError::Malformed)?
        .ok_or(SvidError::MissingDigitalSignature)?;
    if ku.value.key_cert_sign() || ku.value.crl_sign() {
        return Err(SvidError::LeafHasCertSign);
    }
    if !ku.value.digital_signature() {
        return Err(SvidError::MissingDigitalSignature);
    }
    Ok(id)
}

/// Signing-certificate rules: CA:true and keyCertSign. Returns the pathLen.
pub(crate) fn check_ca(cert: &X509Certificate<'_>) -> Result<Option<u32>, SvidError> {
    let bc = cert
        .basic_constraints()
        .map_err(|_| SvidError::Malformed)?
        .ok_or(SvidError::IntermediateNotCa)?;
    if !bc.value.ca {
        return Err(SvidError::IntermediateNotCa);
    }
    let ku = cert.key_usage().map_err(|_| SvidError::Malformed)?;
    if !ku.is_some_and(|ku| ku.value.key_cert_sign()) {
        return Err(SvidError::IntermediateNotCa);
    }
    Ok(bc.value.path_len_constraint)
}
