//! Small DER helpers: split concatenated certificates, read a leaf's key and serial.

use rustls::pki_types::CertificateDer;
use x509_parser::prelude::{FromDer, X509Certificate};

/// Most certificates accepted in one concatenated DER blob.
const MAX_CERTS: usize = 64;

/// Splits concatenated DER certificates (Workload API `x509_svid`, `bundle`).
pub(crate) fn split_certs(mut der: &[u8]) -> Result<Vec<CertificateDer<'static>>, String> {
    let mut out = Vec::new();
    while !der.is_empty() {
        if out.len() == MAX_CERTS {
            return Err(format!("more than {MAX_CERTS} certificates"));
        }
        let len = element_len(der).ok_or("truncated or malformed DER certificate")?;
        let (one, rest) = der.split_at(len);
        out.push(CertificateDer::from(one.to_vec()));
        der = rest;
    }
    Ok(out)
}

/// Total length (header + content) of the DER SEQUENCE at the start of `der`.
fn element_len(der: &[u8]) -> Option<usize> {
    if *der.first()? != 0x30 {
        return None;
    }
    let first = *der.get(1)?;
    let (header, content) = if first < 0x80 {
        (2, usize::from(first))
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 {
            return None;
        }
        let bytes = der.get(2..2 + n)?;
        let len = bytes
            .iter()
            .fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
        (2 + n, len)
    };
    let total = header.checked_add(content)?;
    (total <= der.len()).then_some(total)
}

fn parse(der: &[u8]) -> Result<X509Certificate<'_>, String> {
    X509Certificate::from_der(der)
        .map(|(_, c)| c)
        .map_err(|e| format!("cannot parse certificate: {e}"))
}

/// The leaf's SubjectPublicKeyInfo, DER.
pub(crate) fn leaf_spki(der: &[u8]) -> Result<Vec<u8>, String> {
    Ok(parse(der)?.tbs_certificate.subject_pki.raw.to_vec())
}

/// The certificate's serial number as lower-case hex.
pub(crate) fn serial_hex(der: &[u8]) -> Result<String, String> {
    let c = parse(der)?;
    Ok(c.tbs_certificate
        .raw_serial()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_and_refuses_truncation() {
        let a = [0x30, 0x01, 0xaa];
        let b = [0x30, 0x81, 0x02, 0xbb, 0xcc];
        let joined = [&a[..], &b[..]].concat();
        let certs = split_certs(&joined).unwrap_or_default();
        assert_eq!(certs.len(), 2);
        assert_eq!(certs[1].as_ref(), &b);
        assert!(split_certs(&joined[..joined.len() - 1]).is_err());
        assert!(split_certs(&[0x04, 0x00]).is_err());
    }
}
