//! `controller.toml`: what `meshid k8s controller run` reads, parsed then
//! checked into [`Settings`], the controller's own typed view.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use meshid_identity::id::{SpiffeId, TrustDomain};
use serde::Deserialize;

use crate::template::{Template, TemplateError};

/// The default parent: the agent that issue #14's `k8s_psat` attestation
/// gives the pod's node (SPIRE's form).
pub const DEFAULT_PARENT_ID_TEMPLATE: &str =
    "spiffe://{{.TrustDomain}}/meshid/agent/k8s_psat/{{.ClusterName}}/{{.NodeUID}}";

/// The pod selectors an entry can carry, each `k8s:<what>:<value of the pod>`.
pub const POD_SELECTORS: [&str; 3] = ["k8s:ns", "k8s:sa", "k8s:pod-uid"];

/// Longest cluster name: the owner `k8s/<cluster_name>` must fit the CA's
/// 128 bytes.
const MAX_CLUSTER_NAME: usize = 120;

/// The file as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(missing_docs)]
pub struct ControllerConfig {
    pub cluster_name: String,
    pub trust_domain: String,
    #[serde(default = "default_admin_socket")]
    pub ca_admin_socket: PathBuf,
    #[serde(default = "default_parent")]
    pub parent_id_template: String,
    #[serde(default = "default_pod_selectors")]
    pub pod_selectors: Vec<String>,
    #[serde(default)]
    pub class_name: String,
    #[serde(default = "default_root_namespace")]
    pub root_namespace: String,
    #[serde(default = "default_ignore")]
    pub ignore_namespaces: Vec<String>,
    #[serde(default = "default_bundle_configmap")]
    pub bundle_configmap: String,
    #[serde(default = "default_policy_configmap")]
    pub policy_configmap: String,
    #[serde(default = "default_webhook")]
    pub webhook_configuration: String,
    #[serde(default = "default_bundle_refresh", with = "meshid_runtime::duration")]
    pub bundle_refresh: Duration,
    #[serde(default = "default_ops_listen")]
    pub ops_listen: SocketAddr,
    #[serde(default)]
    pub kubeconfig: Option<PathBuf>,
    #[serde(default)]
    pub leader_election: LeaderElectionConfig,
}

/// `[leader_election]`: client-go's parameters.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(missing_docs)]
pub struct LeaderElectionConfig {
    #[serde(default = "default_root_namespace")]
    pub namespace: String,
    #[serde(default = "default_lease_name")]
    pub lease_name: String,
    #[serde(default)]
    pub identity: String,
    #[serde(default = "default_lease_duration", with = "meshid_runtime::duration")]
    pub lease_duration: Duration,
    #[serde(default = "default_renew_deadline", with = "meshid_runtime::duration")]
    pub renew_deadline: Duration,
    #[serde(default = "default_retry_period", with = "meshid_runtime::duration")]
    pub retry_period: Duration,
}

/// A checked config: what the controller runs with.
#[derive(Debug, Clone)]
#[allow(missing_docs)]
pub struct Settings {
    pub cluster_name: String,
    pub trust_domain: TrustDomain,
    /// `k8s/<cluster_name>`.
    pub owner: String,
    pub ca_admin_socket: PathBuf,
    pub parent_id_template: Template,
    pub pod_selectors: Vec<PodSelector>,
    pub class_name: String,
    pub root_namespace: String,
    pub ignore_namespaces: Vec<String>,
    pub bundle_configmap: String,
    pub policy_configmap: String,
    pub webhook_configuration: String,
    pub bundle_refresh: Duration,
    pub ops_listen: SocketAddr,
    pub kubeconfig: Option<PathBuf>,
    pub lease: LeaseSettings,
}

/// Leader election, checked; `identity` and `namespace` resolved.
#[derive(Debug, Clone)]
#[allow(missing_docs)]
pub struct LeaseSettings {
    pub namespace: String,
    pub name: String,
    pub identity: String,
    pub lease_duration: Duration,
    pub renew_deadline: Duration,
    pub retry_period: Duration,
}

/// One of [`POD_SELECTORS`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PodSelector {
    /// `k8s:ns:<namespace>`.
    Namespace,
    /// `k8s:sa:<service account>`.
    ServiceAccount,
    /// `k8s:pod-uid:<uid>`.
    PodUid,
}

