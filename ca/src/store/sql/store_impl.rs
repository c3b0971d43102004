//! The [`Store`] impl of this backend: each method is one call into the
//! module that owns its table.

use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use meshid_identity::{SpiffeId, TrustDomain};

use super::{
    This, agents, attestation_tokens, audit, audited, bindings, bundles, entries, entry_lists,
    key_slots, leases, tenants, tokens,
};
use crate::store::model::{
    Agent, EntryFilter, EntryUpdate, IssuanceRecord, JoinToken, KeySlot, Lease, NewEntry, Page,
    RegistrationEntry, StoredBundle,
};
use crate::store::{
    AuditCheckpoint, AuditEvent, AuditFilter, AuditRecord, Change, Changed, Paged, RoleBinding,
    Store, StoreError, Tenant, queries,
};

#[async_trait]
impl Store for This {
    async fn create_entry(&self, entry: NewEntry) -> Result<RegistrationEntry, StoreError> {
        entries::create(self, entry).await
    }

    async fn update_entry(
        &self,
        id: &str,
        update: EntryUpdate,
        expected_revision: Option<i64>,
    ) -> Result<RegistrationEntry, StoreError> {
        entries::update(self, id, update, expected_revision).await
    }

    async fn delete_entry(&self, id: &str) -> Result<RegistrationEntry, StoreError> {
        entries::delete(self, id).await
    }

    async fn get_entry(&self, id: &str) -> Result<Option<RegistrationEntry>, StoreError> {
        entries::get(self, id).await
    }

    async fn get_entries(&self, ids: &[String]) -> Result<Vec<RegistrationEntry>, StoreError> {
        entry_lists::get_many(self, ids).await
    }

    async fn list_entries(
        &self,
        filter: &EntryFilter,
        page: &Page,
    ) -> Result<Paged<RegistrationEntry>, StoreError> {
        entry_lists::list(self, filter, page).await
    }

    async fn list_entries_by_parents(
        &self,
        parents: &[SpiffeId],
        page: &Page,
    ) -> Result<Paged<RegistrationEntry>, StoreError> {
        entry_lists::list_by_parents(self, parents, page).await
    }

    async fn count_entries(&self) -> Result<u64, StoreError> {
        entry_lists::count(self).await
    }

    async fn upsert_agent(&self, agent: &Agent) -> Result<(), StoreError> {
        agents::upsert(self, agent).await
    }

    async fn get_agent(&self, id: &SpiffeId) -> Result<Option<Agent>, StoreError> {
        agents::get(self, id).await
    }

    async fn list_agents(&self, page: &Page) -> Result<Paged<Agent>, StoreError> {
        agents::list(self, page).await
    }

    async fn set_agent_banned(&self, id: &SpiffeId, banned: bool) -> Result<(), StoreError> {
        agents::set_banned(self, id, banned).await
    }

    async fn delete_agent(&self, id: &SpiffeId) -> Result<(), StoreError> {
        agents::delete(self, id).await
    }

    async fn renew_agent_serial(
        &self,
        id: &SpiffeId,
        presented: &str,
        serial: &str,
        expires_at: SystemTime,
    ) -> Result<(), StoreError> {
        agents::renew_serial(self, id, presented, serial, expires_at).await
    }

    async fn confirm_agent_serial(&self, id: &SpiffeId, serial: &str) -> Result<(), StoreError> {
        agents::confirm_serial(self, id, serial).await
    }

    async fn count_agents(&self) -> Result<u64, StoreError> {
        agents::count(self).await
    }

    async fn create_join_token(&self, token: &JoinToken) -> Result<(), StoreError> {
        tokens::create(self, token).await
    }

    async fn consume_join_token(
        &self,
        hash: &[u8],
        now: SystemTime,
    ) -> Result<JoinToken, StoreError> {
        tokens::consume(self, hash, now).await
    }

    async fn record_attestation_token(
        &self,
        attestation_type: &str,
        hash: &[u8],
        expires_at: SystemTime,
    ) -> Result<(), StoreError> {
        attestation_tokens::record(self, attestation_type, hash, expires_at).await
    }

    async fn record_issuances(&self, records: &[IssuanceRecord]) -> Result<(), StoreError> {
        tokens::record_issuances(self, records).await
    }

    async fn count_issuances(&self) -> Result<u64, StoreError> {
        tokens::count_issuances(self).await
    }

    async fn get_issuance(&self, serial: &str) -> Result<Option<IssuanceRecord>, StoreError> {
        tokens::get_issuance(self, serial).await
    }

    async fn get_bundle(&self, td: &TrustDomain) -> Result<Option<StoredBundle>, StoreError> {
        bundles::get(self, td).await
    }

    async fn put_bundle(
        &self,
        bundle: &StoredBundle,
        expected_sequence: Option<i64>,
    ) -> Result<(), StoreError> {
        bundles::put(self, bundle, expected_sequence).await
    }

    async fn list_bundles(&self) -> Result<Vec<StoredBundle>, StoreError> {
        bundles::list(self).await
    }

    async fn list_key_slots(&self) -> Result<Vec<KeySlot>, StoreError> {
        key_slots::list(self).await
    }

    async fn put_key_slot(&self, slot: &KeySlot, lease: &Lease) -> Result<(), StoreError> {
        key_slots::put(self, slot, lease).await
    }

    async fn delete_key_slot(&self, id: &str, lease: &Lease) -> Result<(), StoreError> {
        key_slots::delete(self, id, lease).await
    }

    async fn acquire_lease(
        &self,
        name: &str,
        holder: &str,
        ttl: Duration,
    ) -> Result<Option<Lease>, StoreError> {
        leases::acquire(self, name, holder, ttl).await
    }

    async fn release_lease(&self, lease: &Lease) -> Result<(), StoreError> {
        leases::release(self, lease).await
    }

    async fn get_lease(&self, name: &str) -> Result<Option<Lease>, StoreError> {
        leases::get(self, name).await
    }

    async fn live_issuances_by_key(&self) -> Result<Vec<(String, u64)>, StoreError> {
        tokens::live_issuances_by_key(self).await
    }

    async fn audited(&self, change: Change, event: AuditEvent) -> Result<Changed, StoreError> {
        audited::audited(self, change, event).await
    }

    async fn append_audit(&self, event: AuditEvent) -> Result<AuditRecord, StoreError> {
        audit::append(self, event).await
    }

    async fn list_audit(
        &self,
        filter: &AuditFilter,
        after_seq: i64,
        limit: u32,
    ) -> Result<Vec<AuditRecord>, StoreError> {
        audit::list(self, filter, after_seq, limit).await
    }

    async fn audit_head(&self) -> Result<Option<(i64, [u8; 32])>, StoreError> {
        audit::head(self).await
    }

    async fn put_audit_checkpoint(&self, cp: &AuditCheckpoint) -> Result<(), StoreError> {
        audit::put_checkpoint(self, cp).await
    }

    async fn list_audit_checkpoints(&self) -> Result<Vec<AuditCheckpoint>, StoreError> {
        audit::list_checkpoints(self).await
    }

    async fn get_tenant(&self, name: &str) -> Result<Option<Tenant>, StoreError> {
        tenants::get(self, name).await
    }

    async fn list_tenants(&self) -> Result<Vec<Tenant>, StoreError> {
        tenants::list(self).await
    }

    async fn list_bindings(&self) -> Result<Vec<RoleBinding>, StoreError> {
        bindings::list(self).await
    }

    async fn health(&self) -> Result<(), StoreError> {
        sqlx::query(queries::PING).execute(&self.pool).await?;
        Ok(())
    }
}
