//! The controller process: reflectors, leader election, the ops endpoint
//! and the reconcile loop. One global pass (entries, statuses,
//! ConfigMaps, the webhook's `caBundle`) runs after every burst of changes
//! (coalesced), every `bundle_refresh` and whenever a backoff expires;
//! only the Lease holder runs it.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use kube::{Client, ResourceExt as _};
use meshid_proto::ca::{self as pb, admin_client::AdminClient};
use meshid_runtime::backoff::Backoff;
use meshid_runtime::ops::{self, OpsServer};
use prometheus_client::registry::Registry as MetricsRegistry;
use tokio::sync::Notify;
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::config::Settings;
use super::configmaps::ConfigMaps;
use super::desired::{self, Cluster, Desired};
use super::entries::{Registry, SyncError};
use super::metrics::{self, Metrics};
use super::watch::Stores;
use super::{ca_bundle, status};
use crate::leader::{Elector, Leadership};
use crate::publish::bundle::Published;

/// How long a burst of changes is gathered before a pass.
const DEBOUNCE: Duration = Duration::from_millis(200);
/// The webhook's `caBundle` is re-read this often (repairs edits) besides
/// on every bundle change.
const WEBHOOK_EVERY: u32 = 12;

/// Why the controller could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RunError {
    /// The kubeconfig could not be read.
    #[error("kubeconfig: {0}")]
    Kubeconfig(String),
    /// No Kubernetes client could be built.
    #[error("Kubernetes client: {0}")]
    Client(#[from] kube::Error),
    /// The ops endpoint could not listen.
    #[error("ops_listen {addr}: {source}")]
    Ops {
        /// The address.
        addr: std::net::SocketAddr,
        /// Why.
        source: std::io::Error,
    },
}

/// Runs the controller until `shutdown` completes.
pub async fn run(settings: Settings, shutdown: impl Future<Output = ()>) -> Result<(), RunError> {
    let client = client(&settings).await?;
    let mut registry = MetricsRegistry::default();
    let metrics = Metrics::register(&mut registry);
    let listener = tokio::net::TcpListener::bind(settings.ops_listen)
        .await
        .map_err(|source| RunError::Ops {
            addr: settings.ops_listen,
            source,
        })?;
    tracing::info!(addr = %listener.local_addr().unwrap_or(settings.ops_listen), "ops endpoint listening");
    let synced = Arc::new(AtomicBool::new(false));
    let ready = {
        let synced = synced.clone();
        ops::from_fn(move || match synced.load(Ordering::Relaxed) {
            true => Ok(()),
            false => Err(ops::NotReady::new(
                "the watches have not listed everything yet",
            )),
        })
    };
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let stopped = move || {
        let mut rx = stop_rx.clone();
        async move {
            let _ = rx.wait_for(|s| *s).await;
        }
    };
    let mut tasks = JoinSet::new();
    tasks.spawn(OpsServer::new(Arc::new(registry), Arc::new(ready)).serve(listener, stopped()));
    let on_change = {
        let gauge = metrics.leader.clone();
        Arc::new(move |leader: bool| {
            gauge.set(i64::from(leader));
        })
    };
    let (elector, leadership) = Elector::new(client.clone(), settings.lease.clone(), on_change);
    let elector = tokio::spawn(elector.run(stopped()));
    let notify = Arc::new(Notify::new());
    let stores = Stores::start(&client, &notify, &mut tasks).await;
    tokio::pin!(shutdown);
    tokio::select! {
        _ = &mut shutdown => {}
        _ = stores.ready() => {
            synced.store(true, Ordering::Relaxed);
            tracing::info!("watches synced");
            let mut lp = Loop::new(settings, client, stores, leadership, metrics, notify);
            lp.run(&mut shutdown).await;
        }
    }
    let _ = stop_tx.send(true);
    // The elector gives the Lease up on stop, so the next leader need not
    // wait for it to expire; the reflectors just end.
    let _ = tokio::time::timeout(Duration::from_secs(5), elector).await;
    tasks.abort_all();
    Ok(())
}

async fn client(settings: &Settings) -> Result<Client, RunError> {
    let config = match &settings.kubeconfig {
        Some(path) => {
            let kc = kube::config::Kubeconfig::read_from(path)
                .map_err(|e| RunError::Kubeconfig(format!("{}: {e}", path.display())))?;
            kube::Config::from_custom_kubeconfig(kc, &kube::config::KubeConfigOptions::default())
                .await
                .map_err(|e| RunError::Kubeconfig(format!("{}: {e}", path.display())))?
        }
        None => kube::Config::infer()
            .await
            .map_err(|e| RunError::Kubeconfig(e.to_string()))?,
    };
    Ok(Client::try_from(config)?)
}

