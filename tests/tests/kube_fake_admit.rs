//! `FakeApiServer::admit`: the API server's mutating admission for a pod
//! CREATE against a real HTTPS webhook on loopback (a certificate for
//! `hook.hooks.svc` under a test CA in the `caBundle`): selectors decide
//! which pods are sent, the patch is applied, a denial, a wrong uid, a
//! timeout and an untrusted certificate fail (or are skipped with
//! `failurePolicy: Ignore`).

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper_util::rt::TokioIo;
use meshid_identity::x509::{self_signed_ca, sign_svid};
use meshid_identity::{CaTemplate, PrivateKey, SpiffeId, SvidTemplate, TrustDomain};
use meshid_tests::kube::{AdmitError, FakeApiServer};
use rustls::pki_types::CertificateDer;
use serde_json::{Value, json};

const HOST: &str = "hook.hooks.svc";

/// How the test webhook answers.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Mode {
    Label,
    Deny,
    WrongUid,
    Slow,
}

struct Webhook {
    addr: SocketAddr,
    ca_pem: String,
    mode: Arc<Mutex<Mode>>,
    seen: Arc<Mutex<Vec<Value>>>,
}

fn ca() -> (CertificateDer<'static>, PrivateKey) {
    let key = PrivateKey::generate_p256().expect("key");
    let now = SystemTime::now();
    let t = CaTemplate {
        trust_domain: TrustDomain::new("example.org").expect("td"),
        common_name: "admission test root".into(),
        not_before: now,
        not_after: now + Duration::from_secs(3600),
        path_len: None,
    };
    let cert = self_signed_ca(&t, &key.key_pair().expect("pair")).expect("ca");
    (cert, key)
}

fn pem(cert: &CertificateDer<'_>) -> String {
    let b64 = STANDARD.encode(cert.as_ref());
    let lines: Vec<&str> = b64
        .as_bytes()
        .chunks(64)
        .map(|c| std::str::from_utf8(c).unwrap_or_default())
        .collect();
    format!(
        "-----BEGIN CERTIFICATE-----\n{}\n-----END CERTIFICATE-----\n",
        lines.join("\n")
    )
}

fn answer(mode: Mode, review: &Value) -> Value {
    let uid = review
        .pointer("/request/uid")
        .cloned()
        .unwrap_or(Value::Null);
    let patch = json!([{"op": "add", "path": "/metadata/labels/injected", "value": "yes"}]);
    let response = match mode {
        Mode::Label | Mode::Slow => json!({"uid": uid, "allowed": true, "patchType": "JSONPatch",
                                 "patch": STANDARD.encode(patch.to_string())}),
        Mode::Deny => {
            json!({"uid": uid, "allowed": false, "status": {"code": 403, "message": "no sidecar for you"}})
        }
        Mode::WrongUid => json!({"uid": "someone-else", "allowed": true}),
    };
    json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "response": response})
}

impl Webhook {
    async fn start() -> Self {
        let (ca_cert, ca_key) = ca();
        let key = PrivateKey::generate_p256().expect("key");
        let now = SystemTime::now();
        let t = SvidTemplate {
            spiffe_id: SpiffeId::parse("spiffe://example.org/ns/hooks/sa/hook").expect("id"),
            dns_names: vec![HOST.into()],
            not_before: now,
            not_after: now + Duration::from_secs(3600),
        };
        let cert = sign_svid(
            &t,
            &key.public_key_der(),
            &ca_cert,
            &ca_key.key_pair().expect("pair"),
        )
        .expect("svid");
        let config =
            rustls::ServerConfig::builder_with_provider(meshid_identity::crypto::provider())
                .with_safe_default_protocol_versions()
                .expect("versions")
                .with_no_client_auth()
                .with_single_cert(vec![cert], meshid_identity::crypto::private_key_der(&key))
                .expect("server config");
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let mode = Arc::new(Mutex::new(Mode::Label));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let (m, s) = (mode.clone(), seen.clone());
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let (acceptor, m, s) = (acceptor.clone(), m.clone(), s.clone());
                tokio::spawn(async move {
                    let Ok(tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let service = hyper::service::service_fn(
                        move |req: http::Request<hyper::body::Incoming>| {
                            let (m, s) = (m.clone(), s.clone());
                            async move {
                                assert_eq!(req.uri().path(), "/inject");
                                let body = req
                                    .into_body()
                                    .collect()
                                    .await
                                    .map(|b| b.to_bytes())
                                    .unwrap_or_default();
                                let review: Value =
                                    serde_json::from_slice(&body).unwrap_or(Value::Null);
                                s.lock().expect("seen").push(review.clone());
                                let mode = *m.lock().expect("mode");
                                if mode == Mode::Slow {
                                    tokio::time::sleep(Duration::from_secs(5)).await;
                                }
                                let out =
                                    serde_json::to_vec(&answer(mode, &review)).unwrap_or_default();
                                Ok::<_, std::convert::Infallible>(http::Response::new(Full::new(
                                    Bytes::from(out),
                                )))
                            }
                        },
                    );
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(tls), service)
                        .await;
                });
            }
        });
        Self {
            addr,
            ca_pem: pem(&ca_cert),
            mode,
            seen,
        }
    }

    fn set(&self, mode: Mode) {
        *self.mode.lock().expect("mode") = mode;
    }

    fn calls(&self) -> usize {
        self.seen.lock().expect("seen").len()
    }
}

