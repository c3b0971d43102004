//! The fake Kubernetes API server with kube-rs as the client: CRUD and
//! conflicts, the patch types and server-side apply, the status
//! subresource, selectors and pagination, watches with bookmarks, `410`
//! and relisting, discovery, authentication.

#[path = "kube_fake/support.rs"]
mod support;

use std::collections::BTreeSet;
use std::time::Duration;

use futures::{StreamExt as _, TryStreamExt as _};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Pod};
use kube::Client;
use kube::api::{
    Api, ApiResource, DeleteParams, DynamicObject, GroupVersionKind, ListParams, Patch,
    PatchParams, PostParams, WatchEvent, WatchParams,
};
use kube::runtime::{WatchStreamExt as _, reflector, watcher};
use meshid_tests::kube::FakeApiServer;
use serde_json::{Value, json};
use support::{api_error, client, namespace};

fn pod(ns: &str, name: &str, node: &str, app: &str) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": ns, "labels": {"app": app}},
        "spec": {"nodeName": node, "containers": [{"name": "app", "image": "app:1"}]},
        "status": {"phase": "Running"},
    })
}

#[tokio::test]
async fn crud_conflicts_and_the_request_log() {
    let api = FakeApiServer::start().await;
    let kube = client(&api, "writer").await;
    let namespaces: Api<Namespace> = Api::all(kube.clone());
    let ns = namespaces
        .create(
            &PostParams::default(),
            &serde_json::from_value(namespace("shop")).expect("ns"),
        )
        .await
        .expect("create namespace");
    let labels = ns.metadata.labels.unwrap_or_default();
    assert_eq!(
        labels
            .get("kubernetes.io/metadata.name")
            .map(String::as_str),
        Some("shop")
    );

    let cms: Api<ConfigMap> = Api::namespaced(kube.clone(), "shop");
    let cm: ConfigMap = serde_json::from_value(json!({
        "metadata": {"name": "settings"}, "data": {"a": "1"}
    }))
    .expect("cm");
    let created = cms
        .create(&PostParams::default(), &cm)
        .await
        .expect("create");
    let meta = &created.metadata;
    assert!(
        meta.uid.as_deref().is_some_and(|u| u.len() == 36),
        "{meta:?}"
    );
    assert!(meta.creation_timestamp.is_some());
    assert_eq!(meta.namespace.as_deref(), Some("shop"));
    let rv1: u64 = meta
        .resource_version
        .as_deref()
        .unwrap_or_default()
        .parse()
        .expect("rv");
    assert_eq!(
        api_error(
            cms.create(&PostParams::default(), &cm)
                .await
                .expect_err("twice")
        ),
        (409, "AlreadyExists".into())
    );

    // An update from the version read succeeds once; the stale copy then
    // conflicts.
    let mut changed = created.clone();
    changed.data = Some([("a".to_owned(), "2".to_owned())].into());
    let updated = cms
        .replace("settings", &PostParams::default(), &changed)
        .await
        .expect("update");
    let rv2: u64 = updated
        .metadata
        .resource_version
        .as_deref()
        .unwrap_or_default()
        .parse()
        .expect("rv");
    assert!(rv2 > rv1);
    assert_eq!(
        api_error(
            cms.replace("settings", &PostParams::default(), &changed)
                .await
                .expect_err("stale")
        ),
        (409, "Conflict".into())
    );
    // Writing the same object again changes nothing, not even the version.
    let same = cms
        .replace("settings", &PostParams::default(), &updated)
        .await
        .expect("no-op");
    assert_eq!(
        same.metadata.resource_version,
        updated.metadata.resource_version
    );

    // A namespace must exist for what is in it.
    let elsewhere: Api<ConfigMap> = Api::namespaced(kube.clone(), "nowhere");
    assert_eq!(
        api_error(
            elsewhere
                .create(&PostParams::default(), &cm)
                .await
                .expect_err("no namespace")
        ),
        (404, "NotFound".into())
    );

    cms.delete("settings", &DeleteParams::default())
        .await
        .expect("delete");
    assert_eq!(
        api_error(cms.get("settings").await.expect_err("gone")),
        (404, "NotFound".into())
    );

    // A generated name, and deleting the namespace takes its objects.
    let generated: ConfigMap =
        serde_json::from_value(json!({"metadata": {"generateName": "gen-"}})).expect("cm");
    let generated = cms
        .create(&PostParams::default(), &generated)
        .await
        .expect("generateName");
    let name = generated.metadata.name.unwrap_or_default();
    assert!(name.starts_with("gen-") && name.len() == 9, "{name}");
    namespaces
        .delete("shop", &DeleteParams::default())
        .await
        .expect("delete namespace");
    assert!(api.list("configmaps", None).is_empty());

    let log = api.requests();
    let seen: Vec<(&str, &str, &str, &str)> = log
        .iter()
        .map(|r| {
            (
                r.verb,
                r.resource.as_str(),
                r.namespace.as_str(),
                r.name.as_str(),
            )
        })
        .collect();
    assert_eq!(seen[0], ("create", "namespaces", "", ""));
    assert!(
        seen.contains(&("update", "configmaps", "shop", "settings")),
        "{seen:?}"
    );
    assert!(
        seen.contains(&("delete", "configmaps", "shop", "settings")),
        "{seen:?}"
    );
    assert!(
        seen.contains(&("get", "configmaps", "shop", "settings")),
        "{seen:?}"
    );
    assert!(
        log.iter()
            .all(|r| r.token == "writer" && r.group.is_empty())
    );
}