/// Why a config was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: meshid_runtime::fs::ReadError,
    },
    /// Not valid TOML of this shape.
    #[error("{path}: {source}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// Why.
        source: Box<toml::de::Error>,
    },
    /// A field has a bad value.
    #[error("{field}: {problem}")]
    Invalid {
        /// The field.
        field: &'static str,
        /// What is wrong and what to write.
        problem: String,
    },
    /// `parent_id_template` is not a template.
    #[error("parent_id_template: {0}")]
    Template(#[from] TemplateError),
}

fn invalid(field: &'static str, problem: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        field,
        problem: problem.into(),
    }
}

// === impl ControllerConfig ===

impl ControllerConfig {
    /// Reads and parses `path` (bounded read).
    pub fn from_file(path: &Path) -> Result<Self, ConfigError> {
        let text = meshid_runtime::fs::read_to_string(path, meshid_runtime::fs::MAX_SMALL_FILE)
            .map_err(|source| ConfigError::Read {
                path: path.to_owned(),
                source,
            })?;
        toml::from_str(&text).map_err(|e| ConfigError::Parse {
            path: path.to_owned(),
            source: Box::new(e),
        })
    }

    /// Checks every field; `env` looks up `POD_NAMESPACE`, `POD_NAME` and
    /// `HOSTNAME` (a function so tests need not set the process's
    /// environment).
    pub fn check(self, env: impl Fn(&str) -> Option<String>) -> Result<Settings, ConfigError> {
        let name_ok = !self.cluster_name.is_empty()
            && self.cluster_name.len() <= MAX_CLUSTER_NAME
            && self.cluster_name.chars().all(|c| {
                c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_' | '-')
            });
        if !name_ok {
            return Err(invalid(
                "cluster_name",
                format!(
                    "{:?}: write 1 to {MAX_CLUSTER_NAME} characters of a-z, 0-9, '.', '_', '-'",
                    self.cluster_name
                ),
            ));
        }
        let trust_domain = SpiffeId::parse(&format!("spiffe://{}", self.trust_domain))
            .map(|id| id.trust_domain())
            .map_err(|e| invalid("trust_domain", format!("{:?}: {e}", self.trust_domain)))?;
        let parent_id_template = Template::parse(&self.parent_id_template)?;
        let pod_selectors = self
            .pod_selectors
            .iter()
            .map(|s| match s.as_str() {
                "k8s:ns" => Ok(PodSelector::Namespace),
                "k8s:sa" => Ok(PodSelector::ServiceAccount),
                "k8s:pod-uid" => Ok(PodSelector::PodUid),
                other => Err(invalid(
                    "pod_selectors",
                    format!("unknown selector {other:?}; use {POD_SELECTORS:?} or []"),
                )),
            })
            .collect::<Result<Vec<_>, _>>()?;
        for (field, value) in [
            ("root_namespace", &self.root_namespace),
            ("bundle_configmap", &self.bundle_configmap),
            ("policy_configmap", &self.policy_configmap),
            ("webhook_configuration", &self.webhook_configuration),
            (
                "leader_election.lease_name",
                &self.leader_election.lease_name,
            ),
        ] {
            dns_name(field, value)?;
        }
        if self.bundle_configmap == self.policy_configmap {
            return Err(invalid(
                "policy_configmap",
                "must differ from bundle_configmap: each ConfigMap has one writer",
            ));
        }
        if self.bundle_refresh < Duration::from_millis(100) {
            return Err(invalid("bundle_refresh", "at least 100ms"));
        }
        let lease = self.leader_election.check(&env)?;
        Ok(Settings {
            owner: format!("k8s/{}", self.cluster_name),
            cluster_name: self.cluster_name,
            trust_domain,
            ca_admin_socket: self.ca_admin_socket,
            parent_id_template,
            pod_selectors,
            class_name: self.class_name,
            root_namespace: self.root_namespace,
            ignore_namespaces: self.ignore_namespaces,
            bundle_configmap: self.bundle_configmap,
            policy_configmap: self.policy_configmap,
            webhook_configuration: self.webhook_configuration,
            bundle_refresh: self.bundle_refresh,
            ops_listen: self.ops_listen,
            kubeconfig: self.kubeconfig,
            lease,
        })
    }
}

