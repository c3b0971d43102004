//! Store and identity types to wire types.

use std::time::SystemTime;

use meshid_identity::{SpiffeId, TrustBundle};
use meshid_proto::ca;
use tonic::{Code, Status};

use crate::authority::{AuthorityError, IssuedX509Svid, SigningKeys};
use crate::metrics::CaMetrics;
use crate::store::{StoreError, StoredBundle};

/// Unix seconds (0 before 1970).
pub(crate) fn unix(t: SystemTime) -> i64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

pub(crate) fn x509_svid(id: &SpiffeId, svid: &IssuedX509Svid, entry_id: &str) -> ca::X509Svid {
    ca::X509Svid {
        spiffe_id: id.to_string(),
        cert_chain: svid.chain.iter().map(|c| c.to_vec()).collect(),
        expires_at: unix(svid.not_after),
        entry_id: entry_id.to_owned(),
    }
}

/// Sync's `ca_keys`: key IDs hex-decoded to the raw keyIdentifier bytes
/// agents compare with their SVIDs' AuthorityKeyIdentifier. `None` before
/// the engine has read the journal (agents then behave as before).
pub(crate) fn ca_keys(keys: &SigningKeys) -> Option<ca::CaKeys> {
    if keys.active.is_empty() {
        return None;
    }
    let raw = |ids: &[String]| ids.iter().filter_map(|id| hex::decode(id).ok()).collect();
    Some(ca::CaKeys {
        active: raw(&keys.active),
        tainted: raw(&keys.tainted),
        reissue_spread_seconds: u32::try_from(keys.reissue_spread.as_secs()).unwrap_or(u32::MAX),
    })
}

pub(crate) fn bundle(b: &TrustBundle) -> ca::Bundle {
    ca::Bundle {
        trust_domain: b.trust_domain.to_string(),
        x509_authorities: b.x509_authorities.iter().map(|c| c.to_vec()).collect(),
        jwt_authorities: b
            .jwt_authorities
            .iter()
            .map(|a| ca::JwtKey {
                key_id: a.key_id.clone(),
                public_key: a.public_key_der.clone(),
                expires_at: a.expires_at.map_or(0, unix),
            })
            .collect(),
        sequence: i64::try_from(b.sequence).unwrap_or(i64::MAX),
        refresh_hint_seconds: b
            .refresh_hint
            .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(0)),
    }
}

/// A stored (federated) bundle; `None` if its JSON no longer parses.
pub(crate) fn stored_bundle(b: &StoredBundle) -> Option<ca::Bundle> {
    match TrustBundle::from_spiffe_json(b.trust_domain.clone(), &b.spiffe_json) {
        Ok(tb) => Some(bundle(&tb)),
        Err(e) => {
            tracing::warn!(trust_domain = %b.trust_domain, error = %e, "stored bundle is unreadable; not sent");
            None
        }
    }
}

pub(crate) fn store_status(e: StoreError) -> Status {
    tracing::warn!(error = %e, "store call failed");
    Status::unavailable(format!("the CA's store failed: {e}"))
}

/// The code for a failed signature: `UNAVAILABLE` when the signing key's
/// token failed (counted by backend; the agent retries, and a later call
/// gets a fresh session), `INTERNAL` otherwise.
pub(crate) fn signing_code(e: &AuthorityError, metrics: &CaMetrics) -> Code {
    match e {
        AuthorityError::KeyUnavailable { backend, .. } => {
            tracing::warn!(error = %e, "signing failed on the token");
            metrics.signing_error(backend);
            Code::Unavailable
        }
        _ => Code::Internal,
    }
}
