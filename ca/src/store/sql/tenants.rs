//! Tenants: created and deleted only through `audited.rs` (each with its
//! audit record); deleting one is refused while anything still belongs
//! to it, and its role bindings go with it.

use sqlx::Row;

use super::decode;
use super::{Conn, LOCKED, This};
use crate::store::error::on_unique;
use crate::store::tenancy::{MAX_TENANTS, Tenant};
use crate::store::{StoreError, codec, queries};

/// Checks that `tenant` exists (nothing to check for the platform, `""`)
/// and, on PostgreSQL, keeps it from being deleted until `conn`'s
/// transaction ends. Unknown → [`StoreError::NotFound`].
pub(super) async fn hold(conn: &mut Conn, tenant: &str) -> Result<(), StoreError> {
    if tenant.is_empty() {
        return Ok(());
    }
    codec::check_tenant(tenant)?;
    let found = sqlx::query(LOCKED.tenant_share)
        .bind(tenant)
        .fetch_optional(&mut *conn)
        .await?;
    match found {
        Some(_) => Ok(()),
        None => Err(not_found(tenant)),
    }
}

/// Stores a new tenant on `conn`, stamped now.
pub(super) async fn create_in(
    s: &This,
    conn: &mut Conn,
    mut tenant: Tenant,
) -> Result<Tenant, StoreError> {
    if let Some(why) = tenant.problem() {
        return Err(StoreError::Invalid(why));
    }
    let now_ms = codec::to_ms(s.clock.now())?;
    tenant.created_at = codec::from_ms(now_ms, "tenants", &tenant.name)?;
    let count = decode::count(
        &sqlx::query(queries::COUNT_TENANTS)
            .fetch_one(&mut *conn)
            .await?,
    )?;
    if count >= MAX_TENANTS as u64 {
        return Err(StoreError::Invalid(format!(
            "{count} tenants exist; the limit is {MAX_TENANTS}: delete unused tenants first"
        )));
    }
    sqlx::query(queries::INSERT_TENANT)
        .bind(&tenant.name)
        .bind(codec::encode_strings(&tenant.spiffe_id_prefixes)?)
        .bind(codec::encode_strings(&tenant.k8s_namespaces)?)
        .bind(codec::encode_strings(&tenant.allowed_parents)?)
        .bind(codec::encode_trust_domains(&tenant.federates_with)?)
        .bind(now_ms)
        .execute(&mut *conn)
        .await
        .map_err(|e| on_unique(e, "tenant", tenant.name.clone()))?;
    Ok(tenant)
}

/// Deletes tenant `name` and its role bindings on `conn`; returns what it
/// was. Refused ([`StoreError::Conflict`]) while entries, agents or
/// unused unexpired join tokens of it exist.
pub(super) async fn delete_in(s: &This, conn: &mut Conn, name: &str) -> Result<Tenant, StoreError> {
    codec::check_tenant(name)?;
    if name.is_empty() {
        return Err(StoreError::Invalid(
            "name the tenant to delete (the platform is no tenant)".into(),
        ));
    }
    // Locks the row first, so that no entry, agent or token is added to
    // the tenant between the count and the delete.
    sqlx::query(LOCKED.tenant_update)
        .bind(name)
        .fetch_optional(&mut *conn)
        .await?
        .ok_or_else(|| not_found(name))?;
    let tenant = by_name(conn, name).await?.ok_or_else(|| not_found(name))?;
    let row = sqlx::query(queries::TENANT_IN_USE)
        .bind(name)
        .bind(codec::to_ms(s.clock.now())?)
        .fetch_one(&mut *conn)
        .await?;
    let n = |col: &str| -> Result<i64, StoreError> { Ok(row.try_get(col)?) };
    let (entries, agents, tokens) = (n("entries")?, n("agents")?, n("tokens")?);
    if entries + agents + tokens > 0 {
        return Err(StoreError::Conflict {
            kind: "tenant",
            key: name.to_owned(),
            detail: format!(
                "{entries} entries, {agents} agents and {tokens} unused join tokens still \
                 belong to it; delete or evict them (or let the tokens expire) first"
            ),
        });
    }
    sqlx::query(queries::DELETE_TENANT_BINDINGS)
        .bind(name)
        .execute(&mut *conn)
        .await?;
    sqlx::query(queries::DELETE_TENANT)
        .bind(name)
        .execute(&mut *conn)
        .await?;
    Ok(tenant)
}

pub(super) async fn get(s: &This, name: &str) -> Result<Option<Tenant>, StoreError> {
    let mut conn = s.pool.acquire().await?;
    by_name(&mut conn, name).await
}

pub(super) async fn list(s: &This) -> Result<Vec<Tenant>, StoreError> {
    sqlx::query(queries::LIST_TENANTS)
        .bind(MAX_TENANTS as i64)
        .fetch_all(&s.pool)
        .await?
        .iter()
        .map(decode::tenant)
        .collect()
}

async fn by_name(conn: &mut Conn, name: &str) -> Result<Option<Tenant>, StoreError> {
    sqlx::query(queries::TENANT_BY_NAME)
        .bind(name)
        .fetch_optional(&mut *conn)
        .await?
        .as_ref()
        .map(decode::tenant)
        .transpose()
}

fn not_found(name: &str) -> StoreError {
    StoreError::NotFound {
        kind: "tenant",
        key: name.to_owned(),
    }
}
