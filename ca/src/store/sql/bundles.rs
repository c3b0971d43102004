//! Trust bundles (optimistic sequence check).

use meshid_identity::TrustDomain;

use super::decode;
use super::{Conn, This};
use crate::store::model::StoredBundle;
use crate::store::{StoreError, codec, queries};

pub(super) async fn get(s: &This, td: &TrustDomain) -> Result<Option<StoredBundle>, StoreError> {
    let mut conn = s.pool.acquire().await?;
    get_in(&mut conn, td).await
}

/// One bundle, read on `conn`.
pub(super) async fn get_in(
    conn: &mut Conn,
    td: &TrustDomain,
) -> Result<Option<StoredBundle>, StoreError> {
    sqlx::query(queries::BUNDLE_BY_TRUST_DOMAIN)
        .bind(td.as_str())
        .fetch_optional(&mut *conn)
        .await?
        .as_ref()
        .map(decode::bundle)
        .transpose()
}

pub(super) async fn put(
    s: &This,
    bundle: &StoredBundle,
    expected_sequence: Option<i64>,
) -> Result<(), StoreError> {
    let mut conn = s.pool.acquire().await?;
    put_in(&mut conn, bundle, expected_sequence).await
}

/// Writes a bundle on `conn` (see [`put`]).
pub(super) async fn put_in(
    conn: &mut Conn,
    bundle: &StoredBundle,
    expected_sequence: Option<i64>,
) -> Result<(), StoreError> {
    let td = bundle.trust_domain.as_str();
    let updated = codec::to_ms(bundle.updated_at)?;
    let insert = |sql: &'static str| {
        sqlx::query(sql)
            .bind(td)
            .bind(&bundle.spiffe_json)
            .bind(bundle.sequence)
            .bind(updated)
    };
    let query = match expected_sequence {
        None => insert(queries::UPSERT_BUNDLE),
        Some(0) => insert(queries::CREATE_BUNDLE),
        Some(seq) => sqlx::query(queries::REPLACE_BUNDLE)
            .bind(&bundle.spiffe_json)
            .bind(bundle.sequence)
            .bind(updated)
            .bind(td)
            .bind(seq),
    };
    if query.execute(&mut *conn).await?.rows_affected() == 1 {
        return Ok(());
    }
    let found = get_in(conn, &bundle.trust_domain)
        .await?
        .map(|b| b.sequence);
    Err(StoreError::Conflict {
        kind: "bundle",
        key: td.to_owned(),
        detail: match (expected_sequence, found) {
            (Some(want), Some(have)) => format!("expected sequence {want}, found {have}"),
            (Some(want), None) => format!("expected sequence {want}, but no bundle is stored"),
            (_, _) => "the bundle could not be written".to_owned(),
        },
    })
}

pub(super) async fn list(s: &This) -> Result<Vec<StoredBundle>, StoreError> {
    sqlx::query(queries::LIST_BUNDLES)
        .fetch_all(&s.pool)
        .await?
        .iter()
        .map(decode::bundle)
        .collect()
}
