//! The proxy's configuration file (YAML or TOML), validated at start-up.
//! Durations use the one grammar of every meshid config (humantime: `500ms`,
//! `10s`, `1h 30m`; a bare number has no unit and is refused); the old
//! integer keys (`drain_timeout_secs`, `poll_ms`, `connections.*_secs`) still
//! work and are reported by [`ProxyConfig::deprecated`]. Peer SPIFFE IDs and
//! trust domains are parsed at load.
//!
//! ```yaml
//! identity:
//!   files: { cert: svid.pem, key: svid.key, bundle: bundle.pem }
//!   # or: workload_api: { socket: /run/meshid/agent.sock }
//! inbound:
//!   - { listen: "0.0.0.0:15006", forward_to: "127.0.0.1:8080", protocol: http }
//! outbound:
//!   - { listen: "127.0.0.1:15001", upstream: "10.0.0.7:15006",
//!       server_id: "spiffe://example.org/backend", protocol: http }
//! policy: policy.yaml
//! pod_labels_file: /etc/meshid/proxy/labels   # for policies with a selector
//! mode: enforce
//! ops_listen: "127.0.0.1:15020"
//! access_log: stdout
//! tracing: { protocol: grpc, otlp_endpoint: "http://127.0.0.1:4317", sample_ratio: 1.0 }
//! workers: 1
//! tls_backend: rustls          # or openssl (a meshid built with --features openssl)
//! fips: false                  # true: OpenSSL's FIPS provider or no start
//! tls: { min_version: "1.2", algorithms: default }   # or fips
//! ```

mod limits;
mod otlp;
mod renamed;

pub use limits::ConnectionLimits;
pub use otlp::{
    DEFAULT_GRPC_ENDPOINT, DEFAULT_HTTP_ENDPOINT, MAX_BATCH, MAX_EXPORT_TIMEOUT, MAX_SERVICE_NAME,
    OtlpProtocol, OtlpTarget, TracingConfig,
};
pub use renamed::Deprecated;

use crate::tls::TlsOptions;
use meshid_identity::tls::{Algorithms, TlsBackend};
use meshid_identity::{SpiffeId, TrustDomain};
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Largest configuration file accepted, in bytes.
pub const MAX_CONFIG_SIZE: u64 = 1024 * 1024;

/// Everything `meshid proxy run` needs.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProxyConfig {
    /// Where the proxy's own SVID and trust bundle come from.
    #[serde(with = "serde_yaml_ng::with::singleton_map")]
    pub identity: IdentityConfig,
    /// Listeners that terminate mTLS and forward to the local application.
    #[serde(default)]
    pub inbound: Vec<InboundConfig>,
    /// Listeners that accept plaintext from the local application and
    /// originate mTLS to a peer proxy.
    #[serde(default)]
    pub outbound: Vec<OutboundConfig>,
    /// Authorization policy file (Istio-style); absent: allow everything.
    #[serde(default)]
    pub policy: Option<PathBuf>,
    /// The workload's labels, as a downward API volume writes them (one
    /// `key="value"` per line): policies whose `selector` does not match
    /// are skipped. Read at start and on every policy or labels change;
    /// needed (and then must be valid) only while a policy has a selector.
    #[serde(default)]
    pub pod_labels_file: Option<PathBuf>,
    /// Enforce policy decisions, or only log what would be denied.
    #[serde(default)]
    pub mode: Mode,
    /// Address of `/healthz`, `/readyz` and `/metrics`; absent: no ops server.
    #[serde(default)]
    pub ops_listen: Option<SocketAddr>,
    /// Where access log lines go.
    #[serde(default)]
    pub access_log: AccessLogTarget,
    /// TLS settings shared by every listener.
    #[serde(default)]
    pub tls: TlsSettings,
    /// Connection cap and idle / header-read timeouts of every listener.
    #[serde(default)]
    pub connections: ConnectionLimits,
    /// How long to let open connections finish after shutdown is requested
    /// (default 10s); read it with [`ProxyConfig::drain_timeout`].
    #[serde(default, with = "meshid_runtime::duration::option")]
    pub drain_timeout: Option<Duration>,
    /// Deprecated: `drain_timeout` in whole seconds.
    #[serde(default)]
    pub drain_timeout_secs: Option<u64>,
    /// Span export over OTLP (gRPC or HTTP); absent: spans are not exported.
    #[serde(default)]
    pub tracing: Option<TracingConfig>,
    /// Data-plane threads, each with its own single-threaded event loop
    /// accepting from every listener (like Envoy's `--concurrency`). One,
    /// as linkerd2-proxy, unless set: give it the cores the sidecar may
    /// use. 1–64.
    #[serde(default = "default_workers")]
    pub workers: usize,
    /// Which TLS library terminates and originates mTLS: `rustls` (the
    /// default) or `openssl` (needs a meshid built with the OpenSSL
    /// backend).
    #[serde(default)]
    pub tls_backend: TlsBackend,
    /// Load OpenSSL's FIPS provider at start-up and refuse to start
    /// without it; implies `tls.algorithms: fips`. Needs `tls_backend:
    /// openssl`.
    #[serde(default)]
    pub fips: bool,
}

