//! Template rendering: the placeholders of `ClusterIdentityTemplate` and
//! `parent_id_template`, and every refusal.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;

use meshid_k8s::template::{Context, RenderError, Template, TemplateError};

fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

fn render(text: &str, pod_labels: &BTreeMap<String, String>) -> Result<String, RenderError> {
    let empty = BTreeMap::new();
    let ns_labels = labels(&[("team", "shop")]);
    let node_labels = labels(&[("topology.kubernetes.io/zone", "eu-1a")]);
    let annotations = labels(&[("meshid.io/role", "frontend")]);
    let ctx = Context {
        trust_domain: "example.org",
        cluster_name: "demo",
        namespace: "shop",
        service_account: "web",
        pod_name: "web-7d9f",
        pod_uid: "0b1c-uid",
        node_name: "node-1",
        node_uid: "node-uid-1",
        pod_labels,
        pod_annotations: &annotations,
        namespace_labels: &ns_labels,
        node_labels: if text.contains("NodeLabels") {
            &node_labels
        } else {
            &empty
        },
    };
    Template::parse(text).expect("template parses").render(&ctx)
}

#[test]
fn the_default_template_gives_istio_shaped_ids() {
    let id = render(
        meshid_k8s::crd::DEFAULT_SPIFFE_ID_TEMPLATE,
        &BTreeMap::new(),
    )
    .unwrap();
    assert_eq!(id, "spiffe://example.org/ns/shop/sa/web");
}

#[test]
fn every_scalar_field_renders() {
    let out = render(
        "{{.TrustDomain}}|{{.ClusterName}}|{{.Namespace}}|{{.ServiceAccount}}|{{.PodName}}|{{.PodUID}}|{{.NodeName}}|{{.NodeUID}}",
        &BTreeMap::new(),
    )
    .unwrap();
    assert_eq!(
        out,
        "example.org|demo|shop|web|web-7d9f|0b1c-uid|node-1|node-uid-1"
    );
}

#[test]
fn maps_by_field_and_by_index_with_spaces() {
    let pod = labels(&[("app", "web"), ("app.kubernetes.io/name", "storefront")]);
    let out = render(
        "spiffe://{{ .TrustDomain }}/{{.PodLabels.app}}/{{ index .PodLabels \"app.kubernetes.io/name\" }}/{{.NamespaceLabels.team}}/{{index .PodAnnotations \"meshid.io/role\"}}/{{index .NodeLabels \"topology.kubernetes.io/zone\"}}",
        &pod,
    )
    .unwrap();
    assert_eq!(
        out,
        "spiffe://example.org/web/storefront/shop/frontend/eu-1a"
    );
}

#[test]
fn a_missing_label_is_an_error_for_that_pod() {
    let err = render("spiffe://x/{{.PodLabels.app}}", &BTreeMap::new()).unwrap_err();
    assert_eq!(
        err,
        RenderError::MissingKey {
            map: "PodLabels",
            key: "app".into()
        }
    );
}

#[test]
fn anything_but_lookups_is_refused() {
    for bad in [
        "{{.Foo}}",
        "{{printf \"%s\" .PodName}}",
        "{{.PodLabels.app | upper}}",
        "{{if .PodName}}x{{end}}",
        "{{.PodLabels.app.kubernetes.io}}",
        "{{index .PodLabels app}}",
        "{{index .Pods \"a\"}}",
        "{{ }}",
        "{{PodName}}",
    ] {
        assert!(
            matches!(Template::parse(bad), Err(TemplateError::Unsupported(_))),
            "{bad} must be refused"
        );
    }
    assert_eq!(
        Template::parse("spiffe://x/{{.PodName"),
        Err(TemplateError::Unclosed(11))
    );
    assert!(matches!(
        Template::parse(&"a".repeat(5000)),
        Err(TemplateError::TooLong(5000))
    ));
}

#[test]
fn text_without_actions_is_kept() {
    assert_eq!(
        render("plain}}text", &BTreeMap::new()).unwrap(),
        "plain}}text"
    );
}