fn configuration(ca_pem: &str, failure_policy: &str, timeout: u64) -> Value {
    json!({
        "apiVersion": "admissionregistration.k8s.io/v1", "kind": "MutatingWebhookConfiguration",
        "metadata": {"name": "injector"},
        "webhooks": [{
            "name": "inject.example.org",
            "admissionReviewVersions": ["v1"], "sideEffects": "None",
            "failurePolicy": failure_policy, "timeoutSeconds": timeout,
            "clientConfig": {"service": {"name": "hook", "namespace": "hooks", "path": "/inject", "port": 443},
                             "caBundle": STANDARD.encode(ca_pem)},
            "namespaceSelector": {"matchLabels": {"meshid.io/inject": "enabled"}},
            "objectSelector": {"matchExpressions": [{"key": "meshid.io/inject", "operator": "NotIn", "values": ["false"]}]},
            "rules": [{"operations": ["CREATE"], "apiGroups": [""], "apiVersions": ["v1"], "resources": ["pods"]}],
        }],
    })
}

fn pod(labels: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "Pod",
           "metadata": {"generateName": "web-", "labels": labels},
           "spec": {"containers": [{"name": "web", "image": "web:1"}]}})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admission_runs_matching_webhooks_and_applies_their_patch() {
    let api = FakeApiServer::start().await;
    let hook = Webhook::start().await;
    api.map_service(&format!("{HOST}:443"), hook.addr);
    api.create(json!({"apiVersion": "v1", "kind": "Namespace",
                      "metadata": {"name": "shop", "labels": {"meshid.io/inject": "enabled"}}}))
        .expect("ns");
    api.create(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "plain"}}))
        .expect("ns");
    api.create(configuration(&hook.ca_pem, "Fail", 2))
        .expect("config");

    let admitted = api
        .admit(pod(json!({"app": "web"})), "shop")
        .await
        .expect("admitted");
    assert_eq!(
        admitted["metadata"]["labels"],
        json!({"app": "web", "injected": "yes"})
    );
    assert_eq!(admitted["metadata"]["namespace"], "shop");
    let review = hook.seen.lock().expect("seen")[0].clone();
    assert_eq!(review["apiVersion"], "admission.k8s.io/v1");
    assert_eq!(review["request"]["operation"], "CREATE");
    assert_eq!(review["request"]["namespace"], "shop");
    assert_eq!(
        review["request"]["resource"],
        json!({"group": "", "version": "v1", "resource": "pods"})
    );
    assert_eq!(
        review["request"]["object"]["metadata"]["generateName"],
        "web-"
    );
    assert!(
        review["request"]["uid"]
            .as_str()
            .is_some_and(|u| u.len() == 36)
    );

    // Not sent: a pod that opts out, a namespace without the label.
    let opted_out = pod(json!({"meshid.io/inject": "false"}));
    assert_eq!(
        api.admit(opted_out.clone(), "shop")
            .await
            .expect("admitted")["metadata"]["labels"],
        opted_out["metadata"]["labels"]
    );
    api.admit(pod(json!({})), "plain").await.expect("admitted");
    assert_eq!(hook.calls(), 1);
    assert!(matches!(
        api.admit(pod(json!({})), "nowhere").await,
        Err(AdmitError::Invalid(_))
    ));

    hook.set(Mode::Deny);
    match api.admit(pod(json!({})), "shop").await {
        Err(AdmitError::Denied { message, code, .. }) => {
            assert_eq!((message.as_str(), code), ("no sidecar for you", Some(403)))
        }
        other => panic!("{other:?}"),
    }
    hook.set(Mode::WrongUid);
    match api.admit(pod(json!({})), "shop").await {
        Err(AdmitError::Failed { reason, .. }) => {
            assert!(reason.contains("response.uid"), "{reason}")
        }
        other => panic!("{other:?}"),
    }
    hook.set(Mode::Slow);
    match api.admit(pod(json!({})), "shop").await {
        Err(AdmitError::Failed { reason, .. }) => assert!(reason.contains("deadline"), "{reason}"),
        other => panic!("{other:?}"),
    }

    // With failurePolicy Ignore a failed call admits the pod unchanged.
    api.apply(configuration(&hook.ca_pem, "Ignore", 1))
        .expect("config");
    let unchanged = api
        .admit(pod(json!({"app": "web"})), "shop")
        .await
        .expect("ignored");
    assert_eq!(unchanged["metadata"]["labels"], json!({"app": "web"}));

    // A caBundle that does not sign the webhook's certificate: TLS fails.
    hook.set(Mode::Label);
    let (other_ca, _) = ca();
    api.apply(configuration(&pem(&other_ca), "Fail", 2))
        .expect("config");
    match api.admit(pod(json!({})), "shop").await {
        Err(AdmitError::Failed { reason, .. }) => assert!(reason.contains("tls"), "{reason}"),
        other => panic!("{other:?}"),
    }
}
