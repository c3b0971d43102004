//! The webhook's configuration file (TOML), validated at load.
//!
//! ```toml
//! listen = "0.0.0.0:9443"
//! ops_listen = "0.0.0.0:8084"
//! identity = { workload_api = { socket = "/run/meshid/sockets/agent.sock" } }
//! [inject]
//! image = "meshid:0.1.0"
//! image_pull_policy = "IfNotPresent"
//! agent_socket_dir = "/run/meshid/sockets"
//! proxy_uid = 1337
//! cpu_request = "10m"
//! memory_request = "32Mi"
//! memory_limit = "256Mi"
//! inbound_port_base = 15006
//! policy_configmap = "meshid-policy"
//! ```
//!
//! `identity` is the proxy's identity type: the Workload API of the node's
//! agent, or PEM files.

use meshid_proxy::config::IdentityConfig;
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// Largest configuration file accepted, in bytes.
pub const MAX_CONFIG_SIZE: u64 = 64 * 1024;

/// Everything `meshid k8s webhook run` needs.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    /// Address of the HTTPS listener the API server calls.
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
    /// Address of `/healthz`, `/readyz` and `/metrics`; absent: none.
    #[serde(default = "default_ops_listen")]
    pub ops_listen: Option<SocketAddr>,
    /// Where the serving certificate (the webhook's SVID) comes from.
    #[serde(
        default = "default_identity",
        with = "serde_yaml_ng::with::singleton_map"
    )]
    pub identity: IdentityConfig,
    /// What the injected sidecar looks like.
    #[serde(default)]
    pub inject: InjectConfig,
}

/// The injected sidecar's settings.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct InjectConfig {
    /// The meshid image the sidecar runs.
    #[serde(default = "default_image")]
    pub image: String,
    /// `Always`, `IfNotPresent` or `Never`.
    #[serde(default = "default_pull_policy")]
    pub image_pull_policy: String,
    /// The node's directory holding the agent's Workload API socket
    /// (`agent.sock`), mounted read-only into the sidecar.
    #[serde(default = "default_socket_dir")]
    pub agent_socket_dir: PathBuf,
    /// User and group the proxy runs as; never 0.
    #[serde(default = "default_proxy_uid")]
    pub proxy_uid: i64,
    /// CPU request of the sidecar (a Kubernetes quantity).
    #[serde(default = "default_cpu_request")]
    pub cpu_request: String,
    /// Memory request of the sidecar.
    #[serde(default = "default_memory_request")]
    pub memory_request: String,
    /// Memory limit of the sidecar.
    #[serde(default = "default_memory_limit")]
    pub memory_limit: String,
    /// The first inbound listener's port; app port `i` (sorted) is served
    /// on `inbound_port_base + i`.
    #[serde(default = "default_inbound_port_base")]
    pub inbound_port_base: u16,
    /// The ConfigMap (in the pod's namespace) holding `policy.yaml`.
    #[serde(default = "default_policy_configmap")]
    pub policy_configmap: String,
}

/// Why a configuration cannot be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read webhook config {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is not valid TOML for this schema.
    #[error("webhook config {path} is invalid: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// What the parser said (includes the line).
        message: String,
    },
    /// A value is out of range or inconsistent.
    #[error("webhook config is invalid: {0}")]
    Invalid(String),
}

// === impl WebhookConfig ===

impl WebhookConfig {
    /// Reads and validates the TOML file at `path` (at most
    /// [`MAX_CONFIG_SIZE`] bytes).
    pub fn from_file(path: &Path) -> Result<Self, ConfigError> {
        let text = meshid_runtime::fs::read_to_string(path, MAX_CONFIG_SIZE).map_err(|e| {
            ConfigError::Read {
                path: path.to_owned(),
                source: e.into(),
            }
        })?;
        Self::from_toml(&text).map_err(|e| match e {
            ConfigError::Parse { message, .. } => ConfigError::Parse {
                path: path.to_owned(),
                message,
            },
            other => other,
        })
    }

    /// Parses and validates TOML text.
    pub fn from_toml(text: &str) -> Result<Self, ConfigError> {
        let cfg: Self = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: PathBuf::from("<toml>"),
            message: e.to_string(),
        })?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// Checks what serde cannot.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.ops_listen == Some(self.listen) && self.listen.port() != 0 {
            return Err(ConfigError::Invalid(format!(
                "listen and ops_listen are both {}; give each its own port",
                self.listen
            )));
        }
        self.inject.validate()
    }
}

// === impl InjectConfig ===

impl Default for InjectConfig {
    fn default() -> Self {
        Self {
            image: default_image(),
            image_pull_policy: default_pull_policy(),
            agent_socket_dir: default_socket_dir(),
            proxy_uid: default_proxy_uid(),
            cpu_request: default_cpu_request(),
            memory_request: default_memory_request(),
            memory_limit: default_memory_limit(),
            inbound_port_base: default_inbound_port_base(),
            policy_configmap: default_policy_configmap(),
        }
    }
}

