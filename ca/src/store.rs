//! The CA's durable state behind one [`Store`] trait.
//!
//! Two backends run the same SQL and the same conformance tests
//! (`tests/store_conformance.rs`): [`SqliteStore`], the default (one file in
//! the data directory), and [`PostgresStore`] for CA replicas. Versioned
//! migrations in `migrations/sqlite/` and `migrations/postgres/` are applied
//! when a store opens. Rows are stamped from the [`OpenOptions::clock`]
//! (the system clock unless a test passes a manual one), never from the
//! database's clock. [`MeteredStore`] wraps any store with Prometheus
//! metrics; the CA serves through it.
//!
//! - `model`: what is stored; `codec`: values ⇄ columns; `error`: [`StoreError`]
//! - `tenancy`: [`Tenant`], [`Role`], [`RoleBinding`]; `audit`: the
//!   hash-chained audit log ([`AuditRecord`], [`record_hash`]); `change`:
//!   the admin writes [`Store::audited`] applies with their audit record
//! - `url`: [`StoreUrl`]; `queries`: the SQL text
//! - `sql`: [`SqlStore`], the code both drivers share; `sqlite`, `postgres`: opening each
//! - `metrics`, `metered`: [`StoreMetrics`], [`MeteredStore`]
//!
//! ```no_run
//! # async fn demo() -> Result<(), meshid_ca::store::StoreError> {
//! let url = meshid_ca::store::StoreUrl::parse("sqlite:///var/lib/meshid/ca.db")?;
//! let store = meshid_ca::store::open(&url).await?;
//! store.health().await?;
//! # Ok(()) }
//! ```

mod audit;
mod change;
mod codec;
mod error;
mod metered;
mod metrics;
mod model;
mod postgres;
mod queries;
mod sql;
mod sqlite;
mod tenancy;
pub(crate) mod url;

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use meshid_identity::{SpiffeId, TrustDomain};
use meshid_runtime::clock::{self, SharedClock};

pub use audit::{
    AuditCheckpoint, AuditEvent, AuditFilter, AuditRecord, GENESIS, MAX_AUDIT_CHECKPOINTS,
    MAX_AUDIT_FIELD, MAX_AUDIT_SHORT, checkpoint_message, record_hash,
};
pub use change::{Change, Changed};
pub use error::StoreError;
pub use metered::{COUNT_REFRESH, MeteredStore};
pub use metrics::StoreMetrics;
pub use model::{
    Agent, EntryFilter, EntryUpdate, IssuanceRecord, JoinToken, KeyKind, KeySlot, Lease,
    MAX_DNS_NAMES, MAX_FEDERATES_WITH, MAX_FILTER_TENANTS, MAX_GET_ENTRIES, MAX_OWNER_LEN,
    MAX_PAGE_LIMIT, MAX_SELECTORS, MAX_SYNC_PARENTS, NewEntry, Page, RegistrationEntry, SlotState,
    StoredBundle, owner_problem,
};
pub use postgres::PostgresStore;
pub use sql::SqlStore;
pub use sqlite::SqliteStore;
pub use tenancy::{
    MAX_BINDINGS, MAX_TENANT_PREFIXES, MAX_TENANT_STRING, MAX_TENANTS, Role, RoleBinding, Tenant,
    UnknownRole, tenant_name_problem,
};
pub use url::StoreUrl;

/// A page of items and the cursor for the next page (`None` on the last page).
pub type Paged<T> = (Vec<T>, Option<String>);

