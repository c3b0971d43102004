//! The reflectors: one list + watch per kind the controller reads (kube's
//! watcher relists on `410 Gone` and backs off on errors), each waking the
//! reconcile loop on every change.

use std::fmt::Debug;
use std::hash::Hash;
use std::sync::Arc;

use futures::StreamExt as _;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Node, Pod};
use kube::api::{Api, ListParams};
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt as _, watcher};
use kube::{Client, Resource, ResourceExt as _};
use serde::de::DeserializeOwned;
use tokio::sync::Notify;
use tokio::task::JoinSet;

use crate::crd::{ClusterFederatedTrustDomain, ClusterIdentityTemplate};
use crate::istio::{AuthorizationPolicy, PeerAuthentication};
use crate::publish::MANAGED_BY;

/// What the reflectors hold.
#[derive(Clone)]
#[allow(missing_docs)]
pub struct Stores {
    pub pods: Store<Pod>,
    pub namespaces: Store<Namespace>,
    pub nodes: Store<Node>,
    pub templates: Store<ClusterIdentityTemplate>,
    pub trust_domains: Store<ClusterFederatedTrustDomain>,
    /// `None`: Istio's CRDs are not installed (no policy to translate).
    pub authz: Option<Store<AuthorizationPolicy>>,
    /// `None`: Istio's CRDs are not installed.
    pub peers: Option<Store<PeerAuthentication>>,
    /// Only the ConfigMaps the controller manages (by label).
    pub configmaps: Store<ConfigMap>,
}

// === impl Stores ===

impl Stores {
    /// Starts every reflector on `tasks`; each change wakes `notify`.
    pub async fn start(client: &Client, notify: &Arc<Notify>, tasks: &mut JoinSet<()>) -> Self {
        let all = watcher::Config::default();
        let managed =
            watcher::Config::default().labels(&format!("{}={}", MANAGED_BY.0, MANAGED_BY.1));
        let authz = match installed::<AuthorizationPolicy>(client).await {
            true => Some(reflect(
                Api::all(client.clone()),
                all.clone(),
                notify,
                tasks,
            )),
            false => None,
        };
        let peers = match installed::<PeerAuthentication>(client).await {
            true => Some(reflect(
                Api::all(client.clone()),
                all.clone(),
                notify,
                tasks,
            )),
            false => None,
        };
        Self {
            pods: reflect(Api::all(client.clone()), all.clone(), notify, tasks),
            namespaces: reflect(Api::all(client.clone()), all.clone(), notify, tasks),
            nodes: reflect(Api::all(client.clone()), all.clone(), notify, tasks),
            templates: reflect(Api::all(client.clone()), all.clone(), notify, tasks),
            trust_domains: reflect(Api::all(client.clone()), all, notify, tasks),
            authz,
            peers,
            configmaps: reflect(Api::all(client.clone()), managed, notify, tasks),
        }
    }

    /// Waits until every reflector has its first full list.
    pub async fn ready(&self) {
        let _ = tokio::join!(
            self.pods.wait_until_ready(),
            self.namespaces.wait_until_ready(),
            self.nodes.wait_until_ready(),
            self.templates.wait_until_ready(),
            self.trust_domains.wait_until_ready(),
            self.configmaps.wait_until_ready(),
            async {
                if let Some(s) = &self.authz {
                    let _ = s.wait_until_ready().await;
                }
            },
            async {
                if let Some(s) = &self.peers {
                    let _ = s.wait_until_ready().await;
                }
            },
        );
    }
}

/// False when the API server does not know the resource (Istio's CRDs not
/// installed: 404). Any other answer counts as installed (its reflector
/// then retries until it can list).
async fn installed<K>(client: &Client) -> bool
where
    K: Resource + Clone + DeserializeOwned + Debug,
    K::DynamicType: Default,
{
    let api: Api<K> = Api::all(client.clone());
    match api.list_metadata(&ListParams::default().limit(1)).await {
        Err(kube::Error::Api(e)) if e.code == 404 => {
            tracing::info!(
                kind = %K::kind(&K::DynamicType::default()),
                "not served by this cluster (Istio's CRDs are not installed): no such policies to translate"
            );
            false
        }
        _ => true,
    }
}

fn reflect<K>(
    api: Api<K>,
    config: watcher::Config,
    notify: &Arc<Notify>,
    tasks: &mut JoinSet<()>,
) -> Store<K>
where
    K: Resource + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
    K::DynamicType: Default + Eq + Hash + Clone + Send + Sync,
{
    let (reader, writer) = reflector::store();
    let notify = notify.clone();
    let kind = K::kind(&K::DynamicType::default()).into_owned();
    let stream = watcher(api, config)
        .default_backoff()
        .modify(|o| o.managed_fields_mut().clear())
        .reflect(writer);
    tasks.spawn(async move {
        futures::pin_mut!(stream);
        while let Some(event) = stream.next().await {
            match event {
                Ok(_) => notify.notify_one(),
                Err(e) => tracing::warn!(%kind, error = %e, "watch failed; retrying"),
            }
        }
    });
    reader
}
