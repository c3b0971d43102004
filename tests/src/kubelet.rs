//! [`FakeKubelet`]: the kubelet's secure port as the agent's k8s workload
//! attestor reads it: HTTPS on 127.0.0.1 (a fresh CA, certificate for
//! `127.0.0.1` and `localhost`), `GET /pods` answering the `PodList` the
//! test sets, only with `Authorization: Bearer <token>` (401 otherwise).
//! [`pod`] builds a running pod as the kubelet lists it.

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use serde_json::{Value, json};

use crate::kube::https::{self, HttpsServer};

#[derive(Debug)]
struct State {
    token: Mutex<String>,
    pods: Mutex<Vec<Value>>,
    requests: AtomicUsize,
    unauthorized: AtomicUsize,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A running fake kubelet; it stops when dropped.
#[derive(Debug)]
pub struct FakeKubelet {
    server: HttpsServer,
    state: Arc<State>,
}

impl FakeKubelet {
    /// Serves `/pods` (no pods yet) to clients presenting `token`.
    pub async fn start(token: &str) -> Self {
        let state = Arc::new(State {
            token: Mutex::new(token.to_owned()),
            pods: Mutex::default(),
            requests: AtomicUsize::new(0),
            unauthorized: AtomicUsize::new(0),
        });
        let shared = state.clone();
        let server = HttpsServer::start(Arc::new(move |parts, _body| {
            if parts.uri.path() != "/pods" {
                return https::text(404, "404 page not found");
            }
            shared.requests.fetch_add(1, Ordering::SeqCst);
            let expected = format!("Bearer {}", lock(&shared.token));
            let presented = parts
                .headers
                .get(http::header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok());
            if presented != Some(expected.as_str()) {
                shared.unauthorized.fetch_add(1, Ordering::SeqCst);
                return https::text(401, "Unauthorized");
            }
            if parts.method != http::Method::GET {
                return https::text(405, "method not allowed");
            }
            let items = lock(&shared.pods).clone();
            https::json(
                200,
                &json!({"kind": "PodList", "apiVersion": "v1", "metadata": {}, "items": items}),
            )
        }))
        .await;
        Self { server, state }
    }

    /// `https://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        self.server.url()
    }

    /// The PEM of the CA of the kubelet's serving certificate.
    pub fn ca_pem(&self) -> &str {
        self.server.ca_pem()
    }

    /// Writes [`ca_pem`](Self::ca_pem) to `path` (the agent's
    /// `kubelet_ca_path`).
    pub fn write_ca(&self, path: &Path) {
        std::fs::write(path, self.ca_pem())
            .unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    }

    /// The pods `/pods` lists from now on.
    pub fn set_pods(&self, pods: Vec<Value>) {
        *lock(&self.state.pods) = pods;
    }

    /// The bearer token accepted from now on.
    pub fn set_token(&self, token: &str) {
        token.clone_into(&mut lock(&self.state.token));
    }

    /// Requests to `/pods` so far (refused ones included).
    pub fn requests(&self) -> usize {
        self.state.requests.load(Ordering::SeqCst)
    }

    /// Requests to `/pods` refused for a missing or wrong token.
    pub fn unauthorized(&self) -> usize {
        self.state.unauthorized.load(Ordering::SeqCst)
    }
}

/// A running pod as the kubelet lists it: `containers` are (name, image,
/// container ID with its runtime prefix, `containerd://<64 hex>`), each
/// with a running status whose `imageID` is `<image>@sha256:<hex>`.
pub fn pod(
    ns: &str,
    name: &str,
    uid: &str,
    sa: &str,
    node: &str,
    labels: &[(&str, &str)],
    containers: &[(&str, &str, &str)],
) -> Value {
    let labels: serde_json::Map<String, Value> = labels
        .iter()
        .map(|(k, v)| ((*k).to_owned(), Value::from(*v)))
        .collect();
    let specs: Vec<Value> = containers
        .iter()
        .map(|(n, image, _)| json!({"name": n, "image": image}))
        .collect();
    let statuses: Vec<Value> = containers
        .iter()
        .map(|(n, image, id)| {
            json!({
                "name": n,
                "image": image,
                "imageID": image_id(image),
                "containerID": id,
                "ready": true,
                "restartCount": 0,
                "started": true,
                "state": {"running": {"startedAt": "2026-01-01T00:00:00Z"}},
            })
        })
        .collect();
    json!({
        "metadata": {"name": name, "namespace": ns, "uid": uid, "labels": labels},
        "spec": {"serviceAccountName": sa, "nodeName": node, "containers": specs},
        "status": {"phase": "Running", "containerStatuses": statuses},
    })
}

/// The `imageID` [`pod`] gives an image: `docker.io/<image>@sha256:<hex of
/// the name>` (stable per image).
pub fn image_id(image: &str) -> String {
    use sha2::{Digest as _, Sha256};
    let digest = Sha256::digest(image.as_bytes());
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    let repo = image.split(':').next().unwrap_or(image);
    format!("docker.io/library/{repo}@sha256:{hex}")
}
