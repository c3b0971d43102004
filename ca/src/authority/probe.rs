//! Can the CA issue SVIDs that agents accept? [`Authority::check_issuance`]
//! signs a throw-away SVID exactly as a workload's would be signed and
//! verifies it with the shared verifier against the CA's own bundle, the
//! one agents hold. A chain that starts with a not-yet-valid or expired
//! certificate, breaks a pathLenConstraint, or does not lead to the bundle's
//! root fails here before any agent sees it.

use std::time::{Duration, SystemTime};

use meshid_identity::{BundleSet, SpiffeId, SvidError, verify_x509_svid};

use super::{Authority, AuthorityError, X509SvidSpec};

/// The probe SVID's path: reserved, so no entry can ever hold it.
const PROBE_PATH: &str = "/meshid/ca/issuance-probe";

/// Why the CA cannot issue verifiable SVIDs right now.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum IssuanceError {
    /// Signing failed (e.g. the signing certificate has expired).
    #[error("signing a probe SVID failed: {0}")]
    Sign(#[from] AuthorityError),
    /// An SVID signed now does not verify against the CA's own bundle.
    #[error(
        "an SVID signed now does not verify against the CA's trust bundle: {0}; fix the CA \
         certificate chain (upstream cert_chain_file) or the clock"
    )]
    Unverifiable(#[from] SvidError),
}

// === impl Authority ===

impl Authority {
    /// Signs a probe SVID at `now` and verifies it as an agent would.
    pub fn check_issuance(&self, now: SystemTime) -> Result<(), IssuanceError> {
        let id = probe_id(self)?;
        let spec = X509SvidSpec {
            spiffe_id: &id,
            dns_names: &[],
            public_key_der: &self.probe_spki,
            requested_ttl: Duration::from_secs(60),
            entry_ttl: Duration::ZERO,
        };
        let issued = self.sign_x509_svid(&spec, now)?;
        let bundles: BundleSet = [self.bundle.clone()].into_iter().collect();
        verify_x509_svid(&issued.chain, &bundles, now)?;
        Ok(())
    }
}

fn probe_id(a: &Authority) -> Result<SpiffeId, AuthorityError> {
    a.config
        .trust_domain
        .id_with_path(PROBE_PATH)
        .map_err(|e| AuthorityError::BadCa(e.to_string()))
}
