//! Which store the benchmarked CA uses (`--store`) and the CA replicas
//! started on it: one replica on SQLite in its data directory, or two
//! replicas (each its own in-process CA and data directory, so its own
//! signing CA) on one fresh PostgreSQL database; each run with or without
//! the audit log's issuance records (`--audit`).

use std::sync::Arc;

use anyhow::Context as _;
use meshid_ca::config::{AuditConfig, CaConfig, KeysConfig};
use meshid_ca::server::CaServer;
use meshid_ca::store::{Store, StoreUrl};
use sqlx::Connection as _;

/// `--store`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum StoreChoice {
    /// One replica, SQLite in its data directory.
    Sqlite,
    /// Two replicas on one PostgreSQL database.
    #[value(name = "postgres-2")]
    Postgres2,
    /// SQLite, then PostgreSQL with two replicas, in one run.
    Both,
}

// === impl StoreChoice ===

impl StoreChoice {
    /// The configurations this choice runs, in order.
    pub fn backends(self) -> &'static [Backend] {
        match self {
            Self::Sqlite => &[Backend::Sqlite],
            Self::Postgres2 => &[Backend::Postgres],
            Self::Both => &[Backend::Sqlite, Backend::Postgres],
        }
    }

    /// The flag's value, to forward it to a child process.
    pub fn name(self) -> &'static str {
        match self {
            Self::Sqlite => "sqlite",
            Self::Postgres2 => "postgres-2",
            Self::Both => "both",
        }
    }
}

/// `--audit`: whether the CA appends `svid.issue` audit records listing
/// every issued certificate (`[audit] issuances`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum AuditChoice {
    /// Every issuance recorded (the CA's default).
    On,
    /// `[audit] issuances = false`.
    Off,
    /// Off, then on, for each store, in one run.
    Both,
}

// === impl AuditChoice ===

impl AuditChoice {
    /// The `[audit] issuances` settings this choice runs, in order.
    pub fn settings(self) -> &'static [bool] {
        match self {
            Self::On => &[true],
            Self::Off => &[false],
            Self::Both => &[false, true],
        }
    }

    /// The flag's value, to forward it to a child process.
    pub fn name(self) -> &'static str {
        match self {
            Self::On => "on",
            Self::Off => "off",
            Self::Both => "both",
        }
    }
}

/// One configuration of the run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// One replica on SQLite.
    Sqlite,
    /// Two replicas on PostgreSQL.
    Postgres,
}

// === impl Backend ===

impl Backend {
    /// How many CA replicas this configuration runs.
    pub fn replicas(self) -> usize {
        match self {
            Self::Sqlite => 1,
            Self::Postgres => 2,
        }
    }

    /// Short label for the tables.
    pub fn label(self) -> &'static str {
        match self {
            Self::Sqlite => "1 replica, SQLite",
            Self::Postgres => "2 replicas, one PostgreSQL",
        }
    }
}

/// The replicas of one configuration and the database they share.
pub struct Replicas {
    /// The running CAs; agent `i` uses `cas[i % cas.len()]`.
    pub cas: Vec<CaServer>,
    database: Option<Database>,
    _dirs: Vec<tempfile::TempDir>,
}

// === impl Replicas ===

impl Replicas {
    /// Starts `backend`'s replicas one after the other, each with its own
    /// data directory and `keys`, recording issuances in the audit log when
    /// `audit`; PostgreSQL replicas share a database created on
    /// `postgres_url`'s server for this run.
    pub async fn start(
        backend: Backend,
        postgres_url: Option<&str>,
        keys: &KeysConfig,
        audit: bool,
    ) -> anyhow::Result<Self> {
        let database = match backend {
            Backend::Sqlite => None,
            Backend::Postgres => {
                let url = postgres_url.context(
                    "--store postgres-2 needs a PostgreSQL server: pass --postgres-url or set \
                     MESHID_TEST_POSTGRES_URL (scripts/postgres-test-server start prints one)",
                )?;
                Some(Database::create(url).await?)
            }
        };
        let mut cas = Vec::new();
        let mut dirs = Vec::new();
        for _ in 0..backend.replicas() {
            let dir = tempfile::tempdir()?;
            let store = match &database {
                Some(db) => Some(StoreUrl::parse(db.url.as_str())?),
                None => None,
            };
            let cfg = CaConfig {
                trust_domain: Some("bench.example".parse()?),
                data_dir: Some(dir.path().to_path_buf()),
                store,
                listen: "127.0.0.1:0".parse()?,
                ops_listen: "127.0.0.1:0".parse()?,
                keys: keys.clone(),
                audit: AuditConfig {
                    issuances: audit,
                    ..AuditConfig::default()
                },
                ..CaConfig::default()
            };
            cas.push(CaServer::start(cfg.validate()?).await?);
            dirs.push(dir);
        }
        Ok(Self {
            cas,
            database,
            _dirs: dirs,
        })
    }

    /// Each replica's store (its own connection pool).
    pub fn stores(&self) -> Vec<Arc<dyn Store>> {
        self.cas.iter().map(|ca| Arc::clone(&ca.store)).collect()
    }

    /// Stops every replica, then drops the run's database.
    pub async fn shutdown(self) -> anyhow::Result<()> {
        for ca in self.cas {
            ca.shutdown().await?;
        }
        if let Some(db) = self.database {
            db.drop_database().await?;
        }
        Ok(())
    }
}

/// A PostgreSQL database made for one run (and dropped after it).
struct Database {
    /// The server's URL as given (the database to connect to for
    /// `CREATE DATABASE`).
    admin: String,
    name: String,
    /// The run's database.
    url: url::Url,
}

// === impl Database ===

impl Database {
    async fn create(admin: &str) -> anyhow::Result<Self> {
        let mut url = url::Url::parse(admin).context("--postgres-url is not a URL")?;
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)?
            .as_nanos();
        let name = format!("meshid_bench_{}_{nanos}", std::process::id());
        url.set_path(&format!("/{name}"));
        let mut conn = sqlx::PgConnection::connect(admin)
            .await
            .context("cannot connect to --postgres-url")?;
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut conn)
            .await
            .with_context(|| format!("CREATE DATABASE {name} (the role needs CREATEDB)"))?;
        conn.close().await?;
        Ok(Self {
            admin: admin.to_owned(),
            name,
            url,
        })
    }

    async fn drop_database(self) -> anyhow::Result<()> {
        let mut conn = sqlx::PgConnection::connect(&self.admin).await?;
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
            "DROP DATABASE IF EXISTS {} WITH (FORCE)",
            self.name
        )))
        .execute(&mut conn)
        .await?;
        conn.close().await?;
        Ok(())
    }
}