/// Everything the CA persists. Object safe: hold it as `Arc<dyn Store>`.
#[async_trait]
pub trait Store: Send + Sync + fmt::Debug {
    /// Creates an entry (ID, revision 1 and timestamps assigned by the store).
    /// Same SPIFFE ID, parent and selector set as an existing entry →
    /// [`StoreError::AlreadyExists`]; a tenant that does not exist →
    /// [`StoreError::NotFound`].
    async fn create_entry(&self, entry: NewEntry) -> Result<RegistrationEntry, StoreError>;
    /// Applies `update` and bumps the revision. If `expected_revision` is set
    /// and differs from the stored one → [`StoreError::Conflict`].
    async fn update_entry(
        &self,
        id: &str,
        update: EntryUpdate,
        expected_revision: Option<i64>,
    ) -> Result<RegistrationEntry, StoreError>;
    /// Deletes an entry and returns what it was.
    async fn delete_entry(&self, id: &str) -> Result<RegistrationEntry, StoreError>;
    /// One entry by ID.
    async fn get_entry(&self, id: &str) -> Result<Option<RegistrationEntry>, StoreError>;
    /// The entries with the given IDs, in one database round trip, in ID
    /// order, each once. IDs that name no entry are left out; repeated IDs
    /// count once. More than [`MAX_GET_ENTRIES`] IDs (repeats included) →
    /// [`StoreError::Invalid`].
    async fn get_entries(&self, ids: &[String]) -> Result<Vec<RegistrationEntry>, StoreError>;
    /// Entries matching `filter`, in ID order, one page at a time.
    async fn list_entries(
        &self,
        filter: &EntryFilter,
        page: &Page,
    ) -> Result<Paged<RegistrationEntry>, StoreError>;
    /// The agent sync query: entries whose parent is any of `parents`
    /// (at most [`MAX_SYNC_PARENTS`]), in ID order.
    async fn list_entries_by_parents(
        &self,
        parents: &[SpiffeId],
        page: &Page,
    ) -> Result<Paged<RegistrationEntry>, StoreError>;
    /// How many entries exist.
    async fn count_entries(&self) -> Result<u64, StoreError>;

    /// Inserts or replaces an agent (its selectors, serials and tenant
    /// too; `created_at` of an existing agent is kept). A tenant that does
    /// not exist → [`StoreError::NotFound`].
    async fn upsert_agent(&self, agent: &Agent) -> Result<(), StoreError>;
    /// One agent by SPIFFE ID.
    async fn get_agent(&self, id: &SpiffeId) -> Result<Option<Agent>, StoreError>;
    /// Agents in SPIFFE ID order; the cursor is the last agent's ID.
    async fn list_agents(&self, page: &Page) -> Result<Paged<Agent>, StoreError>;
    /// Bans or un-bans an agent; unknown → [`StoreError::NotFound`].
    async fn set_agent_banned(&self, id: &SpiffeId, banned: bool) -> Result<(), StoreError>;
    /// Evicts an agent (it must attest again); unknown → [`StoreError::NotFound`].
    async fn delete_agent(&self, id: &SpiffeId) -> Result<(), StoreError>;
    /// Records a renewal, atomically: the agent called with its SVID of
    /// serial `presented` and was issued `serial`. Afterwards `serial` is
    /// current and `presented` is the previous serial (accepted until
    /// [`Store::confirm_agent_serial`]); any other older serial is no
    /// longer the agent's. Unknown agent → [`StoreError::NotFound`]; banned,
    /// or `presented` is neither its current nor its previous serial (a
    /// concurrent renewal or re-attestation replaced it) →
    /// [`StoreError::Conflict`], nothing changed.
    async fn renew_agent_serial(
        &self,
        id: &SpiffeId,
        presented: &str,
        serial: &str,
        expires_at: SystemTime,
    ) -> Result<(), StoreError>;
    /// The agent called with its current SVID `serial`, so it has the
    /// renewed one: forget the previous serial. Does nothing if `serial` is
    /// not current or there is no previous serial (idempotent).
    async fn confirm_agent_serial(&self, id: &SpiffeId, serial: &str) -> Result<(), StoreError>;
    /// How many agents exist.
    async fn count_agents(&self) -> Result<u64, StoreError>;

    /// Stores a new join token (its hash must be 32 bytes; its tenant must
    /// exist, else [`StoreError::NotFound`]).
    async fn create_join_token(&self, token: &JoinToken) -> Result<(), StoreError>;
    /// Atomically marks the token whose secret hashes to `hash` as used at
    /// `now` and returns it. Exactly one of any concurrent callers wins;
    /// the others get [`StoreError::TokenUsed`]. Unknown →
    /// [`StoreError::NotFound`], expired → [`StoreError::TokenExpired`].
    async fn consume_join_token(
        &self,
        hash: &[u8],
        now: SystemTime,
    ) -> Result<JoinToken, StoreError>;

