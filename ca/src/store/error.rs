//! Everything that can go wrong in the store, each with what to do about it.

/// A store failure.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The database could not be opened or reached.
    #[error("cannot open the store at {target}: {source}; {hint}")]
    Unreachable {
        /// The URL (password removed) or file path.
        target: String,
        /// What to check.
        hint: &'static str,
        /// The underlying failure.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The store URL is malformed or names an unsupported database.
    #[error(
        "store URL {url:?} is not usable: {reason}; use sqlite:///path/to/meshid.db, \
         sqlite::memory: or postgres://user:password@host:port/database"
    )]
    BadUrl {
        /// The URL, password removed.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The schema migrations could not be applied.
    #[error(
        "applying the store schema failed: {0}; check that the database user may create \
         tables and that no newer meshid version has written this database"
    )]
    Migration(#[from] sqlx::migrate::MigrateError),
    /// The addressed row does not exist.
    #[error("{kind} {key:?} does not exist; list them to find the right one")]
    NotFound {
        /// `entry`, `agent`, `join token`, ….
        kind: &'static str,
        /// The key that was looked up.
        key: String,
    },
    /// A row with the same identity already exists.
    #[error("{kind} {key} already exists; update or delete the existing one instead")]
    AlreadyExists {
        /// `entry`, `join token`, `issuance`, ….
        kind: &'static str,
        /// What collided.
        key: String,
    },
    /// An optimistic-concurrency check failed: someone else changed the row.
    #[error("{kind} {key:?} was changed concurrently ({detail}); read it again and retry")]
    Conflict {
        /// `entry` or `bundle`.
        kind: &'static str,
        /// The row's key.
        key: String,
        /// Expected versus found.
        detail: String,
    },
    /// The join token has expired.
    #[error("the join token has expired; create a new one with `meshid token create`")]
    TokenExpired,
    /// The join token was already used.
    #[error("the join token was already used; each token admits one node, create a new one")]
    TokenUsed,
    /// A stored row cannot be read back into a valid value.
    #[error(
        "stored {table} row {key:?} is unreadable: {reason}; the database was edited outside \
         meshid, fix or delete that row"
    )]
    Corrupt {
        /// The table.
        table: &'static str,
        /// The row's key.
        key: String,
        /// What failed to parse.
        reason: String,
    },
    /// A write fenced by a [`Lease`](super::Lease) was refused: the lease
    /// expired or another holder has taken it since. Nothing was written.
    #[error(
        "the {name:?} lease is no longer held with this token (it expired or another replica \
         took it); nothing was written: acquire the lease again and re-read before retrying"
    )]
    LeaseLost {
        /// The lease's name.
        name: String,
    },
    /// The caller passed a value the store refuses.
    #[error("invalid store input: {0}")]
    Invalid(String),
    /// Any other database error.
    #[error("database error: {0}; check that the database is up and its disk is not full")]
    Backend(#[from] sqlx::Error),
}

impl StoreError {
    /// A short, stable name of the failure (`not_found`, `conflict`, …), for
    /// metric labels.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Unreachable { .. } => "unreachable",
            Self::BadUrl { .. } => "bad_url",
            Self::Migration(_) => "migration",
            Self::NotFound { .. } => "not_found",
            Self::AlreadyExists { .. } => "already_exists",
            Self::Conflict { .. } => "conflict",
            Self::TokenExpired => "token_expired",
            Self::TokenUsed => "token_used",
            Self::Corrupt { .. } => "corrupt",
            Self::LeaseLost { .. } => "lease_lost",
            Self::Invalid(_) => "invalid",
            Self::Backend(_) => "backend",
        }
    }
}

/// Turns a unique-constraint violation into [`StoreError::AlreadyExists`].
pub(crate) fn on_unique(err: sqlx::Error, kind: &'static str, key: String) -> StoreError {
    match &err {
        sqlx::Error::Database(db) if db.is_unique_violation() => {
            StoreError::AlreadyExists { kind, key }
        }
        _ => StoreError::Backend(err),
    }
}