/// Most data-plane threads accepted in `workers`.
pub const MAX_WORKERS: usize = 64;

/// Where the proxy's identity comes from.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
#[non_exhaustive]
pub enum IdentityConfig {
    /// The SPIFFE Workload API of the local agent.
    WorkloadApi {
        /// Path of the agent's Unix socket.
        socket: PathBuf,
    },
    /// PEM files, polled for changes.
    Files {
        /// SVID chain: leaf first, then intermediates.
        cert: PathBuf,
        /// PKCS#8 or SEC1 private key of the leaf.
        key: PathBuf,
        /// Trust bundle: root certificates of the proxy's trust domain.
        bundle: PathBuf,
        /// How often to check the files (default 1s); read it with
        /// [`IdentityConfig::poll_interval`].
        #[serde(default, with = "meshid_runtime::duration::option")]
        poll_interval: Option<Duration>,
        /// Deprecated: `poll_interval` in milliseconds.
        #[serde(default)]
        poll_ms: Option<u64>,
    },
}

/// Which application protocol a listener carries.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum Protocol {
    /// Opaque TCP: authorized per connection.
    Tcp,
    /// HTTP/1.1 or HTTP/2: authorized per request. Inbound, the
    /// application gets HTTP/1.1; outbound, each request keeps its version
    /// to the peer proxy.
    #[default]
    Http,
    /// As `http`, but inbound the application gets HTTP/2 without TLS
    /// (prior knowledge), trailers included: for gRPC servers.
    Http2,
}

/// One inbound (mTLS-terminating) listener.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InboundConfig {
    /// Address to accept mTLS connections on.
    pub listen: SocketAddr,
    /// The local application.
    pub forward_to: SocketAddr,
    /// What the connections carry.
    #[serde(default)]
    pub protocol: Protocol,
}

/// One outbound (mTLS-originating) listener.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutboundConfig {
    /// Address the local application connects to (plaintext).
    pub listen: SocketAddr,
    /// The peer's inbound listener.
    pub upstream: SocketAddr,
    /// Accept only this exact server SPIFFE ID.
    #[serde(default)]
    pub server_id: Option<SpiffeId>,
    /// Accept any server of this trust domain.
    #[serde(default)]
    pub trust_domain: Option<TrustDomain>,
    /// What the connections carry.
    #[serde(default)]
    pub protocol: Protocol,
    /// Reuse upstream connections (default). `false` opens one mTLS
    /// connection per request with session resumption off (benchmarks).
    #[serde(default = "default_true")]
    pub pool: bool,
}

/// Policy enforcement mode.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum Mode {
    /// Denied traffic is refused.
    #[default]
    Enforce,
    /// Denied traffic passes and is logged as `deny(audit)`.
    Audit,
}

/// Where access log lines go.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum AccessLogTarget {
    /// Standard output.
    #[default]
    Stdout,
    /// Appended to a file.
    File(PathBuf),
    /// No access log.
    Off,
}

/// TLS knobs.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct TlsSettings {
    /// Lowest TLS version accepted inbound and offered outbound, as
    /// Istio's `minProtocolVersion`. TLS 1.3 is always preferred.
    #[serde(default)]
    pub min_version: TlsVersion,
    /// `default`, or `fips`: only FIPS-approved algorithms (AES-GCM, ECDHE
    /// on P-256/P-384, ECDSA/RSA with SHA-2; no X25519, ChaCha20 or
    /// Ed25519), on either backend. `fips = true` implies it; it does not
    /// by itself need a FIPS-validated module. Read it with
    /// [`ProxyConfig::tls_options`].
    #[serde(default)]
    pub algorithms: Algorithms,
}

