//! Role bindings: bound and unbound only through `audited.rs` (each with
//! its audit record).

use super::decode;
use super::tenants;
use super::{Conn, This};
use crate::store::error::on_unique;
use crate::store::tenancy::{MAX_BINDINGS, RoleBinding};
use crate::store::{StoreError, codec, queries};

/// Stores a binding on `conn`, stamped now; its tenant must exist.
pub(super) async fn bind_in(
    s: &This,
    conn: &mut Conn,
    mut b: RoleBinding,
) -> Result<RoleBinding, StoreError> {
    if let Some(why) = b.problem() {
        return Err(StoreError::Invalid(why));
    }
    tenants::hold(conn, &b.tenant).await?;
    let count = decode::count(
        &sqlx::query(queries::COUNT_BINDINGS)
            .fetch_one(&mut *conn)
            .await?,
    )?;
    if count >= MAX_BINDINGS as u64 {
        return Err(StoreError::Invalid(format!(
            "{count} role bindings exist; the limit is {MAX_BINDINGS}: bind groups \
             (gid:, k8s-group:) instead of single users"
        )));
    }
    let now_ms = codec::to_ms(s.clock.now())?;
    b.created_at = codec::from_ms(now_ms, "role_bindings", &b.subject)?;
    sqlx::query(queries::INSERT_BINDING)
        .bind(&b.subject)
        .bind(b.role.as_str())
        .bind(&b.tenant)
        .bind(now_ms)
        .execute(&mut *conn)
        .await
        .map_err(|e| on_unique(e, "role binding", describe(&b)))?;
    Ok(b)
}

/// Deletes the binding with `b`'s subject, role and tenant on `conn`;
/// returns it as it was stored.
pub(super) async fn unbind_in(conn: &mut Conn, b: &RoleBinding) -> Result<RoleBinding, StoreError> {
    if let Some(why) = b.problem() {
        return Err(StoreError::Invalid(why));
    }
    let row = sqlx::query(queries::DELETE_BINDING)
        .bind(&b.subject)
        .bind(b.role.as_str())
        .bind(&b.tenant)
        .fetch_optional(&mut *conn)
        .await?;
    match row {
        Some(row) => decode::binding(&row),
        None => Err(StoreError::NotFound {
            kind: "role binding",
            key: describe(b),
        }),
    }
}

pub(super) async fn list(s: &This) -> Result<Vec<RoleBinding>, StoreError> {
    sqlx::query(queries::LIST_BINDINGS)
        .bind(MAX_BINDINGS as i64)
        .fetch_all(&s.pool)
        .await?
        .iter()
        .map(decode::binding)
        .collect()
}

/// `subject uid:1001 as operator on tenant payments`.
fn describe(b: &RoleBinding) -> String {
    let subject = crate::store::tenancy::clip(&b.subject);
    if b.tenant.is_empty() {
        format!("{subject} as {}", b.role)
    } else {
        format!("{subject} as {} on tenant {}", b.role, b.tenant)
    }
}
