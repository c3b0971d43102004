//! SQLite backend: the default, one file in the CA's data directory.
//!
//! Opened in WAL mode (readers never block the writer) with
//! `synchronous=NORMAL`, foreign keys on and a busy timeout so concurrent
//! writers queue instead of failing. Write transactions start with
//! `BEGIN IMMEDIATE` so a read-then-write never deadlocks on lock upgrade.

use std::path::Path;
use std::time::Duration;

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};

use super::sql::SqlStore;
use super::{OpenOptions, StoreError};

#[path = "sql/driver.rs"]
#[expect(
    clippy::duplicate_mod,
    reason = "sql/ is mounted once per driver on purpose: one source, checked against each"
)]
mod driver;

/// The driver `sql/` is compiled against here.
type Db = sqlx::Sqlite;
/// Opens a write transaction holding the write lock from the start.
const BEGIN: &str = "BEGIN IMMEDIATE";
/// Opens a read transaction: in WAL mode every statement in it reads the
/// snapshot its first read took.
const SNAPSHOT: &str = "BEGIN DEFERRED";
/// The lease-fenced writes, with this driver's lease check.
const FENCED: super::queries::Fenced = super::queries::FENCED_SQLITE;
/// The locking reads, with this driver's locks.
const LOCKED: super::queries::Locked = super::queries::LOCKED_SQLITE;

/// How long a writer waits for the database lock before failing.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);
/// What to check when the file cannot be opened.
const HINT: &str = "check that the data directory exists (or can be created) and is writable \
                    by the user running the CA, and that the file is a meshid SQLite database";

/// A [`Store`](super::Store) in a SQLite database.
pub type SqliteStore = SqlStore<sqlx::Sqlite>;

// === impl SqliteStore ===

impl SqliteStore {
    /// Opens (creating if missing) the database file at `path` and applies migrations.
    pub async fn open(path: &Path, opts: &OpenOptions) -> Result<Self, StoreError> {
        let unreachable =
            |source: Box<dyn std::error::Error + Send + Sync>| StoreError::Unreachable {
                target: path.display().to_string(),
                hint: HINT,
                source,
            };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| unreachable(Box::new(e)))?;
        }
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            .busy_timeout(BUSY_TIMEOUT);
        let pool = SqlitePoolOptions::new()
            .max_connections(opts.max_connections.max(1))
            .acquire_timeout(opts.connect_timeout)
            .connect_with(options)
            .await
            .map_err(|e| unreachable(Box::new(e)))?;
        Self::migrate(pool, opts).await
    }

    /// Opens a private in-memory database (one connection; gone when dropped)
    /// stamping rows with the system clock.
    pub async fn open_in_memory() -> Result<Self, StoreError> {
        Self::open_in_memory_with(&OpenOptions::default()).await
    }

    /// Opens a private in-memory database with `opts.clock`; the pool
    /// settings of `opts` do not apply (one connection, kept forever).
    pub async fn open_in_memory_with(opts: &OpenOptions) -> Result<Self, StoreError> {
        let options = SqliteConnectOptions::new()
            .in_memory(true)
            .foreign_keys(true)
            .busy_timeout(BUSY_TIMEOUT);
        let pool = SqlitePoolOptions::new()
            .max_connections(1)
            .min_connections(1)
            .idle_timeout(None)
            .max_lifetime(None)
            .connect_with(options)
            .await
            .map_err(|e| StoreError::Unreachable {
                target: "sqlite::memory:".into(),
                hint: "SQLite could not allocate an in-memory database",
                source: Box::new(e),
            })?;
        Self::migrate(pool, opts).await
    }

    async fn migrate(pool: sqlx::SqlitePool, opts: &OpenOptions) -> Result<Self, StoreError> {
        sqlx::migrate!("migrations/sqlite").run(&pool).await?;
        Ok(Self {
            pool,
            clock: opts.clock.clone(),
            audit_issuances: opts.audit_issuances,
        })
    }
}
