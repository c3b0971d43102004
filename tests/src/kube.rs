//! [`FakeApiServer`]: a Kubernetes API server for tests, on plain HTTP on
//! loopback, speaking the real wire format so kube-rs clients (the meshid
//! controller, leader election, the webhook's callers) run against it
//! unchanged. No real API server can run on these machines.
//!
//! What it serves (`resources::RESOURCES`): core `v1` pods, namespaces,
//! nodes, configmaps, secrets, serviceaccounts; `coordination.k8s.io/v1`
//! leases; `admissionregistration.k8s.io/v1` mutatingwebhookconfigurations;
//! `meshid.io/v1alpha1` clusteridentitytemplates and
//! clusterfederatedtrustdomains; `security.istio.io/v1`
//! authorizationpolicies and peerauthentications. Anything else is a 404
//! `Status`. Discovery (`/api`, `/apis`, `/api/v1`, `/apis/<g>/<v>`,
//! `/version`) lists them.
//!
//! Behaviour, as the real server:
//! - one global `resourceVersion` counter; `metadata.uid`,
//!   `creationTimestamp`, `generation` (bumped when anything but metadata
//!   and status changes) set by the server; a write that changes nothing
//!   keeps the resourceVersion and sends no event; `generateName`;
//!   namespaced objects need their Namespace (404 otherwise), deleting a
//!   namespace deletes what is in it; an object with `finalizers` is only
//!   marked (`deletionTimestamp`) until they are removed.
//! - get; list with `labelSelector` (`=`, `==`, `!=`, `in`, `notin`,
//!   exists, `!`), `fieldSelector` (`metadata.name`, `metadata.namespace`,
//!   for pods `spec.nodeName` and `status.phase`), `limit` + `continue`
//!   (a page continues from the current objects, not a snapshot; a token
//!   older than the history is `410 Expired`), `resourceVersion` with
//!   `resourceVersionMatch` (`Exact` only for the current version).
//! - watch (`watch=true`, `resourceVersion`, `allowWatchBookmarks`,
//!   `timeoutSeconds`, `sendInitialEvents`): newline-delimited
//!   `ADDED`/`MODIFIED`/`DELETED`/`BOOKMARK` events (a bookmark every
//!   second while idle and when the timeout ends the watch), an `ERROR`
//!   event with a `410 Expired` `Status` when the resourceVersion is older
//!   than the kept history (see [`FakeApiServer::compact`]) so kube's
//!   watcher relists; an object that starts or stops matching the
//!   selectors is `ADDED`/`DELETED`.
//! - create (409 `AlreadyExists`), update/PUT (409 `Conflict` on a stale
//!   `resourceVersion`), patch: `application/apply-patch+yaml` (server-side
//!   apply with `fieldManager`, `force` and per-manager field ownership:
//!   409 on a conflict, fields a manager stops applying are removed),
//!   `application/merge-patch+json`, `application/strategic-merge-patch+json`
//!   (as a merge patch: lists are replaced), `application/json-patch+json`;
//!   delete (answers the object; `DeleteOptions.preconditions`); the
//!   `/status` subresource (writes there change only `.status`, writes to
//!   the main resource never do); request bodies at most 4 MiB.
//!
//! - `Accept: ...;as=PartialObjectMetadata[List]` (kube's `*_metadata`
//!   calls, metadata watchers) answers `meta.k8s.io/v1` partial objects.
//!
//! - `authentication.k8s.io/v1` TokenReview (`tokenreview.rs`) and
//!   `authorization.k8s.io/v1` SubjectAccessReview (`sar.rs`), the latter
//!   answered from the rules of [`allow`](FakeApiServer::allow).
//!
//! What it does not do: authorization of its own callers (every known token
//! may do anything; the request log is what tests check RBAC against), `deletecollection`,
//! `dryRun`, protobuf, validation against schemas, admission on
//! creates over HTTP (call [`FakeApiServer::admit`] instead), pod graceful
//! deletion (pods are removed at once).
//!
//! The test's side ([`FakeApiServer`]): [`start`](FakeApiServer::start),
//! [`url`](FakeApiServer::url) / [`addr`](FakeApiServer::addr),
//! [`write_kubeconfig`](FakeApiServer::write_kubeconfig) (one bearer token
//! per client) or [`add_token`](FakeApiServer::add_token);
//! [`create`](FakeApiServer::create), [`apply`](FakeApiServer::apply)
//! (create or replace), [`get`](FakeApiServer::get),
//! [`list`](FakeApiServer::list), [`delete`](FakeApiServer::delete) on
//! `serde_json::Value`s by plural resource name;
//! [`requests`](FakeApiServer::requests) (the log: token, verb, group,
//! resource with `/sub`, namespace, name) and
//! [`clear_requests`](FakeApiServer::clear_requests);
//! [`resource_version`](FakeApiServer::resource_version),
//! [`compact`](FakeApiServer::compact),
//! [`break_watches`](FakeApiServer::break_watches),
//! [`open_watches`](FakeApiServer::open_watches);
//! [`map_service`](FakeApiServer::map_service) and
//! [`admit`](FakeApiServer::admit) for mutating admission. Helper errors are
//! [`ApiError`] (the `Status` a client would get) and [`AdmitError`].
//!
//! ```no_run
//! # async fn demo() {
//! use meshid_tests::kube::FakeApiServer;
//! use serde_json::json;
//!
//! let api = FakeApiServer::start().await;
//! let dir = meshid_tests::tempdir();
//! let kubeconfig = dir.path().join("kubeconfig");
//! api.write_kubeconfig(&kubeconfig, "controller-0");
//! api.create(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop"}}))
//!     .expect("namespace");
//! // ... run a client with KUBECONFIG=kubeconfig, then:
//! let writes = api.requests().into_iter().filter(|r| r.verb == "create").count();
//! # let _ = writes;
//! # }
//! ```

