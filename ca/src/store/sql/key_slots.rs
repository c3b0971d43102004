//! The CA key journal: slots read by every replica, written only under a
//! lease (the lease check and the write are one statement, [`FENCED`]).

use super::{Db, FENCED, This, decode, leases};
use crate::store::model::{KeySlot, Lease};
use crate::store::{StoreError, codec, queries};

/// Binds the lease check `$1`–`$4` (the time is the store clock's now).
fn fenced<'q>(
    s: &This,
    sql: &'static str,
    lease: &'q Lease,
) -> Result<sqlx::query::Query<'q, Db, <Db as sqlx::Database>::Arguments>, StoreError> {
    Ok(sqlx::query(sql)
        .bind(lease.name.as_str())
        .bind(lease.holder.as_str())
        .bind(lease.token)
        .bind(codec::to_ms(s.clock.now())?))
}

pub(super) async fn put(s: &This, slot: &KeySlot, lease: &Lease) -> Result<(), StoreError> {
    codec::check_key_slot(slot)?;
    let opt_ms = |t: Option<std::time::SystemTime>| t.map(codec::to_ms).transpose();
    let written = fenced(s, FENCED.upsert_key_slot, lease)?
        .bind(slot.id.as_str())
        .bind(slot.replica.as_str())
        .bind(slot.kind.as_str())
        .bind(i64::from(slot.generation))
        .bind(slot.state.as_str())
        .bind(slot.key_id.as_str())
        .bind(slot.key_slot.as_str())
        .bind(slot.key_ref.as_str())
        .bind(slot.public_pem.as_str())
        .bind(slot.roots_pem.as_str())
        .bind(codec::to_ms(slot.not_before)?)
        .bind(codec::to_ms(slot.not_after)?)
        .bind(codec::to_ms(slot.prepared_at)?)
        .bind(opt_ms(slot.activated_at)?)
        .bind(opt_ms(slot.retired_at)?)
        .bind(opt_ms(slot.publish_until)?)
        .bind(slot.tainted)
        .bind(codec::to_ms(slot.updated_at)?)
        .execute(&s.pool)
        .await?
        .rows_affected();
    if written == 0 {
        return Err(StoreError::LeaseLost {
            name: lease.name.clone(),
        });
    }
    Ok(())
}

pub(super) async fn delete(s: &This, id: &str, lease: &Lease) -> Result<(), StoreError> {
    let deleted = fenced(s, FENCED.delete_key_slot, lease)?
        .bind(id)
        .execute(&s.pool)
        .await?
        .rows_affected();
    if deleted > 0 {
        return Ok(());
    }
    // Nothing was deleted; say why (the write itself was fenced above).
    if leases::held(s, lease).await? {
        Err(StoreError::NotFound {
            kind: "CA key slot",
            key: id.to_owned(),
        })
    } else {
        Err(StoreError::LeaseLost {
            name: lease.name.clone(),
        })
    }
}

pub(super) async fn list(s: &This) -> Result<Vec<KeySlot>, StoreError> {
    sqlx::query(queries::LIST_KEY_SLOTS)
        .fetch_all(&s.pool)
        .await?
        .iter()
        .map(decode::key_slot)
        .collect()
}
