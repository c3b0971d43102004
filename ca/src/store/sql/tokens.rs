//! Join tokens (created, then consumed exactly once) and issuance records
//! (written in all-or-nothing batches, each with its `svid.issue` audit
//! record unless those are turned off; counted per signing key).

use std::time::SystemTime;

use meshid_identity::SpiffeId;
use sqlx::{QueryBuilder, Row};

use super::{BEGIN, Conn, Db, This};
use super::{audit, decode, tenants};
use crate::store::audit::{AuditEvent, issuances_json};
use crate::store::error::on_unique;
use crate::store::model::{IssuanceRecord, JoinToken};
use crate::store::sql::ISSUANCE_CHUNK;
use crate::store::{StoreError, codec, queries};

pub(super) async fn create(s: &This, token: &JoinToken) -> Result<(), StoreError> {
    let mut tx = s.pool.begin_with(BEGIN).await?;
    create_in(&mut tx, token).await?;
    tx.commit().await?;
    Ok(())
}

/// Stores a join token on `conn`; its tenant must exist.
pub(super) async fn create_in(conn: &mut Conn, token: &JoinToken) -> Result<(), StoreError> {
    codec::check_key("join token ID", &token.id)?;
    codec::check_tenant(&token.tenant)?;
    if token.hash.len() != 32 {
        return Err(StoreError::Invalid(format!(
            "join token hash must be a 32-byte SHA-256, got {} bytes",
            token.hash.len()
        )));
    }
    tenants::hold(conn, &token.tenant).await?;
    sqlx::query(queries::INSERT_TOKEN)
        .bind(&token.id)
        .bind(&token.hash)
        .bind(token.spiffe_id.as_ref().map(|s| s.as_str().to_owned()))
        .bind(codec::to_ms(token.expires_at)?)
        .bind(token.used_at.map(codec::to_ms).transpose()?)
        .bind(&token.tenant)
        .execute(&mut *conn)
        .await
        .map_err(|e| on_unique(e, "join token", token.id.clone()))?;
    Ok(())
}

pub(super) async fn consume(
    s: &This,
    hash: &[u8],
    now: SystemTime,
) -> Result<JoinToken, StoreError> {
    let won = sqlx::query(queries::CONSUME_TOKEN)
        .bind(codec::to_ms(now)?)
        .bind(hash)
        .fetch_optional(&s.pool)
        .await?;
    if let Some(row) = won {
        return decode::token(&row);
    }
    let row = sqlx::query(queries::TOKEN_BY_HASH)
        .bind(hash)
        .fetch_optional(&s.pool)
        .await?;
    match row {
        None => Err(StoreError::NotFound {
            kind: "join token",
            key: "(given secret)".into(),
        }),
        Some(row) if decode::token(&row)?.used_at.is_some() => Err(StoreError::TokenUsed),
        Some(_) => Err(StoreError::TokenExpired),
    }
}

/// One issuance record in column form.
struct IssuanceRow<'a> {
    serial: &'a str,
    spiffe_id: &'a str,
    agent_id: Option<&'a str>,
    entry_id: Option<&'a str>,
    not_after: i64,
    issued_at: i64,
    ca_key_id: Option<&'a str>,
    tenant: &'a str,
}

