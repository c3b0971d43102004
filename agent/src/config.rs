//! The agent's configuration file (TOML). Durations use the one grammar of
//! every meshid config (humantime: `500ms`, `5s`, `1h 30m`; a bare number
//! has no unit and is refused); the trust domain and the CA's SPIFFE ID are
//! parsed at load.
//!
//! ```toml
//! trust_domain = "example.org"
//! ca_address = "ca.example.org:8081"
//! # or several CA replicas, tried in order when one is down:
//! # ca_addresses = ["ca-0.example.org:8081", "ca-1.example.org:8081"]
//! # ca_spiffe_id = "spiffe://example.org/meshid/ca"   (the default)
//! trust_bundle_file = "/etc/meshid/ca-bundle.pem"
//! data_dir = "/var/lib/meshid-agent"
//! workload_api_socket = "/run/meshid/agent.sock"
//! ops_listen = "127.0.0.1:9090"
//! sync_interval = "5s"
//! # tls_backend = "openssl"   # the CA client on OpenSSL (default "rustls")
//! # fips = true               # OpenSSL's FIPS provider, or refuse to start
//!
//! # On Kubernetes, instead of a join token (see `attest::psat`):
//! [node_attestor.k8s_psat]
//! cluster = "prod"
//! # token_path = "/var/run/secrets/meshid/token"
//!
//! [workload_attestor.unix]   # optional; these are the defaults
//! hash_executables = false
//! [workload_attestor.k8s]    # present: pods are attested (see `attestor::k8s`)
//! # kubelet_url = "https://127.0.0.1:10250"
//! ```

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

pub use meshid_identity::JoinToken;
use meshid_identity::tls::TlsBackend;
use meshid_identity::{SpiffeId, TrustBundle, TrustDomain};
use meshid_runtime::uds::UdsLimits;
use serde::Deserialize;

use crate::attest::psat::K8sPsatConfig;
use crate::attestor::{K8sAttestorConfig, UnixAttestorConfig};

/// Environment variable the join token may come from.
pub const JOIN_TOKEN_ENV: &str = "MESHID_JOIN_TOKEN";
/// Largest number of CSRs the agent sends in one `SignX509Svids` call.
pub const MAX_BATCH_SIZE: usize = 500;
/// Path of the SPIFFE ID the meshid CA serves its node API as
/// (`spiffe://<trust_domain>/meshid/ca`); the agent talks to no other server.
pub const DEFAULT_CA_PATH: &str = meshid_identity::id::CA_PATH;
/// Most entries in `ca_addresses`.
pub const MAX_CA_ADDRESSES: usize = 16;
/// Largest configuration file accepted, in bytes.
pub const MAX_CONFIG_LEN: usize = 1024 * 1024;