/// The reconcile loop's state.
struct Loop {
    settings: Settings,
    client: Client,
    stores: Stores,
    leadership: Leadership,
    metrics: Metrics,
    notify: Arc<Notify>,
    registry: Option<Registry>,
    configmaps: ConfigMaps,
    bundle: Option<Published>,
    ca_backoff: Backoff,
    ca_retry_at: Option<Instant>,
    webhook_due: bool,
    ticks: u32,
    was_leader: bool,
}

impl Loop {
    fn new(
        settings: Settings,
        client: Client,
        stores: Stores,
        leadership: Leadership,
        metrics: Metrics,
        notify: Arc<Notify>,
    ) -> Self {
        Self {
            configmaps: ConfigMaps::new(client.clone()),
            settings,
            client,
            stores,
            leadership,
            metrics,
            notify,
            registry: None,
            bundle: None,
            ca_backoff: Backoff::new(Duration::from_millis(200), Duration::from_secs(30)),
            ca_retry_at: None,
            webhook_due: true,
            ticks: 0,
            was_leader: false,
        }
    }

    async fn run(&mut self, shutdown: &mut (impl Future<Output = ()> + Unpin)) {
        let mut tick = tokio::time::interval(self.settings.bundle_refresh);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let far = || Instant::now() + Duration::from_secs(3600);
        loop {
            let retry_at = [
                self.ca_retry_at,
                self.registry.as_ref().and_then(Registry::next_retry),
                self.configmaps.next_retry(),
            ]
            .into_iter()
            .flatten()
            .min()
            .unwrap_or_else(far);
            let mut bundle_due = false;
            tokio::select! {
                _ = &mut *shutdown => return,
                _ = self.notify.notified() => tokio::time::sleep(DEBOUNCE).await,
                _ = tick.tick() => bundle_due = true,
                _ = self.leadership.changed() => {}
                _ = tokio::time::sleep_until(retry_at) => {}
            }
            if bundle_due {
                self.refresh_bundle().await;
            }
            let leader = self.leadership.is_leader();
            self.metrics.leader.set(i64::from(leader));
            if leader && !self.was_leader {
                tracing::info!("leading: listing owned entries and reconciling everything");
                if let Some(r) = &mut self.registry {
                    r.invalidate();
                }
                self.webhook_due = true;
            }
            self.was_leader = leader;
            if leader {
                self.pass().await;
            }
        }
    }

    /// Polls the CA's bundle; a new sequence is published on the next
    /// pass.
    async fn refresh_bundle(&mut self) {
        self.ticks = self.ticks.wrapping_add(1);
        if self.ticks.is_multiple_of(WEBHOOK_EVERY) {
            self.webhook_due = true;
        }
        let Some(mut client) = self.ca_client().await else {
            return;
        };
        match client.get_bundle(pb::GetBundleRequest::default()).await {
            Ok(resp) => {
                let resp = resp.into_inner();
                let sequence = resp.bundle.as_ref().map_or(0, |b| b.sequence);
                if self.bundle.as_ref().is_some_and(|b| b.sequence == sequence) {
                    return;
                }
                match Published::new(&self.settings.trust_domain, sequence, &resp.spiffe_json) {
                    Ok(p) => {
                        tracing::info!(sequence, "trust bundle read from the CA");
                        self.bundle = Some(p);
                        self.webhook_due = true;
                    }
                    Err(e) => tracing::warn!(error = %e, "cannot publish the CA's bundle"),
                }
            }
            Err(s) => {
                tracing::warn!(error = %s, "GetBundle failed");
            }
        }
    }

    /// The CA admin client, connecting when there is none (with backoff).
    async fn ca_client(&mut self) -> Option<AdminClient<tonic::transport::Channel>> {
        if let Some(r) = &self.registry {
            return Some(r.client());
        }
        if self.ca_retry_at.is_some_and(|at| at > Instant::now()) {
            return None;
        }
        match meshid_runtime::uds::channel(&self.settings.ca_admin_socket).await {
            Ok(ch) => {
                let c = AdminClient::new(ch)
                    .max_decoding_message_size(meshid_proto::MAX_MESSAGE_SIZE)
                    .max_encoding_message_size(meshid_proto::MAX_MESSAGE_SIZE);
                self.registry = Some(Registry::new(c.clone(), self.settings.owner.clone()));
                self.ca_retry_at = None;
                self.ca_backoff.reset();
                Some(c)
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot reach the CA admin socket; retrying");
                self.ca_retry_at = Some(Instant::now() + self.ca_backoff.next_delay());
                None
            }
        }
    }

