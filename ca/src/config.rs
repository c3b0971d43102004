//! The CA's configuration: a TOML file, overridable by flags/env, validated
//! at start-up.
//!
//! ```toml
//! trust_domain = "example.org"
//! data_dir = "/var/lib/meshid/ca"
//! # store = "postgres://meshid:secret@db:5432/meshid"   # default: sqlite in data_dir
//! listen = "127.0.0.1:8443"
//! ops_listen = "127.0.0.1:8081"
//! default_x509_ttl = "1h"
//! max_x509_ttl = "1h"
//! ca_ttl = "365d"
//! # upstream = { cert_chain_file = "/etc/meshid/ca-chain.pem", key_file = "/etc/meshid/ca-key.pem" }
//! ```

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use meshid_identity::{SpiffeId, TrustDomain};
use serde::Deserialize;

use crate::store::StoreUrl;

/// A configuration problem, naming the setting and the fix.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The file is not valid TOML for this struct (unknown fields included).
    #[error("config file {path} is invalid: {message}")]
    Parse {
        /// The file.
        path: String,
        /// The parser's message (names the field).
        message: String,
    },
    /// A setting is missing or has a bad value.
    #[error("config setting `{field}`: {reason}")]
    Invalid {
        /// The setting.
        field: &'static str,
        /// What is wrong and what to do.
        reason: String,
    },
}

/// The enterprise/intermediate CA on disk.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpstreamConfig {
    /// PEM chain: signing certificate first, enterprise root last.
    pub cert_chain_file: PathBuf,
    /// PEM key of the signing certificate.
    pub key_file: PathBuf,
}

/// Everything `meshid ca serve` needs.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CaConfig {
    /// The trust domain this CA issues for.
    pub trust_domain: Option<TrustDomain>,
    /// Keys, root certificate, SQLite database and admin socket live here.
    pub data_dir: Option<PathBuf>,
    /// Store URL; default `sqlite://<data_dir>/ca.db`. Checked at load;
    /// printed with its password masked.
    pub store: Option<StoreUrl>,
    /// Node API (agents, TLS) address.
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
    /// Admin API Unix socket; default `<data_dir>/admin.sock`.
    pub admin_socket: Option<PathBuf>,
    /// HTTP ops endpoint (`/healthz`, `/readyz`, `/metrics`).
    #[serde(default = "default_ops_listen")]
    pub ops_listen: SocketAddr,
    /// Default X.509-SVID lifetime.
    #[serde(default = "hour", with = "duration")]
    pub default_x509_ttl: Duration,
    /// Longest X.509-SVID lifetime.
    #[serde(default = "hour", with = "duration")]
    pub max_x509_ttl: Duration,
    /// Default JWT-SVID lifetime.
    #[serde(default = "five_minutes", with = "duration")]
    pub default_jwt_ttl: Duration,
    /// Longest JWT-SVID lifetime.
    #[serde(default = "hour", with = "duration")]
    pub max_jwt_ttl: Duration,
    /// Agent SVID lifetime.
    #[serde(default = "hour", with = "duration")]
    pub agent_ttl: Duration,
    /// Lifetime of a newly created self-signed root.
    #[serde(default = "year", with = "duration")]
    pub ca_ttl: Duration,
    /// Use an intermediate issued by an enterprise root instead of a
    /// self-signed root.
    pub upstream: Option<UpstreamConfig>,
    /// SPIFFE IDs allowed to call the admin API over mTLS on the node API
    /// port (with an SVID as client certificate). Empty: admin API on the
    /// Unix socket only.
    #[serde(default)]
    pub admin_ids: Vec<SpiffeId>,
}

fn default_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 8443))
}
fn default_ops_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 8081))
}
fn hour() -> Duration {
    Duration::from_secs(3600)
}
fn five_minutes() -> Duration {
    Duration::from_secs(300)
}
fn year() -> Duration {
    Duration::from_secs(365 * 86400)
}

