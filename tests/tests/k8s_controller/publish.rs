//! A template changed, the bundle and policy ConfigMaps, the webhook's
//! caBundle, status, and the request log against the RBAC table.

use std::collections::BTreeSet;

use base64::Engine as _;
use meshid_k8s::rbac::{self, Scope};
use meshid_tests::eventually;
use meshid_tests::process::Cmd;
use serde_json::json;

use super::support::{CONVERGE, World};

fn certs(pem: &str) -> Vec<Vec<u8>> {
    meshid_identity::x509::pem_certs(pem)
        .unwrap()
        .into_iter()
        .map(|c| c.to_vec())
        .collect()
}

fn istio_objects(w: &World) {
    for obj in [
        json!({"apiVersion": "security.istio.io/v1", "kind": "AuthorizationPolicy",
            "metadata": {"name": "httpbin", "namespace": "shop"},
            "spec": {"selector": {"matchLabels": {"app": "httpbin"}}, "action": "ALLOW",
                "rules": [{"from": [{"source": {"principals": ["cluster.local/ns/shop/sa/curl"]}}],
                           "to": [{"operation": {"methods": ["GET"], "paths": ["/headers"]}}]}]}}),
        json!({"apiVersion": "security.istio.io/v1", "kind": "AuthorizationPolicy",
            "metadata": {"name": "deny-ip", "namespace": "meshid-system"},
            "spec": {"action": "DENY",
                "rules": [{"from": [{"source": {"ipBlocks": ["203.0.113.0/24"], "notNamespaces": ["shop"]}}]}]}}),
        json!({"apiVersion": "security.istio.io/v1", "kind": "PeerAuthentication",
            "metadata": {"name": "default", "namespace": "meshid-system"},
            "spec": {"mtls": {"mode": "STRICT"}}}),
        json!({"apiVersion": "security.istio.io/v1", "kind": "PeerAuthentication",
            "metadata": {"name": "legacy", "namespace": "shop"},
            "spec": {"selector": {"matchLabels": {"app": "legacy"}}, "mtls": {"mode": "PERMISSIVE"},
                     "portLevelMtls": {"8080": {"mode": "DISABLE"}}}}),
    ] {
        w.api.create(obj).unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn templates_bundles_policies_webhook_and_rbac() {
    let w = World::new().await;
    // What the controller must repair or remove, and what it must fill.
    w.api
        .create(json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "meshid-policy", "namespace": "kube-system",
                         "labels": {"app.kubernetes.io/managed-by": "meshid-controller"}},
            "data": {"policy.yaml": "stale"}}))
        .unwrap();
    w.api
        .create(json!({"apiVersion": "admissionregistration.k8s.io/v1", "kind": "MutatingWebhookConfiguration",
            "metadata": {"name": "meshid-sidecar-injector"},
            "webhooks": [{"name": "inject.meshid.io", "admissionReviewVersions": ["v1"], "sideEffects": "None",
                "clientConfig": {"service": {"name": "meshid-webhook", "namespace": "meshid-system", "path": "/inject"}}}]}))
        .unwrap();
    for (name, td) in [("partner", "partner.example"), ("broken", "Not A Domain")] {
        w.api
            .create(
                json!({"apiVersion": "meshid.io/v1alpha1", "kind": "ClusterFederatedTrustDomain",
                "metadata": {"name": name},
                "spec": {"trustDomain": td, "bundleEndpointURL": "https://partner.example/bundle",
                         "bundleEndpointProfile": {"type": "https_web"}}}),
            )
            .unwrap();
    }
    istio_objects(&w);
    w.template(
        "web",
        json!({"spiffeIDTemplate": "spiffe://{{.TrustDomain}}/app/{{.PodLabels.app}}",
               "podSelector": {"matchLabels": {"app": "web"}}}),
    );
    let _c = w.controller("controller-0", "");
    let uids = w.create_pods("web", 3, json!({"app": "web"}));
    w.create_pods("other", 2, json!({"app": "other"}));
    w.converge_to_pods(&uids);
    assert!(
        w.owned()
            .iter()
            .all(|e| e["spiffe_id"] == "spiffe://example.org/app/web")
    );
    let status =
        |w: &World| w.api.get("clusteridentitytemplates", "", "web").unwrap()["status"].clone();
    eventually("template status", CONVERGE, || {
        let s = status(&w);
        (s["entries"] == 3 && s["observedGeneration"] == 1).then_some(())
    });

    // The template changes: every entry follows, status too.
    w.template(
        "web",
        json!({"spiffeIDTemplate": "spiffe://{{.TrustDomain}}/svc/{{.PodLabels.app}}",
               "podSelector": {"matchLabels": {"app": "web"}}}),
    );
    eventually("entries of the new template", CONVERGE, || {
        let owned = w.owned();
        (owned.len() == 3
            && owned
                .iter()
                .all(|e| e["spiffe_id"] == "spiffe://example.org/svc/web"))
        .then_some(())
    });
    eventually("status of generation 2", CONVERGE, || {
        (status(&w)["observedGeneration"] == 2).then_some(())
    });

    // The bundle in every namespace but the ignored one.
    let bundle_cm = |ns: &str| w.api.get("configmaps", ns, "meshid-ca-root-cert");
    let roots = certs(&w.ca.bundle_pem());
    for ns in ["meshid-system", "shop"] {
        let cm = eventually(&format!("the bundle ConfigMap in {ns}"), CONVERGE, || {
            bundle_cm(ns)
        });
        assert_eq!(certs(cm["data"]["root-cert.pem"].as_str().unwrap()), roots);
        assert!(
            cm["data"]["bundle.spiffe"]
                .as_str()
                .unwrap()
                .contains("\"keys\"")
        );
        assert_eq!(
            cm["metadata"]["labels"]["app.kubernetes.io/managed-by"],
            "meshid-controller"
        );
    }
    assert!(bundle_cm("kube-system").is_none());
    eventually("the stale kube-system ConfigMap removed", CONVERGE, || {
        w.api
            .get("configmaps", "kube-system", "meshid-policy")
            .is_none()
            .then_some(())
    });
    let ca_bundle = |w: &World| {
        w.api
            .get(
                "mutatingwebhookconfigurations",
                "",
                "meshid-sidecar-injector",
            )
            .unwrap()["webhooks"][0]["clientConfig"]["caBundle"]
            .as_str()
            .map(|b| base64::engine::general_purpose::STANDARD.decode(b).unwrap())
    };
    let pem = eventually("the webhook's caBundle", CONVERGE, || ca_bundle(&w));
    assert_eq!(certs(std::str::from_utf8(&pem).unwrap()), roots);

    // A new root prepared: the ConfigMaps and the caBundle carry both.
    let seq_before =
        bundle_cm("shop").unwrap()["metadata"]["annotations"]["meshid.io/bundle-sequence"].clone();
    w.ca.admin(&["ca", "rotation", "prepare", "--kind", "x509"]);
    let roots = certs(&w.ca.bundle_pem());
    assert_eq!(roots.len(), 2);
    for ns in ["meshid-system", "shop"] {
        eventually(&format!("the new bundle in {ns}"), CONVERGE, || {
            let cm = bundle_cm(ns)?;
            (certs(cm["data"]["root-cert.pem"].as_str()?) == roots).then_some(())
        });
    }
    assert_ne!(
        bundle_cm("shop").unwrap()["metadata"]["annotations"]["meshid.io/bundle-sequence"],
        seq_before
    );
    eventually("the new caBundle", CONVERGE, || {
        ca_bundle(&w).filter(|p| std::str::from_utf8(p).is_ok_and(|p| certs(p) == roots))
    });

    // The policy ConfigMap: Istio's objects, accepted by the proxy's check.
    let policy = eventually("the policy ConfigMap in shop", CONVERGE, || {
        w.api.get("configmaps", "shop", "meshid-policy")
    });
    let text = policy["data"]["policy.yaml"].as_str().unwrap();
    for want in [
        "shop/httpbin",
        "example.org/ns/shop/sa/curl",
        "meshid-system/deny-ip",
        "shop/legacy",
        "PERMISSIVE",
    ] {
        assert!(text.contains(want), "{want} missing:\n{text}");
    }
    assert!(!text.contains("ipBlocks"), "{text}");
    let file = w.dir.path().join("policy.yaml");
    std::fs::write(&file, text).unwrap();
    let out = Cmd::meshid()
        .args(["policy", "check"])
        .args([&file])
        .run_ok();
    println!("meshid policy check:\n{out}");
    let system = w
        .api
        .get("configmaps", "meshid-system", "meshid-policy")
        .unwrap();
    assert!(
        !system["data"]["policy.yaml"]
            .as_str()
            .unwrap()
            .contains("shop/httpbin")
    );

    // Federated trust domains: the broken one says why.
    eventually("federated trust domain status", CONVERGE, || {
        let ok = w.api.get("clusterfederatedtrustdomains", "", "partner")?;
        let bad = w.api.get("clusterfederatedtrustdomains", "", "broken")?;
        let ok_done = ok.get("status").is_some() && ok["status"]["lastError"].is_null();
        let bad_done = bad["status"]["lastError"]
            .as_str()
            .is_some_and(|e| e.contains("trustDomain"));
        (ok_done && bad_done).then_some(())
    });

    check_rbac(&w, "controller-0");
}

/// Every call the controller made is granted by `rbac::CONTROLLER`, and
/// every rule there was used.
fn check_rbac(w: &World, token: &str) {
    let mut used = BTreeSet::new();
    for r in w.api.requests().into_iter().filter(|r| r.token == token) {
        let rule = rbac::CONTROLLER
            .iter()
            .find(|rule| {
                rule.api_group == r.group
                    && rule.resource == r.resource
                    && rule.verbs.contains(&r.verb)
                    && (rule.resource_names.is_empty()
                        || rule.resource_names.contains(&r.name.as_str()))
                    && (rule.scope == Scope::Cluster || r.namespace == "meshid-system")
            })
            .unwrap_or_else(|| panic!("not granted by rbac::CONTROLLER: {r:?}"));
        used.insert((rule.api_group, rule.resource, r.verb));
    }
    for rule in rbac::CONTROLLER {
        for verb in rule.verbs {
            assert!(
                used.contains(&(rule.api_group, rule.resource, *verb)),
                "rbac::CONTROLLER grants {verb} on {}/{} but the controller never used it",
                rule.api_group,
                rule.resource
            );
        }
    }
}
