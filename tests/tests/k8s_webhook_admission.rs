//! Sidecar injection end to end, as on a cluster: a real CA and agent
//! serve the webhook its SVID (DNS SAN `meshid-webhook.meshid-system.svc`
//! from its entry); `meshid k8s webhook run` serves it; the fake API
//! server's mutating admission, driven by deploy/'s own
//! MutatingWebhookConfiguration with the trust bundle as `caBundle` (what
//! the controller writes), calls it over verified TLS for each pod CREATE.
//! Pods in an enabled namespace get the sidecar; opted-out pods, pods of
//! other namespaces and injected pods are unchanged; a malformed pod is
//! refused with the webhook's reason; with the webhook gone, pod creation
//! fails (failurePolicy Fail).
#![allow(clippy::unwrap_used)]

use base64::Engine as _;
use meshid_tests::kube::{AdmitError, FakeApiServer};
use meshid_tests::process::Cmd;
use meshid_tests::{TestAgent, TestCa, current_uid, eventually, free_port, tempdir};
use serde_json::{Value, json};
use std::path::Path;
use std::time::Duration;

const SERVICE: &str = "meshid-webhook.meshid-system.svc";

/// A pod as the API server hands it to admission (namespace set).
fn pod(name: &str, namespace: &str, labels: Value, annotations: Value) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": { "name": name, "namespace": namespace, "labels": labels,
                      "annotations": annotations },
        "spec": { "containers": [{ "name": "app", "image": "registry.example/app:1",
                  "ports": [{ "containerPort": 8080, "name": "http" }] }] }
    })
}

