//! Reading many registration entries: by IDs, by filter, and the agent
//! sync query (entries of some parents), one keyset page at a time.

use meshid_identity::SpiffeId;
use sqlx::{QueryBuilder, Row};

use super::decode::{self, ENTRIES};
use super::entries::with_selectors;
use super::{Db, SNAPSHOT, This};
use crate::store::model::{
    EntryFilter, MAX_FILTER_TENANTS, MAX_GET_ENTRIES, MAX_SYNC_PARENTS, Page, RegistrationEntry,
};
use crate::store::{Paged, StoreError, codec, queries};

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
    if let Some(owner) = &filter.owner {
        qb.push(" AND owner = ").push_bind(owner.clone());
    }
    if let Some(tenants) = &filter.tenants {
        if tenants.len() > MAX_FILTER_TENANTS {
            return Err(StoreError::Invalid(format!(
                "{} tenants given in one entry filter; the limit is {MAX_FILTER_TENANTS}",
                tenants.len()
            )));
        }
        if tenants.is_empty() {
            qb.push(" AND 1 = 0");
        } else {
            qb.push(" AND tenant IN (");
            let mut list = qb.separated(", ");
            for t in tenants {
                list.push_bind(t.clone());
            }
            qb.push(")");
        }
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
    // One snapshot for the rows and their selectors: read apart, an entry
    // deleted in between looked like an entry without selectors (corrupt).
    let mut tx = s.pool.begin_with(SNAPSHOT).await?;
    let mut rows = qb.build().fetch_all(&mut *tx).await?;
    let more = rows.len() > limit;
    rows.truncate(limit);
    let entries = with_selectors(&mut tx, &rows).await?;
    tx.commit().await?;
    let next = if more {
        entries.last().map(|e| e.id.clone())
    } else {
        None
    };
    Ok((entries, next))
}