mod admit;
mod apply;
pub(crate) mod https;
mod list;
mod log;
mod meta;
mod oidc;
mod patch;
pub mod resources;
mod route;
pub mod sa_token;
mod sar;
mod selector;
mod serve;
mod status;
mod store;
mod tokenreview;
mod verbs;
mod watch;

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use serde_json::{Value, json};
use tokio::sync::watch as tokio_watch;

pub use admit::AdmitError;
pub use log::Request;
pub use oidc::OidcIssuer;
pub use sa_token::{SaClaims, SaIssuer, SaKeyAlg};
pub use sar::{AccessRule, SubjectKind};
pub use status::ApiError;
use store::{Part, Store};

/// A running fake API server; it stops (and ends every watch) when dropped.
#[derive(Debug)]
pub struct FakeApiServer {
    shared: Arc<Shared>,
    addr: SocketAddr,
    services: Mutex<BTreeMap<String, SocketAddr>>,
    task: tokio::task::JoinHandle<()>,
}

/// What the connections and the test share.
#[derive(Debug)]
struct Shared {
    url: String,
    store: Mutex<Store>,
    log: Mutex<Vec<Request>>,
    tokens: Mutex<BTreeSet<String>>,
    stop: tokio_watch::Sender<u64>,
    sa_issuer: SaIssuer,
    access_rules: Mutex<Vec<AccessRule>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Shared {
    fn store(&self) -> MutexGuard<'_, Store> {
        lock(&self.store)
    }

    fn knows(&self, token: &str) -> bool {
        lock(&self.tokens).contains(token)
    }

    fn record(&self, r: Request) {
        serve::push_bounded(&mut lock(&self.log), r);
    }

    fn stop_rx(&self) -> tokio_watch::Receiver<u64> {
        self.stop.subscribe()
    }
}

impl Drop for FakeApiServer {
    fn drop(&mut self) {
        self.task.abort();
        self.shared.stop.send_modify(|g| *g += 1);
    }
}

/// The resource of a plural name; a name the server does not serve is a
/// bug in the test.
fn resource(plural: &str) -> &'static resources::Resource {
    resources::by_plural(plural)
        .unwrap_or_else(|| panic!("the fake API server does not serve {plural:?}"))
}

