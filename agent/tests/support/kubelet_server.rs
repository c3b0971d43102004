//! A small kubelet secure port for the kubelet client's tests: HTTPS on
//! 127.0.0.1 with a certificate (SANs `127.0.0.1`, `localhost`) from a CA
//! of its own, `GET /pods` answering the pods the test sets to
//! `Authorization: Bearer <token>` only (401 otherwise), and switches for
//! a huge answer and one that never comes.
#![allow(clippy::unwrap_used)]
#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use http_body_util::Full;
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

/// What the server does; the test changes it while it runs.
#[derive(Debug, Default)]
pub struct State {
    pub token: Mutex<String>,
    pub pods: Mutex<Vec<serde_json::Value>>,
    pub requests: AtomicUsize,
    pub authorizations: Mutex<Vec<String>>,
    /// Answer 33 MiB of JSON.
    pub huge: AtomicBool,
    /// Never answer.
    pub hang: AtomicBool,
}

#[derive(Debug)]
pub struct KubeletServer {
    pub addr: SocketAddr,
    pub ca_pem: String,
    pub state: Arc<State>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for KubeletServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A fresh CA's PEM and a server certificate chain and key it signed.
pub fn pki() -> (String, Vec<CertificateDer<'static>>, PrivateKeyDer<'static>) {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(rcgen::DnType::CommonName, "test kubelet CA");
    ca.key_usages = vec![
        rcgen::KeyUsagePurpose::KeyCertSign,
        rcgen::KeyUsagePurpose::CrlSign,
    ];
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let issuer = rcgen::Issuer::new(ca, ca_key);
    let key = rcgen::KeyPair::generate().unwrap();
    let mut leaf =
        rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])
            .unwrap();
    leaf.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
    let cert = leaf.signed_by(&key, &issuer).unwrap();
    (
        ca_cert.pem(),
        vec![cert.der().clone()],
        PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
    )
}

impl KubeletServer {
    pub async fn start(token: &str) -> Self {
        let (ca_pem, chain, key) = pki();
        let config =
            rustls::ServerConfig::builder_with_provider(meshid_identity::crypto::provider())
                .with_safe_default_protocol_versions()
                .unwrap()
                .with_no_client_auth()
                .with_single_cert(chain, key)
                .unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(State::default());
        *state.token.lock().unwrap() = token.to_owned();
        let shared = state.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    return;
                };
                let (acceptor, state) = (acceptor.clone(), shared.clone());
                tokio::spawn(async move {
                    let Ok(tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let service = hyper::service::service_fn(move |req| {
                        let state = state.clone();
                        async move { Ok::<_, std::convert::Infallible>(answer(&state, req).await) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(tls), service)
                        .await;
                });
            }
        });
        Self {
            addr,
            ca_pem,
            state,
            task,
        }
    }

    pub fn url(&self) -> String {
        format!("https://{}", self.addr)
    }

    pub fn set_pods(&self, pods: Vec<serde_json::Value>) {
        *self.state.pods.lock().unwrap() = pods;
    }

    pub fn requests(&self) -> usize {
        self.state.requests.load(Ordering::SeqCst)
    }
}

async fn answer(
    state: &State,
    req: hyper::Request<hyper::body::Incoming>,
) -> hyper::Response<Full<Bytes>> {
    let respond = |code: u16, body: Vec<u8>| {
        hyper::Response::builder()
            .status(code)
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(body)))
            .unwrap()
    };
    if req.uri().path() != "/pods" || req.method() != hyper::Method::GET {
        return respond(404, b"404 page not found".to_vec());
    }
    state.requests.fetch_add(1, Ordering::SeqCst);
    let presented = req
        .headers()
        .get(hyper::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    state.authorizations.lock().unwrap().push(presented.clone());
    if presented != format!("Bearer {}", state.token.lock().unwrap()) {
        return respond(401, b"Unauthorized".to_vec());
    }
    if state.hang.load(Ordering::SeqCst) {
        std::future::pending::<()>().await;
    }
    if state.huge.load(Ordering::SeqCst) {
        let mut body = b"{\"items\": [], \"pad\": \"".to_vec();
        body.resize(body.len() + 33 * 1024 * 1024, b'a');
        body.extend_from_slice(b"\"}");
        return respond(200, body);
    }
    let items = state.pods.lock().unwrap().clone();
    let list =
        serde_json::json!({"kind": "PodList", "apiVersion": "v1", "metadata": {}, "items": items});
    respond(200, serde_json::to_vec(&list).unwrap())
}

/// A running pod with one container `app` of `image`, `containerd://<cid>`.
pub fn pod(ns: &str, name: &str, uid: &str, sa: &str, cid: &str) -> serde_json::Value {
    serde_json::json!({
        "metadata": {"name": name, "namespace": ns, "uid": uid, "labels": {"app": name}},
        "spec": {"serviceAccountName": sa, "nodeName": "node-1",
                 "containers": [{"name": "app", "image": "registry.example/app:1"}]},
        "status": {"phase": "Running", "containerStatuses": [{
            "name": "app", "image": "registry.example/app:1",
            "imageID": "registry.example/app@sha256:0123", "containerID": format!("containerd://{cid}")}]}
    })
}
