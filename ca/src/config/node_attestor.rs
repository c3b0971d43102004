//! `[node_attestor]`: node attestors beside join tokens (always on).
//!
//! ```toml
//! [node_attestor.k8s_psat.clusters.prod]
//! service_account_allow_list = ["meshid-system:meshid-agent"]   # "<ns>:<sa>", required
//! audience = "meshid-ca"                       # default
//! kubeconfig = "/etc/meshid/prod.kubeconfig"   # absent: in-cluster config
//! allowed_node_label_keys = ["topology.kubernetes.io/zone"]   # default: none
//! validation = "token_review"                  # or "oidc"
//! # with validation = "oidc" only:
//! # oidc_issuer = "https://issuer.example"     # https; <issuer>/.well-known/openid-configuration
//! # oidc_ca_file = "/etc/meshid/issuer-ca.pem" # extra roots for the issuer (else the system's)
//! # oidc_jwks_refresh = "5m"
//! ```
//!
//! Every setting is checked when the file is loaded ([`NodeAttestorConfig::check`]).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::ConfigError;

/// `audience` unless set.
pub const DEFAULT_AUDIENCE: &str = "meshid-ca";
/// `oidc_jwks_refresh` unless set.
pub const DEFAULT_JWKS_REFRESH: Duration = Duration::from_secs(300);
/// The range `oidc_jwks_refresh` may take.
const JWKS_REFRESH_RANGE: (Duration, Duration) =
    (Duration::from_secs(10), Duration::from_secs(86400));
/// Longest cluster name (it is a path segment of agent IDs).
pub const MAX_CLUSTER_NAME: usize = meshid_identity::k8s_psat::MAX_CLUSTER_LEN;
/// Most entries in one allow-list or label-key list.
const MAX_LIST: usize = 256;
/// The setting every error here names.
const FIELD: &str = "node_attestor.k8s_psat";

/// The `[node_attestor]` table.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeAttestorConfig {
    /// `[node_attestor.k8s_psat]`: agents attest with projected
    /// service-account tokens of the configured clusters.
    #[serde(default)]
    pub k8s_psat: Option<K8sPsatConfig>,
}

/// The `[node_attestor.k8s_psat]` table.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct K8sPsatConfig {
    /// One sub-table per cluster, keyed by the cluster's name.
    #[serde(default)]
    pub clusters: BTreeMap<String, K8sPsatCluster>,
}

/// How a cluster's tokens are verified.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PsatValidation {
    /// The cluster's TokenReview API verifies each token.
    #[default]
    TokenReview,
    /// The CA verifies the token against the issuer's JWKS (OIDC discovery).
    Oidc,
}

/// One cluster whose agents may attest.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct K8sPsatCluster {
    /// `"<namespace>:<service account>"` of the agents; required, non-empty.
    pub service_account_allow_list: Vec<String>,
    /// The audience the tokens must carry.
    #[serde(default = "default_audience")]
    pub audience: String,
    /// The kubeconfig of the CA's access to this cluster; absent: the
    /// in-cluster config (with `validation = "oidc"`: no API lookups).
    #[serde(default)]
    pub kubeconfig: Option<PathBuf>,
    /// Node label keys recorded as `agent_node_label:<k>:<v>` selectors.
    #[serde(default)]
    pub allowed_node_label_keys: Vec<String>,
    /// `token_review` (default) or `oidc`.
    #[serde(default)]
    pub validation: PsatValidation,
    /// The service-account issuer (`https://…`), with `validation = "oidc"`.
    #[serde(default)]
    pub oidc_issuer: Option<String>,
    /// PEM roots trusted for the issuer's TLS besides the system's.
    #[serde(default)]
    pub oidc_ca_file: Option<PathBuf>,
    /// How often the issuer's JWKS is fetched again (default 5m).
    #[serde(default, with = "meshid_runtime::duration::option")]
    pub oidc_jwks_refresh: Option<Duration>,
}

fn default_audience() -> String {
    DEFAULT_AUDIENCE.to_owned()
}

fn invalid(reason: String) -> ConfigError {
    ConfigError::Invalid {
        field: FIELD,
        reason,
    }
}

// === impl NodeAttestorConfig ===

impl NodeAttestorConfig {
    /// Checks every cluster's settings.
    pub fn check(&self) -> Result<(), ConfigError> {
        let Some(psat) = &self.k8s_psat else {
            return Ok(());
        };
        for (name, cluster) in &psat.clusters {
            check_cluster_name(name)?;
            cluster
                .check()
                .map_err(|reason| invalid(format!("clusters.{name}: {reason}")))?;
        }
        Ok(())
    }

    /// The configured k8s_psat clusters (empty: the attestor is off).
    pub fn k8s_psat_clusters(&self) -> impl Iterator<Item = (&String, &K8sPsatCluster)> {
        self.k8s_psat.iter().flat_map(|p| p.clusters.iter())
    }
}

