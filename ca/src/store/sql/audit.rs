//! The audit log: appending hash-chained records inside a write's
//! transaction, reading them back with filters, the chain's head and the
//! signed checkpoints.
//!
//! An append reads the head with [`LOCKED`]`.audit_head` (PostgreSQL:
//! `FOR UPDATE`, so appends of every replica line up in one chain; SQLite:
//! the write transaction already holds the database), inserts the records
//! after it and moves it, all in the caller's transaction.

use sqlx::QueryBuilder;

use super::decode;
use super::{BEGIN, Conn, Db, LOCKED, This};
use crate::store::audit::{
    AuditCheckpoint, AuditEvent, AuditFilter, AuditRecord, MAX_AUDIT_CHECKPOINTS, MAX_AUDIT_SHORT,
    bounded_json, cut, record_hash,
};
use crate::store::error::on_unique;
use crate::store::model::{MAX_FILTER_TENANTS, MAX_PAGE_LIMIT};
use crate::store::{StoreError, codec, queries};

/// Records per multi-row INSERT (11 parameters each).
const AUDIT_CHUNK: usize = 1000;
/// Longest action name, in bytes.
const MAX_ACTION: usize = 64;
/// Largest checkpoint certificate chain (PEM), in bytes.
const MAX_CHECKPOINT_PEM: usize = 256 * 1024;
/// Largest checkpoint signature, in bytes.
const MAX_SIGNATURE: usize = 16 * 1024;

/// The end of the chain: the last record's seq and hash (0 and zeros
/// while the log is empty).
#[derive(Debug, Clone, Copy)]
pub(super) struct Head {
    seq: i64,
    hash: [u8; 32],
}

/// Reads the head on `conn`, locked until the transaction ends.
pub(super) async fn lock_head(conn: &mut Conn) -> Result<Head, StoreError> {
    head_of(&sqlx::query(LOCKED.audit_head).fetch_one(&mut *conn).await?)
}

fn head_of(row: &decode::DbRow) -> Result<Head, StoreError> {
    use sqlx::Row;
    let seq: i64 = row.try_get("seq")?;
    let hash = codec::hash32(&row.try_get::<Vec<u8>, _>("hash")?, "audit_head", "1")?;
    Ok(Head { seq, hash })
}

/// An event in the shape it is stored and hashed in: short fields cut to
/// [`MAX_AUDIT_SHORT`], `before`/`after` bounded by [`bounded_json`]. An
/// empty actor or action, or an action longer than 64 bytes, is refused.
pub(super) fn normalize(mut e: AuditEvent) -> Result<AuditEvent, StoreError> {
    if e.actor.is_empty() || e.action.is_empty() || e.action.len() > MAX_ACTION {
        return Err(StoreError::Invalid(format!(
            "an audit record needs an actor and an action of 1-{MAX_ACTION} bytes \
             (got actor {:?}, action {:?})",
            cut(&e.actor, 80),
            cut(&e.action, 80)
        )));
    }
    for field in [&mut e.actor, &mut e.tenant, &mut e.target, &mut e.result] {
        if field.len() > MAX_AUDIT_SHORT {
            let keep = cut(field, MAX_AUDIT_SHORT).len();
            field.truncate(keep);
        }
    }
    e.before = bounded_json(std::mem::take(&mut e.before));
    e.after = bounded_json(std::mem::take(&mut e.after));
    Ok(e)
}

/// Appends `events` (already [`normalize`]d) after `head` on `conn`, all
/// stamped `at_ms`, and moves the head; returns the records.
pub(super) async fn append_after(
    conn: &mut Conn,
    head: Head,
    at_ms: i64,
    events: Vec<AuditEvent>,
) -> Result<Vec<AuditRecord>, StoreError> {
    if events.is_empty() {
        return Ok(Vec::new());
    }
    let at = codec::from_ms(at_ms, "audit_log", "new")?;
    let mut records = Vec::with_capacity(events.len());
    let (mut seq, mut prev) = (head.seq, head.hash);
    for event in events {
        seq += 1;
        let hash = record_hash(&prev, seq, at_ms, &event);
        records.push(AuditRecord {
            seq,
            at,
            event,
            prev_hash: prev,
            hash,
        });
        prev = hash;
    }
    for chunk in records.chunks(AUDIT_CHUNK) {
        let mut qb = QueryBuilder::<Db>::new(queries::INSERT_AUDIT);
        qb.push_values(chunk, |mut b, r| {
            let e = &r.event;
            b.push_bind(r.seq)
                .push_bind(at_ms)
                .push_bind(e.actor.clone())
                .push_bind(e.action.clone())
                .push_bind(e.tenant.clone())
                .push_bind(e.target.clone())
                .push_bind(e.before.clone())
                .push_bind(e.after.clone())
                .push_bind(e.result.clone())
                .push_bind(r.prev_hash.to_vec())
                .push_bind(r.hash.to_vec());
        });
        qb.build().execute(&mut *conn).await.map_err(|e| {
            on_unique(
                e,
                "audit record",
                "(a seq past the head: the head row was edited)".into(),
            )
        })?;
    }
    sqlx::query(queries::SET_AUDIT_HEAD)
        .bind(seq)
        .bind(prev.to_vec())
        .execute(&mut *conn)
        .await?;
    Ok(records)
}

