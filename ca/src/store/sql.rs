//! The SQL store, written once for both drivers.
//!
//! [`SqlStore`] is a sqlx pool plus the clock that stamps rows. The code
//! that talks to the database lives in plain Rust files under `sql/`,
//! each written against a driver named `Db`; the backend modules
//! (`sqlite.rs`, `postgres.rs`) mount those files with `#[path]` after
//! naming their driver, so the same source is type-checked against each
//! driver and there is one copy to read:
//!
//! | file | what |
//! |---|---|
//! | `sql/driver.rs` | the root the backends mount: `Conn`, `This` |
//! | `sql/decode.rs` | rows → model values |
//! | `sql/selectors.rs` | selector side tables of entries and agents |
//! | `sql/entries.rs` | registration entries: write, read one |
//! | `sql/entry_lists.rs` | registration entries: by IDs, filters, parents; paging |
//! | `sql/agents.rs` | agents and their SVID serials |
//! | `sql/tokens.rs` | join tokens and issuance records |
//! | `sql/attestation_tokens.rs` | attestation evidence seen once (replay guard) |
//! | `sql/bundles.rs` | trust bundles |
//! | `sql/key_slots.rs` | the CA key journal, written under a lease |
//! | `sql/leases.rs` | named leases and their fencing tokens |
//! | `sql/store_impl.rs` | the [`Store`](super::Store) impl, one line per method |
//!
//! The query text itself is in [`queries`](super::queries); what does not
//! touch the driver is here.

use std::fmt;

use meshid_runtime::clock::SharedClock;

use super::StoreError;
use super::codec;
use super::model::RegistrationEntry;

/// Rows per multi-row INSERT of issuance records (7 parameters each).
pub(crate) const ISSUANCE_CHUNK: usize = 1000;

/// A [`Store`](super::Store) on one sqlx driver: [`SqliteStore`] or
/// [`PostgresStore`].
///
/// [`SqliteStore`]: super::SqliteStore
/// [`PostgresStore`]: super::PostgresStore
pub struct SqlStore<DB: sqlx::Database> {
    pub(crate) pool: sqlx::Pool<DB>,
    /// The time rows are stamped with (`created_at`, `updated_at`).
    pub(crate) clock: SharedClock,
    /// Whether issuances are also recorded in the audit log.
    pub(crate) audit_issuances: bool,
}

// === impl SqlStore ===

impl<DB: sqlx::Database> SqlStore<DB> {
    /// Closes the pool, waiting for connections to finish (on SQLite this
    /// checkpoints the WAL).
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

impl<DB: sqlx::Database> fmt::Debug for SqlStore<DB> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqlStore")
            .field("driver", &DB::NAME)
            .field("pool", &self.pool)
            .field("clock", &self.clock)
            .finish()
    }
}

/// An entry's fields in column form, checked and canonical.
pub(crate) struct EntryColumns {
    pub(crate) selector_key: String,
    pub(crate) dns_names: String,
    pub(crate) federates_with: String,
    pub(crate) x509_ttl: i64,
    pub(crate) jwt_ttl: i64,
}

impl EntryColumns {
    /// Checks `e.owner`, canonicalizes `e.selectors` in place and encodes
    /// the other columns.
    pub(crate) fn of(e: &mut RegistrationEntry) -> Result<Self, StoreError> {
        codec::check_owner(&e.owner)?;
        e.selectors = codec::canonical_selectors(std::mem::take(&mut e.selectors))?;
        Ok(Self {
            selector_key: codec::selector_key(&e.selectors),
            dns_names: codec::encode_dns_names(&e.dns_names)?,
            federates_with: codec::encode_trust_domains(&e.federates_with)?,
            x509_ttl: codec::to_secs(e.x509_ttl)?,
            jwt_ttl: codec::to_secs(e.jwt_ttl)?,
        })
    }
}

/// What makes an entry unique, for an [`StoreError::AlreadyExists`].
pub(crate) fn entry_identity(e: &RegistrationEntry) -> String {
    format!(
        "with spiffe_id {}, parent_id {} and these selectors",
        e.spiffe_id, e.parent_id
    )
}

/// `NotFound` unless a statement touched a row.
pub(crate) fn found(rows: u64, kind: &'static str, key: &str) -> Result<(), StoreError> {
    if rows == 0 {
        Err(StoreError::NotFound {
            kind,
            key: key.to_owned(),
        })
    } else {
        Ok(())
    }
}

/// A non-negative `COUNT(*)`.
pub(crate) fn count(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}