/// Why the configuration cannot be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read agent config {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is larger than [`MAX_CONFIG_LEN`].
    #[error("agent config is larger than the 1 MiB limit")]
    TooLarge,
    /// The TOML is malformed or has an unknown/mistyped field.
    #[error("agent config is not valid: {0}")]
    Parse(#[from] toml::de::Error),
    /// `trust_bundle_file` cannot be read or holds no usable certificate.
    #[error("agent config field `trust_bundle_file` ({path}): {reason}")]
    Bundle {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A field has a value the agent cannot use.
    #[error("agent config field `{field}` is invalid: {reason}")]
    Invalid {
        /// The field name.
        field: &'static str,
        /// What is wrong and how to fix it.
        reason: String,
    },
}

/// The agent's configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentConfig {
    /// The trust domain the agent and its CA belong to.
    pub trust_domain: TrustDomain,
    /// The CA's node API, `host:port` (a DNS name may resolve to several
    /// replicas). Empty when `ca_addresses` is set; exactly one of the two.
    #[serde(default)]
    pub ca_address: String,
    /// The node APIs of several CA replicas, each `host:port`, tried in
    /// this order when one fails (at most [`MAX_CA_ADDRESSES`]).
    #[serde(default)]
    pub ca_addresses: Vec<String>,
    /// The SPIFFE ID the CA must present on every connection (default
    /// `spiffe://<trust_domain>/meshid/ca`); must be in `trust_domain`.
    #[serde(default)]
    pub ca_spiffe_id: Option<SpiffeId>,
    /// PEM file with the CA roots to trust on first attestation.
    #[serde(default)]
    pub trust_bundle_file: Option<PathBuf>,
    /// One-time join token (else the `MESHID_JOIN_TOKEN` environment variable).
    #[serde(default)]
    pub join_token: Option<JoinToken>,
    /// Node attestation other than a join token (`[node_attestor.k8s_psat]`).
    #[serde(default)]
    pub node_attestor: NodeAttestorConfig,
    /// The workload attestors (`[workload_attestor.unix]`, `[workload_attestor.k8s]`).
    #[serde(default)]
    pub workload_attestor: WorkloadAttestorConfig,
    /// Where the agent keeps its key, SVID and bundle.
    pub data_dir: PathBuf,
    /// Unix socket of the SPIFFE Workload API.
    pub workload_api_socket: PathBuf,
    /// Unix socket of the Envoy SDS server (defaults to the Workload API socket).
    #[serde(default)]
    pub sds_socket: Option<PathBuf>,
    /// Address of the ops HTTP server (`/healthz`, `/readyz`, `/metrics`).
    #[serde(default)]
    pub ops_listen: Option<SocketAddr>,
    /// How often to sync entries with the CA.
    #[serde(default = "default_sync_interval", with = "meshid_runtime::duration")]
    pub sync_interval: Duration,
    /// Fraction of an SVID's lifetime after which it is renewed.
    #[serde(default = "default_rotation_fraction")]
    pub rotation_fraction: f64,
    /// Random spread (± fraction of lifetime) added to the renewal point.
    #[serde(default = "default_rotation_jitter")]
    pub rotation_jitter: f64,
    /// CSRs per `SignX509Svids` call (1 to 500).
    #[serde(default = "default_batch_size")]
    pub batch_size: usize,
    /// Unix-socket listeners (Workload API, SDS): time from connect until
    /// a client's first request headers are complete.
    #[serde(
        default = "default_handshake_timeout",
        with = "meshid_runtime::duration"
    )]
    pub listener_handshake_timeout: Duration,
    /// Unix-socket listeners: a connection with no open stream this long
    /// is closed (open streams are never cut).
    #[serde(default = "default_idle_timeout", with = "meshid_runtime::duration")]
    pub listener_idle_timeout: Duration,
    /// Unix-socket listeners: most connections open at once, per listener.
    #[serde(default = "default_max_connections")]
    pub listener_max_connections: usize,
    /// Unix-socket listeners: most connections one Unix user may hold open,
    /// per listener, so one user cannot starve the others.
    #[serde(default = "default_max_connections_per_uid")]
    pub listener_max_connections_per_uid: usize,
    /// The TLS library of the CA client: `rustls` or `openssl`.
    #[serde(default)]
    pub tls_backend: TlsBackend,
    /// Load OpenSSL's FIPS provider at start-up (and refuse to start
    /// without one); needs `tls_backend = "openssl"`.
    #[serde(default)]
    pub fips: bool,
}

/// `[node_attestor]`: how the agent proves its node besides a join token.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeAttestorConfig {
    /// Attest with the agent pod's projected service-account token;
    /// excludes `join_token`.
    #[serde(default)]
    pub k8s_psat: Option<K8sPsatConfig>,
}

/// `[workload_attestor]`: what the agent learns about its callers.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkloadAttestorConfig {
    /// The `unix` attestor (always on).
    #[serde(default)]
    pub unix: UnixAttestorConfig,
    /// The `k8s` attestor, on when the table is present.
    #[serde(default)]
    pub k8s: Option<K8sAttestorConfig>,
}