/// A cluster name: 1 to 63 of `[a-z0-9-]`.
pub fn check_cluster_name(name: &str) -> Result<(), ConfigError> {
    if meshid_identity::k8s_psat::is_valid_cluster(name) {
        Ok(())
    } else {
        Err(invalid(format!(
            "cluster name {:?} must be 1 to {MAX_CLUSTER_NAME} characters of a-z, 0-9 and '-' \
             (it is part of agent IDs)",
            name.chars().take(80).collect::<String>()
        )))
    }
}

/// A Kubernetes object name of at most 253 `[a-z0-9.-]`.
fn is_k8s_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
}

// === impl K8sPsatCluster ===

impl K8sPsatCluster {
    /// A TokenReview cluster allowing `allow` with every other setting at
    /// its default.
    pub fn token_review(allow: &[&str]) -> Self {
        Self {
            service_account_allow_list: allow.iter().map(|s| (*s).to_owned()).collect(),
            audience: default_audience(),
            kubeconfig: None,
            allowed_node_label_keys: Vec::new(),
            validation: PsatValidation::TokenReview,
            oidc_issuer: None,
            oidc_ca_file: None,
            oidc_jwks_refresh: None,
        }
    }

    /// `oidc_jwks_refresh` or its default.
    pub fn jwks_refresh(&self) -> Duration {
        self.oidc_jwks_refresh.unwrap_or(DEFAULT_JWKS_REFRESH)
    }

    fn check(&self) -> Result<(), String> {
        if self.service_account_allow_list.is_empty() {
            return Err(
                "service_account_allow_list is empty; list the agents' service \
                        accounts as \"<namespace>:<name>\""
                    .into(),
            );
        }
        if self.service_account_allow_list.len() > MAX_LIST {
            return Err(format!(
                "service_account_allow_list has more than {MAX_LIST} entries"
            ));
        }
        for sa in &self.service_account_allow_list {
            let ok = sa
                .split_once(':')
                .is_some_and(|(ns, name)| is_k8s_name(ns) && is_k8s_name(name));
            if !ok {
                return Err(format!(
                    "service_account_allow_list entry {:?} must look like \"<namespace>:<name>\"",
                    sa.chars().take(80).collect::<String>()
                ));
            }
        }
        if self.audience.is_empty() || self.audience.len() > 256 {
            return Err("audience must be 1 to 256 characters".into());
        }
        if self.allowed_node_label_keys.len() > MAX_LIST {
            return Err(format!(
                "allowed_node_label_keys has more than {MAX_LIST} entries"
            ));
        }
        for key in &self.allowed_node_label_keys {
            let ok = !key.is_empty()
                && key.len() <= 317
                && key
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-._/".contains(&b));
            if !ok {
                return Err(format!(
                    "allowed_node_label_keys entry {:?} is not a label key",
                    key.chars().take(80).collect::<String>()
                ));
            }
        }
        match self.validation {
            PsatValidation::TokenReview => self.check_token_review(),
            PsatValidation::Oidc => self.check_oidc(),
        }
    }

    fn check_token_review(&self) -> Result<(), String> {
        let stray = [
            ("oidc_issuer", self.oidc_issuer.is_some()),
            ("oidc_ca_file", self.oidc_ca_file.is_some()),
            ("oidc_jwks_refresh", self.oidc_jwks_refresh.is_some()),
        ];
        match stray.iter().find(|(_, set)| *set) {
            Some((key, _)) => Err(format!(
                "{key} is only used with validation = \"oidc\"; remove it or set validation"
            )),
            None => Ok(()),
        }
    }

    fn check_oidc(&self) -> Result<(), String> {
        let Some(issuer) = &self.oidc_issuer else {
            return Err("validation = \"oidc\" needs oidc_issuer (https://…)".into());
        };
        check_issuer(issuer)?;
        let refresh = self.jwks_refresh();
        if refresh < JWKS_REFRESH_RANGE.0 || refresh > JWKS_REFRESH_RANGE.1 {
            return Err("oidc_jwks_refresh must be between 10s and 24h".into());
        }
        if self.kubeconfig.is_none() && !self.allowed_node_label_keys.is_empty() {
            return Err(
                "allowed_node_label_keys needs a kubeconfig with validation = \"oidc\" \
                        (without one the CA reads no nodes)"
                    .into(),
            );
        }
        Ok(())
    }
}

