//! The webhook over TLS, in process: its serving certificate is the SVID a
//! (fake) agent streams over the Workload API, with the Service's DNS name;
//! an AdmissionReview POSTed to /inject is answered with the same uid and
//! a patch; after the agent rotates the SVID, a new handshake sees the new
//! certificate while an open connection keeps working; the listener's
//! bounds (body size, path, method, content type) answer as documented.
#![allow(clippy::unwrap_used)]

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper_util::rt::TokioIo;
use meshid_identity::x509::{self_signed_ca, sign_svid};
use meshid_identity::{CaTemplate, PrivateKey, SpiffeId, SvidTemplate, TrustDomain};
use meshid_k8s::webhook::{self, WebhookConfig};
use meshid_proto::workload::{X509svid, X509svidResponse};
use meshid_tests::FakeWorkloadApi;
use meshid_tests::eventually::eventually_async;
use rustls::pki_types::{CertificateDer, ServerName};
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

const SERVICE: &str = "meshid-webhook.meshid-system.svc";
const ID: &str = "spiffe://example.org/ns/meshid-system/sa/meshid-webhook";

struct Ca {
    cert: CertificateDer<'static>,
    key: PrivateKey,
}

impl Ca {
    fn new() -> Self {
        let key = PrivateKey::generate_p256().unwrap();
        let now = SystemTime::now();
        let t = CaTemplate {
            trust_domain: TrustDomain::new("example.org").unwrap(),
            common_name: "webhook test root".into(),
            not_before: now,
            not_after: now + Duration::from_secs(3600),
            path_len: None,
        };
        let cert = self_signed_ca(&t, &key.key_pair().unwrap()).unwrap();
        Self { cert, key }
    }

    /// An SVID for the webhook with the Service's DNS name, and its serial.
    fn svid(&self) -> (X509svidResponse, String) {
        let key = PrivateKey::generate_p256().unwrap();
        let now = SystemTime::now();
        let t = SvidTemplate {
            spiffe_id: SpiffeId::parse(ID).unwrap(),
            dns_names: vec![SERVICE.into()],
            not_before: now,
            not_after: now + Duration::from_secs(3600),
        };
        let cert = sign_svid(
            &t,
            &key.public_key_der(),
            &self.cert,
            &self.key.key_pair().unwrap(),
        )
        .unwrap();
        let serial = meshid_identity::x509::serial_of(&cert).unwrap();
        let svid = X509svid {
            spiffe_id: ID.into(),
            x509_svid: cert.to_vec(),
            x509_svid_key: key.pkcs8_der().to_vec(),
            bundle: self.cert.to_vec(),
            hint: String::new(),
        };
        let resp = X509svidResponse {
            svids: vec![svid],
            ..Default::default()
        };
        (resp, serial)
    }
}

type Sender = hyper::client::conn::http1::SendRequest<Full<Bytes>>;

/// A TLS connection to the webhook verified as the API server does (the
/// Service's DNS name against the caBundle); the serial it saw.
async fn connect(addr: SocketAddr, ca: &Ca) -> (Sender, String) {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca.cert.clone()).unwrap();
    let cfg = rustls::ClientConfig::builder_with_provider(meshid_identity::crypto::provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let tls = tokio_rustls::TlsConnector::from(Arc::new(cfg))
        .connect(ServerName::try_from(SERVICE).unwrap(), tcp)
        .await
        .unwrap();
    let leaf = tls.get_ref().1.peer_certificates().unwrap()[0].clone();
    let serial = meshid_identity::x509::serial_of(&leaf).unwrap();
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .unwrap();
    tokio::spawn(conn);
    (sender, serial)
}

async fn post(sender: &mut Sender, path: &str, content_type: &str, body: Vec<u8>) -> (u16, Bytes) {
    let req = http::Request::post(path)
        .header("host", SERVICE)
        .header("content-type", content_type)
        .body(Full::new(Bytes::from(body)))
        .unwrap();
    let resp = sender.send_request(req).await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.into_body().collect().await.unwrap().to_bytes())
}

