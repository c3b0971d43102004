//! Splitting concatenated DER certificates, as the SPIFFE Workload API
//! sends them (`x509_svid`, `bundle`, `federated_bundles`).

use rustls_pki_types::CertificateDer;

use super::{MAX_CERT_LEN, parse_first};

/// Most certificates [`split_chain`] accepts in one input (an SVID chain or
/// a bundle's roots).
pub const MAX_SPLIT_CERTS: usize = 64;

/// Why concatenated DER could not be split into certificates.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ChainError {
    /// The bytes at `offset` are not a DER X.509 certificate: garbage,
    /// a truncated certificate, or some other DER structure.
    #[error(
        "certificate {index} (at byte {offset}) is not a valid DER X.509 certificate; expected certificates concatenated in DER, with nothing between or after them"
    )]
    Malformed {
        /// Which certificate, counting from 0.
        index: usize,
        /// Where it starts in the input.
        offset: usize,
    },
    /// A certificate is larger than [`MAX_CERT_LEN`].
    #[error("certificate {index} is {len} bytes; the limit is {MAX_CERT_LEN}")]
    TooLong {
        /// Which certificate, counting from 0.
        index: usize,
        /// Its length in bytes.
        len: usize,
    },
    /// More than [`MAX_SPLIT_CERTS`] certificates.
    #[error("more than {MAX_SPLIT_CERTS} certificates in one field")]
    TooMany,
}

/// Splits certificates concatenated in DER, parsing each one as it goes.
///
/// Empty input gives no certificates. Anything that is not a whole, valid
/// certificate (trailing bytes, truncation, another DER type) is an error.
///
/// ```
/// use meshid_identity::x509::{ChainError, split_chain};
/// assert_eq!(split_chain(&[]), Ok(vec![]));
/// assert!(matches!(split_chain(&[0x30, 0x03, 1, 2, 3]), Err(ChainError::Malformed { index: 0, offset: 0 })));
/// ```
pub fn split_chain(der: &[u8]) -> Result<Vec<CertificateDer<'static>>, ChainError> {
    let mut certs = Vec::new();
    let mut rest = der;
    while !rest.is_empty() {
        let index = certs.len();
        if index == MAX_SPLIT_CERTS {
            return Err(ChainError::TooMany);
        }
        let offset = der.len() - rest.len();
        let (tail, _) = parse_first(rest).ok_or(ChainError::Malformed { index, offset })?;
        let len = rest.len() - tail.len();
        if len > MAX_CERT_LEN {
            return Err(ChainError::TooLong { index, len });
        }
        let (one, tail) = rest.split_at(len);
        certs.push(CertificateDer::from(one.to_vec()));
        rest = tail;
    }
    Ok(certs)
}

#[cfg(test)]
mod tests;