/// An issuer URL: `https://host[:port][/path]`, no query or fragment.
fn check_issuer(issuer: &str) -> Result<(), String> {
    let bad = |why: &str| {
        Err(format!(
            "oidc_issuer {:?} {why}",
            issuer.chars().take(200).collect::<String>()
        ))
    };
    if issuer.len() > 2048 {
        return bad("is longer than 2048 characters");
    }
    let Ok(uri) = issuer.parse::<http::Uri>() else {
        return bad("is not a URL");
    };
    if uri.scheme_str() != Some("https") {
        return bad("must be an https:// URL");
    }
    if uri.host().is_none_or(str::is_empty) {
        return bad("has no host");
    }
    if uri.query().is_some() || issuer.contains('#') {
        return bad("must not have a query or fragment");
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn parse(toml_text: &str) -> Result<NodeAttestorConfig, String> {
        let cfg: NodeAttestorConfig = toml::from_str(toml_text).map_err(|e| e.to_string())?;
        cfg.check().map_err(|e| e.to_string())?;
        Ok(cfg)
    }

    fn err(toml_text: &str) -> String {
        parse(toml_text).expect_err(toml_text)
    }

    #[test]
    fn a_full_cluster_parses_with_defaults() {
        let cfg = parse(
            "[k8s_psat.clusters.prod]\nservice_account_allow_list = [\"meshid-system:meshid-agent\"]\n",
        )
        .unwrap();
        let (name, c) = cfg.k8s_psat_clusters().next().unwrap();
        assert_eq!(name, "prod");
        assert_eq!(
            c,
            &K8sPsatCluster::token_review(&["meshid-system:meshid-agent"])
        );
        assert_eq!(c.jwks_refresh(), DEFAULT_JWKS_REFRESH);

        let cfg = parse(
            "[k8s_psat.clusters.edge-1]\nservice_account_allow_list = [\"a:b\"]\n\
             validation = \"oidc\"\noidc_issuer = \"https://issuer.example/x\"\n\
             oidc_jwks_refresh = \"1m\"\n",
        )
        .unwrap();
        let (_, c) = cfg.k8s_psat_clusters().next().unwrap();
        assert_eq!(c.validation, PsatValidation::Oidc);
        assert_eq!(c.jwks_refresh(), Duration::from_secs(60));
    }

    #[test]
    fn bad_settings_are_refused_naming_the_fix() {
        let sa = "service_account_allow_list = [\"a:b\"]\n";
        let cases = [
            (
                "[k8s_psat.clusters.p]\nservice_account_allow_list = []\n",
                "is empty",
            ),
            (
                "[k8s_psat.clusters.p]\n",
                "missing field `service_account_allow_list`",
            ),
            (
                "[k8s_psat.clusters.p]\nservice_account_allow_list = [\"ab\"]\n",
                "\"<namespace>:<name>\"",
            ),
            (
                "[k8s_psat.clusters.p]\nservice_account_allow_list = [\"a:\"]\n",
                "\"<namespace>:<name>\"",
            ),
            (
                &format!("[k8s_psat.clusters.Prod]\n{sa}"),
                "cluster name \"Prod\"",
            ),
            (
                &format!("[k8s_psat.clusters.a_b]\n{sa}"),
                "cluster name \"a_b\"",
            ),
            (
                &format!("[k8s_psat.clusters.{}]\n{sa}", "a".repeat(64)),
                "1 to 63",
            ),
            (
                &format!("[k8s_psat.clusters.p]\n{sa}oidc_issuer = \"https://x\"\n"),
                "oidc_issuer is only used with validation = \"oidc\"",
            ),
            (
                &format!("[k8s_psat.clusters.p]\n{sa}oidc_jwks_refresh = \"5m\"\n"),
                "oidc_jwks_refresh is only used",
            ),
            (
                &format!("[k8s_psat.clusters.p]\n{sa}validation = \"oidc\"\n"),
                "needs oidc_issuer",
            ),
            (
                &format!(
                    "[k8s_psat.clusters.p]\n{sa}validation = \"oidc\"\noidc_issuer = \"http://x\"\n"
                ),
                "must be an https:// URL",
            ),
            (
                &format!(
                    "[k8s_psat.clusters.p]\n{sa}validation = \"oidc\"\noidc_issuer = \"https://x\"\noidc_jwks_refresh = \"1s\"\n"
                ),
                "between 10s and 24h",
            ),
            (
                &format!(
                    "[k8s_psat.clusters.p]\n{sa}validation = \"oidc\"\noidc_issuer = \"https://x\"\nallowed_node_label_keys = [\"zone\"]\n"
                ),
                "needs a kubeconfig",
            ),
            (
                &format!("[k8s_psat.clusters.p]\n{sa}validation = \"jwt\"\n"),
                "unknown variant",
            ),
            (
                &format!("[k8s_psat.clusters.p]\n{sa}audience = \"\"\n"),
                "audience must be",
            ),
            (
                &format!("[k8s_psat.clusters.p]\n{sa}allowed_node_label_keys = [\"a b\"]\n"),
                "not a label key",
            ),
            (
                &format!("[k8s_psat.clusters.p]\n{sa}colour = \"red\"\n"),
                "unknown field `colour`",
            ),
        ];
        for (text, want) in cases {
            let got = err(text);
            assert!(got.contains(want), "{text}: {got}");
        }
        assert!(err(&format!("[k8s_psat.clusters.p]\n{sa}validation = \"oidc\"\noidc_issuer = \"https://x\"\noidc_jwks_refresh = \"1s\"\n"))
            .starts_with("config setting `node_attestor.k8s_psat`: clusters.p: "));
    }
}