impl Default for CaConfig {
    fn default() -> Self {
        Self {
            trust_domain: None,
            data_dir: None,
            store: None,
            listen: default_listen(),
            admin_socket: None,
            ops_listen: default_ops_listen(),
            default_x509_ttl: hour(),
            max_x509_ttl: hour(),
            default_jwt_ttl: five_minutes(),
            max_jwt_ttl: hour(),
            agent_ttl: hour(),
            ca_ttl: year(),
            upstream: None,
            admin_ids: Vec::new(),
        }
    }
}

/// A [`CaConfig`] that passed [`CaConfig::validate`]: required settings
/// present, defaults filled in, data directory writable.
#[derive(Debug, Clone)]
pub struct ValidConfig {
    /// The trust domain.
    pub trust_domain: TrustDomain,
    /// The data directory (exists, writable).
    pub data_dir: PathBuf,
    /// The store URL.
    pub store: StoreUrl,
    /// The admin socket path.
    pub admin_socket: PathBuf,
    /// Everything else, as given.
    pub raw: CaConfig,
}

// === impl CaConfig ===

impl CaConfig {
    /// Reads a TOML file.
    pub fn from_file(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Self::from_toml(&text).map_err(|e| match e {
            ConfigError::Parse { message, .. } => ConfigError::Parse {
                path: path.display().to_string(),
                message,
            },
            other => other,
        })
    }

    /// Parses TOML text.
    pub fn from_toml(text: &str) -> Result<Self, ConfigError> {
        toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: "<text>".into(),
            // The parser quotes the offending line: mask a store password in it.
            message: crate::store::url::redact_text(&e.to_string()),
        })
    }

    /// Checks every setting and prepares the data directory.
    pub fn validate(self) -> Result<ValidConfig, ConfigError> {
        let trust_domain = self.trust_domain.clone().ok_or(ConfigError::Invalid {
            field: "trust_domain",
            reason: "is required (e.g. trust_domain = \"example.org\" or --trust-domain)".into(),
        })?;
        let data_dir = self.data_dir.clone().ok_or(ConfigError::Invalid {
            field: "data_dir",
            reason: "is required (e.g. --data-dir /var/lib/meshid/ca)".into(),
        })?;
        check_writable(&data_dir)?;
        let nonzero = |field, d: Duration| {
            if d.is_zero() {
                Err(ConfigError::Invalid {
                    field,
                    reason: "must be more than zero".into(),
                })
            } else {
                Ok(())
            }
        };
        nonzero("default_x509_ttl", self.default_x509_ttl)?;
        nonzero("max_x509_ttl", self.max_x509_ttl)?;
        nonzero("default_jwt_ttl", self.default_jwt_ttl)?;
        nonzero("max_jwt_ttl", self.max_jwt_ttl)?;
        nonzero("agent_ttl", self.agent_ttl)?;
        if self.default_x509_ttl > self.max_x509_ttl {
            return Err(ConfigError::Invalid {
                field: "default_x509_ttl",
                reason: "is longer than max_x509_ttl; lower it or raise the maximum".into(),
            });
        }
        if self.default_jwt_ttl > self.max_jwt_ttl {
            return Err(ConfigError::Invalid {
                field: "default_jwt_ttl",
                reason: "is longer than max_jwt_ttl; lower it or raise the maximum".into(),
            });
        }
        if self.ca_ttl <= self.max_x509_ttl.max(self.agent_ttl) {
            return Err(ConfigError::Invalid {
                field: "ca_ttl",
                reason: "must be longer than max_x509_ttl and agent_ttl".into(),
            });
        }
        if let Some(up) = &self.upstream {
            for (field, p) in [
                ("upstream.cert_chain_file", &up.cert_chain_file),
                ("upstream.key_file", &up.key_file),
            ] {
                if let Err(e) = std::fs::metadata(p) {
                    return Err(ConfigError::Invalid {
                        field,
                        reason: format!("{}: {e}", p.display()),
                    });
                }
            }
        }
        let store = self
            .store
            .clone()
            .unwrap_or_else(|| StoreUrl::sqlite_file(&data_dir.join("ca.db")));
        let admin_socket = self
            .admin_socket
            .clone()
            .unwrap_or_else(|| data_dir.join("admin.sock"));
        Ok(ValidConfig {
            trust_domain,
            data_dir,
            store,
            admin_socket,
            raw: self,
        })
    }
}

