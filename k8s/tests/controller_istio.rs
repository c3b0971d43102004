//! Istio AuthorizationPolicy / PeerAuthentication → the proxy's policy
//! file: examples shaped like Istio's documentation, each output read back
//! by the proxy's own policy parser.

#![allow(clippy::unwrap_used)]

use meshid_identity::TrustDomain;
use meshid_k8s::istio::{AuthorizationPolicy, PeerAuthentication};
use meshid_k8s::publish::policy::{self, ALLOW_ALL};
use meshid_proxy::policy::PolicyDocument;
use serde_json::{Value, json};

fn td() -> TrustDomain {
    TrustDomain::new("example.org").unwrap()
}

fn ap(yaml: &str) -> AuthorizationPolicy {
    serde_yaml_ng::from_str(yaml).expect("AuthorizationPolicy")
}

fn pa(yaml: &str) -> PeerAuthentication {
    serde_yaml_ng::from_str(yaml).expect("PeerAuthentication")
}

/// The file for `ns` as JSON (easy to assert on), after checking that the
/// proxy accepts the rendered YAML.
fn file_for(
    ns: &str,
    aps: &[AuthorizationPolicy],
    pas: &[PeerAuthentication],
) -> (Value, Vec<String>) {
    let aps: Vec<_> = aps.iter().collect();
    let pas: Vec<_> = pas.iter().collect();
    let (file, notes) = policy::policy_file(ns, "meshid-system", &aps, &pas, &td());
    let text = policy::render(&file).unwrap();
    PolicyDocument::from_yaml(&text).unwrap_or_else(|e| panic!("proxy refuses:\n{text}\n{e}"));
    let value = serde_json::to_value(&file).unwrap();
    (
        value,
        notes
            .into_iter()
            .map(|n| format!("{}: {}", n.object, n.message))
            .collect(),
    )
}

const HTTPBIN_ALLOW: &str = r#"
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: { name: httpbin, namespace: foo, generation: 1 }
spec:
  selector: { matchLabels: { app: httpbin, version: v1 } }
  action: ALLOW
  rules:
  - from:
    - source: { principals: ["cluster.local/ns/default/sa/curl"] }
    - source: { namespaces: ["dev"] }
    to:
    - operation: { methods: ["GET"], paths: ["/info*"] }
    when:
    - key: request.headers[version]
      values: ["v1", "v2"]
"#;

#[test]
fn an_allow_policy_keeps_its_rules_and_selector_with_the_real_trust_domain() {
    let (f, notes) = file_for("foo", &[ap(HTTPBIN_ALLOW)], &[]);
    assert!(notes.is_empty(), "{notes:?}");
    assert_eq!(
        f["policies"],
        json!([{
            "name": "foo/httpbin",
            "action": "ALLOW",
            "selector": { "matchLabels": { "app": "httpbin", "version": "v1" } },
            "rules": [{
                "from": [
                    { "source": { "principals": ["example.org/ns/default/sa/curl"] } },
                    { "source": { "namespaces": ["dev"] } }
                ],
                "to": [{ "operation": { "methods": ["GET"], "paths": ["/info*"] } }],
                "when": [{ "key": "request.headers[version]", "values": ["v1", "v2"] }]
            }]
        }])
    );
}

#[test]
fn no_policy_at_all_is_one_explicit_allow_all() {
    let (f, _) = file_for("bar", &[ap(HTTPBIN_ALLOW)], &[]);
    assert_eq!(
        f["policies"],
        json!([{ "name": ALLOW_ALL, "action": "ALLOW", "rules": [{}] }])
    );
    assert!(f.get("peerAuthentication").is_none());
}