fn default_sync_interval() -> Duration {
    Duration::from_secs(5)
}
fn default_rotation_fraction() -> f64 {
    0.5
}
fn default_rotation_jitter() -> f64 {
    0.1
}
fn default_batch_size() -> usize {
    MAX_BATCH_SIZE
}
fn default_handshake_timeout() -> Duration {
    UdsLimits::default().handshake_timeout
}
fn default_idle_timeout() -> Duration {
    UdsLimits::default().idle_timeout
}
fn default_max_connections() -> usize {
    UdsLimits::default().max_connections
}
fn default_max_connections_per_uid() -> usize {
    UdsLimits::default().max_connections_per_uid
}

// === impl AgentConfig ===

impl AgentConfig {
    /// Parses TOML text and checks every field ([`Self::check_fields`]);
    /// whether its TLS backend can start here is left to [`Self::validate`],
    /// so a `--tls-backend` flag can still override the file.
    pub fn from_toml(text: &str) -> Result<Self, ConfigError> {
        if text.len() > MAX_CONFIG_LEN {
            return Err(ConfigError::TooLarge);
        }
        let config: Self = toml::from_str(text)?;
        config.check_fields()?;
        Ok(config)
    }

    /// Reads, parses and validates a TOML file.
    pub fn load(path: &std::path::Path) -> Result<Self, ConfigError> {
        let read = |source| ConfigError::Read {
            path: path.to_owned(),
            source,
        };
        let text = meshid_runtime::fs::read_to_string(path, MAX_CONFIG_LEN as u64).map_err(
            |e| match e {
                meshid_runtime::fs::ReadError::TooLarge { .. } => ConfigError::TooLarge,
                e => read(e.into()),
            },
        )?;
        Self::from_toml(&text)
    }

    /// Uses `MESHID_JOIN_TOKEN` when the file sets no token (and no
    /// `[node_attestor.k8s_psat]`, which then ignores the variable).
    pub fn with_env_token(mut self) -> Self {
        if self.join_token.is_none()
            && self.node_attestor.k8s_psat.is_none()
            && let Ok(t) = std::env::var(JOIN_TOKEN_ENV)
            && !t.is_empty()
        {
            self.join_token = Some(JoinToken::new(t));
        }
        self
    }

    /// The SPIFFE ID the CA must present: `ca_spiffe_id`, else
    /// `spiffe://<trust_domain>/meshid/ca`. [`validate`](Self::validate)
    /// checks it is in the agent's trust domain.
    pub fn ca_spiffe_id(&self) -> Result<SpiffeId, ConfigError> {
        match &self.ca_spiffe_id {
            Some(id) => Ok(id.clone()),
            None => self
                .trust_domain
                .id_with_path(DEFAULT_CA_PATH)
                .map_err(|e| ConfigError::Invalid {
                    field: "ca_spiffe_id",
                    reason: e.to_string(),
                }),
        }
    }

    /// The CA addresses to call, in order: `ca_addresses`, else
    /// `ca_address`.
    pub fn ca_targets(&self) -> Vec<String> {
        if self.ca_addresses.is_empty() {
            vec![self.ca_address.clone()]
        } else {
            self.ca_addresses.clone()
        }
    }

    /// Reads `trust_bundle_file` (if set) as the roots of `trust_domain`.
    pub fn trust_bundle(&self) -> Result<Option<TrustBundle>, ConfigError> {
        let Some(path) = &self.trust_bundle_file else {
            return Ok(None);
        };
        let err = |reason: String| ConfigError::Bundle {
            path: path.clone(),
            reason,
        };
        let text =
            meshid_runtime::fs::read_to_string(path, meshid_identity::x509::MAX_PEM_LEN as u64)
                .map_err(|e| err(format!("{e} (a CA bundle)")))?;
        TrustBundle::from_pem(self.trust_domain.clone(), &text)
            .map(Some)
            .map_err(|e| err(e.to_string()))
    }

