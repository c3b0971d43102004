//! Registration entries: create, update (optimistic revision check),
//! delete and look up one (lists are in `entry_lists.rs`). Each write runs
//! on a transaction it is given (`*_in`), so that `audited.rs` can add the
//! audit record to the same transaction.

use sqlx::query::Query;

use super::decode::{self, DbRow, ENTRIES};
use super::selectors;
use super::tenants;
use super::{BEGIN, Conn, Db, SNAPSHOT, This};
use crate::store::error::on_unique;
use crate::store::model::{EntryUpdate, NewEntry, RegistrationEntry};
use crate::store::sql::{EntryColumns, entry_identity};
use crate::store::{StoreError, codec, queries};

pub(super) async fn create(s: &This, new: NewEntry) -> Result<RegistrationEntry, StoreError> {
    let mut tx = s.pool.begin_with(BEGIN).await?;
    let e = create_in(s, &mut tx, new).await?;
    tx.commit().await?;
    Ok(e)
}

/// Creates an entry on `conn`; its tenant must exist.
pub(super) async fn create_in(
    s: &This,
    conn: &mut Conn,
    new: NewEntry,
) -> Result<RegistrationEntry, StoreError> {
    let now_ms = codec::to_ms(s.clock.now())?;
    let stamp = codec::from_ms(now_ms, ENTRIES, "new")?;
    let mut e = RegistrationEntry {
        id: codec::new_entry_id(),
        spiffe_id: new.spiffe_id,
        parent_id: new.parent_id,
        selectors: new.selectors,
        x509_ttl: new.x509_ttl,
        jwt_ttl: new.jwt_ttl,
        dns_names: new.dns_names,
        admin: new.admin,
        federates_with: new.federates_with,
        downstream: new.downstream,
        owner: new.owner,
        tenant: new.tenant,
        revision: 1,
        created_at: stamp,
        updated_at: stamp,
    };
    let c = EntryColumns::of(&mut e)?;
    tenants::hold(conn, &e.tenant).await?;
    bind_fields(sqlx::query(queries::INSERT_ENTRY), &e, &c, now_ms)
        .bind(&e.id)
        .bind(&e.tenant)
        .execute(&mut *conn)
        .await
        .map_err(|err| on_unique(err, "entry", entry_identity(&e)))?;
    selectors::insert(conn, selectors::ENTRY, &e.id, &e.selectors).await?;
    Ok(e)
}

pub(super) async fn update(
    s: &This,
    id: &str,
    update: EntryUpdate,
    expected_revision: Option<i64>,
) -> Result<RegistrationEntry, StoreError> {
    let mut tx = s.pool.begin_with(BEGIN).await?;
    let (_, e) = update_in(s, &mut tx, id, update, expected_revision).await?;
    tx.commit().await?;
    Ok(e)
}

/// Updates an entry on `conn`; returns it before and after.
pub(super) async fn update_in(
    s: &This,
    conn: &mut Conn,
    id: &str,
    update: EntryUpdate,
    expected_revision: Option<i64>,
) -> Result<(RegistrationEntry, RegistrationEntry), StoreError> {
    let before = by_id(conn, id).await?.ok_or_else(|| not_found(id))?;
    let mut e = before.clone();
    if let Some(want) = expected_revision.filter(|want| *want != e.revision) {
        return Err(StoreError::Conflict {
            kind: "entry",
            key: id.to_owned(),
            detail: format!("expected revision {want}, found {}", e.revision),
        });
    }
    let old_revision = e.revision;
    let selectors_changed = update.selectors.is_some();
    apply(&mut e, update);
    let c = EntryColumns::of(&mut e)?;
    let now_ms = codec::to_ms(s.clock.now())?;
    e.revision = old_revision + 1;
    e.updated_at = codec::from_ms(now_ms, ENTRIES, id)?;
    let done = bind_fields(sqlx::query(queries::UPDATE_ENTRY), &e, &c, now_ms)
        .bind(id)
        .bind(old_revision)
        .execute(&mut *conn)
        .await
        .map_err(|err| on_unique(err, "entry", entry_identity(&e)))?;
    if done.rows_affected() != 1 {
        return Err(StoreError::Conflict {
            kind: "entry",
            key: id.to_owned(),
            detail: format!("revision {old_revision} was replaced while updating"),
        });
    }
    if selectors_changed {
        sqlx::query(queries::DELETE_ENTRY_SELECTORS)
            .bind(id)
            .execute(&mut *conn)
            .await?;
        selectors::insert(conn, selectors::ENTRY, id, &e.selectors).await?;
    }
    Ok((before, e))
}

