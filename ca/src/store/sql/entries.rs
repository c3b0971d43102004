//! Registration entries: create, update (optimistic revision check),
//! delete, look up, list and the agent sync query.

use meshid_identity::SpiffeId;
use sqlx::query::Query;
use sqlx::{QueryBuilder, Row};

use super::decode::{self, DbRow};
use super::selectors;
use super::{BEGIN, Conn, Db, This};
use crate::store::error::on_unique;
use crate::store::model::{
    EntryFilter, EntryUpdate, MAX_GET_ENTRIES, MAX_SYNC_PARENTS, NewEntry, Page, RegistrationEntry,
};
use crate::store::sql::{EntryColumns, entry_identity};
use crate::store::{Paged, StoreError, codec, queries};

const ENTRIES: &str = "registration_entries";

pub(super) async fn create(s: &This, new: NewEntry) -> Result<RegistrationEntry, StoreError> {
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
        revision: 1,
        created_at: stamp,
        updated_at: stamp,
    };
    let c = EntryColumns::of(&mut e)?;
    let mut tx = s.pool.begin_with(BEGIN).await?;
    bind_fields(sqlx::query(queries::INSERT_ENTRY), &e, &c, now_ms)
        .bind(&e.id)
        .execute(&mut *tx)
        .await
        .map_err(|err| on_unique(err, "entry", entry_identity(&e)))?;
    selectors::insert(&mut tx, selectors::ENTRY, &e.id, &e.selectors).await?;
    tx.commit().await?;
    Ok(e)
}

pub(super) async fn update(
    s: &This,
    id: &str,
    update: EntryUpdate,
    expected_revision: Option<i64>,
) -> Result<RegistrationEntry, StoreError> {
    let mut tx = s.pool.begin_with(BEGIN).await?;
    let mut e = by_id(&mut tx, id).await?.ok_or_else(|| not_found(id))?;
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
        .execute(&mut *tx)
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
            .execute(&mut *tx)
            .await?;
        selectors::insert(&mut tx, selectors::ENTRY, id, &e.selectors).await?;
    }
    tx.commit().await?;
    Ok(e)
}

/// Binds `$1`–`$11` of [`queries::INSERT_ENTRY`] and
/// [`queries::UPDATE_ENTRY`]: the entry's fields, its revision and `now_ms`.
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
}

pub(super) async fn delete(s: &This, id: &str) -> Result<RegistrationEntry, StoreError> {
    let mut tx = s.pool.begin_with(BEGIN).await?;
    let e = by_id(&mut tx, id).await?.ok_or_else(|| not_found(id))?;
    sqlx::query(queries::DELETE_ENTRY)
        .bind(id)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(e)
}

pub(super) async fn get(s: &This, id: &str) -> Result<Option<RegistrationEntry>, StoreError> {
    let mut conn = s.pool.acquire().await?;
    by_id(&mut conn, id).await
}

pub(super) async fn get_many(
    s: &This,
    ids: &[String],
) -> Result<Vec<RegistrationEntry>, StoreError> {
    if ids.len() > MAX_GET_ENTRIES {
        return Err(StoreError::Invalid(format!(
            "{} entry IDs given in one lookup; the limit is {MAX_GET_ENTRIES}, split the batch",
            ids.len()
        )));
    }
    let mut unique: Vec<&str> = ids.iter().map(String::as_str).collect();
    unique.sort_unstable();
    unique.dedup();
    if unique.is_empty() {
        return Ok(Vec::new());
    }
    // One query: each entry's row repeats once per selector.
    let mut qb = QueryBuilder::<Db>::new(queries::ENTRIES_WITH_SELECTORS_IN);
    let mut list = qb.separated(", ");
    for id in unique {
        list.push_bind(id.to_owned());
    }
    qb.push(") ORDER BY e.id, s.type, s.value");
    let rows = qb.build().fetch_all(&s.pool).await?;
    let mut out: Vec<RegistrationEntry> = Vec::new();
    for row in &rows {
        let id: String = row.try_get("id")?;
        if out.last().is_none_or(|e| e.id != id) {
            out.push(decode::entry(row)?);
        }
        let kind: Option<String> = row.try_get("selector_type")?;
        let value: Option<String> = row.try_get("selector_value")?;
        if let (Some(kind), Some(value), Some(e)) = (kind, value, out.last_mut()) {
            e.selectors
                .push(codec::selector(&kind, &value, "entry_selectors", &id)?);
        }
    }
    if let Some(e) = out.iter().find(|e| e.selectors.is_empty()) {
        return Err(codec::corrupt(ENTRIES, &e.id, "entry has no selectors"));
    }
    Ok(out)
}

pub(super) async fn list(
    s: &This,
    filter: &EntryFilter,
    page: &Page,
) -> Result<Paged<RegistrationEntry>, StoreError> {
    let mut qb = QueryBuilder::<Db>::new(queries::ENTRIES_WHERE);
    if let Some(p) = &filter.parent_id {
        qb.push(" AND parent_id = ")
            .push_bind(p.as_str().to_owned());
    }
    if let Some(id) = &filter.spiffe_id {
        qb.push(" AND spiffe_id = ")
            .push_bind(id.as_str().to_owned());
    }
    if let Some(sel) = &filter.selector {
        qb.push(
            " AND EXISTS (SELECT 1 FROM entry_selectors s \
             WHERE s.entry_id = e.id AND s.type = ",
        )
        .push_bind(sel.kind().to_owned())
        .push(" AND s.value = ")
        .push_bind(sel.value().to_owned())
        .push(")");
    }
    page_of(s, qb, page).await
}

pub(super) async fn list_by_parents(
    s: &This,
    parents: &[SpiffeId],
    page: &Page,
) -> Result<Paged<RegistrationEntry>, StoreError> {
    if parents.is_empty() {
        return Ok((Vec::new(), None));
    }
    if parents.len() > MAX_SYNC_PARENTS {
        return Err(StoreError::Invalid(format!(
            "{} parent IDs given; the limit is {MAX_SYNC_PARENTS}",
            parents.len()
        )));
    }
    let mut qb = QueryBuilder::<Db>::new(queries::ENTRIES_OF_PARENTS_IN);
    let mut list = qb.separated(", ");
    for p in parents {
        list.push_bind(p.as_str().to_owned());
    }
    qb.push(")");
    page_of(s, qb, page).await
}

pub(super) async fn count(s: &This) -> Result<u64, StoreError> {
    decode::count(
        &sqlx::query(queries::COUNT_ENTRIES)
            .fetch_one(&s.pool)
            .await?,
    )
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

/// Runs a paged entry query: `qb` holds everything up to the `WHERE`
/// conditions; this adds the cursor, order and limit.
async fn page_of(
    s: &This,
    mut qb: QueryBuilder<Db>,
    page: &Page,
) -> Result<Paged<RegistrationEntry>, StoreError> {
    let limit = page.clamped_limit() as usize;
    if let Some(after) = &page.after {
        qb.push(" AND id > ").push_bind(after.clone());
    }
    qb.push(" ORDER BY id LIMIT ").push_bind((limit + 1) as i64);
    let mut conn = s.pool.acquire().await?;
    let mut rows = qb.build().fetch_all(&mut *conn).await?;
    let more = rows.len() > limit;
    rows.truncate(limit);
    let entries = with_selectors(&mut conn, &rows).await?;
    let next = if more {
        entries.last().map(|e| e.id.clone())
    } else {
        None
    };
    Ok((entries, next))
}

/// Entry rows → entries with their selectors (an entry without any is corrupt).
async fn with_selectors(
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
