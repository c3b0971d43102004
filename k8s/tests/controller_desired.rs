//! Pods × templates → the desired entries: which pods count, selectors,
//! parents, and per-template outcomes; and the controller's config.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::api::core::v1::{Namespace, Node, Pod};
use meshid_k8s::controller::config::{ControllerConfig, Settings};
use meshid_k8s::controller::desired::{self, Cluster};
use meshid_k8s::crd::ClusterIdentityTemplate;
use serde_json::json;

fn settings(extra: &str) -> Settings {
    let text = format!(
        "cluster_name = \"demo\"\ntrust_domain = \"example.org\"\n\
         parent_id_template = \"spiffe://{{{{.TrustDomain}}}}/k8s-node/{{{{.NodeName}}}}\"\n{extra}"
    );
    let cfg: ControllerConfig = toml::from_str(&text).unwrap();
    cfg.check(|name| (name == "POD_NAME").then(|| "controller-0".to_owned()))
        .unwrap()
}

fn pod(
    ns: &str,
    name: &str,
    node: Option<&str>,
    phase: &str,
    labels: serde_json::Value,
) -> Arc<Pod> {
    Arc::new(
        serde_json::from_value(json!({
            "metadata": { "name": name, "namespace": ns, "uid": format!("uid-{name}"), "labels": labels },
            "spec": { "nodeName": node, "serviceAccountName": "web", "containers": [] },
            "status": { "phase": phase }
        }))
        .unwrap(),
    )
}

fn template(name: &str, spec: serde_json::Value) -> Arc<ClusterIdentityTemplate> {
    Arc::new(
        serde_json::from_value(json!({
            "apiVersion": "meshid.io/v1alpha1",
            "kind": "ClusterIdentityTemplate",
            "metadata": { "name": name, "generation": 2 },
            "spec": spec
        }))
        .unwrap(),
    )
}

struct World {
    pods: Vec<Arc<Pod>>,
    namespaces: BTreeMap<String, Arc<Namespace>>,
    nodes: BTreeMap<String, Arc<Node>>,
    templates: Vec<Arc<ClusterIdentityTemplate>>,
}

impl World {
    fn new() -> Self {
        let ns = |name: &str, labels: serde_json::Value| {
            (
                name.to_owned(),
                Arc::new(
                    serde_json::from_value(json!({"metadata": {"name": name, "labels": labels}}))
                        .unwrap(),
                ),
            )
        };
        let node: Arc<Node> = Arc::new(
            serde_json::from_value(json!({"metadata": {"name": "node-1", "uid": "node-uid-1"}}))
                .unwrap(),
        );
        Self {
            pods: Vec::new(),
            namespaces: BTreeMap::from([
                ns("shop", json!({"team": "shop"})),
                ns("kube-system", json!({})),
                ns("dev", json!({"team": "dev"})),
            ]),
            nodes: BTreeMap::from([("node-1".to_owned(), node)]),
            templates: Vec::new(),
        }
    }

    fn desired(&self, s: &Settings) -> desired::Desired {
        desired::desired(
            s,
            Cluster {
                pods: &self.pods,
                namespaces: &self.namespaces,
                nodes: &self.nodes,
                templates: &self.templates,
            },
        )
    }
}

