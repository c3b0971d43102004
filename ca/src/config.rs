//! The CA's configuration: a TOML file, overridable by flags/env, validated
//! at start-up ([`CaConfig::validate`]) or without starting anything
//! ([`CaConfig::preflight`], `meshid ca validate`). Durations use the one
//! grammar of every meshid config (humantime: `90s`, `5m`, `1h 30m`, `365d`;
//! a bare number has no unit and is refused).
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
//! # upstream = { cert_chain_file = "/etc/meshid/ca-chain.pem", key_file = "/etc/meshid/ca-key.pem", root_file = "/etc/meshid/root.pem" }
//! # upstream = { dir = "/etc/cacerts" }   # Istio plug-in CA or Kubernetes TLS Secret layout
//! # keys = { manager = "pkcs11", pkcs11 = { ... } }   # the X.509 CA key on a token: see [`KeysConfig`]
//! # tls_backend = "openssl"   # node API TLS and signing through OpenSSL (default "rustls")
//! # fips = true               # OpenSSL's FIPS provider, or refuse to start
//! # [[trust_domains]]          # more trust domains in this process: see [`TrustDomainConfig`]
//! ```

mod check;
mod downstream;
mod ha;
mod keys;
mod node_attestor;
mod rbac;
mod rotation;
mod trust_domains;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use meshid_identity::tls::TlsBackend;
use meshid_identity::{SpiffeId, TrustDomain};
use serde::Deserialize;

use crate::keymanager::Signing;
use crate::store::StoreUrl;

pub use downstream::{DownstreamConfig, JOIN_TOKEN_ENV, JoinToken, MeshidUpstreamConfig};

pub use ha::{DEFAULT_LEASE_TTL, DEFAULT_REFRESH_INTERVAL, HaConfig};

pub use node_attestor::{
    DEFAULT_AUDIENCE, DEFAULT_JWKS_REFRESH, K8sPsatCluster, K8sPsatConfig, MAX_CLUSTER_NAME,
    NodeAttestorConfig, PsatValidation,
};

pub use rotation::{Fraction, RotationConfig};

pub use trust_domains::{MAX_TRUST_DOMAINS, TrustDomainConfig};

pub use rbac::{
    AuditConfig, BindingConfig, DEFAULT_CHECKPOINT_INTERVAL, KubeRbacConfig, RbacConfig,
    TenantConfig, tenants,
};

pub use keys::{
    DEFAULT_KEY_LABEL, DEFAULT_SESSIONS, KeyManagerKind, KeyType, KeysConfig, MAX_SESSIONS,
    Pkcs11Config,
};

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

/// How long the upstream chain must still be valid at start-up before a
/// warning is logged, unless `upstream.min_remaining` says otherwise.
pub const DEFAULT_MIN_REMAINING: Duration = Duration::from_secs(30 * 86400);

/// How often the upstream files are checked for a replaced intermediate,
/// unless `upstream.watch_interval` says otherwise.
pub const DEFAULT_WATCH_INTERVAL: Duration = Duration::from_secs(10);

/// The enterprise intermediate CA on disk: either `cert_chain_file` +
/// `key_file` (and optionally `root_file`), or `dir`, a directory in
/// Istio's plug-in CA layout (`ca-cert.pem`, `ca-key.pem`, `cert-chain.pem`,
/// `root-cert.pem`) or a Kubernetes TLS Secret's (`tls.crt`, `tls.key`,
/// `ca.crt`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpstreamConfig {
    /// PEM chain: signing certificate first, then the CAs above it in any
    /// order; the enterprise root too unless `root_file` holds it.
    pub cert_chain_file: Option<PathBuf>,
    /// PEM key of the signing certificate (PKCS#8, SEC1 or PKCS#1).
    pub key_file: Option<PathBuf>,
    /// PEM roots (the bundle): one of them must anchor the chain.
    pub root_file: Option<PathBuf>,
    /// A directory in one of the layouts above, detected by its files.
    pub dir: Option<PathBuf>,
    /// Warn at start-up when the chain expires sooner than this.
    #[serde(default = "default_min_remaining", with = "meshid_runtime::duration")]
    pub min_remaining: Duration,
    /// How often the files are checked for a replacement (`0s`: never;
    /// the intermediate is then only read at start-up).
    #[serde(default = "default_watch_interval", with = "meshid_runtime::duration")]
    pub watch_interval: Duration,
    /// `[upstream.meshid]`: get the intermediate from another meshid CA
    /// instead of files (the file settings must then be absent).
    #[serde(default)]
    pub meshid: Option<MeshidUpstreamConfig>,
}

fn default_min_remaining() -> Duration {
    DEFAULT_MIN_REMAINING
}

fn default_watch_interval() -> Duration {
    DEFAULT_WATCH_INTERVAL
}

impl UpstreamConfig {
    /// A chain file (root last) and a key file.
    pub fn files(cert_chain_file: impl Into<PathBuf>, key_file: impl Into<PathBuf>) -> Self {
        Self {
            cert_chain_file: Some(cert_chain_file.into()),
            key_file: Some(key_file.into()),
            root_file: None,
            dir: None,
            min_remaining: DEFAULT_MIN_REMAINING,
            watch_interval: DEFAULT_WATCH_INTERVAL,
            meshid: None,
        }
    }