#[tokio::test]
async fn unknown_tokens_and_resources_are_refused() {
    let api = FakeApiServer::start().await;
    let port = api.addr().port();
    let (code, body) = tokio::task::spawn_blocking(move || {
        meshid_tests::http::http(port, "GET", "/api/v1/namespaces")
    })
    .await
    .expect("client");
    assert_eq!(code, 401, "{body}");
    assert!(api.requests().is_empty());

    let kube = client(&api, "reader").await;
    let deployments: Api<k8s_openapi::api::apps::v1::Deployment> = Api::all(kube.clone());
    assert_eq!(
        api_error(
            deployments
                .list(&ListParams::default())
                .await
                .expect_err("not served")
        ),
        (404, "NotFound".into())
    );
    let log = api.requests();
    assert_eq!(
        (log[0].verb, log[0].group.as_str(), log[0].resource.as_str()),
        ("list", "apps", "deployments")
    );

    let discovery = kube::Discovery::new(kube).run().await.expect("discovery");
    let kinds: BTreeSet<String> = discovery
        .groups()
        .flat_map(|g| g.recommended_resources().into_iter().map(|(r, _)| r.plural))
        .collect();
    for plural in [
        "pods",
        "leases",
        "clusteridentitytemplates",
        "authorizationpolicies",
        "mutatingwebhookconfigurations",
    ] {
        assert!(kinds.contains(plural), "{plural} not in {kinds:?}");
    }
}

fn templates(kube: &Client) -> Api<DynamicObject> {
    let gvk = GroupVersionKind::gvk("meshid.io", "v1alpha1", "ClusterIdentityTemplate");
    Api::all_with(kube.clone(), &ApiResource::from_gvk(&gvk))
}