impl FakeApiServer {
    /// Binds 127.0.0.1 on a free port and serves from a task of the current
    /// runtime.
    pub async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap_or_else(|e| panic!("fake API server: bind: {e}"));
        let addr = listener
            .local_addr()
            .unwrap_or_else(|e| panic!("fake API server: local_addr: {e}"));
        let shared = Arc::new(Shared {
            url: format!("http://{addr}"),
            store: Mutex::new(Store::default()),
            log: Mutex::new(Vec::new()),
            tokens: Mutex::new(BTreeSet::new()),
            stop: tokio_watch::Sender::new(0),
            sa_issuer: SaIssuer::new(sa_token::DEFAULT_ISSUER, SaKeyAlg::Es256),
            access_rules: Mutex::default(),
        });
        let task = tokio::spawn(serve::accept(listener, shared.clone()));
        Self {
            shared,
            addr,
            services: Mutex::default(),
            task,
        }
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> &str {
        &self.shared.url
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The cluster's service-account token signer (ES256, issuer
    /// [`sa_token::DEFAULT_ISSUER`]); the TokenReview endpoint verifies
    /// tokens with it.
    pub fn sa_issuer(&self) -> &SaIssuer {
        &self.shared.sa_issuer
    }

    /// Adds a rule the SubjectAccessReview endpoint allows by (`sar.rs`:
    /// RBAC's matching without RBAC objects; nothing is allowed until a
    /// rule says so).
    pub fn allow(&self, rule: AccessRule) {
        lock(&self.shared.access_rules).push(rule);
    }

    /// Forgets every [`allow`](Self::allow)ed rule.
    pub fn clear_rules(&self) {
        lock(&self.shared.access_rules).clear();
    }

    /// Lets clients in with `token` (a bearer token) without a kubeconfig.
    pub fn add_token(&self, token: &str) {
        lock(&self.shared.tokens).insert(token.to_owned());
    }

    /// Writes a kubeconfig for this server whose user authenticates with
    /// the bearer token `token` (one token per client: the request log
    /// tells clients apart by it). Only tokens given here or to
    /// [`add_token`](Self::add_token) are let in (401 otherwise). The
    /// context's namespace is `default`.
    pub fn write_kubeconfig(&self, path: &Path, token: &str) {
        self.add_token(token);
        let config = json!({
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "fake", "cluster": {"server": self.url()}}],
            "users": [{"name": token, "user": {"token": token}}],
            "contexts": [{"name": "fake", "context": {"cluster": "fake", "user": token, "namespace": "default"}}],
            "current-context": "fake",
        });
        let text = serde_json::to_string_pretty(&config).unwrap_or_default();
        std::fs::write(path, text).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    }

    /// Creates an object (its `apiVersion`/`kind` say where; a namespaced one
    /// without `metadata.namespace` goes to `default`, which must exist).
    /// Unlike a client's create, a `.status` in `obj` is kept (a fixture
    /// such as a running pod).
    pub fn create(&self, obj: Value) -> Result<Value, ApiError> {
        let (res, ns) = Self::place(&obj)?;
        self.shared
            .store()
            .create(res, &ns, obj, Part::All, Default::default())
    }

    /// Creates the object, or replaces the stored one with it (status
    /// included; uid, creation time and the server's metadata kept).
    pub fn apply(&self, obj: Value) -> Result<Value, ApiError> {
        let (res, ns) = Self::place(&obj)?;
        let name = meta::meta_str(&obj, "name").unwrap_or_default().to_owned();
        let mut store = self.shared.store();
        if store.get(res, &ns, &name).is_some() {
            store.replace(res, &ns, &name, obj, Part::All, None)
        } else {
            store.create(res, &ns, obj, Part::All, Default::default())
        }
    }

    /// One object by plural resource name (`"configmaps"`), namespace (`""`
    /// for cluster-scoped) and name.
    pub fn get(&self, plural: &str, namespace: &str, name: &str) -> Option<Value> {
        let res = resource(plural);
        self.shared
            .store()
            .get(res, namespace, name)
            .map(|s| s.object.clone())
    }

    /// The objects of a resource in one namespace, or in all (`None`), in
    /// (namespace, name) order.
    pub fn list(&self, plural: &str, namespace: Option<&str>) -> Vec<Value> {
        let res = resource(plural);
        self.shared
            .store()
            .list(res, namespace, None)
            .cloned()
            .collect()
    }

    /// Deletes an object (see [`get`](Self::get) for the arguments); with
    /// finalizers it is only marked for deletion.
    pub fn delete(&self, plural: &str, namespace: &str, name: &str) -> Result<Value, ApiError> {
        let res = resource(plural);
        self.shared.store().delete(res, namespace, name, None, None)
    }

    /// The current global resourceVersion.
    pub fn resource_version(&self) -> u64 {
        self.shared.store().rv()
    }

    /// Every resource request so far, oldest first.
    pub fn requests(&self) -> Vec<Request> {
        lock(&self.shared.log).clone()
    }

    /// Forgets the request log.
    pub fn clear_requests(&self) {
        lock(&self.shared.log).clear();
    }

    /// Forgets the watch history (as etcd compaction does): a watch or a
    /// continue token from an older resourceVersion gets `410 Expired`.
    pub fn compact(&self) {
        self.shared.store().compact();
    }

    /// Ends every open watch (clients resume from their last
    /// resourceVersion).
    pub fn break_watches(&self) {
        self.shared.stop.send_modify(|g| *g += 1);
    }

    /// How many watches are open now.
    pub fn open_watches(&self) -> usize {
        self.shared.store().watchers()
    }

    /// Routes admission calls for `host:port` (a webhook service
    /// `name.namespace.svc:443`, or the host and port of a `url`) to a
    /// loopback address; the TLS server name stays the host.
    pub fn map_service(&self, host_port: &str, addr: SocketAddr) {
        lock(&self.services).insert(host_port.to_owned(), addr);
    }

    /// Mutating admission of a pod CREATE in `namespace`, as the API server
    /// runs it before storing a pod: every stored
    /// MutatingWebhookConfiguration (by name, webhooks in order) whose rules
    /// cover pods CREATE and whose `namespaceSelector` (on the Namespace
    /// object, which must exist) and `objectSelector` match gets an
    /// `admission.k8s.io/v1` AdmissionReview over HTTPS (see
    /// [`map_service`](Self::map_service)), verified against its
    /// `clientConfig.caBundle`; `response.uid` must match, the base64
    /// JSONPatch is applied, `timeoutSeconds` (default 10) bounds each call
    /// and `failurePolicy: Ignore` skips a failed one. Returns the patched
    /// pod (not stored: create it if the test wants it). `matchConditions`
    /// and `reinvocationPolicy` are not supported.
    pub async fn admit(&self, pod: Value, namespace: &str) -> Result<Value, AdmitError> {
        let (configs, ns) = {
            let store = self.shared.store();
            let configs: Vec<Value> = store
                .list(resource("mutatingwebhookconfigurations"), None, None)
                .cloned()
                .collect();
            let ns = store
                .get(resource("namespaces"), "", namespace)
                .map(|s| s.object.clone());
            (configs, ns)
        };
        let Some(ns) = ns else {
            return Err(AdmitError::Invalid(format!(
                "namespaces \"{namespace}\" not found"
            )));
        };
        let services = lock(&self.services).clone();
        admit::admit(&configs, &ns, pod, &services).await
    }

    fn place(obj: &Value) -> Result<(&'static resources::Resource, String), ApiError> {
        let api_version = obj
            .get("apiVersion")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let kind = obj.get("kind").and_then(Value::as_str).unwrap_or_default();
        let res = resources::by_kind(api_version, kind)
            .ok_or_else(|| ApiError::no_route(&format!("{api_version} {kind}")))?;
        let ns = if res.namespaced {
            meta::meta_str(obj, "namespace")
                .unwrap_or("default")
                .to_owned()
        } else {
            String::new()
        };
        Ok((res, ns))
    }
}
