//! [`MeteredStore`]: a [`Store`] around any store that records each call's
//! latency and errors, and keeps the row-count gauges without a `COUNT(*)`
//! per scrape.
//!
//! The gauges move on this CA's own writes (entry created or deleted, agent
//! evicted) and are set from the database by [`MeteredStore::refresh_counts`],
//! which the CA runs at start and every [`COUNT_REFRESH`]: that is how
//! writes by other replicas sharing the database (and re-attestations,
//! which may or may not add an agent) show up.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use async_trait::async_trait;
use meshid_identity::{SpiffeId, TrustDomain};
use tokio::sync::watch;

use super::model::{
    Agent, EntryFilter, EntryUpdate, IssuanceRecord, JoinToken, KeySlot, Lease, NewEntry, Page,
    RegistrationEntry, StoredBundle,
};
use super::{
    AuditCheckpoint, AuditEvent, AuditFilter, AuditRecord, Change, Changed, Paged, RoleBinding,
    Store, StoreError, StoreMetrics, Tenant,
};

/// How often the CA re-reads the row counts from the database.
pub const COUNT_REFRESH: Duration = Duration::from_secs(30);

/// A [`Store`] that meters every call of the store it wraps.
#[derive(Debug)]
pub struct MeteredStore {
    inner: Arc<dyn Store>,
    metrics: StoreMetrics,
}

// === impl MeteredStore ===

impl MeteredStore {
    /// Wraps `inner`, recording into `metrics`.
    pub fn new(inner: Arc<dyn Store>, metrics: StoreMetrics) -> Self {
        Self { inner, metrics }
    }

    /// Sets the `entries` and `agents` gauges from the database.
    pub async fn refresh_counts(&self) -> Result<(), StoreError> {
        let entries = self.count_entries().await?;
        let agents = self.count_agents().await?;
        self.metrics.entries.set(gauge_value(entries));
        self.metrics.agents.set(gauge_value(agents));
        Ok(())
    }

    /// Runs [`refresh_counts`](Self::refresh_counts) now and then every
    /// `period` until `shutdown` turns true; a failure is logged and
    /// retried at the next tick.
    pub async fn refresh_counts_until(
        &self,
        period: Duration,
        mut shutdown: watch::Receiver<bool>,
    ) {
        let mut tick = tokio::time::interval(period);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = shutdown.changed() => return,
            }
            if *shutdown.borrow() {
                return;
            }
            if let Err(e) = self.refresh_counts().await {
                tracing::warn!(error = %e, "cannot refresh the store's row counts");
            }
        }
    }

    /// Awaits `call` (the store method `op`) and records how it went.
    async fn observe<T>(
        &self,
        op: &'static str,
        call: impl Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        let started = Instant::now();
        let result = call.await;
        self.metrics
            .record(op, started.elapsed(), result.as_ref().err());
        result
    }
}

