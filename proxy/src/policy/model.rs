//! The policy file as written by operators (Istio AuthorizationPolicy shape).
//!
//! These types only mirror the YAML; [`compile`](super::compile) validates them
//! and turns them into matchers. Unknown fields are rejected everywhere.

use serde::Deserialize;
use std::collections::BTreeMap;
use std::fmt;

/// The whole policy file: `policies: [...]`, `peerAuthentication: [...]`.
///
/// `None` (no `policies` key: an empty or comment-only document) is kept
/// apart from a list so the loader can refuse both it and `[]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct PolicyFile {
    #[serde(default)]
    pub policies: Option<Vec<PolicyDoc>>,
    /// mTLS modes of inbound listeners (Istio PeerAuthentication).
    #[serde(default)]
    pub peer_authentication: Vec<PeerAuthDoc>,
}

/// One `peerAuthentication` item:
/// `{ name, scope, selector, mode, portLevelMtls }`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct PeerAuthDoc {
    pub name: String,
    /// `mesh`, `namespace` or `workload`.
    pub scope: String,
    /// Required with `scope: workload`, refused otherwise.
    #[serde(default)]
    pub selector: Option<SelectorDoc>,
    /// `UNSET` (default: inherit), `STRICT`, `PERMISSIVE` or `DISABLE`.
    #[serde(default)]
    pub mode: Option<String>,
    /// Per application port (workload scope only).
    #[serde(default)]
    pub port_level_mtls: PortModes,
}

/// `portLevelMtls` as written, in order, duplicates kept (`80` and `"80"`
/// are the same port: the compiler refuses the pair).
#[derive(Debug, Default)]
pub(crate) struct PortModes(pub Vec<(PortDoc, PortMtlsDoc)>);

impl<'de> Deserialize<'de> for PortModes {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = PortModes;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a map from port to { mode }")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut m: A,
            ) -> Result<PortModes, A::Error> {
                let mut out = Vec::new();
                while let Some(entry) = m.next_entry()? {
                    out.push(entry);
                }
                Ok(PortModes(out))
            }
        }
        d.deserialize_map(V)
    }
}

/// `portLevelMtls: { "8080": { mode: DISABLE } }`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct PortMtlsDoc {
    #[serde(default)]
    pub mode: Option<String>,
}

/// One policy: `{ name, selector, action, rules }`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct PolicyDoc {
    pub name: String,
    /// The workloads it applies to; `None`: every workload.
    #[serde(default)]
    pub selector: Option<SelectorDoc>,
    pub action: String,
    /// `None` (no `rules` key) and `[]` both mean: matches nothing.
    #[serde(default)]
    pub rules: Vec<RuleDoc>,
}

/// `selector: { matchLabels: { app: web } }` (Istio's WorkloadSelector).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct SelectorDoc {
    #[serde(default)]
    pub match_labels: BTreeMap<String, String>,
}

/// One rule: `from`, `to` and `when` must all match.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RuleDoc {
    #[serde(default)]
    pub from: Vec<FromDoc>,
    #[serde(default)]
    pub to: Vec<ToDoc>,
    #[serde(default)]
    pub when: Vec<ConditionDoc>,
}

/// `from: - source: {...}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FromDoc {
    pub source: SourceDoc,
}

/// Who is calling.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct SourceDoc {
    #[serde(default)]
    pub principals: Vec<String>,
    #[serde(default)]
    pub not_principals: Vec<String>,
    #[serde(default)]
    pub namespaces: Vec<String>,
    #[serde(default)]
    pub not_namespaces: Vec<String>,
    #[serde(default)]
    pub trust_domains: Vec<String>,
    #[serde(default)]
    pub not_trust_domains: Vec<String>,
}

/// `to: - operation: {...}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ToDoc {
    pub operation: OperationDoc,
}

/// What is being called.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct OperationDoc {
    #[serde(default)]
    pub ports: Vec<PortDoc>,
    #[serde(default)]
    pub not_ports: Vec<PortDoc>,
    #[serde(default)]
    pub methods: Vec<String>,
    #[serde(default)]
    pub not_methods: Vec<String>,
    #[serde(default)]
    pub paths: Vec<String>,
    #[serde(default)]
    pub not_paths: Vec<String>,
    #[serde(default)]
    pub hosts: Vec<String>,
    #[serde(default)]
    pub not_hosts: Vec<String>,
}

/// `when: - key: ..., values: [...], notValues: [...]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct ConditionDoc {
    pub key: String,
    #[serde(default)]
    pub values: Vec<String>,
    #[serde(default)]
    pub not_values: Vec<String>,
}

/// A port as written: Istio writes them as strings, people write numbers.
/// Kept raw here so the compiler can name the policy and rule when it is bad.
#[derive(Debug)]
pub(crate) struct PortDoc(pub String);

impl<'de> Deserialize<'de> for PortDoc {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = PortDoc;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a port number such as 8080 or \"8080\"")
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<PortDoc, E> {
                Ok(PortDoc(v.to_string()))
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<PortDoc, E> {
                Ok(PortDoc(v.to_string()))
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<PortDoc, E> {
                Ok(PortDoc(v.to_owned()))
            }
        }
        d.deserialize_any(V)
    }
}
