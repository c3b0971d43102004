//! The resource types the fake API server knows, and its discovery
//! documents (`/api`, `/apis`, `/api/v1`, `/apis/<group>/<version>`).

use serde_json::{Value, json};

/// One resource type: where it lives in the API and what it supports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Resource {
    /// The API group (`""` for the core group).
    pub group: &'static str,
    /// The version served (one per resource).
    pub version: &'static str,
    /// The plural name in URLs (`configmaps`).
    pub plural: &'static str,
    /// The singular name (`configmap`).
    pub singular: &'static str,
    /// The `kind` of its objects (`ConfigMap`).
    pub kind: &'static str,
    /// Namespaced (else cluster-scoped).
    pub namespaced: bool,
    /// Has a `/status` subresource: writes to the main resource keep the
    /// stored `.status`, writes to `/status` change only `.status`.
    pub status: bool,
}

impl Resource {
    /// `v1` for the core group, else `group/version`.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.to_owned()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }
}

const fn res(
    group: &'static str,
    version: &'static str,
    plural: &'static str,
    singular: &'static str,
    kind: &'static str,
    namespaced: bool,
    status: bool,
) -> Resource {
    Resource {
        group,
        version,
        plural,
        singular,
        kind,
        namespaced,
        status,
    }
}

/// Every resource served; any other answers 404.
pub const RESOURCES: &[Resource] = &[
    res("", "v1", "pods", "pod", "Pod", true, true),
    res(
        "",
        "v1",
        "namespaces",
        "namespace",
        "Namespace",
        false,
        true,
    ),
    res("", "v1", "nodes", "node", "Node", false, true),
    res(
        "",
        "v1",
        "configmaps",
        "configmap",
        "ConfigMap",
        true,
        false,
    ),
    res("", "v1", "secrets", "secret", "Secret", true, false),
    res(
        "",
        "v1",
        "serviceaccounts",
        "serviceaccount",
        "ServiceAccount",
        true,
        false,
    ),
    res(
        "coordination.k8s.io",
        "v1",
        "leases",
        "lease",
        "Lease",
        true,
        false,
    ),
    res(
        "admissionregistration.k8s.io",
        "v1",
        "mutatingwebhookconfigurations",
        "mutatingwebhookconfiguration",
        "MutatingWebhookConfiguration",
        false,
        false,
    ),
    res(
        "meshid.io",
        "v1alpha1",
        "clusteridentitytemplates",
        "clusteridentitytemplate",
        "ClusterIdentityTemplate",
        false,
        true,
    ),
    res(
        "meshid.io",
        "v1alpha1",
        "clusterfederatedtrustdomains",
        "clusterfederatedtrustdomain",
        "ClusterFederatedTrustDomain",
        false,
        true,
    ),
    res(
        "security.istio.io",
        "v1",
        "authorizationpolicies",
        "authorizationpolicy",
        "AuthorizationPolicy",
        true,
        true,
    ),
    res(
        "security.istio.io",
        "v1",
        "peerauthentications",
        "peerauthentication",
        "PeerAuthentication",
        true,
        true,
    ),
];

/// The resource served at `group/version/plural`.
pub fn by_path(group: &str, version: &str, plural: &str) -> Option<&'static Resource> {
    RESOURCES
        .iter()
        .find(|r| r.group == group && r.version == version && r.plural == plural)
}

/// The resource by plural name alone (plural names are unique here).
pub fn by_plural(plural: &str) -> Option<&'static Resource> {
    RESOURCES.iter().find(|r| r.plural == plural)
}

/// The resource of an object's `apiVersion` and `kind`.
pub fn by_kind(api_version: &str, kind: &str) -> Option<&'static Resource> {
    RESOURCES
        .iter()
        .find(|r| r.api_version() == api_version && r.kind == kind)
}

/// The verbs every resource supports.
const VERBS: &[&str] = &[
    "create", "delete", "get", "list", "patch", "update", "watch",
];

/// `/api`: the core group's versions.
pub fn core_versions(server: &str) -> Value {
    json!({
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": server}],
    })
}

/// `/apis`: every named group with its one version.
pub fn groups() -> Value {
    let mut names: Vec<(&str, &str)> = RESOURCES
        .iter()
        .filter(|r| !r.group.is_empty())
        .map(|r| (r.group, r.version))
        .collect();
    names.sort_unstable();
    names.dedup();
    let groups: Vec<Value> = names
        .into_iter()
        .map(|(group, version)| {
            let gv = json!({"groupVersion": format!("{group}/{version}"), "version": version});
            json!({"name": group, "versions": [gv.clone()], "preferredVersion": gv})
        })
        .collect();
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
}

/// `/api/v1` or `/apis/<group>/<version>`: its resources, `None` when
/// nothing is served there.
pub fn resource_list(group: &str, version: &str) -> Option<Value> {
    let mut resources = Vec::new();
    for r in RESOURCES
        .iter()
        .filter(|r| r.group == group && r.version == version)
    {
        resources.push(json!({
            "name": r.plural, "singularName": r.singular, "namespaced": r.namespaced,
            "kind": r.kind, "verbs": VERBS,
        }));
        if r.status {
            resources.push(json!({
                "name": format!("{}/status", r.plural), "singularName": "", "namespaced": r.namespaced,
                "kind": r.kind, "verbs": ["get", "patch", "update"],
            }));
        }
    }
    let group_version = if group.is_empty() {
        version.to_owned()
    } else {
        format!("{group}/{version}")
    };
    (!resources.is_empty()).then(|| {
        json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": group_version,
               "resources": resources})
    })
}