fn review(uid: &str) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": uid,
            "kind": { "group": "", "version": "v1", "kind": "Pod" },
            "resource": { "group": "", "version": "v1", "resource": "pods" },
            "namespace": "default",
            "operation": "CREATE",
            "userInfo": { "username": "system:serviceaccount:kube-system:replicaset-controller" },
            "object": {
                "apiVersion": "v1", "kind": "Pod",
                "metadata": { "generateName": "httpbin-7d9b5-", "labels": { "app": "httpbin" } },
                "spec": { "containers": [{ "name": "httpbin", "image": "httpbin",
                          "ports": [{ "containerPort": 8080, "name": "http" }] }] }
            }
        }
    }))
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serves_reviews_with_its_svid_and_follows_rotation() {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("agent.sock");
    let agent = FakeWorkloadApi::serve(&sock);
    let ca = Ca::new();
    let cfg = WebhookConfig::from_toml(&format!(
        "listen = \"127.0.0.1:0\"\nops_listen = \"127.0.0.1:0\"\n\
         identity = {{ workload_api = {{ socket = \"{}\" }} }}\n",
        sock.display()
    ))
    .unwrap();
    let running = webhook::start(cfg).await.unwrap();
    let ops = running.ops_addr.unwrap();
    let ready = || async move {
        meshid_runtime::ops::probe(&format!("http://{ops}/readyz"), Duration::from_secs(2))
            .await
            .is_ok()
    };
    assert!(!ready().await, "ready without a certificate");

    let (first, serial1) = ca.svid();
    agent.push(first).await;
    eventually_async("the webhook is ready", Duration::from_secs(10), || async {
        ready().await.then_some(())
    })
    .await;

    let (mut conn1, seen) = connect(running.addr, &ca).await;
    assert_eq!(seen, serial1);
    let (status, body) = post(&mut conn1, "/inject", "application/json", review("uid-1")).await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let answer: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(answer["response"]["uid"], "uid-1");
    assert_eq!(answer["response"]["allowed"], true);
    assert_eq!(answer["response"]["patchType"], "JSONPatch");

    // The agent rotates the SVID: new handshakes get the new one.
    let (second, serial2) = ca.svid();
    agent.push(second).await;
    let addr = running.addr;
    let ca_ref = &ca;
    let mut conn2 = eventually_async(
        "a handshake sees the new SVID",
        Duration::from_secs(10),
        || {
            let serial2 = serial2.clone();
            async move {
                let (c, seen) = connect(addr, ca_ref).await;
                (seen == serial2).then_some(c)
            }
        },
    )
    .await;
    let (status, body) = post(&mut conn2, "/inject", "application/json", review("uid-2")).await;
    assert_eq!(status, 200);
    assert_eq!(
        serde_json::from_slice::<Value>(&body).unwrap()["response"]["uid"],
        "uid-2"
    );
    // The connection made before the rotation still answers.
    let (status, _) = post(&mut conn1, "/inject", "application/json", review("uid-3")).await;
    assert_eq!(status, 200);

    // Bounds and refusals, each on a connection of its own: the server may
    // close a connection after refusing a request whose body it never read.
    let (mut conn, _) = connect(running.addr, &ca).await;
    let (status, _) = post(&mut conn, "/mutate", "application/json", review("x")).await;
    assert_eq!(status, 404);
    let (mut conn, _) = connect(running.addr, &ca).await;
    let (status, _) = post(&mut conn, "/inject", "text/plain", review("x")).await;
    assert_eq!(status, 415);
    let (mut conn, _) = connect(running.addr, &ca).await;
    let (status, body) = post(&mut conn, "/inject", "application/json", b"{}".to_vec()).await;
    assert_eq!(status, 400, "{}", String::from_utf8_lossy(&body));
    let (mut conn3, _) = connect(running.addr, &ca).await;
    let huge = vec![b' '; webhook::server::MAX_BODY + 1];
    let (status, _) = post(&mut conn3, "/inject", "application/json", huge).await;
    assert_eq!(status, 413);

    let metrics =
        meshid_runtime::ops::probe(&format!("http://{ops}/metrics"), Duration::from_secs(2))
            .await
            .unwrap();
    assert!(
        metrics.contains("meshid_webhook_reviews_total{result=\"injected\"} 3"),
        "{metrics}"
    );
    running.stop().await;
}
