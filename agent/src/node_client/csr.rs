//! PKCS#10 requests for keys generated on this node.

use meshid_identity::PrivateKey;

use super::CaError;

/// A CSR (DER) for `key`. The CA uses only its public key, so the subject
/// is left empty.
pub fn csr_der(key: &PrivateKey) -> Result<Vec<u8>, CaError> {
    let kp = key
        .key_pair()
        .map_err(|e| CaError::Tls(format!("agent key unusable: {e}")))?;
    let csr = rcgen::CertificateParams::default()
        .serialize_request(&kp)
        .map_err(|e| CaError::Tls(format!("cannot build a CSR: {e}")))?;
    Ok(csr.der().to_vec())
}
