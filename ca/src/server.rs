//! Assembling the CA: authority, store, node API over TLS on TCP, admin API
//! on a Unix socket, HTTP ops endpoint; graceful shutdown.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use meshid_ca::config::CaConfig;
//! let cfg = CaConfig::from_file("ca.toml".as_ref())?.validate()?;
//! meshid_ca::server::run(cfg, async { let _ = tokio::signal::ctrl_c().await; }).await?;
//! # Ok(()) }
//! ```

pub mod listener;
pub mod multi;
mod ready;
pub mod tls;

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::admin::{AdminDefaults, AdminService};
use crate::authority::{AuthorityConfig, AuthorityError, CurrentAuthority};
use crate::config::ValidConfig;
use crate::keymanager;
use crate::metrics::CaMetrics;
use crate::node::NodeService;
use crate::node_attestor::{JoinTokenAttestor, K8sPsatAttestor, NodeAttestor};
use crate::reload::Reloader;
use crate::rotation::{
    Engine, EngineParts, ReplicaId, ReplicaIdError, RotationError, Schedule, X509Source,
};
use crate::store::{self, COUNT_REFRESH, MeteredStore, Store, StoreError};
use crate::upstream::meshid::renew::Renewer;
use crate::upstream::{Disk, Meshid, UpstreamAuthority};
use meshid_runtime::clock::SharedClock;
use meshid_runtime::ops::OpsServer;

