//! Checks an X.509-SVID the CA returned before the agent uses it.

use std::time::{Duration, SystemTime};

use meshid_identity::{BundleSet, PrivateKey, SpiffeId, verify_x509_svid};
use meshid_proto::ca::X509Svid;
use rustls_pki_types::CertificateDer;

use super::CaError;

/// An issued SVID that verified against the bundle and carries our key.
#[derive(Debug, Clone)]
pub struct IssuedSvid {
    /// The identity in the leaf.
    pub spiffe_id: SpiffeId,
    /// Leaf first.
    pub chain: Vec<CertificateDer<'static>>,
    /// The leaf's notBefore.
    pub not_before: SystemTime,
    /// The leaf's notAfter.
    pub not_after: SystemTime,
    /// The leaf's serial, hex.
    pub serial: String,
}

/// Verifies `svid` against `bundles` at `now`, checks its leaf holds the
/// public key of `key`, and (when given) that it names `expected`.
pub fn check_x509_svid(
    svid: &X509Svid,
    bundles: &BundleSet,
    key: &PrivateKey,
    expected: Option<&SpiffeId>,
    now: SystemTime,
) -> Result<IssuedSvid, CaError> {
    let bad = |m: String| CaError::BadResponse(m);
    let chain: Vec<CertificateDer<'static>> = svid
        .cert_chain
        .iter()
        .map(|c| CertificateDer::from(c.clone()))
        .collect();
    let verified = verify_x509_svid(&chain, bundles, now)
        .map_err(|e| bad(format!("issued SVID does not verify: {e}")))?;
    if let Some(want) = expected
        && &verified.spiffe_id != want
    {
        return Err(bad(format!(
            "issued SVID names {}, expected {want}",
            verified.spiffe_id
        )));
    }
    let leaf = chain.first().ok_or_else(|| bad("empty chain".into()))?;
    let (_, cert) = x509_parser::parse_x509_certificate(leaf.as_ref())
        .map_err(|e| bad(format!("issued leaf unreadable: {e}")))?;
    if cert.public_key().raw != key.public_key_der().as_slice() {
        return Err(bad("issued SVID is for a different key".into()));
    }
    let nb = cert.validity().not_before.timestamp();
    let not_before = SystemTime::UNIX_EPOCH + Duration::from_secs(u64::try_from(nb).unwrap_or(0));
    let serial = hex::encode(cert.raw_serial());
    Ok(IssuedSvid {
        spiffe_id: verified.spiffe_id,
        not_before,
        not_after: verified.not_after,
        serial,
        chain,
    })
}