    /// The SDS socket (the Workload API socket when unset).
    pub fn sds_socket(&self) -> &std::path::Path {
        self.sds_socket
            .as_deref()
            .unwrap_or(&self.workload_api_socket)
    }

    /// The limits of the Unix-socket listeners.
    pub fn listener_limits(&self) -> UdsLimits {
        UdsLimits {
            handshake_timeout: self.listener_handshake_timeout,
            idle_timeout: self.listener_idle_timeout,
            max_connections: self.listener_max_connections,
            max_connections_per_uid: self.listener_max_connections_per_uid,
        }
    }

    /// Reads now what the attestors read at run time: the projected token,
    /// `kubelet_host_env`, the kubelet CA (unless verification is skipped)
    /// and the kubelet bearer token. For `meshid agent validate` on the node.
    pub fn check_attestor_files(&self) -> Result<(), ConfigError> {
        if let Some(psat) = &self.node_attestor.k8s_psat {
            psat.payload().map_err(|e| ConfigError::Invalid {
                field: "node_attestor.k8s_psat",
                reason: e.to_string(),
            })?;
        }
        if let Some(k8s) = &self.workload_attestor.k8s {
            crate::attestor::k8s::kubelet::KubeletClient::new(k8s)
                .and_then(|c| c.check_files())
                .map_err(|e| ConfigError::Invalid {
                    field: "workload_attestor.k8s",
                    reason: e.to_string(),
                })?;
        }
        Ok(())
    }

    /// Everything a start needs: [`Self::check_fields`], then a TLS
    /// backend this build has (with `fips`, OpenSSL's FIPS provider
    /// loaded). Call it after overriding fields.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.check_fields()?;
        self.tls_backend
            .check(self.fips)
            .map_err(|e| ConfigError::Invalid {
                field: if self.fips { "fips" } else { "tls_backend" },
                reason: e.to_string(),
            })
    }

    /// Checks every field except whether the TLS backend can start here.
    pub fn check_fields(&self) -> Result<(), ConfigError> {
        let invalid = |field, reason: &str| ConfigError::Invalid {
            field,
            reason: reason.to_owned(),
        };
        let (td, ca_id) = (&self.trust_domain, self.ca_spiffe_id()?);
        if !ca_id.is_member_of(td) {
            return Err(ConfigError::Invalid {
                field: "ca_spiffe_id",
                reason: format!(
                    "{ca_id} is not in the agent's trust domain {td}; the CA of {td} has an ID in {td} (default spiffe://{td}{DEFAULT_CA_PATH})"
                ),
            });
        }
        self.validate_ca_addresses()?;
        if self.data_dir.as_os_str().is_empty() {
            return Err(invalid("data_dir", "must name a directory"));
        }
        if self.workload_api_socket.as_os_str().is_empty() {
            return Err(invalid("workload_api_socket", "must name a socket path"));
        }
        if self.sync_interval < Duration::from_millis(100)
            || self.sync_interval > Duration::from_secs(3600)
        {
            return Err(invalid("sync_interval", "must be between 100ms and 1h"));
        }
        if !(0.1..=0.9).contains(&self.rotation_fraction) {
            return Err(invalid(
                "rotation_fraction",
                "must be between 0.1 and 0.9 (0.5 is usual)",
            ));
        }
        if !(0.0..=0.3).contains(&self.rotation_jitter)
            || self.rotation_fraction + self.rotation_jitter >= 1.0
            || self.rotation_fraction - self.rotation_jitter <= 0.0
        {
            return Err(invalid(
                "rotation_jitter",
                "must be between 0 and 0.3 and keep rotation_fraction ± jitter inside (0, 1)",
            ));
        }
        if !(1..=MAX_BATCH_SIZE).contains(&self.batch_size) {
            return Err(invalid("batch_size", "must be between 1 and 500"));
        }
        self.validate_listener_limits()?;
        self.validate_attestors()?;
        Ok(())
    }
}

