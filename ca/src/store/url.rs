//! [`StoreUrl`]: where the store lives, parsed once, never printed with its
//! password.

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use super::StoreError;

/// Shown in place of a password.
const MASK: &str = "***";

/// A checked store URL: `sqlite:///absolute/path.db`,
/// `sqlite://relative/path.db`, `sqlite::memory:`, or
/// `postgres://user:password@host:port/database` (`postgresql://` too).
///
/// `Debug` and `Display` print it with the password replaced by `***`
/// (in the user info and in a `password=` query parameter), so a config or
/// an error that holds one can be logged.
#[derive(Clone, PartialEq, Eq)]
pub struct StoreUrl {
    url: String,
    target: Target,
}

/// Which backend a [`StoreUrl`] names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Target {
    /// A SQLite database file.
    SqliteFile(PathBuf),
    /// A private in-memory SQLite database.
    SqliteMemory,
    /// A PostgreSQL server.
    Postgres,
}

// === impl StoreUrl ===

impl StoreUrl {
    /// Checks `url`; an unknown scheme, an empty SQLite path or SQLite query
    /// parameters → [`StoreError::BadUrl`].
    pub fn parse(url: &str) -> Result<Self, StoreError> {
        let bad = |reason: &str| StoreError::BadUrl {
            url: redact(url),
            reason: reason.into(),
        };
        let target = if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Target::Postgres
        } else if url == "sqlite::memory:" {
            Target::SqliteMemory
        } else if let Some(path) = url.strip_prefix("sqlite://") {
            if path.is_empty() || path.contains('?') {
                return Err(bad("give a file path and no query parameters"));
            }
            Target::SqliteFile(PathBuf::from(path))
        } else {
            return Err(bad("unknown scheme"));
        };
        Ok(Self {
            url: url.to_owned(),
            target,
        })
    }

    /// The SQLite database file at `path`.
    pub fn sqlite_file(path: &Path) -> Self {
        Self {
            url: format!("sqlite://{}", path.display()),
            target: Target::SqliteFile(path.to_owned()),
        }
    }

    /// Which backend this names.
    pub(crate) fn target(&self) -> &Target {
        &self.target
    }

    /// The URL with its password, for the database driver only.
    pub(crate) fn expose(&self) -> &str {
        &self.url
    }
}

impl FromStr for StoreUrl {
    type Err = StoreError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl fmt::Display for StoreUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&redact(&self.url))
    }
}

impl fmt::Debug for StoreUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("StoreUrl").field(&redact(&self.url)).finish()
    }
}

impl<'de> serde::Deserialize<'de> for StoreUrl {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        Self::parse(&text).map_err(serde::de::Error::custom)
    }
}

/// `text` with the password of every URL in it masked (for messages that
/// quote a config line, such as TOML parse errors).
pub(crate) fn redact_text(text: &str) -> String {
    text.split_inclusive(char::is_whitespace)
        .map(|word| {
            if word.contains("://") {
                redact(word)
            } else {
                word.to_owned()
            }
        })
        .collect()
}

/// `url` with the password of its user info and of a `password=` query
/// parameter replaced by [`MASK`].
fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let (authority, tail) = rest.split_at(rest.find(['/', '?']).unwrap_or(rest.len()));
    let authority = match authority.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _password)) => format!("{user}:{MASK}@{host}"),
            None => authority.to_owned(),
        },
        None => authority.to_owned(),
    };
    let tail = match tail.split_once('?') {
        Some((path, query)) => {
            let params: Vec<String> = query
                .split('&')
                .map(|p| match p.split_once('=') {
                    Some((key, _)) if key.eq_ignore_ascii_case("password") => {
                        format!("{key}={MASK}")
                    }
                    _ => p.to_owned(),
                })
                .collect();
            format!("{path}?{}", params.join("&"))
        }
        None => tail.to_owned(),
    };
    format!("{scheme}://{authority}{tail}")
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn debug_and_display_never_print_the_password() {
        let url = StoreUrl::parse("postgres://meshid:s3cr@t@db:5432/ca?sslmode=require").unwrap();
        let shown = "postgres://meshid:***@db:5432/ca?sslmode=require";
        assert_eq!(url.to_string(), shown);
        assert_eq!(format!("{url:?}"), format!("StoreUrl({shown:?})"));
        assert!(!format!("{url:#?}").contains("s3cr"));
        assert_eq!(
            url.expose(),
            "postgres://meshid:s3cr@t@db:5432/ca?sslmode=require"
        );
        let url = StoreUrl::parse("postgresql://db/ca?user=m&Password=hunter2&x=1").unwrap();
        assert_eq!(
            url.to_string(),
            "postgresql://db/ca?user=m&Password=***&x=1"
        );
    }

    #[test]
    fn urls_without_a_password_print_as_given() {
        for u in [
            "postgres://db/ca",
            "postgres://meshid@db/ca",
            "sqlite:///var/lib/x.db",
        ] {
            assert_eq!(StoreUrl::parse(u).unwrap().to_string(), u);
        }
        assert_eq!(
            StoreUrl::sqlite_file(Path::new("/d/ca.db")),
            StoreUrl::parse("sqlite:///d/ca.db").unwrap()
        );
    }

    #[test]
    fn bad_urls_are_refused_without_their_password() {
        for u in [
            "mysql://root:pw@db/ca",
            "sqlite://",
            "sqlite:///x.db?mode=ro",
            "ca.db",
        ] {
            let err = StoreUrl::parse(u).unwrap_err();
            assert!(matches!(err, StoreError::BadUrl { .. }), "{u}: {err:?}");
            assert!(!err.to_string().contains(":pw@"), "{err}");
        }
    }

    #[test]
    fn config_files_parse_into_it() {
        #[derive(Debug, serde::Deserialize)]
        struct Config {
            store: StoreUrl,
        }
        let ok: Config = toml::from_str("store = \"postgres://u:pw@db/ca\"").unwrap();
        assert_eq!(ok.store.target(), &Target::Postgres);
        assert!(!format!("{ok:?}").contains("pw"));
        let err = toml::from_str::<Config>("store = \"mysql://u:pw@db/ca\"").unwrap_err();
        assert!(err.message().contains("unknown scheme"), "{err}");
        assert!(!err.message().contains(":pw@"), "{err}");
        // The parser also quotes the line; what the CA shows masks it.
        let shown = redact_text(&err.to_string());
        assert!(
            shown.contains(r#"store = "mysql://u:***@db/ca""#),
            "{shown}"
        );
    }
}
