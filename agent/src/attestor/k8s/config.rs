//! `[workload_attestor.k8s]`: where the kubelet is and how long to wait for it.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

/// The kubelet's secure port on the node the agent runs on.
pub const DEFAULT_KUBELET_URL: &str = "https://127.0.0.1:10250";
/// The cluster CA the agent's pod is given.
pub const DEFAULT_KUBELET_CA_PATH: &str = "/var/run/secrets/kubernetes.io/serviceaccount/ca.crt";
/// The agent pod's own service-account token.
pub const DEFAULT_TOKEN_PATH: &str = "/var/run/secrets/kubernetes.io/serviceaccount/token";

/// Settings of the `k8s` workload attestor; the table's presence enables it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct K8sAttestorConfig {
    /// The kubelet's base URL, `https://host:port` (default
    /// [`DEFAULT_KUBELET_URL`]).
    #[serde(default = "default_kubelet_url")]
    pub kubelet_url: String,
    /// An environment variable whose value (an IP address or host name)
    /// replaces `kubelet_url`'s host, e.g. `HOST_IP` set from
    /// `status.hostIP` with the downward API.
    #[serde(default)]
    pub kubelet_host_env: Option<String>,
    /// PEM file with the CA the kubelet's serving certificate is verified
    /// against (re-read when it changes).
    #[serde(default = "default_kubelet_ca_path")]
    pub kubelet_ca_path: PathBuf,
    /// The name the kubelet certificate must be valid for (default: the
    /// URL's host).
    #[serde(default)]
    pub kubelet_tls_server_name: Option<String>,
    /// Do not verify the kubelet's certificate at all (off by default; the
    /// bearer token is then sent to whoever answers at `kubelet_url`).
    #[serde(default)]
    pub skip_kubelet_verification: bool,
    /// Bearer token file for the kubelet, re-read for every request.
    #[serde(default = "default_token_path")]
    pub token_path: PathBuf,
    /// How long one pod list is reused.
    #[serde(default = "default_cache_ttl", with = "meshid_runtime::duration")]
    pub cache_ttl: Duration,
    /// While a caller's pod or container is not listed yet (just started),
    /// the list is fetched again this often...
    #[serde(default = "default_retry_interval", with = "meshid_runtime::duration")]
    pub retry_interval: Duration,
    /// ...until this much time passed; then the attestation fails.
    #[serde(default = "default_max_wait", with = "meshid_runtime::duration")]
    pub max_wait: Duration,
}

fn default_kubelet_url() -> String {
    DEFAULT_KUBELET_URL.to_owned()
}
fn default_kubelet_ca_path() -> PathBuf {
    PathBuf::from(DEFAULT_KUBELET_CA_PATH)
}
fn default_token_path() -> PathBuf {
    PathBuf::from(DEFAULT_TOKEN_PATH)
}
fn default_cache_ttl() -> Duration {
    Duration::from_secs(1)
}
fn default_retry_interval() -> Duration {
    Duration::from_millis(250)
}
fn default_max_wait() -> Duration {
    Duration::from_secs(10)
}

impl Default for K8sAttestorConfig {
    fn default() -> Self {
        Self {
            kubelet_url: default_kubelet_url(),
            kubelet_host_env: None,
            kubelet_ca_path: default_kubelet_ca_path(),
            kubelet_tls_server_name: None,
            skip_kubelet_verification: false,
            token_path: default_token_path(),
            cache_ttl: default_cache_ttl(),
            retry_interval: default_retry_interval(),
            max_wait: default_max_wait(),
        }
    }
}

// === impl K8sAttestorConfig ===

impl K8sAttestorConfig {
    /// Checks every field without reading files or the environment;
    /// `Err((field, reason))`.
    pub fn check(&self) -> Result<(), (&'static str, String)> {
        super::kubelet::Endpoint::parse(&self.kubelet_url, None)
            .map_err(|reason| ("kubelet_url", reason))?;
        if let Some(var) = &self.kubelet_host_env
            && (var.is_empty() || var.contains('='))
        {
            return Err((
                "kubelet_host_env",
                "must name an environment variable, e.g. \"HOST_IP\"".into(),
            ));
        }
        if let Some(name) = &self.kubelet_tls_server_name
            && rustls_pki_types::ServerName::try_from(name.as_str()).is_err()
        {
            return Err((
                "kubelet_tls_server_name",
                format!("{name:?} is not a DNS name or IP address"),
            ));
        }
        for (field, path) in [
            ("kubelet_ca_path", &self.kubelet_ca_path),
            ("token_path", &self.token_path),
        ] {
            if !path.is_absolute() {
                return Err((field, format!("{} must be absolute", path.display())));
            }
        }
        let ms = Duration::from_millis;
        let secs = Duration::from_secs;
        if self.cache_ttl > secs(60) {
            return Err(("cache_ttl", "must be at most 1m (1s is usual)".into()));
        }
        if !(ms(10)..=secs(10)).contains(&self.retry_interval) {
            return Err((
                "retry_interval",
                "must be between 10ms and 10s (250ms is usual)".into(),
            ));
        }
        if self.max_wait > secs(120) {
            return Err(("max_wait", "must be at most 2m (10s is usual)".into()));
        }
        Ok(())
    }
}