impl AgentConfig {
    fn validate_ca_addresses(&self) -> Result<(), ConfigError> {
        let invalid = |field, reason: String| ConfigError::Invalid { field, reason };
        let host_port = |a: &str| {
            a.rsplit_once(':')
                .is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok())
        };
        match (self.ca_address.is_empty(), self.ca_addresses.is_empty()) {
            (true, true) => {
                return Err(invalid(
                    "ca_address",
                    "is required: the CA's host:port, e.g. \"ca.example.org:8081\" (or ca_addresses for several CA replicas)".into(),
                ));
            }
            (false, false) => {
                return Err(invalid(
                    "ca_addresses",
                    "set either ca_address or ca_addresses, not both (put every CA address in ca_addresses)".into(),
                ));
            }
            (false, true) if !host_port(&self.ca_address) => {
                return Err(invalid(
                    "ca_address",
                    "must be host:port, e.g. \"ca.example.org:8081\"".into(),
                ));
            }
            _ => {}
        }
        if self.ca_addresses.len() > MAX_CA_ADDRESSES {
            return Err(invalid(
                "ca_addresses",
                format!(
                    "lists {} addresses; at most {MAX_CA_ADDRESSES} (a DNS name resolving to every replica counts once)",
                    self.ca_addresses.len()
                ),
            ));
        }
        for (i, a) in self.ca_addresses.iter().enumerate() {
            if !host_port(a) {
                return Err(invalid(
                    "ca_addresses",
                    format!("entry {a:?} must be host:port, e.g. \"ca-0.example.org:8081\""),
                ));
            }
            if self.ca_addresses[..i].contains(a) {
                return Err(invalid("ca_addresses", format!("{a:?} is listed twice")));
            }
        }
        Ok(())
    }

    fn validate_attestors(&self) -> Result<(), ConfigError> {
        if let Some(psat) = &self.node_attestor.k8s_psat {
            if self.join_token.is_some() {
                return Err(ConfigError::Invalid {
                    field: "node_attestor.k8s_psat",
                    reason: "set either join_token (or --join-token) or [node_attestor.k8s_psat], not both".into(),
                });
            }
            psat.check().map_err(|reason| ConfigError::Invalid {
                field: "node_attestor.k8s_psat",
                reason,
            })?;
        }
        if let Some(k8s) = &self.workload_attestor.k8s {
            k8s.check()
                .map_err(|(field, reason)| ConfigError::Invalid {
                    field: "workload_attestor.k8s",
                    reason: format!("{field}: {reason}"),
                })?;
        }
        Ok(())
    }

    fn validate_listener_limits(&self) -> Result<(), ConfigError> {
        let invalid = |field, reason: &str| ConfigError::Invalid {
            field,
            reason: reason.to_owned(),
        };
        let secs = Duration::from_secs;
        if !(Duration::from_millis(100)..=secs(300)).contains(&self.listener_handshake_timeout) {
            return Err(invalid(
                "listener_handshake_timeout",
                "must be between 100ms and 5m (10s is usual)",
            ));
        }
        if !(Duration::from_millis(100)..=secs(24 * 3600)).contains(&self.listener_idle_timeout) {
            return Err(invalid(
                "listener_idle_timeout",
                "must be between 100ms and 24h (5m is usual)",
            ));
        }
        if !(1..=1_000_000).contains(&self.listener_max_connections) {
            return Err(invalid(
                "listener_max_connections",
                "must be between 1 and 1000000 (8192 is usual)",
            ));
        }
        if !(1..=self.listener_max_connections).contains(&self.listener_max_connections_per_uid) {
            return Err(invalid(
                "listener_max_connections_per_uid",
                "must be between 1 and listener_max_connections",
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests;