    /// Records that attestation evidence hashing to `hash` (32 bytes, the
    /// SHA-256 of a `k8s_psat` token) was used, until `expires_at`. One
    /// atomic statement, also across CA replicas on one PostgreSQL: if the
    /// hash is recorded and not expired (by the store's clock) →
    /// [`StoreError::Conflict`] and nothing changes. Rows past their
    /// `expires_at` are deleted by each call.
    async fn record_attestation_token(
        &self,
        attestation_type: &str,
        hash: &[u8],
        expires_at: SystemTime,
    ) -> Result<(), StoreError>;

    /// Records issued certificates in one transaction: all or none
    /// (a duplicate serial → [`StoreError::AlreadyExists`], nothing stored).
    /// Unless [`OpenOptions::audit_issuances`] is off, the same
    /// transaction appends `svid.issue` audit records listing every
    /// certificate (one record per agent and tenant of the batch).
    async fn record_issuances(&self, records: &[IssuanceRecord]) -> Result<(), StoreError>;
    /// How many issuance records exist.
    async fn count_issuances(&self) -> Result<u64, StoreError>;
    /// One issuance record by serial.
    async fn get_issuance(&self, serial: &str) -> Result<Option<IssuanceRecord>, StoreError>;

    /// The stored bundle of a trust domain.
    async fn get_bundle(&self, td: &TrustDomain) -> Result<Option<StoredBundle>, StoreError>;
    /// Writes a bundle. `expected_sequence`: `None` writes unconditionally;
    /// `Some(0)` only creates (fails if one exists); `Some(n)` only replaces a
    /// bundle whose stored sequence is `n`. A failed check →
    /// [`StoreError::Conflict`].
    async fn put_bundle(
        &self,
        bundle: &StoredBundle,
        expected_sequence: Option<i64>,
    ) -> Result<(), StoreError>;
    /// All stored bundles, by trust domain.
    async fn list_bundles(&self) -> Result<Vec<StoredBundle>, StoreError>;

    /// The CA key journal: every replica's key slots, in ID order.
    async fn list_key_slots(&self) -> Result<Vec<KeySlot>, StoreError>;
    /// Inserts or replaces a key slot, only while `lease` is held with its
    /// token (checked by the database in the same statement as the write),
    /// else [`StoreError::LeaseLost`] and nothing is written. The slot's
    /// `id` must be its [`KeySlot::slot_id`] and its optional times must
    /// fit its state (`activated_at` once active, `retired_at` exactly
    /// when old), else [`StoreError::Invalid`].
    async fn put_key_slot(&self, slot: &KeySlot, lease: &Lease) -> Result<(), StoreError>;
    /// Deletes a key slot, fenced like [`Store::put_key_slot`]; an unknown
    /// ID → [`StoreError::NotFound`].
    async fn delete_key_slot(&self, id: &str, lease: &Lease) -> Result<(), StoreError>;
    /// Takes lease `name` for `holder` for `ttl` (1 ms to 24 h) in one
    /// atomic statement: `Some` if it was free, expired, or already
    /// `holder`'s (then renewed with the same token), `None` while another
    /// holder has it. The token grows whenever the lease changes hands or
    /// is re-taken after it expired. Times come from the store's clock.
    async fn acquire_lease(
        &self,
        name: &str,
        holder: &str,
        ttl: Duration,
    ) -> Result<Option<Lease>, StoreError>;
    /// Gives `lease` up at once (it stays recorded, expired, so the next
    /// token is higher); does nothing unless it is held with that token.
    async fn release_lease(&self, lease: &Lease) -> Result<(), StoreError>;
    /// Lease `name` as last recorded (its expiry is past once it lapsed or
    /// was released); `None` if it was never taken. For telling who holds
    /// it: only [`Store::acquire_lease`] takes it.
    async fn get_lease(&self, name: &str) -> Result<Option<Lease>, StoreError>;
    /// How many issuance records of each signing key
    /// ([`IssuanceRecord::ca_key_id`]) are still valid (`not_after` after
    /// the store clock's now), by key ID; records without a key ID are
    /// not counted.
    async fn live_issuances_by_key(&self) -> Result<Vec<(String, u64)>, StoreError>;

