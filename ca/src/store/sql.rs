//! The SQL shared by both backends, written once.
//!
//! SQLite and PostgreSQL both accept `$n` placeholders, `RETURNING` and
//! `ON CONFLICT … DO UPDATE`, so one text serves both; the only difference is
//! the driver type. [`impl_sql_store!`] stamps the [`Store`](super::Store)
//! implementation out for one driver.

/// Columns of `registration_entries`, in the order `entry_from_row` reads them.
macro_rules! entry_cols {
    () => {
        "id, spiffe_id, parent_id, x509_ttl_secs, jwt_ttl_secs, dns_names, admin, \
         federates_with, downstream, revision, created_at_ms, updated_at_ms"
    };
}

/// Columns of `agents`.
macro_rules! agent_cols {
    () => {
        "spiffe_id, attestation_type, serial, previous_serial, expires_at_ms, banned, \
         created_at_ms, updated_at_ms"
    };
}

/// Columns of `join_tokens`.
macro_rules! token_cols {
    () => {
        "id, hash, spiffe_id, expires_at_ms, used_at_ms"
    };
}

/// Rows per multi-row INSERT of issuance records (6 parameters each).
pub(crate) const ISSUANCE_CHUNK: usize = 1000;

/// Implements `Store` for `$store` (which has a `pool: Pool<$db>` field)
/// using the driver `$db` whose connection type is `$conn`. `$begin` is the
/// statement that opens a write transaction.
macro_rules! impl_sql_store {
    ($store:ident, $db:ty, $conn:ty, $begin:expr) => {
        use std::collections::HashMap;
        use std::time::SystemTime;

        use async_trait::async_trait;
        use meshid_identity::{Selector, SpiffeId, TrustDomain};
        use sqlx::{QueryBuilder, Row};

        use crate::store::codec;
        use crate::store::error::on_unique;
        use crate::store::model::*;
        use crate::store::sql::ISSUANCE_CHUNK;
        use crate::store::{Store, StoreError};

        type DbRow = <$db as sqlx::Database>::Row;

        const ENTRIES: &str = "registration_entries";

        fn entry_from_row(row: &DbRow) -> Result<RegistrationEntry, StoreError> {
            let id: String = row.try_get("id")?;
            let k = id.as_str();
            Ok(RegistrationEntry {
                spiffe_id: codec::spiffe_id(&row.try_get::<String, _>("spiffe_id")?, ENTRIES, k)?,
                parent_id: codec::spiffe_id(&row.try_get::<String, _>("parent_id")?, ENTRIES, k)?,
                selectors: Vec::new(),
                x509_ttl: codec::from_secs(row.try_get("x509_ttl_secs")?, ENTRIES, k)?,
                jwt_ttl: codec::from_secs(row.try_get("jwt_ttl_secs")?, ENTRIES, k)?,
                dns_names: codec::decode_dns_names(&row.try_get::<String, _>("dns_names")?, k)?,
                admin: row.try_get("admin")?,
                federates_with: codec::decode_trust_domains(
                    &row.try_get::<String, _>("federates_with")?,
                    k,
                )?,
                downstream: row.try_get("downstream")?,
                revision: row.try_get("revision")?,
                created_at: codec::from_ms(row.try_get("created_at_ms")?, ENTRIES, k)?,
                updated_at: codec::from_ms(row.try_get("updated_at_ms")?, ENTRIES, k)?,
                id,
            })
        }

        fn agent_from_row(row: &DbRow) -> Result<Agent, StoreError> {
            let id: String = row.try_get("spiffe_id")?;
            let k = id.as_str();
            Ok(Agent {
                spiffe_id: codec::spiffe_id(k, "agents", k)?,
                attestation_type: row.try_get("attestation_type")?,
                serial: row.try_get("serial")?,
                previous_serial: row.try_get("previous_serial")?,
                expires_at: codec::from_ms(row.try_get("expires_at_ms")?, "agents", k)?,
                banned: row.try_get("banned")?,
                selectors: Vec::new(),
                created_at: codec::from_ms(row.try_get("created_at_ms")?, "agents", k)?,
                updated_at: codec::from_ms(row.try_get("updated_at_ms")?, "agents", k)?,
            })
        }

        fn token_from_row(row: &DbRow) -> Result<JoinToken, StoreError> {
            let id: String = row.try_get("id")?;
            let k = id.as_str();
            let alias: Option<String> = row.try_get("spiffe_id")?;
            let used: Option<i64> = row.try_get("used_at_ms")?;
            Ok(JoinToken {
                hash: row.try_get("hash")?,
                spiffe_id: alias
                    .map(|a| codec::spiffe_id(&a, "join_tokens", k))
                    .transpose()?,
                expires_at: codec::from_ms(row.try_get("expires_at_ms")?, "join_tokens", k)?,
                used_at: used
                    .map(|u| codec::from_ms(u, "join_tokens", k))
                    .transpose()?,
                id,
            })
        }

        fn issuance_from_row(row: &DbRow) -> Result<IssuanceRecord, StoreError> {
            let serial: String = row.try_get("serial")?;
            let k = serial.as_str();
            let t = "issuances";
            let agent: Option<String> = row.try_get("agent_id")?;
            Ok(IssuanceRecord {
                spiffe_id: codec::spiffe_id(&row.try_get::<String, _>("spiffe_id")?, t, k)?,
                agent_id: agent.map(|a| codec::spiffe_id(&a, t, k)).transpose()?,
                entry_id: row.try_get("entry_id")?,
                not_after: codec::from_ms(row.try_get("not_after_ms")?, t, k)?,
                issued_at: codec::from_ms(row.try_get("issued_at_ms")?, t, k)?,
                serial,
            })
        }

        fn bundle_from_row(row: &DbRow) -> Result<StoredBundle, StoreError> {
            let td: String = row.try_get("trust_domain")?;
            Ok(StoredBundle {
                trust_domain: TrustDomain::new(&td).map_err(|e| {
                    codec::corrupt("bundles", &td, format!("trust domain: {e}"))
                })?,
                spiffe_json: row.try_get("spiffe_json")?,
                sequence: row.try_get("sequence")?,
                updated_at: codec::from_ms(row.try_get("updated_at_ms")?, "bundles", &td)?,
            })
        }

        fn ca_key_from_row(row: &DbRow) -> Result<CaKeyRecord, StoreError> {
            let slot: String = row.try_get("slot")?;
            Ok(CaKeyRecord {
                cert_chain_pem: row.try_get("cert_chain_pem")?,
                key_ref: row.try_get("key_ref")?,
                not_after: codec::from_ms(row.try_get("not_after_ms")?, "ca_keys", &slot)?,
                state: row.try_get("state")?,
                slot,
            })
        }

        /// Loads selectors for the given owners from `table` (keyed by `owner_col`).
        async fn load_selectors(
            conn: &mut $conn,
            table: &'static str,
            owner_col: &'static str,
            owners: &[String],
        ) -> Result<HashMap<String, Vec<Selector>>, StoreError> {
            let mut out: HashMap<String, Vec<Selector>> = HashMap::new();
            if owners.is_empty() {
                return Ok(out);
            }
            let mut qb = QueryBuilder::<$db>::new(format!(
                "SELECT {owner_col} AS owner, type, value FROM {table} WHERE {owner_col} IN ("
            ));
            let mut list = qb.separated(", ");
            for o in owners {
                list.push_bind(o.clone());
            }
            qb.push(") ORDER BY type, value");
            for row in qb.build().fetch_all(&mut *conn).await? {
                let owner: String = row.try_get("owner")?;
                let sel = codec::selector(
                    &row.try_get::<String, _>("type")?,
                    &row.try_get::<String, _>("value")?,
                    table,
                    &owner,
                )?;
                out.entry(owner).or_default().push(sel);
            }
            Ok(out)
        }

        /// Turns entry rows into entries with their selectors.
        async fn complete_entries(
            conn: &mut $conn,
            rows: &[DbRow],
        ) -> Result<Vec<RegistrationEntry>, StoreError> {
            let mut entries = rows.iter().map(entry_from_row).collect::<Result<Vec<_>, _>>()?;
            let ids: Vec<String> = entries.iter().map(|e| e.id.clone()).collect();
            let mut sels = load_selectors(conn, "entry_selectors", "entry_id", &ids).await?;
            for e in &mut entries {
                e.selectors = sels.remove(&e.id).unwrap_or_default();
                if e.selectors.is_empty() {
                    return Err(codec::corrupt(ENTRIES, &e.id, "entry has no selectors"));
                }
            }
            Ok(entries)
        }

        async fn entry_by_id(
            conn: &mut $conn,
            id: &str,
        ) -> Result<Option<RegistrationEntry>, StoreError> {
            let row = sqlx::query(concat!(
                "SELECT ",
                entry_cols!(),
                " FROM registration_entries WHERE id = $1"
            ))
            .bind(id)
            .fetch_optional(&mut *conn)
            .await?;
            match row {
                None => Ok(None),
                Some(row) => Ok(complete_entries(conn, &[row]).await?.pop()),
            }
        }

        async fn insert_selectors(
            conn: &mut $conn,
            table: &'static str,
            owner_col: &'static str,
            owner: &str,
            selectors: &[Selector],
        ) -> Result<(), StoreError> {
            if selectors.is_empty() {
                return Ok(());
            }
            let mut qb = QueryBuilder::<$db>::new(format!(
                "INSERT INTO {table} ({owner_col}, type, value) "
            ));
            qb.push_values(selectors, |mut b, s| {
                b.push_bind(owner.to_owned())
                    .push_bind(s.kind().to_owned())
                    .push_bind(s.value().to_owned());
            });
            qb.build().execute(&mut *conn).await?;
            Ok(())
        }

        /// Runs a paged entry query: `qb` holds everything up to the `WHERE`
        /// conditions; this adds the cursor, order and limit.
        async fn page_entries(
            pool: &sqlx::Pool<$db>,
            mut qb: QueryBuilder<$db>,
            page: &Page,
        ) -> Result<(Vec<RegistrationEntry>, Option<String>), StoreError> {
            let limit = page.clamped_limit() as usize;
            if let Some(after) = &page.after {
                qb.push(" AND id > ").push_bind(after.clone());
            }
            qb.push(" ORDER BY id LIMIT ").push_bind((limit + 1) as i64);
            let mut conn = pool.acquire().await?;
            let mut rows = qb.build().fetch_all(&mut *conn).await?;
            let more = rows.len() > limit;
            rows.truncate(limit);
            let entries = complete_entries(&mut conn, &rows).await?;
            let next = if more { entries.last().map(|e| e.id.clone()) } else { None };
            Ok((entries, next))
        }

        fn new_query(sql: &'static str) -> QueryBuilder<$db> {
            QueryBuilder::<$db>::new(sql)
        }

        async fn count(pool: &sqlx::Pool<$db>, sql: &'static str) -> Result<u64, StoreError> {
            let n: i64 = sqlx::query(sql).fetch_one(pool).await?.try_get(0)?;
            Ok(u64::try_from(n).unwrap_or(0))
        }

        struct EntryColumns {
            selector_key: String,
            dns_names: String,
            federates_with: String,
            x509_ttl: i64,
            jwt_ttl: i64,
        }

        fn entry_columns(e: &mut RegistrationEntry) -> Result<EntryColumns, StoreError> {
            e.selectors = codec::canonical_selectors(std::mem::take(&mut e.selectors))?;
            Ok(EntryColumns {
                selector_key: codec::selector_key(&e.selectors),
                dns_names: codec::encode_dns_names(&e.dns_names)?,
                federates_with: codec::encode_trust_domains(&e.federates_with)?,
                x509_ttl: codec::to_secs(e.x509_ttl)?,
                jwt_ttl: codec::to_secs(e.jwt_ttl)?,
            })
        }

        fn entry_identity(e: &RegistrationEntry) -> String {
            format!(
                "with spiffe_id {}, parent_id {} and these selectors",
                e.spiffe_id, e.parent_id
            )
        }

        // === impl Store ===

        #[async_trait]
        impl Store for $store {
            async fn create_entry(&self, new: NewEntry) -> Result<RegistrationEntry, StoreError> {
                let now = SystemTime::now();
                let now_ms = codec::to_ms(now)?;
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
                    created_at: codec::from_ms(now_ms, ENTRIES, "new")?,
                    updated_at: codec::from_ms(now_ms, ENTRIES, "new")?,
                };
                let c = entry_columns(&mut e)?;
                let mut tx = self.pool.begin_with($begin).await?;
                sqlx::query(concat!(
                    "INSERT INTO registration_entries (",
                    entry_cols!(),
                    ", selector_key) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $11, $12)"
                ))
                .bind(&e.id)
                .bind(e.spiffe_id.as_str())
                .bind(e.parent_id.as_str())
                .bind(c.x509_ttl)
                .bind(c.jwt_ttl)
                .bind(&c.dns_names)
                .bind(e.admin)
                .bind(&c.federates_with)
                .bind(e.downstream)
                .bind(e.revision)
                .bind(now_ms)
                .bind(&c.selector_key)
                .execute(&mut *tx)
                .await
                .map_err(|err| on_unique(err, "entry", entry_identity(&e)))?;
                insert_selectors(&mut tx, "entry_selectors", "entry_id", &e.id, &e.selectors)
                    .await?;
                tx.commit().await?;
                Ok(e)
            }

            async fn update_entry(
                &self,
                id: &str,
                update: EntryUpdate,
                expected_revision: Option<i64>,
            ) -> Result<RegistrationEntry, StoreError> {
                let mut tx = self.pool.begin_with($begin).await?;
                let mut e = entry_by_id(&mut tx, id).await?.ok_or_else(|| {
                    StoreError::NotFound { kind: "entry", key: id.to_owned() }
                })?;
                if let Some(want) = expected_revision {
                    if want != e.revision {
                        return Err(StoreError::Conflict {
                            kind: "entry",
                            key: id.to_owned(),
                            detail: format!("expected revision {want}, found {}", e.revision),
                        });
                    }
                }
                let old_revision = e.revision;
                let selectors_changed = update.selectors.is_some();
                if let Some(v) = update.spiffe_id { e.spiffe_id = v; }
                if let Some(v) = update.parent_id { e.parent_id = v; }
                if let Some(v) = update.selectors { e.selectors = v; }
                if let Some(v) = update.x509_ttl { e.x509_ttl = v; }
                if let Some(v) = update.jwt_ttl { e.jwt_ttl = v; }
                if let Some(v) = update.dns_names { e.dns_names = v; }
                if let Some(v) = update.admin { e.admin = v; }
                if let Some(v) = update.federates_with { e.federates_with = v; }
                if let Some(v) = update.downstream { e.downstream = v; }
                let c = entry_columns(&mut e)?;
                let now_ms = codec::to_ms(SystemTime::now())?;
                e.revision = old_revision + 1;
                e.updated_at = codec::from_ms(now_ms, ENTRIES, id)?;
                let done = sqlx::query(
                    "UPDATE registration_entries SET spiffe_id = $1, parent_id = $2, \
                     x509_ttl_secs = $3, jwt_ttl_secs = $4, dns_names = $5, admin = $6, \
                     federates_with = $7, downstream = $8, selector_key = $9, \
                     revision = $10, updated_at_ms = $11 WHERE id = $12 AND revision = $13",
                )
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
                    sqlx::query("DELETE FROM entry_selectors WHERE entry_id = $1")
                        .bind(id)
                        .execute(&mut *tx)
                        .await?;
                    insert_selectors(&mut tx, "entry_selectors", "entry_id", id, &e.selectors)
                        .await?;
                }
                tx.commit().await?;
                Ok(e)
            }

            async fn delete_entry(&self, id: &str) -> Result<RegistrationEntry, StoreError> {
                let mut tx = self.pool.begin_with($begin).await?;
                let e = entry_by_id(&mut tx, id).await?.ok_or_else(|| {
                    StoreError::NotFound { kind: "entry", key: id.to_owned() }
                })?;
                sqlx::query("DELETE FROM registration_entries WHERE id = $1")
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                Ok(e)
            }

            async fn get_entry(&self, id: &str) -> Result<Option<RegistrationEntry>, StoreError> {
                let mut conn = self.pool.acquire().await?;
                entry_by_id(&mut conn, id).await
            }

            async fn get_entries(&self, ids: &[String]) -> Result<Vec<RegistrationEntry>, StoreError> {
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
                let mut qb = new_query(concat!(
                    "SELECT ",
                    entry_cols!(),
                    ", s.type AS selector_type, s.value AS selector_value \
                     FROM registration_entries e \
                     LEFT JOIN entry_selectors s ON s.entry_id = e.id WHERE e.id IN ("
                ));
                let mut list = qb.separated(", ");
                for id in unique {
                    list.push_bind(id.to_owned());
                }
                qb.push(") ORDER BY e.id, s.type, s.value");
                let rows = qb.build().fetch_all(&self.pool).await?;
                let mut out: Vec<RegistrationEntry> = Vec::new();
                for row in &rows {
                    let id: String = row.try_get("id")?;
                    if out.last().is_none_or(|e| e.id != id) {
                        out.push(entry_from_row(row)?);
                    }
                    let kind: Option<String> = row.try_get("selector_type")?;
                    let value: Option<String> = row.try_get("selector_value")?;
                    if let (Some(kind), Some(value), Some(e)) = (kind, value, out.last_mut()) {
                        e.selectors.push(codec::selector(&kind, &value, "entry_selectors", &id)?);
                    }
                }
                if let Some(e) = out.iter().find(|e| e.selectors.is_empty()) {
                    return Err(codec::corrupt(ENTRIES, &e.id, "entry has no selectors"));
                }
                Ok(out)
            }

            async fn list_entries(
                &self,
                filter: &EntryFilter,
                page: &Page,
            ) -> Result<(Vec<RegistrationEntry>, Option<String>), StoreError> {
                let mut qb = new_query(concat!(
                    "SELECT ",
                    entry_cols!(),
                    " FROM registration_entries e WHERE 1 = 1"
                ));
                if let Some(p) = &filter.parent_id {
                    qb.push(" AND parent_id = ").push_bind(p.as_str().to_owned());
                }
                if let Some(s) = &filter.spiffe_id {
                    qb.push(" AND spiffe_id = ").push_bind(s.as_str().to_owned());
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
                page_entries(&self.pool, qb, page).await
            }

            async fn list_entries_by_parents(
                &self,
                parents: &[SpiffeId],
                page: &Page,
            ) -> Result<(Vec<RegistrationEntry>, Option<String>), StoreError> {
                if parents.is_empty() {
                    return Ok((Vec::new(), None));
                }
                if parents.len() > MAX_SYNC_PARENTS {
                    return Err(StoreError::Invalid(format!(
                        "{} parent IDs given; the limit is {MAX_SYNC_PARENTS}",
                        parents.len()
                    )));
                }
                let mut qb = new_query(concat!(
                    "SELECT ",
                    entry_cols!(),
                    " FROM registration_entries WHERE parent_id IN ("
                ));
                let mut list = qb.separated(", ");
                for p in parents {
                    list.push_bind(p.as_str().to_owned());
                }
                qb.push(")");
                page_entries(&self.pool, qb, page).await
            }

            async fn count_entries(&self) -> Result<u64, StoreError> {
                count(&self.pool, "SELECT COUNT(*) FROM registration_entries").await
            }

            async fn upsert_agent(&self, agent: &Agent) -> Result<(), StoreError> {
                codec::check_key("attestation type", &agent.attestation_type)?;
                codec::check_key("agent SVID serial", &agent.serial)?;
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
                let mut tx = self.pool.begin_with($begin).await?;
                sqlx::query(concat!(
                    "INSERT INTO agents (",
                    agent_cols!(),
                    ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (spiffe_id) DO UPDATE SET \
                     attestation_type = excluded.attestation_type, serial = excluded.serial, \
                     previous_serial = excluded.previous_serial, \
                     expires_at_ms = excluded.expires_at_ms, banned = excluded.banned, \
                     updated_at_ms = excluded.updated_at_ms"
                ))
                .bind(id)
                .bind(&agent.attestation_type)
                .bind(&agent.serial)
                .bind(agent.previous_serial.as_deref())
                .bind(codec::to_ms(agent.expires_at)?)
                .bind(agent.banned)
                .bind(codec::to_ms(agent.created_at)?)
                .bind(codec::to_ms(agent.updated_at)?)
                .execute(&mut *tx)
                .await?;
                sqlx::query("DELETE FROM agent_selectors WHERE agent_id = $1")
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
                insert_selectors(&mut tx, "agent_selectors", "agent_id", id, &selectors).await?;
                tx.commit().await?;
                Ok(())
            }

            async fn get_agent(&self, id: &SpiffeId) -> Result<Option<Agent>, StoreError> {
                let mut conn = self.pool.acquire().await?;
                let row = sqlx::query(concat!("SELECT ", agent_cols!(), " FROM agents WHERE spiffe_id = $1"))
                    .bind(id.as_str())
                    .fetch_optional(&mut *conn)
                    .await?;
                let Some(row) = row else { return Ok(None) };
                let mut agent = agent_from_row(&row)?;
                let key = [agent.spiffe_id.as_str().to_owned()];
                let mut sels = load_selectors(&mut conn, "agent_selectors", "agent_id", &key).await?;
                agent.selectors = sels.remove(agent.spiffe_id.as_str()).unwrap_or_default();
                Ok(Some(agent))
            }

            async fn list_agents(&self, page: &Page) -> Result<(Vec<Agent>, Option<String>), StoreError> {
                let limit = page.clamped_limit() as usize;
                let mut qb = new_query(concat!("SELECT ", agent_cols!(), " FROM agents WHERE 1 = 1"));
                if let Some(after) = &page.after {
                    qb.push(" AND spiffe_id > ").push_bind(after.clone());
                }
                qb.push(" ORDER BY spiffe_id LIMIT ").push_bind((limit + 1) as i64);
                let mut conn = self.pool.acquire().await?;
                let mut rows = qb.build().fetch_all(&mut *conn).await?;
                let more = rows.len() > limit;
                rows.truncate(limit);
                let mut agents = rows.iter().map(agent_from_row).collect::<Result<Vec<_>, _>>()?;
                let ids: Vec<String> = agents.iter().map(|a| a.spiffe_id.as_str().to_owned()).collect();
                let mut sels = load_selectors(&mut conn, "agent_selectors", "agent_id", &ids).await?;
                for a in &mut agents {
                    a.selectors = sels.remove(a.spiffe_id.as_str()).unwrap_or_default();
                }
                let next = if more { ids.last().cloned() } else { None };
                Ok((agents, next))
            }

            async fn set_agent_banned(&self, id: &SpiffeId, banned: bool) -> Result<(), StoreError> {
                let done = sqlx::query("UPDATE agents SET banned = $1, updated_at_ms = $2 WHERE spiffe_id = $3")
                    .bind(banned)
                    .bind(codec::to_ms(SystemTime::now())?)
                    .bind(id.as_str())
                    .execute(&self.pool)
                    .await?;
                found(done.rows_affected(), "agent", id.as_str())
            }

            async fn delete_agent(&self, id: &SpiffeId) -> Result<(), StoreError> {
                let done = sqlx::query("DELETE FROM agents WHERE spiffe_id = $1")
                    .bind(id.as_str())
                    .execute(&self.pool)
                    .await?;
                found(done.rows_affected(), "agent", id.as_str())
            }

            async fn renew_agent_serial(
                &self,
                id: &SpiffeId,
                presented: &str,
                serial: &str,
                expires_at: SystemTime,
            ) -> Result<(), StoreError> {
                codec::check_key("presented agent SVID serial", presented)?;
                codec::check_key("agent SVID serial", serial)?;
                // Compare-and-swap: only the holder of the current or the
                // previous SVID of a not banned agent may move it on.
                let done = sqlx::query(
                    "UPDATE agents SET serial = $1, previous_serial = $2, expires_at_ms = $3, \
                     updated_at_ms = $4 WHERE spiffe_id = $5 AND banned = FALSE \
                     AND (serial = $2 OR previous_serial = $2)",
                )
                .bind(serial)
                .bind(presented)
                .bind(codec::to_ms(expires_at)?)
                .bind(codec::to_ms(SystemTime::now())?)
                .bind(id.as_str())
                .execute(&self.pool)
                .await?;
                if done.rows_affected() > 0 {
                    return Ok(());
                }
                let exists = sqlx::query("SELECT 1 FROM agents WHERE spiffe_id = $1")
                    .bind(id.as_str())
                    .fetch_optional(&self.pool)
                    .await?
                    .is_some();
                if !exists {
                    return Err(StoreError::NotFound { kind: "agent", key: id.as_str().to_owned() });
                }
                Err(StoreError::Conflict {
                    kind: "agent",
                    key: id.as_str().to_owned(),
                    detail: format!(
                        "it is banned, or SVID serial {presented} is no longer its current or \
                         previous one"
                    ),
                })
            }

            async fn confirm_agent_serial(&self, id: &SpiffeId, serial: &str) -> Result<(), StoreError> {
                codec::check_key("agent SVID serial", serial)?;
                sqlx::query(
                    "UPDATE agents SET previous_serial = NULL \
                     WHERE spiffe_id = $1 AND serial = $2 AND previous_serial IS NOT NULL",
                )
                .bind(id.as_str())
                .bind(serial)
                .execute(&self.pool)
                .await?;
                Ok(())
            }

            async fn count_agents(&self) -> Result<u64, StoreError> {
                count(&self.pool, "SELECT COUNT(*) FROM agents").await
            }

            async fn create_join_token(&self, token: &JoinToken) -> Result<(), StoreError> {
                codec::check_key("join token ID", &token.id)?;
                if token.hash.len() != 32 {
                    return Err(StoreError::Invalid(format!(
                        "join token hash must be a 32-byte SHA-256, got {} bytes",
                        token.hash.len()
                    )));
                }
                sqlx::query(concat!("INSERT INTO join_tokens (", token_cols!(), ") VALUES ($1, $2, $3, $4, $5)"))
                    .bind(&token.id)
                    .bind(&token.hash)
                    .bind(token.spiffe_id.as_ref().map(|s| s.as_str().to_owned()))
                    .bind(codec::to_ms(token.expires_at)?)
                    .bind(token.used_at.map(codec::to_ms).transpose()?)
                    .execute(&self.pool)
                    .await
                    .map_err(|e| on_unique(e, "join token", token.id.clone()))?;
                Ok(())
            }

            async fn consume_join_token(&self, hash: &[u8], now: SystemTime) -> Result<JoinToken, StoreError> {
                let now_ms = codec::to_ms(now)?;
                let won = sqlx::query(concat!(
                    "UPDATE join_tokens SET used_at_ms = $1 \
                     WHERE hash = $2 AND used_at_ms IS NULL AND expires_at_ms > $1 RETURNING ",
                    token_cols!()
                ))
                .bind(now_ms)
                .bind(hash)
                .fetch_optional(&self.pool)
                .await?;
                if let Some(row) = won {
                    return token_from_row(&row);
                }
                let row = sqlx::query(concat!("SELECT ", token_cols!(), " FROM join_tokens WHERE hash = $1"))
                    .bind(hash)
                    .fetch_optional(&self.pool)
                    .await?;
                match row {
                    None => Err(StoreError::NotFound { kind: "join token", key: "(given secret)".into() }),
                    Some(row) if token_from_row(&row)?.used_at.is_some() => Err(StoreError::TokenUsed),
                    Some(_) => Err(StoreError::TokenExpired),
                }
            }

            async fn record_issuances(&self, records: &[IssuanceRecord]) -> Result<(), StoreError> {
                if records.is_empty() {
                    return Ok(());
                }
                let mut rows = Vec::with_capacity(records.len());
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
                let mut tx = self.pool.begin_with($begin).await?;
                for chunk in rows.chunks(ISSUANCE_CHUNK) {
                    let mut qb = new_query(
                        "INSERT INTO issuances \
                         (serial, spiffe_id, agent_id, entry_id, not_after_ms, issued_at_ms) ",
                    );
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

            async fn count_issuances(&self) -> Result<u64, StoreError> {
                count(&self.pool, "SELECT COUNT(*) FROM issuances").await
            }

            async fn get_issuance(&self, serial: &str) -> Result<Option<IssuanceRecord>, StoreError> {
                sqlx::query(
                    "SELECT serial, spiffe_id, agent_id, entry_id, not_after_ms, issued_at_ms \
                     FROM issuances WHERE serial = $1",
                )
                .bind(serial)
                .fetch_optional(&self.pool)
                .await?
                .as_ref()
                .map(issuance_from_row)
                .transpose()
            }

            async fn get_bundle(&self, td: &TrustDomain) -> Result<Option<StoredBundle>, StoreError> {
                sqlx::query(
                    "SELECT trust_domain, spiffe_json, sequence, updated_at_ms FROM bundles \
                     WHERE trust_domain = $1",
                )
                .bind(td.as_str())
                .fetch_optional(&self.pool)
                .await?
                .as_ref()
                .map(bundle_from_row)
                .transpose()
            }

            async fn put_bundle(
                &self,
                bundle: &StoredBundle,
                expected_sequence: Option<i64>,
            ) -> Result<(), StoreError> {
                let td = bundle.trust_domain.as_str();
                let updated = codec::to_ms(bundle.updated_at)?;
                let done = match expected_sequence {
                    None => {
                        sqlx::query(
                            "INSERT INTO bundles (trust_domain, spiffe_json, sequence, updated_at_ms) \
                             VALUES ($1, $2, $3, $4) ON CONFLICT (trust_domain) DO UPDATE SET \
                             spiffe_json = excluded.spiffe_json, sequence = excluded.sequence, \
                             updated_at_ms = excluded.updated_at_ms",
                        )
                        .bind(td)
                        .bind(&bundle.spiffe_json)
                        .bind(bundle.sequence)
                        .bind(updated)
                        .execute(&self.pool)
                        .await?
                    }
                    Some(0) => sqlx::query(
                        "INSERT INTO bundles (trust_domain, spiffe_json, sequence, updated_at_ms) \
                         VALUES ($1, $2, $3, $4) ON CONFLICT (trust_domain) DO NOTHING",
                    )
                    .bind(td)
                    .bind(&bundle.spiffe_json)
                    .bind(bundle.sequence)
                    .bind(updated)
                    .execute(&self.pool)
                    .await?,
                    Some(seq) => sqlx::query(
                        "UPDATE bundles SET spiffe_json = $1, sequence = $2, updated_at_ms = $3 \
                         WHERE trust_domain = $4 AND sequence = $5",
                    )
                    .bind(&bundle.spiffe_json)
                    .bind(bundle.sequence)
                    .bind(updated)
                    .bind(td)
                    .bind(seq)
                    .execute(&self.pool)
                    .await?,
                };
                if done.rows_affected() == 1 {
                    return Ok(());
                }
                let found = self.get_bundle(&bundle.trust_domain).await?.map(|b| b.sequence);
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

            async fn list_bundles(&self) -> Result<Vec<StoredBundle>, StoreError> {
                sqlx::query(
                    "SELECT trust_domain, spiffe_json, sequence, updated_at_ms FROM bundles \
                     ORDER BY trust_domain",
                )
                .fetch_all(&self.pool)
                .await?
                .iter()
                .map(bundle_from_row)
                .collect()
            }

            async fn put_ca_key(&self, key: &CaKeyRecord) -> Result<(), StoreError> {
                codec::check_key("CA key slot", &key.slot)?;
                codec::check_key("CA key reference", &key.key_ref)?;
                if !matches!(key.state.as_str(), "prepared" | "active" | "old") {
                    return Err(StoreError::Invalid(format!(
                        "CA key state {:?} must be prepared, active or old",
                        key.state.chars().take(40).collect::<String>()
                    )));
                }
                sqlx::query(
                    "INSERT INTO ca_keys (slot, cert_chain_pem, key_ref, not_after_ms, state) \
                     VALUES ($1, $2, $3, $4, $5) ON CONFLICT (slot) DO UPDATE SET \
                     cert_chain_pem = excluded.cert_chain_pem, key_ref = excluded.key_ref, \
                     not_after_ms = excluded.not_after_ms, state = excluded.state",
                )
                .bind(&key.slot)
                .bind(&key.cert_chain_pem)
                .bind(&key.key_ref)
                .bind(codec::to_ms(key.not_after)?)
                .bind(&key.state)
                .execute(&self.pool)
                .await?;
                Ok(())
            }

            async fn list_ca_keys(&self) -> Result<Vec<CaKeyRecord>, StoreError> {
                sqlx::query(
                    "SELECT slot, cert_chain_pem, key_ref, not_after_ms, state FROM ca_keys \
                     ORDER BY slot",
                )
                .fetch_all(&self.pool)
                .await?
                .iter()
                .map(ca_key_from_row)
                .collect()
            }

            async fn health(&self) -> Result<(), StoreError> {
                sqlx::query("SELECT 1").execute(&self.pool).await?;
                Ok(())
            }
        }

        fn found(rows: u64, kind: &'static str, key: &str) -> Result<(), StoreError> {
            if rows == 0 {
                Err(StoreError::NotFound { kind, key: key.to_owned() })
            } else {
                Ok(())
            }
        }
    };
}

pub(crate) use {agent_cols, entry_cols, impl_sql_store, token_cols};
