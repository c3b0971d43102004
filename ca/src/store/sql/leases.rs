//! Named leases: at most one holder at a time, each hand-over with a
//! higher fencing token.

use std::time::Duration;

use super::{This, decode};
use crate::store::model::Lease;
use crate::store::{StoreError, codec, queries};

/// Longest lease a caller may take.
const MAX_TTL: Duration = Duration::from_secs(24 * 3600);

pub(super) async fn acquire(
    s: &This,
    name: &str,
    holder: &str,
    ttl: Duration,
) -> Result<Option<Lease>, StoreError> {
    codec::check_key("lease name", name)?;
    codec::check_key("lease holder", holder)?;
    if ttl < Duration::from_millis(1) || ttl > MAX_TTL {
        return Err(StoreError::Invalid(format!(
            "lease {name:?}: a TTL of {ttl:?} is not in 1ms..=24h"
        )));
    }
    let now = s.clock.now();
    let until = now
        .checked_add(ttl)
        .ok_or_else(|| StoreError::Invalid("lease expiry is out of range".into()))?;
    sqlx::query(queries::ACQUIRE_LEASE)
        .bind(name)
        .bind(holder)
        .bind(codec::to_ms(until)?)
        .bind(codec::to_ms(now)?)
        .fetch_optional(&s.pool)
        .await?
        .as_ref()
        .map(decode::lease)
        .transpose()
}

pub(super) async fn release(s: &This, lease: &Lease) -> Result<(), StoreError> {
    sqlx::query(queries::RELEASE_LEASE)
        .bind(lease.name.as_str())
        .bind(lease.holder.as_str())
        .bind(lease.token)
        .execute(&s.pool)
        .await?;
    Ok(())
}

pub(super) async fn get(s: &This, name: &str) -> Result<Option<Lease>, StoreError> {
    sqlx::query(queries::GET_LEASE)
        .bind(name)
        .fetch_optional(&s.pool)
        .await?
        .as_ref()
        .map(decode::lease)
        .transpose()
}

/// Whether `lease` is held now with its token.
pub(super) async fn held(s: &This, lease: &Lease) -> Result<bool, StoreError> {
    Ok(sqlx::query(queries::LEASE_HELD)
        .bind(lease.name.as_str())
        .bind(lease.holder.as_str())
        .bind(lease.token)
        .bind(codec::to_ms(s.clock.now())?)
        .fetch_optional(&s.pool)
        .await?
        .is_some())
}
