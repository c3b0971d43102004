//! The fake Kubernetes API server's finer points with kube-rs as the
//! client: metadata-only calls and watchers, streaming lists, finalizers,
//! what a create keeps, body and content-type bounds, apply on lists merged
//! by name, delete preconditions, watch timeouts, and optimistic
//! concurrency under concurrent writers.

#[path = "kube_fake/support.rs"]
mod support;

use std::time::Duration;

use futures::{StreamExt as _, TryStreamExt as _};
use k8s_openapi::api::admissionregistration::v1::MutatingWebhookConfiguration;
use k8s_openapi::api::core::v1::{ConfigMap, Pod};
use kube::api::{
    Api, DeleteParams, ListParams, Patch, PatchParams, PostParams, Preconditions, WatchEvent,
    WatchParams,
};
use kube::core::PartialObjectMeta;
use kube::runtime::{WatchStreamExt as _, reflector, watcher};
use meshid_tests::kube::FakeApiServer;
use serde_json::json;
use support::{api_error, client, namespace};

fn code(e: kube::Error) -> u16 {
    api_error(e).0
}

fn cm(name: &str) -> ConfigMap {
    serde_json::from_value(json!({"metadata": {"name": name}, "data": {"n": "0"}})).expect("cm")
}

#[tokio::test]
async fn metadata_calls_and_streaming_lists() {
    let api = FakeApiServer::start().await;
    api.create(namespace("m")).expect("ns");
    for i in 0..3 {
        api.create(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": format!("c{i}"), "namespace": "m"}, "data": {"secret": "x"}}))
            .expect("cm");
    }
    let kube = client(&api, "meta").await;
    let cms: Api<ConfigMap> = Api::namespaced(kube.clone(), "m");
    let list = cms
        .list_metadata(&ListParams::default())
        .await
        .expect("list_metadata");
    assert_eq!(list.items.len(), 3);
    let one = cms.get_metadata("c1").await.expect("get_metadata");
    assert_eq!(one.metadata.name.as_deref(), Some("c1"));

    // A metadata watcher and a streaming-list watcher both see every object.
    let (meta_reader, meta_writer) = reflector::store();
    let meta_stream = reflector(
        meta_writer,
        watcher(
            Api::<PartialObjectMeta<ConfigMap>>::namespaced(kube.clone(), "m"),
            watcher::Config::default(),
        ),
    )
    .applied_objects()
    .boxed();
    let (reader, writer) = reflector::store();
    let stream = reflector(
        writer,
        watcher(cms.clone(), watcher::Config::default().streaming_lists()),
    )
    .applied_objects()
    .boxed();
    let t1 = tokio::spawn(meta_stream.for_each(|_| async {}));
    let t2 = tokio::spawn(stream.for_each(|_| async {}));
    api.create(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c3", "namespace": "m"}})).expect("cm");
    meshid_tests::eventually_async(
        "both reflectors see 4 objects",
        Duration::from_secs(20),
        || async { (meta_reader.state().len() == 4 && reader.state().len() == 4).then_some(()) },
    )
    .await;
    let watches: Vec<String> = api
        .requests()
        .into_iter()
        .filter(|r| r.verb == "watch")
        .map(|r| r.resource)
        .collect();
    assert!(watches.len() >= 2, "{watches:?}");
    t1.abort();
    t2.abort();
}

#[tokio::test]
async fn finalizers_status_on_create_and_bounds() {
    let api = FakeApiServer::start().await;
    api.create(namespace("f")).expect("ns");
    let kube = client(&api, "f").await;
    let cms: Api<ConfigMap> = Api::namespaced(kube.clone(), "f");
    let mut held = cm("held");
    held.metadata.finalizers = Some(vec!["meshid.io/cleanup".into()]);
    cms.create(&PostParams::default(), &held)
        .await
        .expect("create");
    cms.delete("held", &DeleteParams::default())
        .await
        .expect("delete marks");
    let marked = cms.get("held").await.expect("still there");
    assert!(marked.metadata.deletion_timestamp.is_some());
    let release = json!({"metadata": {"finalizers": null}});
    cms.patch("held", &PatchParams::default(), &Patch::Merge(&release))
        .await
        .expect("release");
    assert_eq!(code(cms.get("held").await.expect_err("gone")), 404);

    // A client's create drops .status where there is a status subresource.
    let pods: Api<Pod> = Api::namespaced(kube.clone(), "f");
    let pod: Pod = serde_json::from_value(json!({
        "metadata": {"name": "p"}, "spec": {"containers": [{"name": "c", "image": "i"}]},
        "status": {"phase": "Running"},
    }))
    .expect("pod");
    let created = pods
        .create(&PostParams::default(), &pod)
        .await
        .expect("pod");
    assert!(created.status.is_none());

    // Delete preconditions.
    cms.create(&PostParams::default(), &cm("pre"))
        .await
        .expect("create");
    let dp = DeleteParams::default().preconditions(Preconditions {
        resource_version: Some("1".into()),
        uid: None,
    });
    assert_eq!(
        code(
            cms.delete("pre", &dp)
                .await
                .map(|_| ())
                .expect_err("stale precondition")
        ),
        409
    );

    // Bodies over 4 MiB are 413, a create body that is not JSON 415.
    let mut big = cm("big");
    big.data = Some([("x".to_owned(), "a".repeat(5 << 20))].into());
    assert_eq!(
        code(
            cms.create(&PostParams::default(), &big)
                .await
                .expect_err("too large")
        ),
        413
    );
    let port = api.addr().port();
    let raw = tokio::task::spawn_blocking(move || {
        use std::io::{Read as _, Write as _};
        let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
        let body = "data: {}";
        let req = format!("POST /api/v1/namespaces/f/configmaps HTTP/1.1\r\nhost: x\r\nauthorization: Bearer f\r\ncontent-type: application/yaml\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}", body.len());
        s.write_all(req.as_bytes()).expect("write");
        let mut out = String::new();
        let _ = s.read_to_string(&mut out);
        out
    })
    .await
    .expect("client");
    assert!(raw.starts_with("HTTP/1.1 415"), "{raw}");
}

#[tokio::test]
async fn apply_merges_lists_by_name_across_managers() {
    let api = FakeApiServer::start().await;
    let kube = client(&api, "installer").await;
    let hooks: Api<MutatingWebhookConfiguration> = Api::all(kube);
    let installed = json!({
        "apiVersion": "admissionregistration.k8s.io/v1", "kind": "MutatingWebhookConfiguration",
        "metadata": {"name": "meshid-sidecar-injector"},
        "webhooks": [{"name": "inject.meshid.io", "sideEffects": "None", "admissionReviewVersions": ["v1"],
                      "clientConfig": {"service": {"name": "meshid-webhook", "namespace": "meshid-system"}}}],
    });
    hooks
        .patch(
            "meshid-sidecar-injector",
            &PatchParams::apply("kubectl"),
            &Patch::Apply(&installed),
        )
        .await
        .expect("install");
    let bundle = json!({
        "apiVersion": "admissionregistration.k8s.io/v1", "kind": "MutatingWebhookConfiguration",
        "metadata": {"name": "meshid-sidecar-injector"},
        "webhooks": [{"name": "inject.meshid.io", "clientConfig": {"caBundle": "Y2E="}}],
    });
    let both = hooks
        .patch(
            "meshid-sidecar-injector",
            &PatchParams::apply("meshid-controller"),
            &Patch::Apply(&bundle),
        )
        .await
        .expect("caBundle");
    let hook = &both.webhooks.unwrap_or_default()[0];
    assert_eq!(
        hook.client_config.ca_bundle.as_ref().map(|b| b.0.clone()),
        Some(b"ca".to_vec())
    );
    assert_eq!(
        hook.client_config.service.as_ref().map(|s| s.name.as_str()),
        Some("meshid-webhook")
    );
    // The installer re-applying its own fields keeps the controller's.
    let again = hooks
        .patch(
            "meshid-sidecar-injector",
            &PatchParams::apply("kubectl"),
            &Patch::Apply(&installed),
        )
        .await
        .expect("reinstall");
    assert!(
        again.webhooks.unwrap_or_default()[0]
            .client_config
            .ca_bundle
            .is_some()
    );
}

#[tokio::test]
async fn watch_timeout_ends_with_a_bookmark() {
    let api = FakeApiServer::start().await;
    api.create(namespace("t")).expect("ns");
    let cms: Api<ConfigMap> = Api::namespaced(client(&api, "t").await, "t");
    let rv = api.resource_version().to_string();
    let mut stream = cms
        .watch(&WatchParams::default().timeout(1), &rv)
        .await
        .expect("watch")
        .boxed();
    let mut events = Vec::new();
    let ended = tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(ev) = stream.try_next().await.expect("event") {
            events.push(matches!(ev, WatchEvent::Bookmark(_)));
        }
    })
    .await;
    assert!(ended.is_ok(), "the watch did not end at its timeout");
    assert_eq!(events.last(), Some(&true), "{events:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writers_never_lose_an_update() {
    let api = FakeApiServer::start().await;
    api.create(namespace("c")).expect("ns");
    let cms: Api<ConfigMap> = Api::namespaced(client(&api, "c").await, "c");
    cms.create(&PostParams::default(), &cm("counter"))
        .await
        .expect("create");
    const WRITERS: u32 = 8;
    const EACH: u32 = 10;
    let mut tasks = Vec::new();
    for _ in 0..WRITERS {
        let cms = cms.clone();
        tasks.push(tokio::spawn(async move {
            let mut conflicts = 0u32;
            for _ in 0..EACH {
                for attempt in 0.. {
                    assert!(attempt < 1000, "no progress");
                    let mut c = cms.get("counter").await.expect("get");
                    let n: u32 = c
                        .data
                        .as_ref()
                        .and_then(|d| d.get("n"))
                        .and_then(|n| n.parse().ok())
                        .unwrap_or(0);
                    c.data = Some([("n".to_owned(), (n + 1).to_string())].into());
                    match cms.replace("counter", &PostParams::default(), &c).await {
                        Ok(_) => break,
                        Err(kube::Error::Api(s)) if s.code == 409 => conflicts += 1,
                        Err(e) => panic!("{e}"),
                    }
                }
            }
            conflicts
        }));
    }
    let mut conflicts = 0;
    for t in tasks {
        conflicts += t.await.expect("writer");
    }
    let last = cms.get("counter").await.expect("get");
    assert_eq!(
        last.data.unwrap_or_default().get("n").map(String::as_str),
        Some((WRITERS * EACH).to_string().as_str())
    );
    println!("{} updates, {conflicts} conflicts retried", WRITERS * EACH);
}

#[tokio::test]
async fn dropping_the_server_ends_its_watches() {
    let api = FakeApiServer::start().await;
    api.create(namespace("d")).expect("ns");
    let kube = client(&api, "d").await;
    let cms: Api<ConfigMap> = Api::namespaced(kube.clone(), "d");
    let err = Api::<ConfigMap>::namespaced(kube.clone(), "d")
        .get_subresource("scale", "x")
        .await
        .expect_err("no such subresource");
    assert_eq!(code(err), 404);
    let version = kube.apiserver_version().await.expect("/version");
    assert_eq!(
        (version.major.as_str(), version.minor.as_str()),
        ("1", "33")
    );
    let mut stream = cms
        .watch(&WatchParams::default(), "0")
        .await
        .expect("watch")
        .boxed();
    meshid_tests::eventually_async("the watch is open", Duration::from_secs(10), || async {
        (api.open_watches() == 1).then_some(())
    })
    .await;
    drop(api);
    let ended = tokio::time::timeout(Duration::from_secs(10), async {
        while let Ok(Some(_)) = stream.try_next().await {}
    })
    .await;
    assert!(ended.is_ok(), "the watch outlived the server");
}

#[tokio::test]
async fn apply_to_status_changes_only_status() {
    let api = FakeApiServer::start().await;
    let kube = client(&api, "status").await;
    let gvk =
        kube::api::GroupVersionKind::gvk("meshid.io", "v1alpha1", "ClusterFederatedTrustDomain");
    let domains: Api<kube::api::DynamicObject> =
        Api::all_with(kube, &kube::api::ApiResource::from_gvk(&gvk));
    let spec = json!({
        "apiVersion": "meshid.io/v1alpha1", "kind": "ClusterFederatedTrustDomain",
        "metadata": {"name": "partner"}, "spec": {"trustDomain": "partner.example"},
    });
    domains
        .patch(
            "partner",
            &PatchParams::apply("installer"),
            &Patch::Apply(&spec),
        )
        .await
        .expect("create");
    let status = json!({
        "apiVersion": "meshid.io/v1alpha1", "kind": "ClusterFederatedTrustDomain",
        "metadata": {"name": "partner", "labels": {"sneaky": "yes"}},
        "spec": {"trustDomain": "changed.example"},
        "status": {"valid": true},
    });
    let after = domains
        .patch_status(
            "partner",
            &PatchParams::apply("meshid-controller").force(),
            &Patch::Apply(&status),
        )
        .await
        .expect("status apply");
    assert_eq!(after.data["status"], json!({"valid": true}));
    assert_eq!(
        after.data["spec"],
        json!({"trustDomain": "partner.example"})
    );
    assert!(after.metadata.labels.unwrap_or_default().is_empty());
    assert_eq!(after.metadata.generation, Some(1));
    // The installer re-applying its spec neither conflicts with nor drops
    // the controller's status.
    let again = domains
        .patch(
            "partner",
            &PatchParams::apply("installer"),
            &Patch::Apply(&spec),
        )
        .await
        .expect("reapply");
    assert_eq!(again.data["status"], json!({"valid": true}));
}
