//! Attestation evidence that admits a node once (a `k8s_psat` token): its
//! hash is recorded until the evidence expires, and a second record of the
//! same hash before then is a conflict.

use std::time::SystemTime;

use sqlx::Row;

use super::This;
use crate::store::{StoreError, codec, queries};

/// The table, for errors.
const TABLE: &str = "attestation_tokens";

pub(super) async fn record(
    s: &This,
    attestation_type: &str,
    hash: &[u8],
    expires_at: SystemTime,
) -> Result<(), StoreError> {
    codec::check_key("attestation type", attestation_type)?;
    if hash.len() != 32 {
        return Err(StoreError::Invalid(format!(
            "attestation token hash must be a 32-byte SHA-256, got {} bytes",
            hash.len()
        )));
    }
    let now = codec::to_ms(s.clock.now())?;
    sqlx::query(queries::DELETE_EXPIRED_ATTESTATION_TOKENS)
        .bind(now)
        .execute(&s.pool)
        .await?;
    let won = sqlx::query(queries::RECORD_ATTESTATION_TOKEN)
        .bind(hash)
        .bind(attestation_type)
        .bind(codec::to_ms(expires_at)?)
        .bind(now)
        .fetch_optional(&s.pool)
        .await?;
    if won.is_some() {
        return Ok(());
    }
    let key = hex::encode(&hash[..8]);
    let until = sqlx::query(queries::ATTESTATION_TOKEN_EXPIRY)
        .bind(hash)
        .fetch_optional(&s.pool)
        .await?
        .map(|row| row.try_get::<i64, _>("expires_at_ms"))
        .transpose()?
        .map(|ms| codec::from_ms(ms, TABLE, &key))
        .transpose()?;
    let detail = match until {
        Some(t) => format!(
            "already recorded until {}",
            humantime::format_rfc3339_seconds(t)
        ),
        None => "already recorded".to_owned(),
    };
    Err(StoreError::Conflict {
        kind: "attestation token",
        key,
        detail,
    })
}
