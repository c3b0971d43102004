//! Policies with `selector: { matchLabels }`: only those matching the
//! workload's labels (a downward API labels file) apply, also across
//! reloads of either file; unknown labels fail closed.
#![allow(clippy::unwrap_used)]

#[path = "support/net.rs"]
mod net;
#[path = "support/pki.rs"]
mod pki;

use meshid_identity::SpiffeId;
use meshid_proxy::policy::{
    Labels, PolicyDocument, PolicyError, PolicySet, PolicyWatcher, Request,
};
use meshid_tests::eventually_async;
use std::time::Duration;

/// Two workloads of one namespace share this file: `web` pods let only
/// the frontend in, `db` pods only the backend; everyone refuses `evil`.
const SHOP: &str = r#"
policies:
  - name: shop/web
    selector: { matchLabels: { app: web } }
    action: ALLOW
    rules: [{ from: [{ source: { principals: ["cluster.local/ns/shop/sa/frontend"] } }] }]
  - name: shop/db
    selector: { matchLabels: { app: db, tier: data } }
    action: ALLOW
    rules: [{ from: [{ source: { principals: ["cluster.local/ns/shop/sa/backend"] } }] }]
  - name: shop/no-evil
    action: DENY
    rules: [{ from: [{ source: { principals: ["cluster.local/ns/shop/sa/evil"] } }] }]
"#;

fn id(sa: &str) -> SpiffeId {
    SpiffeId::parse(&format!("spiffe://cluster.local/ns/shop/sa/{sa}")).unwrap()
}

fn allowed(set: &PolicySet, sa: &str) -> bool {
    set.evaluate(&Request::tcp(Some(&id(sa)), 8080)).allowed
}

fn for_labels(text: &str, labels: &[(&str, &str)]) -> PolicySet {
    let (doc, _) = PolicyDocument::from_yaml(text).unwrap();
    doc.for_workload(Some(&Labels::from_pairs(labels.iter().copied()).unwrap()))
        .unwrap()
}

#[test]
fn only_matching_policies_apply() {
    let web = for_labels(SHOP, &[("app", "web"), ("version", "v1")]);
    assert_eq!(
        web.policies().iter().map(|p| p.name()).collect::<Vec<_>>(),
        ["shop/web", "shop/no-evil"]
    );
    assert!(allowed(&web, "frontend"));
    assert!(!allowed(&web, "backend"));
    assert!(!allowed(&web, "evil"));

    let db = for_labels(SHOP, &[("app", "db"), ("tier", "data")]);
    assert!(allowed(&db, "backend"));
    assert!(!allowed(&db, "frontend"));

    // Every label of the selector must match.
    let half = for_labels(SHOP, &[("app", "db")]);
    assert!(!half.has_allow_policy());
    // No ALLOW applies to this workload: all but the DENY is allowed (Istio).
    assert!(allowed(&half, "frontend"));
    assert!(!allowed(&half, "evil"));
}

#[test]
fn every_policy_skipped_allows_but_an_empty_file_is_still_refused() {
    let only_web = "policies: [{ name: w, selector: { matchLabels: { app: web } }, action: ALLOW, rules: [{}] }]";
    let other = for_labels(only_web, &[("app", "other")]);
    assert!(other.policies().is_empty());
    assert!(allowed(&other, "anyone"));
    assert!(matches!(
        PolicyDocument::from_yaml("policies: []"),
        Err(PolicyError::NoPolicies)
    ));
    // An empty matchLabels selects every workload and needs no labels.
    let all = "policies: [{ name: a, selector: { matchLabels: {} }, action: DENY, rules: [{}] }]";
    let (set, _) = PolicySet::from_yaml(all).unwrap();
    assert!(!allowed(&set, "anyone"));
}

#[test]
fn selectors_without_labels_fail_closed() {
    let e = PolicySet::from_yaml(SHOP).unwrap_err();
    assert!(matches!(&e, PolicyError::LabelsRequired { policy } if policy == "shop/web"));
    assert!(e.to_string().contains("pod_labels_file"), "{e}");

    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("policy.yaml");
    std::fs::write(&policy, SHOP).unwrap();
    let missing = dir.path().join("labels");
    let e = PolicySet::for_workload(&policy, Some(&missing)).unwrap_err();
    assert!(e.to_string().contains("cannot read"), "{e}");
    std::fs::write(&missing, "app=web\n").unwrap();
    let e = PolicySet::for_workload(&policy, Some(&missing)).unwrap_err();
    assert!(e.to_string().contains("line 1"), "{e}");
    // Without selectors the labels file is not needed at all.
    std::fs::write(
        &policy,
        "policies: [{ name: a, action: ALLOW, rules: [{}] }]",
    )
    .unwrap();
    std::fs::remove_file(&missing).unwrap();
    PolicySet::for_workload(&policy, Some(&missing)).unwrap();
}

