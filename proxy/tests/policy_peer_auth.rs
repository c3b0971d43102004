//! `peerAuthentication:` in the policy file: validation and the lookup
//! order (workload port-level → workload → namespace → mesh → STRICT).
#![allow(clippy::unwrap_used)]

use meshid_proxy::policy::{Labels, MtlsMode, PolicyDocument, PolicyError, PolicySet};

const ALLOW_ALL: &str = "policies: [{ name: meshid/allow-all, action: ALLOW, rules: [{}] }]\n";

fn modes(peer_auth: &str, labels: &[(&str, &str)], ports: &[u16]) -> Vec<MtlsMode> {
    let (doc, _) = PolicyDocument::from_yaml(&format!("{ALLOW_ALL}{peer_auth}")).unwrap();
    let labels = Labels::from_pairs(labels.iter().copied()).unwrap();
    let set = doc.for_workload(Some(&labels)).unwrap();
    ports
        .iter()
        .map(|p| set.peer_authentication().mode(*p))
        .collect()
}

/// The design's example: mesh STRICT, namespace PERMISSIVE, the `legacy`
/// workload STRICT except its port 8080.
const SHOP: &str = r#"
peerAuthentication:
  - { name: meshid-system/default, scope: mesh, mode: STRICT }
  - { name: shop/default, scope: namespace, mode: PERMISSIVE }
  - { name: shop/legacy, scope: workload, selector: { matchLabels: { app: legacy } },
      mode: STRICT, portLevelMtls: { "8080": { mode: DISABLE }, 9090: { mode: UNSET } } }
"#;

#[test]
fn lookup_order() {
    use MtlsMode::*;
    assert_eq!(
        modes(SHOP, &[("app", "legacy")], &[8080, 9090, 7000]),
        [Disable, Strict, Strict]
    );
    assert_eq!(
        modes(SHOP, &[("app", "web")], &[8080, 7000]),
        [Permissive, Permissive]
    );
    // Without a namespace item the mesh decides; without any, STRICT.
    let mesh_only = "peerAuthentication: [{ name: m, scope: mesh, mode: DISABLE }]";
    assert_eq!(modes(mesh_only, &[], &[80]), [Disable]);
    assert_eq!(modes("", &[], &[80]), [Strict]);
    assert_eq!(PolicySet::default().peer_authentication().mode(80), Strict);
    // UNSET inherits at every level.
    let unset = r#"
peerAuthentication:
  - { name: m, scope: mesh, mode: PERMISSIVE }
  - { name: n, scope: namespace, mode: UNSET }
  - { name: w, scope: workload, selector: { matchLabels: { app: a } } }
"#;
    assert_eq!(modes(unset, &[("app", "a")], &[80]), [Permissive]);
    // The first matching workload item wins, in file order.
    let two = r#"
peerAuthentication:
  - { name: w1, scope: workload, selector: { matchLabels: { app: a } }, mode: DISABLE }
  - { name: w2, scope: workload, selector: { matchLabels: { app: a, v: "1" } }, mode: STRICT }
"#;
    assert_eq!(modes(two, &[("app", "a"), ("v", "1")], &[80]), [Disable]);
}

#[test]
fn decisions_name_the_item() {
    let (doc, _) = PolicyDocument::from_yaml(&format!("{ALLOW_ALL}{SHOP}")).unwrap();
    let set = doc
        .for_workload(Some(&Labels::from_pairs([("app", "legacy")]).unwrap()))
        .unwrap();
    let d = set.peer_authentication().decision(8080);
    assert_eq!(d.by.as_deref(), Some("shop/legacy"));
    let none = PolicySet::default();
    assert_eq!(none.peer_authentication().decision(1).by, None);
}