impl InjectConfig {
    /// Checks every value against what the Kubernetes API accepts.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |m: String| Err(ConfigError::Invalid(m));
        if self.image.trim().is_empty() || self.image.chars().any(char::is_whitespace) {
            return invalid(format!(
                "inject.image {:?} is not an image reference",
                self.image
            ));
        }
        if !["Always", "IfNotPresent", "Never"].contains(&self.image_pull_policy.as_str()) {
            return invalid(format!(
                "inject.image_pull_policy {:?}: use Always, IfNotPresent or Never",
                self.image_pull_policy
            ));
        }
        if !self.agent_socket_dir.is_absolute() {
            return invalid(format!(
                "inject.agent_socket_dir {} must be an absolute path on the node",
                self.agent_socket_dir.display()
            ));
        }
        if !(1..=i64::from(i32::MAX)).contains(&self.proxy_uid) {
            return invalid(format!(
                "inject.proxy_uid {} must be a non-root user ID (1 to 2147483647)",
                self.proxy_uid
            ));
        }
        for (key, q) in [
            ("cpu_request", &self.cpu_request),
            ("memory_request", &self.memory_request),
            ("memory_limit", &self.memory_limit),
        ] {
            if !is_quantity(q) {
                return invalid(format!(
                    "inject.{key} {q:?} is not a Kubernetes quantity (such as 10m, 32Mi, 1Gi)"
                ));
            }
        }
        if self.inbound_port_base < 1024 {
            return invalid(format!(
                "inject.inbound_port_base {} is a privileged port; the proxy runs as a non-root user",
                self.inbound_port_base
            ));
        }
        if !is_dns_label(&self.policy_configmap) {
            return invalid(format!(
                "inject.policy_configmap {:?} is not a valid ConfigMap name",
                self.policy_configmap
            ));
        }
        Ok(())
    }
}

/// A Kubernetes quantity: a decimal number with an optional binary (`Ki`…
/// `Ei`), decimal (`m`, `k`, `M`…`E`) or exponent suffix.
fn is_quantity(s: &str) -> bool {
    let num_end = s
        .char_indices()
        .find(|&(i, c)| !(c.is_ascii_digit() || c == '.' || (i == 0 && (c == '+' || c == '-'))))
        .map_or(s.len(), |(i, _)| i);
    let (num, suffix) = s.split_at(num_end);
    let digits = num.trim_start_matches(['+', '-']);
    let valid_num = !digits.is_empty()
        && digits != "."
        && digits.matches('.').count() <= 1
        && !num.starts_with('-');
    let valid_suffix = match suffix {
        "" | "m" | "k" | "M" | "G" | "T" | "P" | "E" => true,
        "Ki" | "Mi" | "Gi" | "Ti" | "Pi" | "Ei" => true,
        e => {
            let exp = e.strip_prefix(['e', 'E']).unwrap_or("");
            let exp = exp.strip_prefix(['+', '-']).unwrap_or(exp);
            !exp.is_empty() && exp.chars().all(|c| c.is_ascii_digit())
        }
    };
    valid_num && valid_suffix
}

/// An RFC 1123 label (the names of ConfigMaps meshid publishes).
pub(crate) fn is_dns_label(s: &str) -> bool {
    (1..=63).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

fn default_listen() -> SocketAddr {
    SocketAddr::from(([0, 0, 0, 0], 9443))
}

fn default_ops_listen() -> Option<SocketAddr> {
    Some(SocketAddr::from(([0, 0, 0, 0], 8084)))
}

fn default_identity() -> IdentityConfig {
    IdentityConfig::WorkloadApi {
        socket: PathBuf::from("/run/meshid/sockets/agent.sock"),
    }
}

fn default_image() -> String {
    format!("meshid:{}", env!("CARGO_PKG_VERSION"))
}

fn default_pull_policy() -> String {
    "IfNotPresent".into()
}

fn default_socket_dir() -> PathBuf {
    PathBuf::from("/run/meshid/sockets")
}

fn default_proxy_uid() -> i64 {
    1337
}

fn default_cpu_request() -> String {
    "10m".into()
}

fn default_memory_request() -> String {
    "32Mi".into()
}

fn default_memory_limit() -> String {
    "256Mi".into()
}

fn default_inbound_port_base() -> u16 {
    15006
}

fn default_policy_configmap() -> String {
    "meshid-policy".into()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn the_documented_example_parses() {
        let doc = include_str!("config.rs")
            .lines()
            .filter_map(|l| l.strip_prefix("//! "))
            .skip_while(|l| !l.starts_with("listen"))
            .take_while(|l| !l.starts_with("```"))
            .collect::<Vec<_>>()
            .join("\n");
        let cfg = WebhookConfig::from_toml(&doc).unwrap();
        assert_eq!(cfg.inject, InjectConfig::default());
        assert_eq!(cfg.listen, default_listen());
    }

    #[test]
    fn unknown_keys_and_bad_values_are_refused() {
        assert!(WebhookConfig::from_toml("lisen = \"0.0.0.0:1\"").is_err());
        for bad in [
            "proxy_uid = 0",
            "image_pull_policy = \"sometimes\"",
            "cpu_request = \"ten\"",
            "memory_limit = \"1Gb\"",
            "inbound_port_base = 80",
            "policy_configmap = \"Policy\"",
            "agent_socket_dir = \"run/meshid\"",
            "image = \"\"",
        ] {
            let err = WebhookConfig::from_toml(&format!("[inject]\n{bad}")).unwrap_err();
            assert!(matches!(err, ConfigError::Invalid(_)), "{bad}: {err}");
        }
    }

    #[test]
    fn quantities() {
        for ok in ["10m", "32Mi", "1", "0.5", "1.5Gi", "1e3", "100k", "+1"] {
            assert!(is_quantity(ok), "{ok}");
        }
        for bad in ["", "Mi", "1.2.3", "-1", "1Gb", "1e", ".", "10 m"] {
            assert!(!is_quantity(bad), "{bad}");
        }
    }
}