    async fn pass(&mut self) {
        if self.bundle.is_none() {
            self.refresh_bundle().await;
        }
        let desired = self.desired();
        let Some(mut queue) = self.entries(&desired).await else {
            return;
        };
        let outcomes = self.outcomes(&desired);
        let st = status::templates(&self.client, &self.stores, &outcomes, &self.leadership).await;
        let td = status::trust_domains(&self.client, &self.stores, &self.leadership).await;
        let status_ok = match (st, td) {
            (Ok(_), Ok(_)) => true,
            (Err(e), _) | (_, Err(e)) => {
                tracing::warn!(error = %e, "status not written");
                false
            }
        };
        self.metrics.reconciled(metrics::STATUS, status_ok);
        let bundle = self.bundle.as_ref();
        let cm = self
            .configmaps
            .sync(&self.settings, &self.stores, bundle, &self.leadership)
            .await;
        queue += cm.pending;
        if let Some(e) = &cm.error {
            tracing::warn!(error = %e, "ConfigMap not written; backing off");
        }
        self.metrics
            .reconciled(metrics::CONFIGMAPS, cm.error.is_none());
        if self.webhook_due {
            self.webhook().await;
        }
        self.metrics
            .queue_depth
            .set(i64::try_from(queue).unwrap_or(i64::MAX));
    }

    /// The entries' part of a pass: what is left to write, `None` when
    /// leadership was lost.
    async fn entries(&mut self, desired: &Desired) -> Option<usize> {
        // The CA unreachable: everything waits (the rest of the pass goes
        // on).
        if self.ca_client().await.is_none() {
            return Some(desired.entries.len());
        }
        let reg = self.registry.as_mut()?;
        let queue = match reg.sync(desired, &self.leadership).await {
            Ok(p) => {
                if p.created + p.updated + p.deleted > 0 {
                    tracing::info!(
                        created = p.created,
                        updated = p.updated,
                        deleted = p.deleted,
                        "entries reconciled"
                    );
                }
                for (key, why) in &p.refused {
                    tracing::warn!(spiffe_id = %key.spiffe_id, "{why}");
                }
                self.metrics
                    .reconciled(metrics::ENTRIES, p.refused.is_empty());
                self.ca_retry_at = None;
                p.pending + p.refused.len()
            }
            Err(SyncError::NotLeader) => return None,
            Err(e) => {
                tracing::warn!(error = %e, "entries not reconciled; retrying");
                self.metrics.reconciled(metrics::ENTRIES, false);
                self.ca_retry_at = Some(Instant::now() + self.ca_backoff.next_delay());
                desired.entries.len()
            }
        };
        if let Some(n) = reg.owned_count() {
            self.metrics
                .entries_owned
                .set(i64::try_from(n).unwrap_or(i64::MAX));
        }
        Some(queue)
    }

    /// The webhook's `caBundle`, once the bundle is known.
    async fn webhook(&mut self) {
        let Some(b) = &self.bundle else {
            return;
        };
        let name = &self.settings.webhook_configuration;
        match ca_bundle::sync(&self.client, name, &b.root_pem, &self.leadership).await {
            Ok(synced) => {
                // Pending: installed later (or not leading); asked again.
                self.webhook_due = synced == ca_bundle::Synced::Pending;
                self.metrics.reconciled(metrics::WEBHOOK, true);
            }
            Err(e) => {
                tracing::warn!(error = %e, webhook = %name, "caBundle not written");
                self.metrics.reconciled(metrics::WEBHOOK, false);
            }
        }
    }

    fn desired(&self) -> Desired {
        let pods = self.stores.pods.state();
        let namespaces: BTreeMap<_, _> = self
            .stores
            .namespaces
            .state()
            .into_iter()
            .map(|n| (n.name_any(), n))
            .collect();
        let nodes: BTreeMap<_, _> = self
            .stores
            .nodes
            .state()
            .into_iter()
            .map(|n| (n.name_any(), n))
            .collect();
        let templates = self.stores.templates.state();
        desired::desired(
            &self.settings,
            Cluster {
                pods: &pods,
                namespaces: &namespaces,
                nodes: &nodes,
                templates: &templates,
            },
        )
    }

    /// The templates' outcomes with the CA's refusals counted as failed
    /// pods.
    fn outcomes(&self, desired: &Desired) -> BTreeMap<String, desired::Outcome> {
        let mut out = desired.outcomes.clone();
        let Some(reg) = &self.registry else {
            return out;
        };
        for (key, why) in reg.refusals() {
            for name in desired.sources.get(key).into_iter().flatten() {
                if let Some(o) = out.get_mut(name) {
                    o.entries -= 1;
                    o.failed_pods += 1;
                    o.last_error = Some(format!("{}: {why}", key.spiffe_id));
                }
            }
        }
        out
    }
}
