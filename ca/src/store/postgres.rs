//! PostgreSQL backend: for CA replicas sharing one database.

use std::str::FromStr;

use sqlx::Connection;
use sqlx::postgres::{PgConnectOptions, PgConnection, PgPoolOptions};

use super::sql::SqlStore;
use super::{OpenOptions, StoreError, StoreUrl};

// The second mount of sql/ (the lint expectation is on sqlite.rs's).
#[path = "sql/driver.rs"]
mod driver;

/// The driver `sql/` is compiled against here.
type Db = sqlx::Postgres;
/// Opens a write transaction.
const BEGIN: &str = "BEGIN";
/// Opens a read transaction whose statements all read one snapshot (an
/// entry and its selectors read apart would otherwise race a delete).
const SNAPSHOT: &str = "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY";
/// The lease-fenced writes, with this driver's lease check.
const FENCED: super::queries::Fenced = super::queries::FENCED_POSTGRES;
/// The locking reads, with this driver's locks.
const LOCKED: super::queries::Locked = super::queries::LOCKED_POSTGRES;

/// What to check when the server cannot be reached.
const HINT: &str = "check that PostgreSQL is running and reachable at that host and port, \
                    that the database exists and that the user and password are right";

/// A [`Store`](super::Store) in a PostgreSQL database.
pub type PostgresStore = SqlStore<sqlx::Postgres>;

// === impl PostgresStore ===

impl PostgresStore {
    /// Connects to `url` (`postgres://user:password@host:port/db`) and applies migrations.
    pub async fn open(url: &StoreUrl, opts: &OpenOptions) -> Result<Self, StoreError> {
        let target = url.to_string();
        let options = PgConnectOptions::from_str(url.expose()).map_err(|e| StoreError::BadUrl {
            url: target.clone(),
            reason: e.to_string(),
        })?;
        let connected = PgPoolOptions::new()
            .max_connections(opts.max_connections.max(1))
            .acquire_timeout(opts.connect_timeout)
            .connect_with(options.clone())
            .await;
        let pool = match connected {
            Ok(pool) => pool,
            Err(err) => {
                // A refused connection is retried until the timeout and then
                // reported as "pool timed out"; one direct attempt tells why.
                let source = match err {
                    sqlx::Error::PoolTimedOut => {
                        match tokio::time::timeout(
                            opts.connect_timeout,
                            PgConnection::connect_with(&options),
                        )
                        .await
                        {
                            Ok(Err(cause)) => cause,
                            _ => sqlx::Error::PoolTimedOut,
                        }
                    }
                    other => other,
                };
                return Err(StoreError::Unreachable {
                    target,
                    hint: HINT,
                    source: Box::new(source),
                });
            }
        };
        sqlx::migrate!("migrations/postgres").run(&pool).await?;
        Ok(Self {
            pool,
            clock: opts.clock.clone(),
            audit_issuances: opts.audit_issuances,
        })
    }
}