/// Creates `dir` (mode 0700) if missing and proves it is writable.
fn check_writable(dir: &Path) -> Result<(), ConfigError> {
    let invalid = |reason: String| ConfigError::Invalid {
        field: "data_dir",
        reason,
    };
    if !dir.exists() {
        std::fs::create_dir_all(dir)
            .map_err(|e| invalid(format!("cannot create {}: {e}", dir.display())))?;
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700));
    }
    if !dir.is_dir() {
        return Err(invalid(format!("{} is not a directory", dir.display())));
    }
    let probe = dir.join(format!(".write-test.{}", std::process::id()));
    std::fs::write(&probe, b"").map_err(|e| {
        invalid(format!(
            "{} is not writable by this user: {e}",
            dir.display()
        ))
    })?;
    let _ = std::fs::remove_file(&probe);
    Ok(())
}

/// Parses durations such as `90s`, `15m`, `1h`, `365d` (or plain seconds).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (num, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: u64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not a duration; use e.g. 30s, 15m, 1h, 365d"))?;
    let mult = match unit {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86400,
        _ => return Err(format!("{s:?} has unknown unit {unit:?}; use s, m, h or d")),
    };
    n.checked_mul(mult)
        .map(Duration::from_secs)
        .ok_or_else(|| format!("{s:?} is too long"))
}

mod duration {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer};

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let s = String::deserialize(d)?;
        super::parse_duration(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_full_file_and_fills_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let text = format!(
            "trust_domain = \"example.org\"\ndata_dir = {:?}\nmax_x509_ttl = \"2h\"\n",
            dir.path().display().to_string()
        );
        let v = CaConfig::from_toml(&text).unwrap().validate().unwrap();
        assert_eq!(v.trust_domain.to_string(), "example.org");
        assert_eq!(v.raw.max_x509_ttl, Duration::from_secs(7200));
        assert_eq!(v.raw.listen, default_listen());
        assert_eq!(v.admin_socket, dir.path().join("admin.sock"));
        assert!(v.store.to_string().starts_with("sqlite:///"));
    }

    #[test]
    fn unknown_fields_and_bad_values_are_named() {
        let e = CaConfig::from_toml("trust_domain = \"a.org\"\nlisten_addr = \"x\"").unwrap_err();
        assert!(e.to_string().contains("listen_addr"), "{e}");
        let e = CaConfig::from_toml("max_x509_ttl = \"1y\"").unwrap_err();
        assert!(e.to_string().contains("unknown unit"), "{e}");
        let e = CaConfig::default().validate().unwrap_err();
        assert!(e.to_string().contains("trust_domain"), "{e}");
    }

    #[test]
    fn unwritable_data_dir_is_reported_with_its_path() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("plain-file");
        std::fs::write(&file, b"x").unwrap();
        let cfg = CaConfig {
            trust_domain: Some("example.org".parse().unwrap()),
            data_dir: Some(file.clone()),
            ..CaConfig::default()
        };
        let e = cfg.validate().unwrap_err().to_string();
        assert!(
            e.contains("data_dir") && e.contains(&file.display().to_string()),
            "{e}"
        );
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("90").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("15m").unwrap(), Duration::from_secs(900));
        assert_eq!(
            parse_duration("365d").unwrap(),
            Duration::from_secs(365 * 86400)
        );
        assert!(parse_duration("h").is_err());
        assert!(parse_duration("-1s").is_err());
    }
}