/// Appends `events` on `conn`: locks the head, appends, moves it. No
/// events: nothing is read or locked.
pub(super) async fn append_in(
    s: &This,
    conn: &mut Conn,
    events: Vec<AuditEvent>,
) -> Result<Vec<AuditRecord>, StoreError> {
    if events.is_empty() {
        return Ok(Vec::new());
    }
    let at_ms = codec::to_ms(s.clock.now())?;
    let head = lock_head(conn).await?;
    append_after(conn, head, at_ms, events).await
}

pub(super) async fn append(s: &This, event: AuditEvent) -> Result<AuditRecord, StoreError> {
    let event = normalize(event)?;
    let mut tx = s.pool.begin_with(BEGIN).await?;
    let mut records = append_in(s, &mut tx, vec![event]).await?;
    tx.commit().await?;
    records
        .pop()
        .ok_or_else(|| StoreError::Invalid("no audit record was appended".into()))
}

pub(super) async fn list(
    s: &This,
    filter: &AuditFilter,
    after_seq: i64,
    limit: u32,
) -> Result<Vec<AuditRecord>, StoreError> {
    let limit = limit.clamp(1, MAX_PAGE_LIMIT);
    let mut qb = QueryBuilder::<Db>::new(queries::AUDIT_WHERE);
    qb.push_bind(after_seq.max(0));
    if let Some(tenants) = &filter.tenants {
        if tenants.len() > MAX_FILTER_TENANTS {
            return Err(StoreError::Invalid(format!(
                "{} tenants given in one audit filter; the limit is {MAX_FILTER_TENANTS}",
                tenants.len()
            )));
        }
        if tenants.is_empty() {
            return Ok(Vec::new());
        }
        qb.push(" AND tenant IN (");
        let mut list = qb.separated(", ");
        for t in tenants {
            list.push_bind(cut(t, MAX_AUDIT_SHORT).to_owned());
        }
        qb.push(")");
    }
    if let Some(since) = filter.since {
        qb.push(" AND at_ms >= ").push_bind(codec::to_ms(since)?);
    }
    if let Some(id) = &filter.spiffe_id {
        if id.is_empty() || id.len() > MAX_AUDIT_SHORT {
            return Err(StoreError::Invalid(format!(
                "the SPIFFE ID to filter audit records on must be 1-{MAX_AUDIT_SHORT} bytes"
            )));
        }
        // The JSON of an object names its ID as "spiffe_id":"…" (the
        // closing quote keeps spiffe://td/a from matching spiffe://td/ab).
        let needle = format!("\"spiffe_id\":{}", serde_json::Value::String(id.clone()));
        let f = LOCKED.contains;
        qb.push(" AND (target = ")
            .push_bind(id.clone())
            .push(format!(" OR {f}(after_json, "))
            .push_bind(needle.clone())
            .push(format!(") > 0 OR {f}(before_json, "))
            .push_bind(needle)
            .push(") > 0)");
    }
    qb.push(" ORDER BY seq LIMIT ").push_bind(i64::from(limit));
    qb.build()
        .fetch_all(&s.pool)
        .await?
        .iter()
        .map(decode::audit_record)
        .collect()
}

pub(super) async fn head(s: &This) -> Result<Option<(i64, [u8; 32])>, StoreError> {
    let head = head_of(&sqlx::query(queries::AUDIT_HEAD).fetch_one(&s.pool).await?)?;
    Ok((head.seq > 0).then_some((head.seq, head.hash)))
}

pub(super) async fn put_checkpoint(s: &This, cp: &AuditCheckpoint) -> Result<(), StoreError> {
    codec::check_key("checkpoint key ID", &cp.key_id)?;
    if cp.seq < 1 {
        return Err(StoreError::Invalid(format!(
            "a checkpoint signs a record (seq 1 or later), not seq {}",
            cp.seq
        )));
    }
    if cp.cert_chain_pem.is_empty() || cp.cert_chain_pem.len() > MAX_CHECKPOINT_PEM {
        return Err(StoreError::Invalid(format!(
            "a checkpoint's certificate chain must be 1-{MAX_CHECKPOINT_PEM} bytes of PEM"
        )));
    }
    if cp.signature.is_empty() || cp.signature.len() > MAX_SIGNATURE {
        return Err(StoreError::Invalid(format!(
            "a checkpoint's signature must be 1-{MAX_SIGNATURE} bytes"
        )));
    }
    sqlx::query(queries::INSERT_AUDIT_CHECKPOINT)
        .bind(cp.seq)
        .bind(cp.hash.to_vec())
        .bind(codec::to_ms(cp.at)?)
        .bind(&cp.key_id)
        .bind(&cp.cert_chain_pem)
        .bind(&cp.signature)
        .execute(&s.pool)
        .await
        .map_err(|e| on_unique(e, "audit checkpoint", format!("at seq {}", cp.seq)))?;
    Ok(())
}

pub(super) async fn list_checkpoints(s: &This) -> Result<Vec<AuditCheckpoint>, StoreError> {
    sqlx::query(queries::LIST_AUDIT_CHECKPOINTS)
        .bind(MAX_AUDIT_CHECKPOINTS as i64)
        .fetch_all(&s.pool)
        .await?
        .iter()
        .map(decode::audit_checkpoint)
        .collect()
}