// === impl LeaderElectionConfig ===

impl LeaderElectionConfig {
    fn check(self, env: &impl Fn(&str) -> Option<String>) -> Result<LeaseSettings, ConfigError> {
        let namespace = env("POD_NAMESPACE")
            .filter(|s| !s.is_empty())
            .unwrap_or(self.namespace);
        dns_name("leader_election.namespace", &namespace)?;
        let identity = Some(self.identity)
            .filter(|s| !s.is_empty())
            .or_else(|| env("POD_NAME").filter(|s| !s.is_empty()))
            .or_else(|| env("HOSTNAME").filter(|s| !s.is_empty()))
            .ok_or_else(|| {
                invalid(
                    "leader_election.identity",
                    "empty and neither POD_NAME nor HOSTNAME is set; name this controller",
                )
            })?;
        if identity.len() > 253 {
            return Err(invalid("leader_election.identity", "at most 253 bytes"));
        }
        let (d, r, p) = (self.lease_duration, self.renew_deadline, self.retry_period);
        if !(p > Duration::ZERO && p < r && r < d) {
            return Err(invalid(
                "leader_election",
                format!(
                    "need 0 < retry_period ({p:?}) < renew_deadline ({r:?}) < lease_duration ({d:?})"
                ),
            ));
        }
        if d.subsec_nanos() != 0 {
            return Err(invalid(
                "leader_election.lease_duration",
                "whole seconds (the Lease stores seconds)",
            ));
        }
        Ok(LeaseSettings {
            namespace,
            name: self.lease_name,
            identity,
            lease_duration: d,
            renew_deadline: r,
            retry_period: p,
        })
    }
}

impl Default for LeaderElectionConfig {
    fn default() -> Self {
        Self {
            namespace: default_root_namespace(),
            lease_name: default_lease_name(),
            identity: String::new(),
            lease_duration: default_lease_duration(),
            renew_deadline: default_renew_deadline(),
            retry_period: default_retry_period(),
        }
    }
}

/// A Kubernetes object name (RFC 1123 subdomain, at most 253 bytes).
fn dns_name(field: &'static str, value: &str) -> Result<(), ConfigError> {
    let ok = !value.is_empty()
        && value.len() <= 253
        && value.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label.starts_with(|c: char| c.is_ascii_alphanumeric())
                && label.ends_with(|c: char| c.is_ascii_alphanumeric())
                && label
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        });
    if ok {
        Ok(())
    } else {
        Err(invalid(
            field,
            format!("{value:?} is not a Kubernetes name (lowercase a-z, 0-9, '-', '.')"),
        ))
    }
}

fn default_admin_socket() -> PathBuf {
    "/run/meshid/admin/admin.sock".into()
}
fn default_parent() -> String {
    DEFAULT_PARENT_ID_TEMPLATE.into()
}
fn default_pod_selectors() -> Vec<String> {
    POD_SELECTORS.iter().map(|s| (*s).to_owned()).collect()
}
fn default_root_namespace() -> String {
    "meshid-system".into()
}
fn default_ignore() -> Vec<String> {
    ["kube-system", "kube-public", "kube-node-lease"]
        .iter()
        .map(|s| (*s).to_owned())
        .collect()
}
fn default_bundle_configmap() -> String {
    "meshid-ca-root-cert".into()
}
fn default_policy_configmap() -> String {
    "meshid-policy".into()
}
fn default_webhook() -> String {
    crate::rbac::WEBHOOK_CONFIGURATION.into()
}
fn default_bundle_refresh() -> Duration {
    Duration::from_secs(5)
}
fn default_ops_listen() -> SocketAddr {
    SocketAddr::from(([0, 0, 0, 0], 8083))
}
fn default_lease_name() -> String {
    "meshid-controller".into()
}
fn default_lease_duration() -> Duration {
    Duration::from_secs(15)
}
fn default_renew_deadline() -> Duration {
    Duration::from_secs(10)
}
fn default_retry_period() -> Duration {
    Duration::from_secs(2)
}