#[test]
fn a_second_mesh_or_namespace_item_is_ignored_with_a_warning() {
    let text = format!(
        "{ALLOW_ALL}peerAuthentication:\n  - {{ name: a, scope: namespace, mode: DISABLE }}\n  - {{ name: b, scope: namespace, mode: STRICT }}\n"
    );
    let (doc, w) = PolicyDocument::from_yaml(&text).unwrap();
    assert_eq!(w.len(), 1);
    assert!(
        w[0].policy == "b" && w[0].message.contains("\"a\" comes first"),
        "{w:?}"
    );
    let set = doc.for_workload(None).unwrap();
    assert_eq!(set.peer_authentication().mode(1), MtlsMode::Disable);
}

#[test]
fn workload_selectors_need_labels() {
    let e = PolicySet::from_yaml(&format!("{ALLOW_ALL}{SHOP}")).unwrap_err();
    assert!(matches!(e, PolicyError::LabelsRequired { policy } if policy == "shop/legacy"));
}

#[test]
fn invalid_items_are_refused() {
    for (item, want) in [
        ("{ name: x, scope: cluster, mode: STRICT }", "unknown scope"),
        ("{ name: x, scope: mesh, mode: strict }", "unknown mode"),
        (
            "{ name: x, scope: workload, mode: STRICT }",
            "needs a selector",
        ),
        (
            "{ name: x, scope: mesh, selector: { matchLabels: { a: b } } }",
            "only scope workload takes a selector",
        ),
        (
            "{ name: x, scope: namespace, portLevelMtls: { 80: { mode: DISABLE } } }",
            "only scope workload takes portLevelMtls",
        ),
        (
            "{ name: x, scope: workload, selector: {}, portLevelMtls: { 0: { mode: DISABLE } } }",
            "bad port",
        ),
        (
            "{ name: x, scope: workload, selector: {}, portLevelMtls: { 80: { mode: DISABLE }, \"80\": { mode: STRICT } } }",
            "listed twice",
        ),
        ("{ name: \"\", scope: mesh }", "names must be"),
        (
            "{ name: x, scope: mesh, mtls: { mode: STRICT } }",
            "unknown field",
        ),
    ] {
        let text = format!("{ALLOW_ALL}peerAuthentication: [{item}]\n");
        let e = PolicyDocument::from_yaml(&text).unwrap_err().to_string();
        assert!(e.contains(want), "{item}: {e}");
    }
    let dup = format!(
        "{ALLOW_ALL}peerAuthentication: [{{ name: x, scope: mesh }}, {{ name: x, scope: namespace }}]\n"
    );
    assert!(matches!(
        PolicyDocument::from_yaml(&dup),
        Err(PolicyError::DuplicateName(n)) if n == "x"
    ));
    // peerAuthentication alone is no policy file: the list must not be empty.
    assert!(matches!(
        PolicyDocument::from_yaml("peerAuthentication: [{ name: m, scope: mesh }]"),
        Err(PolicyError::NoPolicies)
    ));
}

/// Istio's "require mTLS" idiom works on plaintext peers: a DENY on
/// `notPrincipals: ["*"]` matches exactly the peer without identity.
#[test]
fn deny_not_principals_star_refuses_the_unauthenticated_peer() {
    use meshid_identity::SpiffeId;
    use meshid_proxy::policy::{Request, explain};
    let text = format!(
        "policies:\n  - {{ name: require-mtls, action: DENY, rules: [{{ from: [{{ source: {{ notPrincipals: [\"*\"] }} }}] }}] }}\n{SHOP}"
    );
    let (doc, _) = PolicyDocument::from_yaml(&text).unwrap();
    let set = doc
        .for_workload(Some(&Labels::from_pairs([("app", "legacy")]).unwrap()))
        .unwrap();
    assert!(!set.evaluate(&Request::tcp(None, 8080)).allowed);
    let id = SpiffeId::parse("spiffe://example.org/a").unwrap();
    assert!(set.evaluate(&Request::tcp(Some(&id), 8080)).allowed);
    let why = explain(&set, &Request::tcp(None, 8080));
    assert!(
        why.contains("peer authentication of port 8080: DISABLE (set by \"shop/legacy\")"),
        "{why}"
    );
}