#[tokio::test]
async fn patches_server_side_apply_and_status() {
    let api = FakeApiServer::start().await;
    let kube = client(&api, "controller").await;
    let t = templates(&kube);
    let applied = json!({
        "apiVersion": "meshid.io/v1alpha1", "kind": "ClusterIdentityTemplate",
        "metadata": {"name": "default", "labels": {"team": "a"}},
        "spec": {"spiffeIDTemplate": "spiffe://td/ns/{{.Namespace}}", "dnsNameTemplates": ["a"]},
    });
    let first = t
        .patch(
            "default",
            &PatchParams::apply("alice"),
            &Patch::Apply(&applied),
        )
        .await
        .expect("apply creates");
    assert_eq!(first.metadata.generation, Some(1));

    // Another manager changing alice's field conflicts, unless forced.
    let bob = json!({
        "apiVersion": "meshid.io/v1alpha1", "kind": "ClusterIdentityTemplate",
        "metadata": {"name": "default"},
        "spec": {"spiffeIDTemplate": "spiffe://td/sa/{{.ServiceAccount}}", "admin": true},
    });
    let err = t
        .patch("default", &PatchParams::apply("bob"), &Patch::Apply(&bob))
        .await
        .expect_err("conflict");
    assert_eq!(api_error(err), (409, "Conflict".into()));
    let forced = t
        .patch(
            "default",
            &PatchParams::apply("bob").force(),
            &Patch::Apply(&bob),
        )
        .await
        .expect("forced");
    assert_eq!(
        forced.data["spec"]["spiffeIDTemplate"],
        "spiffe://td/sa/{{.ServiceAccount}}"
    );
    assert_eq!(forced.data["spec"]["dnsNameTemplates"], json!(["a"]));
    assert_eq!(forced.metadata.generation, Some(2));

    // Alice stops applying the label and the DNS names: they go; the ID
    // template is bob's now and stays.
    let alice_again = json!({
        "apiVersion": "meshid.io/v1alpha1", "kind": "ClusterIdentityTemplate",
        "metadata": {"name": "default"}, "spec": {},
    });
    let after = t
        .patch(
            "default",
            &PatchParams::apply("alice"),
            &Patch::Apply(&alice_again),
        )
        .await
        .expect("reapply");
    assert_eq!(after.metadata.labels.unwrap_or_default().get("team"), None);
    assert_eq!(
        after.data["spec"],
        json!({"spiffeIDTemplate": "spiffe://td/sa/{{.ServiceAccount}}", "admin": true})
    );

    // Status: only through the subresource, and it does not bump the
    // generation.
    let status = json!({"status": {"entries": 3}});
    let with_status = t
        .patch_status("default", &PatchParams::default(), &Patch::Merge(&status))
        .await
        .expect("status");
    assert_eq!(with_status.data["status"], json!({"entries": 3}));
    assert_eq!(with_status.metadata.generation, after.metadata.generation);
    let sneaky = json!({"spec": {"admin": false}, "status": {"entries": 9}});
    let main = t
        .patch("default", &PatchParams::default(), &Patch::Merge(&sneaky))
        .await
        .expect("merge");
    assert_eq!(main.data["status"], json!({"entries": 3}));
    assert_eq!(main.data["spec"]["admin"], false);

    // JSON patch (with a failing test op refused) and strategic merge.
    let ok = json!([{"op": "add", "path": "/spec/dnsNameTemplates", "value": ["x"]}]);
    let patched = t
        .patch(
            "default",
            &PatchParams::default(),
            &Patch::Json::<()>(serde_json::from_value(ok).expect("patch")),
        )
        .await
        .expect("json patch");
    assert_eq!(patched.data["spec"]["dnsNameTemplates"], json!(["x"]));
    let bad = json!([{"op": "test", "path": "/spec/admin", "value": true}]);
    let err = t
        .patch(
            "default",
            &PatchParams::default(),
            &Patch::Json::<()>(serde_json::from_value(bad).expect("patch")),
        )
        .await
        .expect_err("test op");
    assert_eq!(api_error(err).0, 422);
    let strategic = json!({"metadata": {"annotations": {"a": "b"}}});
    let s = t
        .patch(
            "default",
            &PatchParams::default(),
            &Patch::Strategic(&strategic),
        )
        .await
        .expect("strategic");
    assert_eq!(
        s.metadata
            .annotations
            .unwrap_or_default()
            .get("a")
            .map(String::as_str),
        Some("b")
    );

    let log = api.requests();
    assert!(log.iter().any(|r| r.verb == "patch"
        && r.resource == "clusteridentitytemplates/status"
        && r.group == "meshid.io"));
}

#[tokio::test]
async fn leases_update_with_optimistic_concurrency() {
    let api = FakeApiServer::start().await;
    api.create(namespace("meshid-system")).expect("ns");
    let a: Api<Lease> = Api::namespaced(client(&api, "a").await, "meshid-system");
    let b: Api<Lease> = Api::namespaced(client(&api, "b").await, "meshid-system");
    let lease: Lease = serde_json::from_value(json!({
        "metadata": {"name": "meshid-controller"},
        "spec": {"holderIdentity": "a", "leaseDurationSeconds": 15},
    }))
    .expect("lease");
    let held = a
        .create(&PostParams::default(), &lease)
        .await
        .expect("a takes it");
    let mut seen_by_b = b.get("meshid-controller").await.expect("b reads");
    let mut renewed = held.clone();
    renewed.spec.get_or_insert_default().lease_transitions = Some(0);
    a.replace("meshid-controller", &PostParams::default(), &renewed)
        .await
        .expect("a renews");
    seen_by_b.spec.get_or_insert_default().holder_identity = Some("b".into());
    assert_eq!(
        api_error(
            b.replace("meshid-controller", &PostParams::default(), &seen_by_b)
                .await
                .expect_err("stale")
        ),
        (409, "Conflict".into())
    );
    let tokens: BTreeSet<(String, &str)> = api
        .requests()
        .into_iter()
        .map(|r| (r.token, r.verb))
        .collect();
    assert!(tokens.contains(&("a".into(), "update")) && tokens.contains(&("b".into(), "update")));
}

