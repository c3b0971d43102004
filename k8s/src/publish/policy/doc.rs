//! The proxy's policy file as the controller writes it (the shape
//! `meshid_proxy`'s policy loader reads: Istio's AuthorizationPolicy rules
//! plus `selector` and `peerAuthentication`).

use std::collections::BTreeMap;

use serde::Serialize;

/// The whole file.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PolicyFile {
    /// Never empty (the proxy refuses an empty list).
    pub policies: Vec<Policy>,
    /// mTLS modes, in the order the proxy looks them up.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub peer_authentication: Vec<PeerAuthentication>,
}

/// One policy.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[allow(missing_docs)]
pub struct Policy {
    /// `<namespace>/<name>`.
    pub name: String,
    /// `ALLOW`, `DENY` or `AUDIT`.
    pub action: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub selector: Option<Selector>,
    pub rules: Vec<Rule>,
}

/// `selector: { matchLabels: {...} }`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Selector {
    /// Labels the pod must carry, all of them.
    pub match_labels: BTreeMap<String, String>,
}

/// One rule; an empty one (`{}`) matches every request.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[allow(missing_docs)]
pub struct Rule {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub from: Vec<From>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub to: Vec<To>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub when: Vec<Condition>,
}

/// `from: - source:`.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[allow(missing_docs)]
pub struct From {
    pub source: Source,
}

/// The source fields the proxy matches.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
#[allow(missing_docs)]
pub struct Source {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub principals: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub not_principals: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub namespaces: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub not_namespaces: Vec<String>,
}

/// `to: - operation:`.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[allow(missing_docs)]
pub struct To {
    pub operation: crate::istio::Operation,
}

/// `when: - key:`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
#[allow(missing_docs)]
pub struct Condition {
    pub key: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub values: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub not_values: Vec<String>,
}

/// One `peerAuthentication` item.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
#[allow(missing_docs)]
pub struct PeerAuthentication {
    /// `<namespace>/<name>`.
    pub name: String,
    /// `mesh`, `namespace` or `workload`.
    pub scope: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub selector: Option<Selector>,
    /// `UNSET`, `STRICT`, `PERMISSIVE` or `DISABLE`.
    pub mode: &'static str,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub port_level_mtls: BTreeMap<String, PortMode>,
}

/// `portLevelMtls: { "8080": { mode: DISABLE } }`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PortMode {
    /// The port's mode.
    pub mode: &'static str,
}
