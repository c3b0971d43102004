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
    /// The caller passed a value the store refuses.
    #[error("invalid store input: {0}")]
    Invalid(String),
    /// Any other database error.
    #[error("database error: {0}; check that the database is up and its disk is not full")]
    Backend(#[from] sqlx::Error),
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

/// Removes the password from a database URL so it can be logged.
pub(crate) fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let (authority, tail) = match rest.find(['/', '?']) {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _password)) => format!("{scheme}://{user}:***@{host}{tail}"),
            None => url.to_owned(),
        },
        None => url.to_owned(),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::redact_url;

    #[test]
    fn redacts_password_only() {
        assert_eq!(
            redact_url("postgres://meshid:s3cr@t@db:5432/ca?sslmode=require"),
            "postgres://meshid:***@db:5432/ca?sslmode=require"
        );
        assert_eq!(redact_url("postgres://db/ca"), "postgres://db/ca");
        assert_eq!(
            redact_url("sqlite:///var/lib/x.db"),
            "sqlite:///var/lib/x.db"
        );
    }
}