#[tokio::test]
async fn selectors_and_pagination() {
    let api = FakeApiServer::start().await;
    for ns in ["a", "b"] {
        api.create(namespace(ns)).expect("ns");
        for i in 0..12 {
            let app = if i % 2 == 0 { "web" } else { "db" };
            api.create(pod(ns, &format!("p{i:02}"), &format!("n{}", i % 3), app))
                .expect("pod");
        }
    }
    let pods: Api<Pod> = Api::all(client(&api, "reader").await);
    let names = |l: &kube::api::ObjectList<Pod>| -> Vec<String> {
        l.items
            .iter()
            .map(|p| {
                format!(
                    "{}/{}",
                    p.metadata.namespace.clone().unwrap_or_default(),
                    p.metadata.name.clone().unwrap_or_default()
                )
            })
            .collect()
    };
    let web = pods
        .list(&ListParams::default().labels("app=web"))
        .await
        .expect("list");
    assert_eq!(web.items.len(), 12);
    let in_set = pods
        .list(&ListParams::default().labels("app in (db,cache),app!=web"))
        .await
        .expect("list");
    assert_eq!(in_set.items.len(), 12);
    let on_n1 = pods
        .list(&ListParams::default().fields("spec.nodeName=n1,metadata.namespace=b"))
        .await
        .expect("list");
    assert_eq!(names(&on_n1), ["b/p01", "b/p04", "b/p07", "b/p10"]);
    let err = pods
        .list(&ListParams::default().fields("spec.schedulerName=x"))
        .await
        .expect_err("unsupported");
    assert_eq!(api_error(err).0, 400);

    // Pages of 10: 24 pods in 3 pages, in order, with the count remaining.
    let mut all = Vec::new();
    let mut lp = ListParams::default().limit(10);
    let mut pages = 0;
    loop {
        let page = pods.list(&lp).await.expect("page");
        pages += 1;
        all.extend(names(&page));
        match page.metadata.continue_.filter(|c| !c.is_empty()) {
            Some(c) => {
                assert_eq!(
                    page.metadata.remaining_item_count,
                    Some(24 - all.len() as i64)
                );
                lp = ListParams::default().limit(10).continue_token(&c);
            }
            None => break,
        }
        assert!(pages < 10, "pagination does not end");
    }
    assert_eq!(pages, 3);
    let mut sorted = all.clone();
    sorted.sort();
    assert_eq!(all, sorted);
    assert_eq!(all.len(), 24);

    // A continue token older than the history is 410.
    let first = pods
        .list(&ListParams::default().limit(5))
        .await
        .expect("page");
    let token = first.metadata.continue_.expect("more pages");
    api.create(pod("a", "later", "n0", "web")).expect("pod");
    api.compact();
    let err = pods
        .list(&ListParams::default().limit(5).continue_token(&token))
        .await
        .expect_err("expired");
    assert_eq!(api_error(err), (410, "Expired".into()));
    // An exact resourceVersion other than the current one is 410 too.
    let err = pods
        .list(
            &ListParams::default()
                .at("2")
                .matching(kube::api::VersionMatch::Exact),
        )
        .await
        .expect_err("exact");
    assert_eq!(api_error(err).0, 410);
}