#[test]
fn only_scheduled_running_pods_on_known_nodes_outside_ignored_namespaces() {
    let s = settings("");
    let mut w = World::new();
    w.templates.push(template("default", json!({})));
    w.pods = vec![
        pod("shop", "ok", Some("node-1"), "Running", json!({})),
        pod("shop", "pending-ok", Some("node-1"), "Pending", json!({})),
        pod("shop", "unscheduled", None, "Pending", json!({})),
        pod("shop", "done", Some("node-1"), "Succeeded", json!({})),
        pod("shop", "failed", Some("node-1"), "Failed", json!({})),
        pod("shop", "unknown-node", Some("node-9"), "Running", json!({})),
        pod(
            "kube-system",
            "ignored",
            Some("node-1"),
            "Running",
            json!({}),
        ),
        pod("gone", "no-namespace", Some("node-1"), "Running", json!({})),
    ];
    let d = w.desired(&s);
    let uids: Vec<_> = d
        .entries
        .values()
        .map(|e| {
            e.selectors
                .iter()
                .find(|s| s.value.starts_with("pod-uid:"))
                .unwrap()
                .value
                .clone()
        })
        .collect();
    assert_eq!(uids, ["pod-uid:uid-ok", "pod-uid:uid-pending-ok"]);
    let e = d.entries.values().next().unwrap();
    assert_eq!(e.spiffe_id, "spiffe://example.org/ns/shop/sa/web");
    assert_eq!(e.parent_id, "spiffe://example.org/k8s-node/node-1");
    assert_eq!(e.owner, "k8s/demo");
    let sels: Vec<_> = e
        .selectors
        .iter()
        .map(|s| format!("{}:{}", s.r#type, s.value))
        .collect();
    assert_eq!(sels, ["k8s:ns:shop", "k8s:pod-uid:uid-ok", "k8s:sa:web"]);
    assert_eq!(d.outcomes["default"].entries, 2);
    assert_eq!(d.outcomes["default"].generation, Some(2));
}

#[test]
fn selectors_fields_and_failures_per_template() {
    let s = settings("pod_selectors = []\nclass_name = \"\"\n");
    let mut w = World::new();
    w.templates = vec![
        template(
            "web",
            json!({
                "spiffeIDTemplate": "spiffe://{{.TrustDomain}}/app/{{.PodLabels.app}}",
                "podSelector": { "matchLabels": { "tier": "web" } },
                "namespaceSelector": { "matchExpressions": [{ "key": "team", "operator": "In", "values": ["shop"] }] },
                "dnsNameTemplates": ["{{.PodLabels.app}}.{{.Namespace}}.svc"],
                "workloadSelectorTemplates": ["unix:uid:0"],
                "ttl": "1h",
                "jwtTtl": "5m",
                "federatesWith": ["partner.example"],
            }),
        ),
        template("other-class", json!({ "className": "other" })),
        template("bad", json!({ "spiffeIDTemplate": "{{.Nope}}" })),
        template(
            "reserved",
            json!({ "spiffeIDTemplate": "spiffe://example.org/meshid/x", "workloadSelectorTemplates": ["unix:uid:1"],
                     "podSelector": { "matchLabels": { "tier": "web" } } }),
        ),
    ];
    w.pods = vec![
        pod(
            "shop",
            "a",
            Some("node-1"),
            "Running",
            json!({"tier": "web", "app": "store"}),
        ),
        // Same entry as `a` (no pod-uid selector): one entry for both.
        pod(
            "shop",
            "b",
            Some("node-1"),
            "Running",
            json!({"tier": "web", "app": "store"}),
        ),
        pod(
            "shop",
            "no-app",
            Some("node-1"),
            "Running",
            json!({"tier": "web"}),
        ),
        pod(
            "dev",
            "other-ns",
            Some("node-1"),
            "Running",
            json!({"tier": "web", "app": "x"}),
        ),
    ];
    let d = w.desired(&s);
    assert_eq!(d.entries.len(), 1, "{:?}", d.entries);
    let e = d.entries.values().next().unwrap();
    assert_eq!(e.spiffe_id, "spiffe://example.org/app/store");
    assert_eq!(e.dns_names, ["store.shop.svc"]);
    assert_eq!(
        (e.x509_svid_ttl_seconds, e.jwt_svid_ttl_seconds),
        (3600, 300)
    );
    assert_eq!(e.federates_with, ["partner.example"]);
    assert_eq!(e.selectors.len(), 1);
    assert_eq!(
        (
            e.selectors[0].r#type.as_str(),
            e.selectors[0].value.as_str()
        ),
        ("unix", "uid:0")
    );
    let web = &d.outcomes["web"];
    assert_eq!((web.entries, web.failed_pods), (2, 1));
    assert!(
        web.last_error.as_deref().unwrap().contains("shop/no-app"),
        "{web:?}"
    );
    assert!(!d.outcomes.contains_key("other-class"));
    assert!(
        d.outcomes["bad"]
            .last_error
            .as_deref()
            .unwrap()
            .contains("spiffeIDTemplate")
    );
    let reserved = &d.outcomes["reserved"];
    assert_eq!(reserved.failed_pods, 4);
    assert!(reserved.last_error.as_deref().unwrap().contains("reserved"));
}

#[test]
fn config_defaults_and_refusals() {
    let s = settings("");
    assert_eq!(s.owner, "k8s/demo");
    assert_eq!(s.lease.identity, "controller-0");
    assert_eq!(s.lease.namespace, "meshid-system");
    assert_eq!(s.bundle_configmap, "meshid-ca-root-cert");
    let base = "cluster_name = \"demo\"\ntrust_domain = \"example.org\"\n";
    for (extra, field) in [
        ("pod_selectors = [\"k8s:node\"]", "pod_selectors"),
        (
            "policy_configmap = \"meshid-ca-root-cert\"",
            "policy_configmap",
        ),
        (
            "[leader_election]\nrenew_deadline = \"20s\"",
            "leader_election",
        ),
        ("parent_id_template = \"{{.Node}}\"", "parent_id_template"),
    ] {
        let cfg: ControllerConfig = toml::from_str(&format!("{base}{extra}")).unwrap();
        let err = cfg.check(|_| Some("x".into())).unwrap_err().to_string();
        assert!(err.contains(field), "{extra}: {err}");
    }
    let bad: ControllerConfig =
        toml::from_str("cluster_name = \"Demo!\"\ntrust_domain = \"example.org\"").unwrap();
    assert!(
        bad.check(|_| Some("x".into()))
            .unwrap_err()
            .to_string()
            .contains("cluster_name")
    );
    assert!(toml::from_str::<ControllerConfig>(&format!("{base}unknown = 1")).is_err());
    let env = |n: &str| match n {
        "POD_NAMESPACE" => Some("mesh".to_owned()),
        "HOSTNAME" => Some("host-a".to_owned()),
        _ => None,
    };
    let s = toml::from_str::<ControllerConfig>(base)
        .unwrap()
        .check(env)
        .unwrap();
    assert_eq!(
        (s.lease.namespace.as_str(), s.lease.identity.as_str()),
        ("mesh", "host-a")
    );
}