/// A minimum TLS protocol version.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[non_exhaustive]
pub enum TlsVersion {
    /// TLS 1.2 (ECDHE with AES-GCM or ChaCha20-Poly1305 only) or 1.3: what
    /// Envoy's default upstream TLS settings (at most 1.2) need.
    #[default]
    #[serde(rename = "1.2")]
    Tls12,
    /// TLS 1.3 only.
    #[serde(rename = "1.3")]
    Tls13,
}

/// Why a configuration cannot be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read proxy config {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is larger than [`MAX_CONFIG_SIZE`].
    #[error("proxy config {0} is larger than 1 MiB; is this the right file?")]
    TooLarge(PathBuf),
    /// The file is not valid YAML/TOML for this schema.
    #[error("proxy config {path} is invalid: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// What the parser said (includes the line).
        message: String,
    },
    /// The values are inconsistent.
    #[error("proxy config is invalid: {0}")]
    Invalid(String),
}

// === impl ProxyConfig ===

impl ProxyConfig {
    /// Reads `path`: TOML if it ends in `.toml`, YAML otherwise; then
    /// checks its shape ([`Self::from_yaml`]) and logs a warning for each
    /// deprecated key. Call [`Self::validate`] once flags are applied.
    pub fn from_file(path: &Path) -> Result<Self, ConfigError> {
        let read = |source| ConfigError::Read {
            path: path.to_owned(),
            source,
        };
        let len = std::fs::metadata(path).map_err(read)?.len();
        if len > MAX_CONFIG_SIZE {
            return Err(ConfigError::TooLarge(path.to_owned()));
        }
        let text = std::fs::read_to_string(path).map_err(read)?;
        let parse = |message: String| ConfigError::Parse {
            path: path.to_owned(),
            message,
        };
        let cfg = if path.extension().is_some_and(|e| e == "toml") {
            Self::from_toml(&text).map_err(|e| match e {
                ConfigError::Parse { message, .. } => parse(message),
                other => other,
            })?
        } else {
            Self::from_yaml(&text).map_err(|e| match e {
                ConfigError::Parse { message, .. } => parse(message),
                other => other,
            })?
        };
        for d in cfg.deprecated() {
            tracing::warn!(config = %path.display(), "{d}");
        }
        Ok(cfg)
    }

    /// Parses YAML text and checks its shape: listeners, addresses, peer
    /// constraints. Whether its TLS backend can start here is left to
    /// [`Self::validate`], so a flag can still override `tls_backend`
    /// (and a config generated for another build parses).
    pub fn from_yaml(text: &str) -> Result<Self, ConfigError> {
        let cfg: Self = serde_yaml_ng::from_str(text).map_err(|e| ConfigError::Parse {
            path: PathBuf::from("<yaml>"),
            message: e.to_string(),
        })?;
        cfg.check_shape()?;
        Ok(cfg)
    }