/// Binds `$1`–`$12` of [`queries::INSERT_ENTRY`] and
/// [`queries::UPDATE_ENTRY`]: the entry's fields, its revision, `now_ms`
/// and its owner.
fn bind_fields<'q>(
    query: Query<'q, Db, <Db as sqlx::Database>::Arguments>,
    e: &RegistrationEntry,
    c: &EntryColumns,
    now_ms: i64,
) -> Query<'q, Db, <Db as sqlx::Database>::Arguments> {
    query
        .bind(e.spiffe_id.as_str())
        .bind(e.parent_id.as_str())
        .bind(c.x509_ttl)
        .bind(c.jwt_ttl)
        .bind(&c.dns_names)
        .bind(e.admin)
        .bind(&c.federates_with)
        .bind(e.downstream)
        .bind(&c.selector_key)
        .bind(e.revision)
        .bind(now_ms)
        .bind(&e.owner)
}

/// Applies the set fields of `update` to `e`.
fn apply(e: &mut RegistrationEntry, update: EntryUpdate) {
    let EntryUpdate {
        spiffe_id,
        parent_id,
        selectors,
        x509_ttl,
        jwt_ttl,
        dns_names,
        admin,
        federates_with,
        downstream,
        owner,
    } = update;
    e.spiffe_id = spiffe_id.unwrap_or_else(|| e.spiffe_id.clone());
    e.parent_id = parent_id.unwrap_or_else(|| e.parent_id.clone());
    if let Some(v) = selectors {
        e.selectors = v;
    }
    e.x509_ttl = x509_ttl.unwrap_or(e.x509_ttl);
    e.jwt_ttl = jwt_ttl.unwrap_or(e.jwt_ttl);
    if let Some(v) = dns_names {
        e.dns_names = v;
    }
    e.admin = admin.unwrap_or(e.admin);
    if let Some(v) = federates_with {
        e.federates_with = v;
    }
    e.downstream = downstream.unwrap_or(e.downstream);
    if let Some(v) = owner {
        e.owner = v;
    }
}

pub(super) async fn delete(s: &This, id: &str) -> Result<RegistrationEntry, StoreError> {
    let mut tx = s.pool.begin_with(BEGIN).await?;
    let e = delete_in(&mut tx, id).await?;
    tx.commit().await?;
    Ok(e)
}

/// Deletes an entry on `conn`; returns what it was.
pub(super) async fn delete_in(conn: &mut Conn, id: &str) -> Result<RegistrationEntry, StoreError> {
    let e = by_id(conn, id).await?.ok_or_else(|| not_found(id))?;
    sqlx::query(queries::DELETE_ENTRY)
        .bind(id)
        .execute(&mut *conn)
        .await?;
    Ok(e)
}

pub(super) async fn get(s: &This, id: &str) -> Result<Option<RegistrationEntry>, StoreError> {
    // One snapshot for the row and its selectors (see `entry_lists::page_of`).
    let mut tx = s.pool.begin_with(SNAPSHOT).await?;
    let entry = by_id(&mut tx, id).await?;
    tx.commit().await?;
    Ok(entry)
}

/// One entry with its selectors.
async fn by_id(conn: &mut Conn, id: &str) -> Result<Option<RegistrationEntry>, StoreError> {
    let row = sqlx::query(queries::ENTRY_BY_ID)
        .bind(id)
        .fetch_optional(&mut *conn)
        .await?;
    match row {
        None => Ok(None),
        Some(row) => Ok(with_selectors(conn, &[row]).await?.pop()),
    }
}

/// Entry rows → entries with their selectors (an entry without any is corrupt).
pub(super) async fn with_selectors(
    conn: &mut Conn,
    rows: &[DbRow],
) -> Result<Vec<RegistrationEntry>, StoreError> {
    let mut entries = rows
        .iter()
        .map(decode::entry)
        .collect::<Result<Vec<_>, _>>()?;
    let ids: Vec<String> = entries.iter().map(|e| e.id.clone()).collect();
    let mut sels = selectors::load(conn, selectors::ENTRY, &ids).await?;
    for e in &mut entries {
        e.selectors = sels.remove(&e.id).unwrap_or_default();
        if e.selectors.is_empty() {
            return Err(codec::corrupt(ENTRIES, &e.id, "entry has no selectors"));
        }
    }
    Ok(entries)
}

fn not_found(id: &str) -> StoreError {
    StoreError::NotFound {
        kind: "entry",
        key: id.to_owned(),
    }
}