fn gauge_value(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

#[async_trait]
impl Store for MeteredStore {
    async fn create_entry(&self, entry: NewEntry) -> Result<RegistrationEntry, StoreError> {
        let created = self
            .observe("create_entry", self.inner.create_entry(entry))
            .await?;
        self.metrics.entries.inc();
        Ok(created)
    }

    async fn update_entry(
        &self,
        id: &str,
        update: EntryUpdate,
        expected_revision: Option<i64>,
    ) -> Result<RegistrationEntry, StoreError> {
        let call = self.inner.update_entry(id, update, expected_revision);
        self.observe("update_entry", call).await
    }

    async fn delete_entry(&self, id: &str) -> Result<RegistrationEntry, StoreError> {
        let deleted = self
            .observe("delete_entry", self.inner.delete_entry(id))
            .await?;
        self.metrics.entries.dec();
        Ok(deleted)
    }

    async fn get_entry(&self, id: &str) -> Result<Option<RegistrationEntry>, StoreError> {
        self.observe("get_entry", self.inner.get_entry(id)).await
    }

    async fn get_entries(&self, ids: &[String]) -> Result<Vec<RegistrationEntry>, StoreError> {
        self.observe("get_entries", self.inner.get_entries(ids))
            .await
    }

    async fn list_entries(
        &self,
        filter: &EntryFilter,
        page: &Page,
    ) -> Result<Paged<RegistrationEntry>, StoreError> {
        self.observe("list_entries", self.inner.list_entries(filter, page))
            .await
    }

    async fn list_entries_by_parents(
        &self,
        parents: &[SpiffeId],
        page: &Page,
    ) -> Result<Paged<RegistrationEntry>, StoreError> {
        let call = self.inner.list_entries_by_parents(parents, page);
        self.observe("list_entries_by_parents", call).await
    }

    async fn count_entries(&self) -> Result<u64, StoreError> {
        self.observe("count_entries", self.inner.count_entries())
            .await
    }

    async fn upsert_agent(&self, agent: &Agent) -> Result<(), StoreError> {
        self.observe("upsert_agent", self.inner.upsert_agent(agent))
            .await
    }

    async fn get_agent(&self, id: &SpiffeId) -> Result<Option<Agent>, StoreError> {
        self.observe("get_agent", self.inner.get_agent(id)).await
    }

    async fn list_agents(&self, page: &Page) -> Result<Paged<Agent>, StoreError> {
        self.observe("list_agents", self.inner.list_agents(page))
            .await
    }

    async fn set_agent_banned(&self, id: &SpiffeId, banned: bool) -> Result<(), StoreError> {
        let call = self.inner.set_agent_banned(id, banned);
        self.observe("set_agent_banned", call).await
    }

    async fn delete_agent(&self, id: &SpiffeId) -> Result<(), StoreError> {
        self.observe("delete_agent", self.inner.delete_agent(id))
            .await?;
        self.metrics.agents.dec();
        Ok(())
    }

    async fn renew_agent_serial(
        &self,
        id: &SpiffeId,
        presented: &str,
        serial: &str,
        expires_at: SystemTime,
    ) -> Result<(), StoreError> {
        let call = self
            .inner
            .renew_agent_serial(id, presented, serial, expires_at);
        self.observe("renew_agent_serial", call).await
    }

    async fn confirm_agent_serial(&self, id: &SpiffeId, serial: &str) -> Result<(), StoreError> {
        let call = self.inner.confirm_agent_serial(id, serial);
        self.observe("confirm_agent_serial", call).await
    }

    async fn count_agents(&self) -> Result<u64, StoreError> {
        self.observe("count_agents", self.inner.count_agents())
            .await
    }

    async fn create_join_token(&self, token: &JoinToken) -> Result<(), StoreError> {
        self.observe("create_join_token", self.inner.create_join_token(token))
            .await
    }

    async fn consume_join_token(
        &self,
        hash: &[u8],
        now: SystemTime,
    ) -> Result<JoinToken, StoreError> {
        let call = self.inner.consume_join_token(hash, now);
        self.observe("consume_join_token", call).await
    }

    async fn record_attestation_token(
        &self,
        attestation_type: &str,
        hash: &[u8],
        expires_at: SystemTime,
    ) -> Result<(), StoreError> {
        let call = self
            .inner
            .record_attestation_token(attestation_type, hash, expires_at);
        self.observe("record_attestation_token", call).await
    }

    async fn record_issuances(&self, records: &[IssuanceRecord]) -> Result<(), StoreError> {
        self.observe("record_issuances", self.inner.record_issuances(records))
            .await
    }

    async fn count_issuances(&self) -> Result<u64, StoreError> {
        self.observe("count_issuances", self.inner.count_issuances())
            .await
    }

    async fn get_issuance(&self, serial: &str) -> Result<Option<IssuanceRecord>, StoreError> {
        self.observe("get_issuance", self.inner.get_issuance(serial))
            .await
    }

    async fn get_bundle(&self, td: &TrustDomain) -> Result<Option<StoredBundle>, StoreError> {
        self.observe("get_bundle", self.inner.get_bundle(td)).await
    }

    async fn put_bundle(
        &self,
        bundle: &StoredBundle,
        expected_sequence: Option<i64>,
    ) -> Result<(), StoreError> {
        let call = self.inner.put_bundle(bundle, expected_sequence);
        self.observe("put_bundle", call).await
    }

    async fn list_bundles(&self) -> Result<Vec<StoredBundle>, StoreError> {
        self.observe("list_bundles", self.inner.list_bundles())
            .await
    }

    async fn list_key_slots(&self) -> Result<Vec<KeySlot>, StoreError> {
        self.observe("list_key_slots", self.inner.list_key_slots())
            .await
    }

    async fn put_key_slot(&self, slot: &KeySlot, lease: &Lease) -> Result<(), StoreError> {
        self.observe("put_key_slot", self.inner.put_key_slot(slot, lease))
            .await
    }

    async fn delete_key_slot(&self, id: &str, lease: &Lease) -> Result<(), StoreError> {
        self.observe("delete_key_slot", self.inner.delete_key_slot(id, lease))
            .await
    }

    async fn acquire_lease(
        &self,
        name: &str,
        holder: &str,
        ttl: Duration,
    ) -> Result<Option<Lease>, StoreError> {
        let call = self.inner.acquire_lease(name, holder, ttl);
        self.observe("acquire_lease", call).await
    }

    async fn release_lease(&self, lease: &Lease) -> Result<(), StoreError> {
        self.observe("release_lease", self.inner.release_lease(lease))
            .await
    }

    async fn get_lease(&self, name: &str) -> Result<Option<Lease>, StoreError> {
        self.observe("get_lease", self.inner.get_lease(name)).await
    }

    async fn live_issuances_by_key(&self) -> Result<Vec<(String, u64)>, StoreError> {
        let call = self.inner.live_issuances_by_key();
        self.observe("live_issuances_by_key", call).await
    }

    async fn audited(&self, change: Change, event: AuditEvent) -> Result<Changed, StoreError> {
        // The gauges move as with the plain write methods.
        let (entries, agents) = match &change {
            Change::CreateEntry(_) => (1, 0),
            Change::DeleteEntry(_) => (-1, 0),
            Change::DeleteAgent(_) => (0, -1),
            _ => (0, 0),
        };
        let changed = self
            .observe("audited", self.inner.audited(change, event))
            .await?;
        self.metrics.entries.inc_by(entries);
        self.metrics.agents.inc_by(agents);
        Ok(changed)
    }

    async fn append_audit(&self, event: AuditEvent) -> Result<AuditRecord, StoreError> {
        self.observe("append_audit", self.inner.append_audit(event))
            .await
    }

    async fn list_audit(
        &self,
        filter: &AuditFilter,
        after_seq: i64,
        limit: u32,
    ) -> Result<Vec<AuditRecord>, StoreError> {
        let call = self.inner.list_audit(filter, after_seq, limit);
        self.observe("list_audit", call).await
    }

    async fn audit_head(&self) -> Result<Option<(i64, [u8; 32])>, StoreError> {
        self.observe("audit_head", self.inner.audit_head()).await
    }

    async fn put_audit_checkpoint(&self, cp: &AuditCheckpoint) -> Result<(), StoreError> {
        self.observe("put_audit_checkpoint", self.inner.put_audit_checkpoint(cp))
            .await
    }

    async fn list_audit_checkpoints(&self) -> Result<Vec<AuditCheckpoint>, StoreError> {
        let call = self.inner.list_audit_checkpoints();
        self.observe("list_audit_checkpoints", call).await
    }

    async fn get_tenant(&self, name: &str) -> Result<Option<Tenant>, StoreError> {
        self.observe("get_tenant", self.inner.get_tenant(name))
            .await
    }

    async fn list_tenants(&self) -> Result<Vec<Tenant>, StoreError> {
        self.observe("list_tenants", self.inner.list_tenants())
            .await
    }

    async fn list_bindings(&self) -> Result<Vec<RoleBinding>, StoreError> {
        self.observe("list_bindings", self.inner.list_bindings())
            .await
    }

    async fn health(&self) -> Result<(), StoreError> {
        self.observe("health", self.inner.health()).await
    }
}