#[test]
fn root_namespace_policies_apply_to_every_namespace_first() {
    let mesh = ap(r#"
metadata: { name: deny-all-but-mesh, namespace: meshid-system }
spec:
  action: DENY
  rules:
  - from:
    - source: { notNamespaces: ["foo", "bar"] }
"#);
    let (f, _) = file_for("foo", &[ap(HTTPBIN_ALLOW), mesh], &[]);
    let names: Vec<_> = f["policies"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(names, ["meshid-system/deny-all-but-mesh", "foo/httpbin"]);
}

#[test]
fn unsupported_fields_drop_the_allow_rule_and_widen_the_deny_rule() {
    let allow = ap(r#"
metadata: { name: jwt, namespace: foo, generation: 3 }
spec:
  action: ALLOW
  rules:
  - from:
    - source: { requestPrincipals: ["issuer/subject"] }
  - to:
    - operation: { ports: ["8080"] }
  - when:
    - key: source.ip
      values: ["10.0.0.1"]
"#);
    let deny = ap(r#"
metadata: { name: block, namespace: foo }
spec:
  action: DENY
  rules:
  - from:
    - source: { ipBlocks: ["1.2.3.4"], namespaces: ["evil"] }
    when:
    - key: remote.ip
      values: ["5.6.7.8"]
    - key: request.headers[x-tenant]
      notValues: ["a"]
"#);
    let (f, notes) = file_for("foo", &[allow, deny], &[]);
    let p = f["policies"].as_array().unwrap();
    assert_eq!(p[0]["name"], "foo/block");
    assert_eq!(
        p[0]["rules"],
        json!([{
            "from": [{ "source": { "namespaces": ["evil"] } }],
            "when": [{ "key": "request.headers[x-tenant]", "notValues": ["a"] }]
        }])
    );
    assert_eq!(p[1]["name"], "foo/jwt");
    assert_eq!(
        p[1]["rules"],
        json!([{ "to": [{ "operation": { "ports": ["8080"] } }] }])
    );
    assert!(notes.iter().any(|n| n.contains("foo/jwt")
        && n.contains("rules[0] dropped")
        && n.contains("requestPrincipals")));
    assert!(
        notes
            .iter()
            .any(|n| n.contains("foo/jwt") && n.contains("rules[2] dropped"))
    );
    assert!(
        notes
            .iter()
            .any(|n| n.contains("foo/block") && n.contains("ipBlocks"))
    );
}

#[test]
fn custom_becomes_deny_and_target_refs_narrow() {
    let custom = ap(r#"
metadata: { name: ext-authz, namespace: foo }
spec:
  action: CUSTOM
  provider: { name: my-ext-authz }
  rules:
  - to:
    - operation: { paths: ["/admin/*"] }
"#);
    let targeted = ap(r#"
metadata: { name: gw, namespace: foo }
spec:
  targetRefs: [{ kind: Gateway, group: gateway.networking.k8s.io, name: gw }]
  action: ALLOW
  rules: [{}]
"#);
    let (f, notes) = file_for("foo", &[custom, targeted], &[]);
    let p = f["policies"].as_array().unwrap();
    assert_eq!(p[0]["name"], "foo/ext-authz");
    assert_eq!(p[0]["action"], "DENY");
    assert_eq!(
        p[0]["rules"],
        json!([{ "to": [{ "operation": { "paths": ["/admin/*"] } }] }])
    );
    assert_eq!(p[1]["name"], "foo/gw");
    assert_eq!(p[1]["rules"], json!([]));
    assert!(notes.iter().any(|n| n.contains("CUSTOM")));
    assert!(notes.iter().any(|n| n.contains("targetRef")));
}

#[test]
fn service_accounts_become_principals_and_keep_istios_and() {
    let only_sa = ap(r#"
metadata: { name: sa, namespace: foo }
spec:
  rules:
  - from:
    - source: { serviceAccounts: ["default/curl"], notServiceAccounts: ["default/bad"] }
"#);
    let both = ap(r#"
metadata: { name: both, namespace: foo }
spec:
  rules:
  - from:
    - source: { principals: ["cluster.local/ns/default/*"], serviceAccounts: ["default/curl"] }
    - source: { namespaces: ["dev"] }
    to:
    - operation: { methods: ["GET"] }
"#);
    let (f, _) = file_for("foo", &[only_sa, both], &[]);
    let p = f["policies"].as_array().unwrap();
    assert_eq!(p[0]["name"], "foo/both");
    assert_eq!(
        p[0]["rules"],
        json!([
            {
                "from": [{ "source": { "namespaces": ["dev"] } }],
                "to": [{ "operation": { "methods": ["GET"] } }]
            },
            {
                "from": [{ "source": { "principals": ["example.org/ns/default/*"] } }],
                "to": [{ "operation": { "methods": ["GET"] } }],
                "when": [{ "key": "source.principal", "values": ["example.org/ns/default/sa/curl"] }]
            }
        ])
    );
    assert_eq!(
        p[1]["rules"],
        json!([{ "from": [{ "source": {
            "principals": ["example.org/ns/default/sa/curl"],
            "notPrincipals": ["example.org/ns/default/sa/bad"]
        } }] }])
    );
}

#[test]
fn peer_authentication_mesh_namespace_and_workload_in_lookup_order() {
    let mesh = pa(r#"
metadata: { name: default, namespace: meshid-system }
spec: { mtls: { mode: STRICT } }
"#);
    let ns = pa(r#"
metadata: { name: default, namespace: foo }
spec: { mtls: { mode: PERMISSIVE } }
"#);
    let workload = pa(r#"
metadata: { name: legacy, namespace: foo }
spec:
  selector: { matchLabels: { app: legacy } }
  mtls: { mode: STRICT }
  portLevelMtls:
    "8080": { mode: DISABLE }
"#);
    let other_ns = pa(r#"
metadata: { name: default, namespace: bar }
spec: { mtls: { mode: DISABLE } }
"#);
    let odd = pa(r#"
metadata: { name: odd, namespace: foo }
spec:
  selector: { matchLabels: { app: odd } }
  mtls: { mode: LOOSE }
"#);
    let (f, notes) = file_for("foo", &[], &[mesh, ns, workload, other_ns, odd]);
    assert_eq!(
        f["peerAuthentication"],
        json!([
            { "name": "foo/legacy", "scope": "workload", "selector": { "matchLabels": { "app": "legacy" } },
              "mode": "STRICT", "portLevelMtls": { "8080": { "mode": "DISABLE" } } },
            { "name": "foo/odd", "scope": "workload", "selector": { "matchLabels": { "app": "odd" } },
              "mode": "STRICT" },
            { "name": "foo/default", "scope": "namespace", "mode": "PERMISSIVE" },
            { "name": "meshid-system/default", "scope": "mesh", "mode": "STRICT" }
        ])
    );
    assert!(
        notes
            .iter()
            .any(|n| n.contains("foo/odd") && n.contains("LOOSE"))
    );
}