#[tokio::test]
async fn raw_watch_resumes_bookmarks_and_expires() {
    let api = FakeApiServer::start().await;
    api.create(namespace("w")).expect("ns");
    let cms: Api<ConfigMap> = Api::namespaced(client(&api, "watcher").await, "w");
    let cm = |name: &str| -> ConfigMap {
        serde_json::from_value(json!({"metadata": {"name": name}})).expect("cm")
    };
    let c1 = cms
        .create(&PostParams::default(), &cm("c1"))
        .await
        .expect("c1");
    let rv1 = c1.metadata.resource_version.clone().unwrap_or_default();
    cms.create(&PostParams::default(), &cm("c2"))
        .await
        .expect("c2");
    cms.delete("c1", &DeleteParams::default())
        .await
        .expect("delete");

    // From rv1: what happened after it, in order, then a bookmark while idle.
    let mut stream = cms
        .watch(&WatchParams::default(), &rv1)
        .await
        .expect("watch")
        .boxed();
    let mut seen = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while let Ok(Some(ev)) = tokio::time::timeout_at(deadline, stream.try_next())
        .await
        .map(|r| r.expect("event"))
    {
        match ev {
            WatchEvent::Added(c) => {
                seen.push(format!("ADDED {}", c.metadata.name.unwrap_or_default()))
            }
            WatchEvent::Deleted(c) => {
                seen.push(format!("DELETED {}", c.metadata.name.unwrap_or_default()))
            }
            WatchEvent::Modified(c) => {
                seen.push(format!("MODIFIED {}", c.metadata.name.unwrap_or_default()))
            }
            WatchEvent::Bookmark(b) => {
                assert_eq!(
                    b.metadata.resource_version,
                    api.resource_version().to_string()
                );
                seen.push("BOOKMARK".into());
                break;
            }
            WatchEvent::Error(e) => panic!("{e:?}"),
        }
    }
    assert_eq!(seen, ["ADDED c2", "DELETED c1", "BOOKMARK"]);

    // A label-selected watch sees an object that starts matching as ADDED.
    let mut labelled = cms
        .watch(
            &WatchParams::default().labels("app=x"),
            &api.resource_version().to_string(),
        )
        .await
        .expect("watch")
        .boxed();
    let relabel = json!({"metadata": {"labels": {"app": "x"}}});
    cms.patch("c2", &PatchParams::default(), &Patch::Merge(&relabel))
        .await
        .expect("label");
    match tokio::time::timeout(Duration::from_secs(10), labelled.try_next()).await {
        Ok(Ok(Some(WatchEvent::Added(c)))) => assert_eq!(c.metadata.name.as_deref(), Some("c2")),
        other => panic!("{other:?}"),
    }

    // After compaction, resuming from rv1 is a 410 ERROR event.
    api.compact();
    let mut stream = cms
        .watch(&WatchParams::default(), &rv1)
        .await
        .expect("watch")
        .boxed();
    match tokio::time::timeout(Duration::from_secs(10), stream.try_next()).await {
        Ok(Ok(Some(WatchEvent::Error(e)))) => {
            assert_eq!((e.code, e.reason.as_str()), (410, "Expired"))
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn watcher_relists_after_410_and_converges() {
    let api = FakeApiServer::start().await;
    api.create(namespace("r")).expect("ns");
    for i in 0..5 {
        api.create(pod("r", &format!("p{i}"), "n0", "web"))
            .expect("pod");
    }
    let pods: Api<Pod> = Api::all(client(&api, "reflector").await);
    let (reader, writer) = reflector::store();
    let stream = reflector(
        writer,
        watcher(pods, watcher::Config::default().page_size(2)),
    )
    .applied_objects()
    .boxed();
    let task = tokio::spawn(async move {
        stream.for_each(|_| async {}).await;
    });
    let names = |r: &reflector::Store<Pod>| -> BTreeSet<String> {
        r.state()
            .iter()
            .filter_map(|p| p.metadata.name.clone())
            .collect()
    };
    let want =
        |n: std::ops::Range<usize>| -> BTreeSet<String> { n.map(|i| format!("p{i}")).collect() };
    meshid_tests::eventually_async(
        "the reflector lists 5 pods",
        Duration::from_secs(20),
        || async { (names(&reader) == want(0..5)).then_some(()) },
    )
    .await;
    let lists = |api: &FakeApiServer| api.requests().iter().filter(|r| r.verb == "list").count();
    let lists_before = lists(&api);
    assert!(
        lists_before >= 3,
        "paged initial list: {lists_before} list calls"
    );

    // Changes while the watch is broken and the history is gone: the
    // watcher's resume gets 410, it relists and sees the current state.
    meshid_tests::eventually_async("the watch is open", Duration::from_secs(20), || async {
        (api.open_watches() > 0).then_some(())
    })
    .await;
    api.break_watches();
    for i in 0..2 {
        api.delete("pods", "r", &format!("p{i}")).expect("delete");
    }
    for i in 5..8 {
        api.create(pod("r", &format!("p{i}"), "n0", "web"))
            .expect("pod");
    }
    api.compact();
    meshid_tests::eventually_async(
        "the reflector converges after the relist",
        Duration::from_secs(30),
        || async { (names(&reader) == want(2..8)).then_some(()) },
    )
    .await;
    assert!(lists(&api) > lists_before, "no relist after 410");
    task.abort();
}