#[test]
fn bad_selectors_are_refused() {
    for (sel, want) in [
        ("{ matchLabels: { \"a b\": x } }", "selector.matchLabels"),
        ("{ matchLabels: { app: \"-x\" } }", "selector.matchLabels"),
        ("{ matchExpressions: [] }", "unknown field"),
    ] {
        let text =
            format!("policies: [{{ name: p, selector: {sel}, action: ALLOW, rules: [{{}}] }}]");
        let e = PolicyDocument::from_yaml(&text).unwrap_err().to_string();
        assert!(e.contains(want), "{sel}: {e}");
    }
}

/// How long a change may take to be in force (10 ms polls).
const RELOAD: Duration = Duration::from_secs(10);

#[tokio::test]
async fn watcher_follows_label_changes_and_keeps_old_state_on_bad_labels() {
    let dir = tempfile::tempdir().unwrap();
    let (policy, labels) = (dir.path().join("policy.yaml"), dir.path().join("labels"));
    std::fs::write(&policy, SHOP).unwrap();

    // No labels file while policies have selectors: refuse to start.
    let start = || {
        PolicyWatcher::start_for_workload(&policy, Some(labels.clone()), Duration::from_millis(10))
    };
    let e = start().unwrap_err();
    assert!(e.to_string().contains("cannot read"), "{e}");

    // kubelet's format: sorted, Go-quoted values.
    std::fs::write(&labels, "app=\"web\"\npod-template-hash=\"7c9d\"\n").unwrap();
    let w = start().unwrap();
    assert!(allowed(&w.current(), "frontend"));
    assert!(!allowed(&w.current(), "backend"));

    // The pod is relabelled: the db policy applies now.
    std::fs::write(&labels, "app=\"db\"\ntier=\"data\"\n").unwrap();
    eventually_async("db policy in force", RELOAD, || async {
        allowed(&w.current(), "backend").then_some(())
    })
    .await;
    assert!(!allowed(&w.current(), "frontend"));

    // A malformed or vanished labels file keeps the last good state.
    for bad in [Some("app=db\n"), None] {
        match bad {
            Some(t) => std::fs::write(&labels, t).unwrap(),
            None => std::fs::remove_file(&labels).unwrap(),
        }
        let polls = w.polls();
        eventually_async("two more polls", RELOAD, || async {
            (w.polls() >= polls + 2).then_some(())
        })
        .await;
        assert!(allowed(&w.current(), "backend"));
        assert!(!allowed(&w.current(), "frontend"));
    }
    let rejected = w.reload_metrics().count("rejected");
    assert!(rejected >= 2, "{rejected}");

    // Labels back: the web policy again.
    std::fs::write(&labels, "app=\"web\"\n").unwrap();
    eventually_async("web policy in force", RELOAD, || async {
        allowed(&w.current(), "frontend").then_some(())
    })
    .await;
}

#[tokio::test]
async fn the_proxy_reads_pod_labels_file_and_refuses_to_start_without_it() {
    let dir = tempfile::tempdir().unwrap();
    let ca = pki::Ca::new("cluster.local");
    let svid = ca.write_svid(dir.path(), "web", "spiffe://cluster.local/ns/shop/sa/web");
    let (policy, labels) = (dir.path().join("policy.yaml"), dir.path().join("labels"));
    std::fs::write(&policy, SHOP).unwrap();
    let backend = net::echo_backend().await;
    let yaml = |extra: &str| {
        let extra = format!("policy: \"{}\"\n{extra}", policy.display());
        meshid_proxy::ProxyConfig::from_yaml(&net::inbound_yaml(&svid, backend, "tcp", &extra))
            .unwrap()
    };
    let e = meshid_proxy::start(yaml("")).await.unwrap_err().to_string();
    assert!(
        e.contains("has a selector") && e.contains("pod_labels_file"),
        "{e}"
    );

    let with_labels = yaml(&format!("pod_labels_file: \"{}\"\n", labels.display()));
    assert_eq!(
        with_labels.pod_labels_file.as_deref(),
        Some(labels.as_path())
    );
    let e = meshid_proxy::start(with_labels.clone())
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("cannot read"), "{e}");

    std::fs::write(&labels, "app=\"db\"\ntier=\"data\"\n").unwrap();
    let running = meshid_proxy::start(with_labels).await.unwrap();
    let set = running.shared.policy.load();
    assert!(allowed(&set, "backend") && !allowed(&set, "frontend"));
    running.stop().await;
}