/// Why the CA could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServerError {
    /// The store could not be opened.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The signing authority could not be set up.
    #[error(transparent)]
    Authority(#[from] AuthorityError),
    /// The key journal could not be adopted.
    #[error("CA key journal: {0}")]
    Rotation(#[from] RotationError),
    /// The replica ID could not be read or written.
    #[error(transparent)]
    ReplicaId(#[from] ReplicaIdError),
    /// A listener could not be bound.
    #[error("cannot listen on {what} {addr}: {source}; is another process using it?")]
    Bind {
        /// `node API`, `ops endpoint`, `admin socket`.
        what: &'static str,
        /// The address or path.
        addr: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// TLS configuration failed.
    #[error("node API TLS setup failed: {0}")]
    Tls(#[from] rustls::Error),
    /// The configured tenants or bindings could not be applied.
    #[error(transparent)]
    Tenants(#[from] crate::tenancy::StartupError),
    /// A setting was refused at start-up.
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    /// The CA of one of several trust domains failed (the message holds
    /// the whole reason, so it is not repeated as a source).
    #[error("trust domain {trust_domain}: {error}")]
    TrustDomain {
        /// Its trust domain.
        trust_domain: String,
        /// Why.
        error: Box<ServerError>,
    },
    /// A server task failed.
    #[error("{what} failed: {message}")]
    Serve {
        /// Which server.
        what: &'static str,
        /// Why.
        message: String,
    },
}

/// A running CA.
#[derive(Debug)]
pub struct CaServer {
    /// Where the node API listens (TLS).
    pub node_addr: SocketAddr,
    /// Where the ops endpoint listens (HTTP).
    pub ops_addr: SocketAddr,
    /// The admin API socket.
    pub admin_socket: PathBuf,
    /// The signing authority (swapped when a new key is activated).
    pub authority: CurrentAuthority,
    /// The key rotation engine.
    pub engine: Engine,
    /// The store.
    pub store: Arc<dyn Store>,
    /// The metrics.
    pub metrics: CaMetrics,
    shutdown: watch::Sender<bool>,
    tasks: Vec<(&'static str, JoinHandle<Result<(), String>>)>,
    accept_task: JoinHandle<()>,
}

// === impl CaServer ===

impl CaServer {
    /// Opens the store, sets up the authority, binds every listener and
    /// starts serving.
    pub async fn start(cfg: ValidConfig) -> Result<Self, ServerError> {
        Self::start_with_clock(cfg, meshid_runtime::clock::system()).await
    }

    /// [`CaServer::start`] with the rotation engine (and upstream reloads)
    /// deciding by `clock` (tests drive a manual one through a rotation).
    pub async fn start_with_clock(
        cfg: ValidConfig,
        clock: SharedClock,
    ) -> Result<Self, ServerError> {
        let now = clock.now();
        let metrics = CaMetrics::new();
        let opts = store::OpenOptions {
            audit_issuances: cfg.raw.audit.issuances,
            ..store::OpenOptions::default()
        };
        let metered = Arc::new(MeteredStore::new(
            store::open_with(&cfg.store, &opts).await?,
            metrics.store.clone(),
        ));
        let store: Arc<dyn Store> = metered.clone();
        let signing = cfg.signing();
        let keys = keymanager::open(&cfg.raw.keys, &cfg.data_dir, signing)
            .map_err(AuthorityError::Keys)?;
        // The files are fingerprinted before they are read, so a change
        // while the CA starts is seen by the first reload poll.
        let disk = cfg
            .raw
            .upstream
            .as_ref()
            .filter(|up| up.meshid.is_none())
            .map(|up| {
                let disk = Disk::from_config(up);
                let seen = disk.fingerprint();
                (disk, seen, up.watch_interval)
            });
        let local: Option<Box<dyn UpstreamAuthority>> = disk
            .as_ref()
            .map(|(d, _, _)| Box::new(d.clone()) as Box<dyn UpstreamAuthority>);
        // Below another meshid CA, the intermediate is minted over the
        // network before the authority is built from it.
        let meshid = match cfg.raw.upstream.as_ref().and_then(|up| up.meshid.as_ref()) {
            Some(m) => {
                let up = Meshid::new(m, &cfg.trust_domain, &cfg.data_dir)
                    .map_err(AuthorityError::Upstream)?
                    .with_backend(cfg.raw.tls_backend);
                up.mint(keys.as_ref(), now)
                    .await
                    .map_err(AuthorityError::Upstream)?;
                Some(Arc::new(up))
            }
            None => None,
        };
        let upstream: Option<&dyn UpstreamAuthority> = match &meshid {
            Some(m) => Some(m.as_ref()),
            None => local.as_deref(),
        };
        let (source, upstream_material) = match upstream {
            Some(up) => {
                let material = up
                    .obtain(&cfg.trust_domain, keys.as_ref(), now)
                    .map_err(AuthorityError::Upstream)?;
                let refusal = if meshid.is_some() {
                    "this CA's intermediate comes from the upstream meshid CA and is renewed from \
                     it at half its life; it cannot be prepared here"
                } else {
                    "this CA's intermediate comes from the upstream files: replace them (chain \
                     and key) and the CA prepares the new one by itself"
                };
                (
                    X509Source::Upstream {
                        refusal: refusal.to_owned(),
                    },
                    Some((up.kind(), material)),
                )
            }
            None => (
                X509Source::SelfSigned {
                    data_dir: cfg.data_dir.clone(),
                    ttl: cfg.raw.ca_ttl,
                },
                None,
            ),
        };
        let authority_cfg = AuthorityConfig {
            trust_domain: cfg.trust_domain.clone(),
            default_x509_ttl: cfg.raw.default_x509_ttl,
            max_x509_ttl: cfg.raw.max_x509_ttl,
            default_jwt_ttl: cfg.raw.default_jwt_ttl,
            max_jwt_ttl: cfg.raw.max_jwt_ttl,
            agent_ttl: cfg.raw.agent_ttl,
            signing,
        };
        let replica = ReplicaId::resolve(cfg.raw.ha.replica_id.as_ref(), &cfg.data_dir)?;
        let engine = Engine::start(EngineParts {
            replica,
            store: Arc::clone(&store),
            keys: Arc::clone(&keys),
            clock: Arc::clone(&clock),
            schedule: Schedule::new(cfg.raw.rotation.clone(), &authority_cfg),
            lease_ttl: cfg.raw.ha.lease_ttl,
            limits: authority_cfg,
            source,
            upstream: upstream_material,
            upstream_jwt: meshid
                .as_ref()
                .map(|m| m.jwt_authorities())
                .unwrap_or_default(),
            jwt_key_ttl: cfg.raw.rotation.jwt_key_ttl(cfg.raw.ca_ttl),
            metrics: metrics.clone(),
        })
        .await?;
        let authority = engine.current().clone();
        if let Err(e) = authority.load().check_issuance(now) {
            // Not fatal: a chain that is not valid yet may become so; until
            // then /readyz says why the CA is not ready.
            tracing::error!(error = %e, "the CA cannot issue SVIDs that agents accept");
        }

        let (shutdown, rx) = watch::channel(false);
        let mut tasks = Vec::new();

        // Node API.
        let node_listener = bind_tcp("node API", cfg.raw.listen).await?;
        let node_addr = local_addr("node API", &node_listener)?;
        let tls = tls::NodeAcceptor::new(authority.clone(), cfg.raw.tls_backend)?;
        let (incoming, accept_task) = listener::tls_incoming(node_listener, tls);
        let mut attestors: Vec<Arc<dyn NodeAttestor>> = vec![Arc::new(JoinTokenAttestor::new(
            Arc::clone(&store),
            cfg.trust_domain.clone(),
        ))];
        // Kubernetes clusters are contacted at the first attestation, so an
        // unreachable cluster never stops the CA from starting.
        if cfg.raw.node_attestor.k8s_psat_clusters().next().is_some() {
            attestors.push(Arc::new(K8sPsatAttestor::new(
                Arc::clone(&store),
                cfg.trust_domain.clone(),
                cfg.raw.node_attestor.k8s_psat_clusters(),
            )));
        }
        let node = NodeService::new(
            authority.clone(),
            Arc::clone(&store),
            attestors,
            metrics.clone(),
        )
        .with_downstream_ca_ttl(cfg.raw.downstream.ca_ttl);
        let bundles = node.federated_bundles();
        let server = meshid_proto::ca::node_server::NodeServer::new(node)
            .max_decoding_message_size(meshid_proto::MAX_MESSAGE_SIZE)
            .max_encoding_message_size(meshid_proto::MAX_MESSAGE_SIZE);
        // One admin service, served on the Unix socket and (for
        // `admin_ids`) over mTLS beside the node API.
        let defaults = AdminDefaults {
            x509_ttl: cfg.raw.default_x509_ttl,
            jwt_ttl: cfg.raw.default_jwt_ttl,
            ..AdminDefaults::default()
        };
        let admin = AdminService::new(Arc::clone(&store), cfg.trust_domain.clone(), defaults)
            .with_authorizer(authorizer(&cfg, &store).await?)
            .with_authority_kind(authority.load().kind())
            .with_federated_bundles(bundles)
            .with_engine(engine.clone());
        // Any verified caller of the trust domain reaches the admin API
        // over mTLS; each call checks its roles.
        let admin_tls = admin.clone().into_server();
        let signal = wait_for(rx.clone());
        tasks.push((
            "node API",
            tokio::spawn(async move {
                tonic::transport::Server::builder()
                    .add_service(server)
                    .add_service(admin_tls)
                    .serve_with_incoming_shutdown(incoming, signal)
                    .await
                    .map_err(|e| e.to_string())
            }),
        ));

        // Admin API.
        let admin_listener =
            crate::admin::socket::bind_for(&cfg.admin_socket, cfg.raw.rbac.socket_is_open())
                .map_err(|source| ServerError::Bind {
                    what: "admin socket",
                    addr: cfg.admin_socket.display().to_string(),
                    source,
                })?;
        let signal = wait_for(rx.clone());
        tasks.push((
            "admin API",
            tokio::spawn(async move {
                crate::admin::socket::serve(admin, admin_listener, signal)
                    .await
                    .map_err(|e| e.to_string())
            }),
        ));

        // Row-count gauges: from this CA's writes, and re-read every
        // COUNT_REFRESH so other replicas' writes show up (no COUNT per scrape).
        let counts_rx = rx.clone();
        tasks.push((
            "store row counts",
            tokio::spawn(async move {
                metered.refresh_counts_until(COUNT_REFRESH, counts_rx).await;
                Ok(())
            }),
        ));

        // A replaced intermediate on disk is validated and swapped in.
        if let Some((disk, seen, interval)) = disk
            && !interval.is_zero()
        {
            let reloader = Reloader::new(
                engine.clone(),
                disk,
                Arc::clone(&keys),
                metrics.clone(),
                Arc::clone(&clock),
                seen,
            );
            tracing::info!(
                every = %meshid_runtime::duration::format(interval),
                "watching the upstream files for a replaced intermediate"
            );
            let stop = wait_for(rx.clone());
            tasks.push((
                "upstream reload",
                tokio::spawn(async move {
                    reloader.run(interval, stop).await;
                    Ok(())
                }),
            ));
        }

        // An intermediate from an upstream meshid CA is renewed at half its life.
        if let Some(up) = meshid {
            let renewer = Renewer::new(
                engine.clone(),
                up,
                Arc::clone(&keys),
                metrics.clone(),
                Arc::clone(&clock),
            );
            let stop = wait_for(rx.clone());
            tasks.push((
                "upstream renewal",
                tokio::spawn(async move {
                    renewer.run(stop).await;
                    Ok(())
                }),
            ));
        }

        // Key rotation: the schedule, and what other replicas wrote (every
        // [ha] refresh_interval).
        let (rotation, refresh) = (engine.clone(), cfg.raw.ha.refresh_interval);
        let stop = rx.clone();
        tasks.push((
            "key rotation",
            tokio::spawn(async move {
                rotation.run(refresh, stop).await;
                Ok(())
            }),
        ));

        // --- audit checkpoints (begin) ---
        // The audit chain's head, signed with the active CA key every
        // [audit] checkpoint_interval when it moved (one per seq across
        // replicas).
        let checkpointer = crate::audit::Checkpointer::new(
            Arc::clone(&store),
            authority.clone(),
            Arc::clone(&clock),
        );
        let (every, stop) = (cfg.raw.audit.checkpoint_interval, wait_for(rx.clone()));
        tasks.push((
            "audit checkpoints",
            tokio::spawn(async move {
                checkpointer.run(every, stop).await;
                Ok(())
            }),
        ));
        // --- audit checkpoints (end) ---

        // Ops endpoint.
        let ops_listener = bind_tcp("ops endpoint", cfg.raw.ops_listen).await?;
        let ops_addr = local_addr("ops endpoint", &ops_listener)?;
        let readiness = ready::CaReadiness {
            store: Arc::clone(&store),
            authority: authority.clone(),
            clock: meshid_runtime::clock::system(),
        };
        let ops = OpsServer::new(metrics.registry(), Arc::new(readiness));
        let signal = wait_for(rx.clone());
        tasks.push((
            "ops endpoint",
            tokio::spawn(async move {
                ops.serve(ops_listener, signal).await;
                Ok(())
            }),
        ));

        tracing::info!(
            trust_domain = %cfg.trust_domain,
            node_api = %node_addr,
            admin_socket = %cfg.admin_socket.display(),
            ops = %ops_addr,
            authority = authority.load().kind(),
            "CA started"
        );
        Ok(Self {
            node_addr,
            ops_addr,
            admin_socket: cfg.admin_socket,
            authority,
            engine,
            store,
            metrics,
            shutdown,
            tasks,
            accept_task,
        })
    }

    /// Stops accepting, lets in-flight RPCs finish, then returns.
    pub async fn shutdown(self) -> Result<(), ServerError> {
        let _ = self.shutdown.send(true);
        self.accept_task.abort();
        let mut first_error = None;
        for (what, task) in self.tasks {
            let result = match task.await {
                Ok(r) => r,
                Err(e) => Err(e.to_string()),
            };
            if let Err(message) = result {
                first_error.get_or_insert(ServerError::Serve { what, message });
            }
        }
        let _ = std::fs::remove_file(&self.admin_socket);
        first_error.map_or(Ok(()), Err)
    }
}

/// Starts the CA of every trust domain (`[[trust_domains]]` too) and
/// serves until `shutdown` completes, then stops gracefully.
pub async fn run(cfg: ValidConfig, shutdown: impl Future<Output = ()>) -> Result<(), ServerError> {
    multi::MultiCaServer::start(cfg)
        .await?
        .serve_until(shutdown)
        .await
}

async fn wait_for(mut rx: watch::Receiver<bool>) {
    while !*rx.borrow() {
        if rx.changed().await.is_err() {
            return;
        }
    }
}

async fn bind_tcp(what: &'static str, addr: SocketAddr) -> Result<TcpListener, ServerError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| ServerError::Bind {
            what,
            addr: addr.to_string(),
            source,
        })
}

fn local_addr(what: &'static str, l: &TcpListener) -> Result<SocketAddr, ServerError> {
    l.local_addr().map_err(|source| ServerError::Bind {
        what,
        addr: "?".into(),
        source,
    })
}

/// The admin API's authorizer: the config's bindings, `admin_ids`, the
/// socket's implicit cluster-admins; and the config's tenants created in
/// the store when missing (audited as `config`).
async fn authorizer(
    cfg: &ValidConfig,
    store: &Arc<dyn Store>,
) -> Result<crate::rbac::Authorizer, ServerError> {
    let td = &cfg.trust_domain;
    let tenants = crate::config::tenants(&cfg.raw.tenants, td)?;
    let created = crate::tenancy::apply_config(store.as_ref(), td, &tenants).await?;
    if created > 0 {
        tracing::info!(created, "config tenants created");
    }
    let config = cfg.raw.rbac.role_bindings(td, &cfg.raw.tenants)?;
    Ok(crate::rbac::Authorizer::new(crate::rbac::AuthorizerParts {
        store: Arc::clone(store),
        config,
        admin_ids: cfg.raw.admin_ids.clone(),
        socket_admins: crate::admin::socket::default_admins(),
        kube: cfg.raw.rbac.kubernetes.as_ref().map(|k| {
            Arc::new(crate::rbac::KubernetesAuthenticator::from_config(k))
                as Arc<dyn crate::rbac::KubeAuthenticator>
        }),
        refresh: cfg.raw.ha.refresh_interval,
    }))
}