    /// Where the intermediate comes from, for `meshid ca validate`:
    /// `intermediate from <chain> (key <key>, roots <root>)` or
    /// `intermediate from the directory <dir>`.
    pub fn describe(&self) -> String {
        let show =
            |p: &Option<PathBuf>| p.as_deref().unwrap_or(Path::new("?")).display().to_string();
        if let Some(m) = &self.meshid {
            return format!(
                "intermediate from the upstream meshid CA at {}",
                m.ca_address
            );
        }
        match &self.dir {
            Some(d) => format!("intermediate from the directory {}", d.display()),
            None => {
                let roots = match &self.root_file {
                    Some(r) => format!(", roots {}", r.display()),
                    None => String::new(),
                };
                format!(
                    "intermediate from {} (key {}{roots})",
                    show(&self.cert_chain_file),
                    show(&self.key_file)
                )
            }
        }
    }

    /// A directory in Istio's or Kubernetes' layout.
    pub fn dir(dir: impl Into<PathBuf>) -> Self {
        Self {
            cert_chain_file: None,
            key_file: None,
            root_file: None,
            dir: Some(dir.into()),
            min_remaining: DEFAULT_MIN_REMAINING,
            watch_interval: DEFAULT_WATCH_INTERVAL,
            meshid: None,
        }
    }
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
    #[serde(default = "hour", with = "meshid_runtime::duration")]
    pub default_x509_ttl: Duration,
    /// Longest X.509-SVID lifetime.
    #[serde(default = "hour", with = "meshid_runtime::duration")]
    pub max_x509_ttl: Duration,
    /// Default JWT-SVID lifetime.
    #[serde(default = "five_minutes", with = "meshid_runtime::duration")]
    pub default_jwt_ttl: Duration,
    /// Longest JWT-SVID lifetime.
    #[serde(default = "hour", with = "meshid_runtime::duration")]
    pub max_jwt_ttl: Duration,
    /// Agent SVID lifetime.
    #[serde(default = "hour", with = "meshid_runtime::duration")]
    pub agent_ttl: Duration,
    /// Lifetime of a newly created self-signed root.
    #[serde(default = "year", with = "meshid_runtime::duration")]
    pub ca_ttl: Duration,
    /// Use an intermediate issued by an enterprise root instead of a
    /// self-signed root.
    pub upstream: Option<UpstreamConfig>,
    /// Where the signing keys live (`[keys]`: the data directory, or the
    /// X.509 CA key on a PKCS#11 token).
    #[serde(default)]
    pub keys: KeysConfig,
    /// `[downstream]`: what this CA signs for downstream meshid CAs.
    #[serde(default)]
    pub downstream: DownstreamConfig,
    /// SPIFFE IDs allowed to call the admin API over mTLS on the node API
    /// port (with an SVID as client certificate). Empty: admin API on the
    /// Unix socket only.
    #[serde(default)]
    pub admin_ids: Vec<SpiffeId>,
    /// `[ha]`: this replica's ID and how replicas sharing one store keep
    /// in step.
    #[serde(default)]
    pub ha: HaConfig,
    /// `[rotation]`: when the next signing keys are prepared and activated.
    #[serde(default)]
    pub rotation: RotationConfig,
    /// `[node_attestor]`: node attestors besides join tokens
    /// (`[node_attestor.k8s_psat.clusters.<name>]`).
    #[serde(default)]
    pub node_attestor: NodeAttestorConfig,
    /// The TLS library of the node API (server, and the downstream CA's
    /// client of its upstream) and of signing with the keys in memory or on
    /// disk: `rustls` (ring) or `openssl`.
    #[serde(default)]
    pub tls_backend: TlsBackend,
    /// Load OpenSSL's FIPS provider at start-up (and refuse to start
    /// without one); needs `tls_backend = "openssl"`.
    #[serde(default)]
    pub fips: bool,
    /// `[rbac]`: who may call the admin API (bindings, the socket opened
    /// to every local user, Kubernetes bearer tokens).
    #[serde(default)]
    pub rbac: RbacConfig,
    /// `[[tenants]]`: tenants created at start-up when missing.
    #[serde(default)]
    pub tenants: Vec<TenantConfig>,
    /// `[audit]`: what the audit log records and how often it is signed.
    #[serde(default)]
    pub audit: AuditConfig,
    /// `[[trust_domains]]`: more trust domains this process serves, each
    /// an isolated CA of its own.
    #[serde(default)]
    pub trust_domains: Vec<TrustDomainConfig>,
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
            keys: KeysConfig::default(),
            downstream: DownstreamConfig::default(),
            admin_ids: Vec::new(),
            ha: HaConfig::default(),
            rotation: RotationConfig::default(),
            node_attestor: NodeAttestorConfig::default(),
            tls_backend: TlsBackend::default(),
            fips: false,
            rbac: RbacConfig::default(),
            tenants: Vec::new(),
            audit: AuditConfig::default(),
            trust_domains: Vec::new(),
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

// === impl ValidConfig ===

impl ValidConfig {
    /// Which library signs with the keys in memory or on disk: the one
    /// `tls_backend` names.
    pub fn signing(&self) -> Signing {
        match self.raw.tls_backend {
            TlsBackend::Rustls => Signing::Ring,
            TlsBackend::Openssl => Signing::Openssl,
        }
    }
}

// === impl CaConfig ===

impl CaConfig {
    /// Reads a TOML file.
    pub fn from_file(path: &Path) -> Result<Self, ConfigError> {
        let text = meshid_runtime::fs::read_to_string(path, meshid_runtime::fs::MAX_SMALL_FILE)
            .map_err(|e| ConfigError::Read {
                path: path.display().to_string(),
                source: e.into(),
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
        let cfg: Self = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: "<text>".into(),
            // The parser quotes the offending line: mask a store password in it.
            message: crate::store::url::redact_text(&e.to_string()),
        })?;
        cfg.node_attestor.check()?;
        Ok(cfg)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests;