pub(super) async fn record_issuances(
    s: &This,
    records: &[IssuanceRecord],
) -> Result<(), StoreError> {
    if records.is_empty() {
        return Ok(());
    }
    let mut rows: Vec<IssuanceRow<'_>> = Vec::with_capacity(records.len());
    for r in records {
        codec::check_key("certificate serial", &r.serial)?;
        if let Some(e) = &r.entry_id {
            codec::check_key("entry ID", e)?;
        }
        if let Some(k) = &r.ca_key_id {
            codec::check_key("CA key ID", k)?;
        }
        codec::check_tenant(&r.tenant)?;
        rows.push(IssuanceRow {
            serial: r.serial.as_str(),
            spiffe_id: r.spiffe_id.as_str(),
            agent_id: r.agent_id.as_ref().map(SpiffeId::as_str),
            entry_id: r.entry_id.as_deref(),
            not_after: codec::to_ms(r.not_after)?,
            issued_at: codec::to_ms(r.issued_at)?,
            ca_key_id: r.ca_key_id.as_deref(),
            tenant: r.tenant.as_str(),
        });
    }
    let events: Vec<AuditEvent> = if s.audit_issuances {
        issue_events(records)
    } else {
        Vec::new()
    };
    let mut tx = s.pool.begin_with(BEGIN).await?;
    for chunk in rows.chunks(ISSUANCE_CHUNK) {
        let mut qb = QueryBuilder::<Db>::new(queries::INSERT_ISSUANCES);
        qb.push_values(chunk, |mut b, r| {
            b.push_bind(r.serial.to_owned())
                .push_bind(r.spiffe_id.to_owned())
                .push_bind(r.agent_id.map(str::to_owned))
                .push_bind(r.entry_id.map(str::to_owned))
                .push_bind(r.not_after)
                .push_bind(r.issued_at)
                .push_bind(r.ca_key_id.map(str::to_owned))
                .push_bind(r.tenant.to_owned());
        });
        qb.build()
            .execute(&mut *tx)
            .await
            .map_err(|e| on_unique(e, "issuance", "(a serial in this batch)".into()))?;
    }
    // Last, so that the head is locked only for the audit insert.
    audit::append_in(s, &mut tx, events).await?;
    tx.commit().await?;
    Ok(())
}

/// Most certificates one `svid.issue` record lists: its JSON (about 300
/// bytes a certificate) stays far below `MAX_AUDIT_FIELD`.
const SVIDS_PER_RECORD: usize = 128;

/// The `svid.issue` records of one batch: one per agent and tenant (and
/// per [`SVIDS_PER_RECORD`] certificates), in the batch's order. One
/// record per batch rather than per certificate keeps the audit log's cost
/// to batched issuance small (bench/ca-issuance, `--audit both`); every
/// certificate is still listed, in the same transaction as its issuance
/// record. Fits the bounds of [`audit::normalize`] by construction.
fn issue_events(records: &[IssuanceRecord]) -> Vec<AuditEvent> {
    let mut groups: Vec<(&str, &str, Vec<&IssuanceRecord>)> = Vec::new();
    for r in records {
        let actor = r.agent_id.as_ref().map_or("ca:", SpiffeId::as_str);
        match groups
            .iter_mut()
            .find(|(a, t, _)| *a == actor && *t == r.tenant)
        {
            Some((_, _, members)) => members.push(r),
            None => groups.push((actor, r.tenant.as_str(), vec![r])),
        }
    }
    let mut events = Vec::new();
    for (actor, tenant, members) in groups {
        for chunk in members.chunks(SVIDS_PER_RECORD) {
            let target = match chunk {
                [one] => one.spiffe_id.as_str().to_owned(),
                many => format!("{} SVIDs", many.len()),
            };
            events.push(AuditEvent {
                actor: actor.to_owned(),
                action: "svid.issue".to_owned(),
                tenant: tenant.to_owned(),
                target,
                before: String::new(),
                after: issuances_json(chunk),
                result: "ok".to_owned(),
            });
        }
    }
    events
}

pub(super) async fn count_issuances(s: &This) -> Result<u64, StoreError> {
    decode::count(
        &sqlx::query(queries::COUNT_ISSUANCES)
            .fetch_one(&s.pool)
            .await?,
    )
}

pub(super) async fn get_issuance(
    s: &This,
    serial: &str,
) -> Result<Option<IssuanceRecord>, StoreError> {
    sqlx::query(queries::ISSUANCE_BY_SERIAL)
        .bind(serial)
        .fetch_optional(&s.pool)
        .await?
        .as_ref()
        .map(decode::issuance)
        .transpose()
}

pub(super) async fn live_issuances_by_key(s: &This) -> Result<Vec<(String, u64)>, StoreError> {
    sqlx::query(queries::LIVE_ISSUANCES_BY_KEY)
        .bind(codec::to_ms(s.clock.now())?)
        .fetch_all(&s.pool)
        .await?
        .iter()
        .map(|row| Ok((row.try_get("ca_key_id")?, decode::count(row)?)))
        .collect()
}
