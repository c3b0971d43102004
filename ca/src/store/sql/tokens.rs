//! Join tokens (created, then consumed exactly once) and issuance records
//! (written in all-or-nothing batches).

use std::time::SystemTime;

use meshid_identity::SpiffeId;
use sqlx::QueryBuilder;

use super::decode;
use super::{BEGIN, Db, This};
use crate::store::error::on_unique;
use crate::store::model::{IssuanceRecord, JoinToken};
use crate::store::sql::ISSUANCE_CHUNK;
use crate::store::{StoreError, codec, queries};

pub(super) async fn create(s: &This, token: &JoinToken) -> Result<(), StoreError> {
    codec::check_key("join token ID", &token.id)?;
    if token.hash.len() != 32 {
        return Err(StoreError::Invalid(format!(
            "join token hash must be a 32-byte SHA-256, got {} bytes",
            token.hash.len()
        )));
    }
    sqlx::query(queries::INSERT_TOKEN)
        .bind(&token.id)
        .bind(&token.hash)
        .bind(token.spiffe_id.as_ref().map(|s| s.as_str().to_owned()))
        .bind(codec::to_ms(token.expires_at)?)
        .bind(token.used_at.map(codec::to_ms).transpose()?)
        .execute(&s.pool)
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
type IssuanceRow<'a> = (&'a str, &'a str, Option<&'a str>, Option<&'a str>, i64, i64);

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
        rows.push((
            r.serial.as_str(),
            r.spiffe_id.as_str(),
            r.agent_id.as_ref().map(SpiffeId::as_str),
            r.entry_id.as_deref(),
            codec::to_ms(r.not_after)?,
            codec::to_ms(r.issued_at)?,
        ));
    }
    let mut tx = s.pool.begin_with(BEGIN).await?;
    for chunk in rows.chunks(ISSUANCE_CHUNK) {
        let mut qb = QueryBuilder::<Db>::new(queries::INSERT_ISSUANCES);
        qb.push_values(chunk, |mut b, r| {
            b.push_bind(r.0.to_owned())
                .push_bind(r.1.to_owned())
                .push_bind(r.2.map(str::to_owned))
                .push_bind(r.3.map(str::to_owned))
                .push_bind(r.4)
                .push_bind(r.5);
        });
        qb.build()
            .execute(&mut *tx)
            .await
            .map_err(|e| on_unique(e, "issuance", "(a serial in this batch)".into()))?;
    }
    tx.commit().await?;
    Ok(())
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
