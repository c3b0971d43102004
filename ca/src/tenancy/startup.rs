//! The `[[tenants]]` of the config, applied when the CA starts.

use meshid_identity::TrustDomain;

use super::{Tenant, check_tenant, differences};
use crate::store::{AuditEvent, Change, Store, StoreError};

/// Why the configured tenants could not be applied.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StartupError {
    /// A configured tenant differs from the stored one of its name.
    #[error(
        "config tenant {name} differs from the stored tenant of that name: {}; make \
         [[tenants]] match the stored tenant (`meshid tenant show {name}`), or delete the \
         stored one first",
        differences.join("; ")
    )]
    Differs {
        /// The tenant.
        name: String,
        /// What differs.
        differences: Vec<String>,
    },
    /// A configured tenant clashes with a stored one (overlapping prefixes).
    #[error("config tenant {name}: {reason}")]
    Refused {
        /// The tenant.
        name: String,
        /// Why.
        reason: String,
    },
    /// The store failed.
    #[error("config tenants: {0}")]
    Store(#[from] StoreError),
}

/// Creates each of `configured` (checked and normalized by
/// `config::tenants`) that the store lacks, audited with actor `config`;
/// one that exists must be equal to it. Returns how many were created.
pub async fn apply_config(
    store: &dyn Store,
    td: &TrustDomain,
    configured: &[Tenant],
) -> Result<usize, StartupError> {
    let mut stored = store.list_tenants().await?;
    let mut created = 0;
    for want in configured {
        if let Some(have) = stored.iter().find(|t| t.name == want.name) {
            let differences = differences(want, have);
            if differences.is_empty() {
                continue;
            }
            return Err(StartupError::Differs {
                name: want.name.clone(),
                differences,
            });
        }
        let tenant =
            check_tenant(want.clone(), td, &stored).map_err(|e| StartupError::Refused {
                name: want.name.clone(),
                reason: e.to_string(),
            })?;
        let event = AuditEvent {
            actor: "config".into(),
            action: "tenant.create".into(),
            target: tenant.name.clone(),
            result: "ok".into(),
            ..AuditEvent::default()
        };
        match store.audited(Change::CreateTenant(tenant), event).await {
            // Another replica created it meanwhile: compared on the next start.
            Err(StoreError::AlreadyExists { .. }) => {}
            Err(e) => return Err(e.into()),
            Ok(_) => created += 1,
        }
        stored = store.list_tenants().await?;
    }
    Ok(created)
}
