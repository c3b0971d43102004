//! PostgreSQL backend: for CA replicas sharing one database.

use std::str::FromStr;

use sqlx::Connection;
use sqlx::postgres::{PgConnectOptions, PgConnection, PgPoolOptions};

use super::OpenOptions;
use super::error::redact_url;
use super::sql::{agent_cols, entry_cols, impl_sql_store, token_cols};

/// What to check when the server cannot be reached.
const HINT: &str = "check that PostgreSQL is running and reachable at that host and port, \
                    that the database exists and that the user and password are right";

/// A [`Store`](super::Store) in a PostgreSQL database.
#[derive(Debug, Clone)]
pub struct PostgresStore {
    pool: sqlx::PgPool,
}

// === impl PostgresStore ===

impl PostgresStore {
    /// Connects to `url` (`postgres://user:password@host:port/db`) and applies migrations.
    pub async fn open(url: &str, opts: &OpenOptions) -> Result<Self, super::StoreError> {
        let target = redact_url(url);
        let options = PgConnectOptions::from_str(url).map_err(|e| super::StoreError::BadUrl {
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
                return Err(super::StoreError::Unreachable {
                    target,
                    hint: HINT,
                    source: Box::new(source),
                });
            }
        };
        sqlx::migrate!("migrations/postgres").run(&pool).await?;
        Ok(Self { pool })
    }

    /// Closes the pool, waiting for connections to finish.
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

impl_sql_store!(PostgresStore, sqlx::Postgres, sqlx::PgConnection, "BEGIN");