fn has_sidecar(pod: &Value) -> bool {
    pod["spec"]["initContainers"]
        .as_array()
        .is_some_and(|c| c.iter().any(|c| c["name"] == "meshid-proxy"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_server_admits_pods_through_the_webhook() {
    let tmp = tempdir();
    let logs = tmp.path().join("logs");
    std::fs::create_dir_all(&logs).unwrap();
    let ca = TestCa::builder(tmp.path().join("ca"), &logs).start();
    let token = ca.join_token();
    let id = format!(
        "spiffe://{}/ns/meshid-system/sa/meshid-webhook",
        ca.trust_domain()
    );
    let uid = format!("unix:uid:{}", current_uid());
    ca.admin_json(&[
        "entry",
        "create",
        "--spiffe-id",
        &id,
        "--parent-id",
        &token.agent_id,
        "--selector",
        &uid,
        "--dns-name",
        SERVICE,
    ]);
    let mut agent = TestAgent::builder(&ca, tmp.path())
        .join_token(&token.secret)
        .start(&logs);
    agent.wait_for_svid(Some(&id));

    let (port, ops) = (free_port(), free_port());
    let config = tmp.path().join("webhook.toml");
    std::fs::write(
        &config,
        format!(
            "listen = \"127.0.0.1:{port}\"\nops_listen = \"127.0.0.1:{ops}\"\n\
             identity = {{ workload_api = {{ socket = \"{}\" }} }}\n\
             [inject]\nimage = \"registry.example/meshid:0.1.0\"\n",
            agent.workload_socket.display()
        ),
    )
    .unwrap();
    let mut webhook = Cmd::meshid()
        .args(["k8s", "webhook", "run", "--config"])
        .args([&config])
        .env("RUST_LOG", "info")
        .spawn(&logs);
    eventually("the webhook is ready", Duration::from_secs(20), || {
        assert!(webhook.is_running(), "webhook exited:\n{}", webhook.log());
        Cmd::meshid()
            .args([
                "healthcheck",
                "--url",
                &format!("http://127.0.0.1:{ops}/readyz"),
            ])
            .output()
            .status
            .success()
            .then_some(())
    });

    let api = FakeApiServer::start().await;
    for (ns, labels) in [
        ("shop", json!({ "meshid.io/inject": "enabled" })),
        ("plain", json!({})),
    ] {
        api.create(json!({ "apiVersion": "v1", "kind": "Namespace",
                           "metadata": { "name": ns, "labels": labels } }))
            .unwrap();
    }
    let mut hooks: Value = serde_yaml_ng::from_str(
        &std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../deploy/base/webhook/mutatingwebhookconfiguration.yaml"),
        )
        .unwrap(),
    )
    .unwrap();
    let bundle = base64::engine::general_purpose::STANDARD.encode(ca.bundle_pem());
    hooks["webhooks"][0]["clientConfig"]["caBundle"] = bundle.into();
    api.create(hooks).unwrap();
    api.map_service(&format!("{SERVICE}:443"), ([127, 0, 0, 1], port).into());

    // Injected in an enabled namespace; the proxy config is the proxy's.
    let admitted = api
        .admit(
            pod("web", "shop", json!({ "app": "web" }), json!({})),
            "shop",
        )
        .await
        .unwrap();
    assert!(has_sidecar(&admitted), "{admitted:#}");
    assert_eq!(
        admitted["spec"]["initContainers"][0]["image"],
        "registry.example/meshid:0.1.0"
    );
    let yaml = admitted["metadata"]["annotations"]["meshid.io/proxy-config"]
        .as_str()
        .unwrap();
    meshid_proxy_config_ok(yaml);

    // Left alone: opted out (objectSelector), another namespace, injected.
    let out = pod(
        "legacy",
        "shop",
        json!({ "meshid.io/inject": "false" }),
        json!({}),
    );
    assert_eq!(api.admit(out.clone(), "shop").await.unwrap(), out);
    let plain = pod("web", "plain", json!({ "app": "web" }), json!({}));
    assert_eq!(api.admit(plain.clone(), "plain").await.unwrap(), plain);
    assert_eq!(api.admit(admitted.clone(), "shop").await.unwrap(), admitted);
    // The annotation opt-out is the webhook's own (no selector sees it).
    let annotated = pod(
        "debug",
        "shop",
        json!({}),
        json!({ "meshid.io/inject": "false" }),
    );
    assert_eq!(
        api.admit(annotated.clone(), "shop").await.unwrap(),
        annotated
    );

    // A pod the webhook cannot inject is refused with its reason.
    let bad = pod(
        "bad",
        "shop",
        json!({}),
        json!({ "meshid.io/inbound-ports": "http" }),
    );
    match api.admit(bad, "shop").await {
        Err(AdmitError::Denied { message, .. }) => {
            assert!(message.contains("meshid.io/inbound-ports"), "{message}")
        }
        other => panic!("expected a denial, got {other:?}"),
    }

    // failurePolicy Fail: no webhook, no pod.
    webhook.kill();
    match api
        .admit(pod("late", "shop", json!({}), json!({})), "shop")
        .await
    {
        Err(AdmitError::Failed { .. }) => {}
        other => panic!("expected the call to fail, got {other:?}"),
    }
    assert_eq!(api.admit(plain.clone(), "plain").await.unwrap(), plain);
}

/// The generated config passes the proxy's own validation.
fn meshid_proxy_config_ok(yaml: &str) {
    let dir = tempdir();
    let policy = dir.path().join("policy.yaml");
    std::fs::write(
        &policy,
        "policies: [{ name: allow-all, action: ALLOW, rules: [{}] }]\n",
    )
    .unwrap();
    let labels = dir.path().join("labels");
    std::fs::write(&labels, "app=\"web\"\n").unwrap();
    let config = dir.path().join("config.yaml");
    std::fs::write(
        &config,
        yaml.replace(
            "/etc/meshid/policy/policy.yaml",
            &policy.display().to_string(),
        )
        .replace("/etc/meshid/proxy/labels", &labels.display().to_string()),
    )
    .unwrap();
    let out = Cmd::meshid()
        .args(["proxy", "validate", "--config"])
        .args([&config])
        .run_ok();
    assert!(out.contains("config OK"), "{out}");
}