    /// Parses TOML text and checks its shape, as [`Self::from_yaml`].
    pub fn from_toml(text: &str) -> Result<Self, ConfigError> {
        let cfg: Self = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: PathBuf::from("<toml>"),
            message: e.to_string(),
        })?;
        cfg.check_shape()?;
        Ok(cfg)
    }

    /// Everything a start needs: [`Self::check_shape`], and a TLS backend
    /// this build has (with `fips`, OpenSSL's FIPS provider loaded).
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.check_shape()?;
        self.tls_backend
            .check(self.fips)
            .map_err(|e| ConfigError::Invalid(e.to_string()))
    }

    /// Checks what serde cannot: at least one listener, unique addresses,
    /// one valid peer constraint per outbound.
    pub fn check_shape(&self) -> Result<(), ConfigError> {
        if self.inbound.is_empty() && self.outbound.is_empty() {
            return Err(ConfigError::Invalid(
                "no listeners: add at least one `inbound` or `outbound` entry".into(),
            ));
        }
        let mut seen = std::collections::HashSet::new();
        let listens = self
            .inbound
            .iter()
            .map(|l| l.listen)
            .chain(self.outbound.iter().map(|l| l.listen))
            .chain(self.ops_listen);
        for addr in listens {
            if addr.port() != 0 && !seen.insert(addr) {
                return Err(ConfigError::Invalid(format!(
                    "address {addr} is used by two listeners; give each its own port"
                )));
            }
        }
        for o in &self.outbound {
            o.peer_match()?;
        }
        if let Some(t) = &self.tracing {
            t.target()?;
        }
        self.connections.validate().map_err(ConfigError::Invalid)?;
        DRAIN_TIMEOUT
            .check(self.drain_timeout, self.drain_timeout_secs)
            .map_err(ConfigError::Invalid)?;
        if let IdentityConfig::Files {
            poll_interval,
            poll_ms,
            ..
        } = &self.identity
        {
            FILES_POLL
                .check(*poll_interval, *poll_ms)
                .map_err(ConfigError::Invalid)?;
        }
        if !(1..=MAX_WORKERS).contains(&self.workers) {
            return Err(ConfigError::Invalid(format!(
                "workers is {}; use 1 to {MAX_WORKERS} data-plane threads",
                self.workers
            )));
        }
        Ok(())
    }

    /// The TLS settings of every listener: backend, minimum version and
    /// algorithms (`fips = true` implies the FIPS-approved ones).
    pub fn tls_options(&self) -> TlsOptions {
        TlsOptions {
            backend: self.tls_backend,
            min_version: self.tls.min_version,
            algorithms: match self.fips {
                true => Algorithms::Fips,
                false => self.tls.algorithms,
            },
        }
    }

    /// How long open connections may finish after shutdown is requested.
    pub fn drain_timeout(&self) -> Duration {
        DRAIN_TIMEOUT.value(self.drain_timeout, self.drain_timeout_secs)
    }

    /// The deprecated keys this config uses, each with what to write
    /// instead ([`from_file`](Self::from_file) logs them as warnings).
    pub fn deprecated(&self) -> Vec<Deprecated> {
        let poll = match &self.identity {
            IdentityConfig::Files { poll_ms, .. } => FILES_POLL.deprecated(*poll_ms),
            IdentityConfig::WorkloadApi { .. } => None,
        };
        [DRAIN_TIMEOUT.deprecated(self.drain_timeout_secs), poll]
            .into_iter()
            .flatten()
            .chain(self.connections.deprecated())
            .collect()
    }
}

const DRAIN_TIMEOUT: renamed::Renamed = renamed::Renamed {
    key: "drain_timeout",
    old_key: "drain_timeout_secs",
    unit: renamed::Unit::Secs,
    default: Duration::from_secs(10),
    zero_ok: true,
};

const FILES_POLL: renamed::Renamed = renamed::Renamed {
    key: "identity.files.poll_interval",
    old_key: "identity.files.poll_ms",
    unit: renamed::Unit::Millis,
    default: Duration::from_secs(1),
    zero_ok: false,
};

// === impl IdentityConfig ===

impl IdentityConfig {
    /// How often identity files are checked; `None` for the Workload API,
    /// which pushes updates.
    pub fn poll_interval(&self) -> Option<Duration> {
        match self {
            Self::Files {
                poll_interval,
                poll_ms,
                ..
            } => Some(FILES_POLL.value(*poll_interval, *poll_ms)),
            Self::WorkloadApi { .. } => None,
        }
    }
}

// === impl OutboundConfig ===

impl OutboundConfig {
    /// Which upstream servers this listener accepts.
    pub fn peer_match(&self) -> Result<meshid_identity::tls::PeerMatch, ConfigError> {
        use meshid_identity::tls::PeerMatch;
        match (&self.server_id, &self.trust_domain) {
            (Some(id), None) => Ok(PeerMatch::OneOf(vec![id.clone()])),
            (None, Some(td)) => Ok(PeerMatch::TrustDomain(td.clone())),
            _ => Err(ConfigError::Invalid(format!(
                "outbound {}: set exactly one of `server_id` (an exact SPIFFE ID) or `trust_domain`",
                self.listen
            ))),
        }
    }

    /// What this listener calls its destination in logs and metrics: the
    /// server ID, else the trust domain, else the upstream address.
    pub fn destination(&self) -> String {
        match (&self.server_id, &self.trust_domain) {
            (Some(id), _) => id.to_string(),
            (None, Some(td)) => td.to_string(),
            (None, None) => self.upstream.to_string(),
        }
    }
}

// === impl AccessLogTarget ===

impl<'de> Deserialize<'de> for AccessLogTarget {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Ok(match s.as_str() {
            "stdout" => Self::Stdout,
            "off" => Self::Off,
            "" => {
                return Err(serde::de::Error::custom(
                    "access_log must be `stdout`, `off` or a file path",
                ));
            }
            _ => Self::File(PathBuf::from(s)),
        })
    }
}

fn default_true() -> bool {
    true
}

fn default_workers() -> usize {
    1
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests;