    /// One admin write and its audit record in one transaction: both or
    /// neither. The store fills `event.before` / `event.after` with the
    /// JSON of the row before/after (entries, tokens without their hash,
    /// agents, bundles, tenants, bindings) when the caller left them `""`.
    /// A change that fails (e.g. a revision conflict) writes no record:
    /// the caller appends its `failed: …` record with
    /// [`Store::append_audit`].
    async fn audited(&self, change: Change, event: AuditEvent) -> Result<Changed, StoreError>;
    /// Appends a record on its own (denied or failed writes, rotation
    /// steps, config at start-up) and returns it as stored.
    async fn append_audit(&self, event: AuditEvent) -> Result<AuditRecord, StoreError>;
    /// Records with seq > `after_seq` matching `filter`, in seq order, at
    /// most `limit` (clamped to `1..=`[`MAX_PAGE_LIMIT`]).
    async fn list_audit(
        &self,
        filter: &AuditFilter,
        after_seq: i64,
        limit: u32,
    ) -> Result<Vec<AuditRecord>, StoreError>;
    /// The recorded end of the chain (seq, hash); `None` before the first record.
    async fn audit_head(&self) -> Result<Option<(i64, [u8; 32])>, StoreError>;
    /// Stores a checkpoint; one per seq (a second → [`StoreError::AlreadyExists`]).
    async fn put_audit_checkpoint(&self, cp: &AuditCheckpoint) -> Result<(), StoreError>;
    /// The newest [`MAX_AUDIT_CHECKPOINTS`] checkpoints, in seq order.
    async fn list_audit_checkpoints(&self) -> Result<Vec<AuditCheckpoint>, StoreError>;
    /// One tenant by name.
    async fn get_tenant(&self, name: &str) -> Result<Option<Tenant>, StoreError>;
    /// Every tenant (at most [`MAX_TENANTS`]), in name order.
    async fn list_tenants(&self) -> Result<Vec<Tenant>, StoreError>;
    /// Every stored role binding (at most [`MAX_BINDINGS`]), in (tenant,
    /// subject, role) order.
    async fn list_bindings(&self) -> Result<Vec<RoleBinding>, StoreError>;

    /// Checks the database answers (`SELECT 1`).
    async fn health(&self) -> Result<(), StoreError>;
}

/// Tuning for [`open_with`].
#[derive(Debug, Clone)]
pub struct OpenOptions {
    /// How long to keep trying to connect (and to wait for a pooled connection).
    pub connect_timeout: Duration,
    /// Pool size.
    pub max_connections: u32,
    /// The time rows are stamped with (`created_at`, `updated_at`).
    pub clock: SharedClock,
    /// [`Store::record_issuances`] also appends `svid.issue` audit
    /// records listing every certificate (`[audit] issuances` in ca.toml; default on).
    pub audit_issuances: bool,
}

impl Default for OpenOptions {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(10),
            max_connections: 16,
            clock: clock::system(),
            audit_issuances: true,
        }
    }
}

/// Opens the store at `url` with default [`OpenOptions`]; see [`open_with`].
pub async fn open(url: &StoreUrl) -> Result<Arc<dyn Store>, StoreError> {
    open_with(url, &OpenOptions::default()).await
}

/// Opens the store at `url` and applies pending migrations.
pub async fn open_with(url: &StoreUrl, opts: &OpenOptions) -> Result<Arc<dyn Store>, StoreError> {
    Ok(match url.target() {
        url::Target::Postgres => Arc::new(PostgresStore::open(url, opts).await?),
        url::Target::SqliteMemory => Arc::new(SqliteStore::open_in_memory_with(opts).await?),
        url::Target::SqliteFile(path) => Arc::new(SqliteStore::open(path, opts).await?),
    })
}
