//! Agents: upsert at attestation, ban, evict, and the serial
//! compare-and-swap of renewals.

use std::time::SystemTime;

use meshid_identity::SpiffeId;
use sqlx::QueryBuilder;

use super::{BEGIN, Conn, Db, This};
use super::{decode, selectors, tenants};
use crate::store::model::{Agent, MAX_SELECTORS, Page};
use crate::store::sql::found;
use crate::store::{Paged, StoreError, codec, queries};

pub(super) async fn upsert(s: &This, agent: &Agent) -> Result<(), StoreError> {
    codec::check_key("attestation type", &agent.attestation_type)?;
    codec::check_key("agent SVID serial", &agent.serial)?;
    codec::check_tenant(&agent.tenant)?;
    if let Some(previous) = &agent.previous_serial {
        codec::check_key("previous agent SVID serial", previous)?;
    }
    let mut selectors = agent.selectors.clone();
    selectors.sort();
    selectors.dedup();
    if selectors.len() > MAX_SELECTORS {
        return Err(StoreError::Invalid(format!(
            "{} agent selectors given; the limit is {MAX_SELECTORS}",
            selectors.len()
        )));
    }
    let id = agent.spiffe_id.as_str();
    let mut tx = s.pool.begin_with(BEGIN).await?;
    tenants::hold(&mut tx, &agent.tenant).await?;
    sqlx::query(queries::UPSERT_AGENT)
        .bind(id)
        .bind(&agent.attestation_type)
        .bind(&agent.serial)
        .bind(agent.previous_serial.as_deref())
        .bind(codec::to_ms(agent.expires_at)?)
        .bind(agent.banned)
        .bind(codec::to_ms(agent.created_at)?)
        .bind(codec::to_ms(agent.updated_at)?)
        .bind(&agent.tenant)
        .execute(&mut *tx)
        .await?;
    sqlx::query(queries::DELETE_AGENT_SELECTORS)
        .bind(id)
        .execute(&mut *tx)
        .await?;
    selectors::insert(&mut tx, selectors::AGENT, id, &selectors).await?;
    tx.commit().await?;
    Ok(())
}

pub(super) async fn get(s: &This, id: &SpiffeId) -> Result<Option<Agent>, StoreError> {
    let mut conn = s.pool.acquire().await?;
    get_in(&mut conn, id).await
}

/// One agent with its selectors, read on `conn`.
pub(super) async fn get_in(conn: &mut Conn, id: &SpiffeId) -> Result<Option<Agent>, StoreError> {
    let row = sqlx::query(queries::AGENT_BY_ID)
        .bind(id.as_str())
        .fetch_optional(&mut *conn)
        .await?;
    let Some(row) = row else { return Ok(None) };
    let mut agent = decode::agent(&row)?;
    let key = [agent.spiffe_id.as_str().to_owned()];
    let mut sels = selectors::load(conn, selectors::AGENT, &key).await?;
    agent.selectors = sels.remove(agent.spiffe_id.as_str()).unwrap_or_default();
    Ok(Some(agent))
}

pub(super) async fn list(s: &This, page: &Page) -> Result<Paged<Agent>, StoreError> {
    let limit = page.clamped_limit() as usize;
    let mut qb = QueryBuilder::<Db>::new(queries::AGENTS_WHERE);
    if let Some(after) = &page.after {
        qb.push(" AND spiffe_id > ").push_bind(after.clone());
    }
    qb.push(" ORDER BY spiffe_id LIMIT ")
        .push_bind((limit + 1) as i64);
    let mut conn = s.pool.acquire().await?;
    let mut rows = qb.build().fetch_all(&mut *conn).await?;
    let more = rows.len() > limit;
    rows.truncate(limit);
    let mut agents = rows
        .iter()
        .map(decode::agent)
        .collect::<Result<Vec<_>, _>>()?;
    let ids: Vec<String> = agents
        .iter()
        .map(|a| a.spiffe_id.as_str().to_owned())
        .collect();
    let mut sels = selectors::load(&mut conn, selectors::AGENT, &ids).await?;
    for a in &mut agents {
        a.selectors = sels.remove(a.spiffe_id.as_str()).unwrap_or_default();
    }
    let next = if more { ids.last().cloned() } else { None };
    Ok((agents, next))
}

pub(super) async fn set_banned(s: &This, id: &SpiffeId, banned: bool) -> Result<(), StoreError> {
    let mut conn = s.pool.acquire().await?;
    set_banned_in(s, &mut conn, id, banned).await
}

/// Bans or un-bans an agent on `conn`.
pub(super) async fn set_banned_in(
    s: &This,
    conn: &mut Conn,
    id: &SpiffeId,
    banned: bool,
) -> Result<(), StoreError> {
    let done = sqlx::query(queries::SET_AGENT_BANNED)
        .bind(banned)
        .bind(codec::to_ms(s.clock.now())?)
        .bind(id.as_str())
        .execute(&mut *conn)
        .await?;
    found(done.rows_affected(), "agent", id.as_str())
}

pub(super) async fn delete(s: &This, id: &SpiffeId) -> Result<(), StoreError> {
    let mut conn = s.pool.acquire().await?;
    delete_in(&mut conn, id).await
}

/// Evicts an agent on `conn`.
pub(super) async fn delete_in(conn: &mut Conn, id: &SpiffeId) -> Result<(), StoreError> {
    let done = sqlx::query(queries::DELETE_AGENT)
        .bind(id.as_str())
        .execute(&mut *conn)
        .await?;
    found(done.rows_affected(), "agent", id.as_str())
}

pub(super) async fn renew_serial(
    s: &This,
    id: &SpiffeId,
    presented: &str,
    serial: &str,
    expires_at: SystemTime,
) -> Result<(), StoreError> {
    codec::check_key("presented agent SVID serial", presented)?;
    codec::check_key("agent SVID serial", serial)?;
    let done = sqlx::query(queries::RENEW_AGENT_SERIAL)
        .bind(serial)
        .bind(presented)
        .bind(codec::to_ms(expires_at)?)
        .bind(codec::to_ms(s.clock.now())?)
        .bind(id.as_str())
        .execute(&s.pool)
        .await?;
    if done.rows_affected() > 0 {
        return Ok(());
    }
    let exists = sqlx::query(queries::AGENT_EXISTS)
        .bind(id.as_str())
        .fetch_optional(&s.pool)
        .await?
        .is_some();
    if !exists {
        return Err(StoreError::NotFound {
            kind: "agent",
            key: id.as_str().to_owned(),
        });
    }
    Err(StoreError::Conflict {
        kind: "agent",
        key: id.as_str().to_owned(),
        detail: format!(
            "it is banned, or SVID serial {presented} is no longer its current or previous one"
        ),
    })
}

pub(super) async fn confirm_serial(
    s: &This,
    id: &SpiffeId,
    serial: &str,
) -> Result<(), StoreError> {
    codec::check_key("agent SVID serial", serial)?;
    sqlx::query(queries::CONFIRM_AGENT_SERIAL)
        .bind(id.as_str())
        .bind(serial)
        .execute(&s.pool)
        .await?;
    Ok(())
}

pub(super) async fn count(s: &This) -> Result<u64, StoreError> {
    decode::count(
        &sqlx::query(queries::COUNT_AGENTS)
            .fetch_one(&s.pool)
            .await?,
    )
}
