//! The agent process: attestation, SVID manager, Workload API, SDS and the
//! ops endpoint, wired together and stopped together.

use std::future::Future;
use std::sync::Arc;

use meshid_proto::envoy::pb::envoy::service::secret::v3::secret_discovery_service_server::SecretDiscoveryServiceServer;
use meshid_proto::workload::spiffe_workload_api_server::SpiffeWorkloadApiServer;
use meshid_runtime::ops;
use meshid_runtime::uds::UdsListener;
use prometheus_client::registry::Registry;
use tokio::sync::{Notify, watch};
use tokio::task::JoinSet;

use crate::attest::{AgentIdentity, AttestConfig, AttestError, Attestor, MaintainSignals};
use crate::attestor::k8s::K8sError;
use crate::attestor::{ComposedAttestor, K8sAttestor, UnixAttestor, WorkloadAttestor};
use crate::config::{AgentConfig, ConfigError};
use crate::manager::{ManagerConfig, SvidManager};
use crate::metrics::AgentMetrics;
use crate::node_client::{CaError, GrpcCaClient};
use crate::workload_api::{self, BindError, JwtMinter, ShutdownSignal};
use meshid_runtime::clock::{SharedClock, SystemClock};

/// Why the agent stopped with an error.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RunError {
    /// The configuration is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The CA client could not be set up.
    #[error(transparent)]
    Ca(#[from] CaError),
    /// The agent could not get or keep its identity.
    #[error(transparent)]
    Attest(#[from] AttestError),
    /// The k8s workload attestor could not be set up.
    #[error(transparent)]
    K8s(#[from] K8sError),
    /// A Unix socket could not be bound.
    #[error(transparent)]
    Bind(#[from] BindError),
    /// The ops listener could not be bound.
    #[error("ops endpoint: {0}")]
    Ops(std::io::Error),
    /// A gRPC server failed.
    #[error("server failed: {0}")]
    Serve(#[from] tonic::transport::Error),
    /// A task panicked.
    #[error("internal task failed: {0}")]
    Task(String),
}

/// Runs the agent until `shutdown` completes or a fatal error (banned,
/// evicted without token, a server failing).
pub async fn run(
    config: AgentConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), RunError> {
    config.validate()?;
    let td = config.trust_domain.clone();
    let clock: SharedClock = Arc::new(SystemClock);
    let bootstrap = config.trust_bundle()?;
    // Refuse a socket layout workloads cannot reach before spending the token.
    workload_api::check_socket_reachable(&config.workload_api_socket, &config.data_dir)?;
    workload_api::check_socket_reachable(config.sds_socket(), &config.data_dir)?;
    let attestor = workload_attestor(&config)?;
    let client = Arc::new(
        GrpcCaClient::with_addresses(&config.ca_targets(), config.ca_spiffe_id()?)?
            .with_backend(config.tls_backend),
    );

    let (stop_tx, stop_rx) = watch::channel(false);
    {
        let stop_tx = stop_tx.clone();
        tokio::spawn(async move {
            shutdown.await;
            let _ = stop_tx.send(true);
        });
    }

    let mut registry = Registry::default();
    let metrics = AgentMetrics::register(&mut registry);
    let mut node = Attestor::new(
        AttestConfig {
            trust_domain: td.clone(),
            data_dir: config.data_dir.clone(),
            join_token: config.join_token.clone(),
            k8s_psat: config.node_attestor.k8s_psat.clone(),
            bootstrap_bundle: bootstrap,
            renew_fraction: config.rotation_fraction,
        },
        client.clone(),
        clock.clone(),
    );
    node.set_metrics(metrics.clone());
    let Some(identity) = start_identity(&node, stop_rx.clone()).await? else {
        return Ok(());
    };
    tracing::info!(spiffe_id = %identity.spiffe_id, not_after = ?identity.not_after, "agent identity ready");

    let uds_metrics = metrics.uds.clone();
    let limits = config.listener_limits();
    let mut mcfg = ManagerConfig::new(td);
    mcfg.sync_interval = config.sync_interval;
    mcfg.rotation_fraction = config.rotation_fraction;
    mcfg.rotation_jitter = config.rotation_jitter;
    mcfg.batch_size = config.batch_size;
    let (mut manager, handle) = SvidManager::new(mcfg, client, clock.clone(), metrics);
    let kick = Arc::new(Notify::new());
    manager.on_agent_refused(kick.clone());
    // The attestor is the one writer of the stored bundle: the manager
    // hands it every changed bundle instead of writing the file itself.
    let (trust_tx, trust) = watch::channel(None);
    manager.on_trust(trust_tx);

    let mut tasks: JoinSet<Result<(), RunError>> = JoinSet::new();
    {
        let stop = stop_rx.clone();
        let (id_tx, _id_rx) = watch::channel(identity.clone());
        tasks.spawn(async move {
            node.maintain(
                identity,
                id_tx,
                MaintainSignals {
                    kick,
                    trust,
                    shutdown: stop,
                },
            )
            .await
            .map_err(RunError::from)
        });
    }
    tasks.spawn(manager_task(manager, stop_rx.clone()));

    let jwt: Arc<dyn JwtMinter> = Arc::new(handle.clone());
    let wl_listener = UdsListener::new(
        workload_api::bind_socket(&config.workload_api_socket)?,
        limits,
        uds_metrics.listener("workload_api"),
    );
    if config.sds_socket() == config.workload_api_socket.as_path() {
        let (signal, stop) = ShutdownSignal::new(stopped(stop_rx.clone()));
        let api = workload_api::WorkloadApi::new(
            handle.subscribe(),
            attestor.clone(),
            jwt,
            clock.clone(),
            stop.clone(),
        );
        let sds = crate::sds::SecretDiscovery::new(handle.subscribe(), attestor, clock, stop);
        let server = tonic::transport::Server::builder()
            .max_concurrent_streams(workload_api::MAX_STREAMS_PER_CONNECTION)
            .add_service(
                SpiffeWorkloadApiServer::new(api)
                    .max_decoding_message_size(workload_api::MAX_REQUEST_SIZE)
                    .max_encoding_message_size(meshid_proto::MAX_MESSAGE_SIZE),
            )
            .add_service(
                SecretDiscoveryServiceServer::new(sds)
                    .max_decoding_message_size(crate::sds::MAX_REQUEST_SIZE)
                    .max_encoding_message_size(meshid_proto::MAX_MESSAGE_SIZE),
            )
            .serve_with_incoming_shutdown(crate::attestor::incoming(wl_listener), signal);
        tasks.spawn(async move { server.await.map_err(RunError::from) });
        tracing::info!(socket = %config.workload_api_socket.display(), "Workload API and SDS listening");
    } else {
        let sds_listener = UdsListener::new(
            workload_api::bind_socket(config.sds_socket())?,
            limits,
            uds_metrics.listener("sds"),
        );
        tasks.spawn(workload_api_task(
            wl_listener,
            handle.subscribe(),
            attestor.clone(),
            jwt,
            clock.clone(),
            stop_rx.clone(),
        ));
        let (snaps, stop) = (handle.subscribe(), stop_rx.clone());
        tasks.spawn(async move {
            crate::sds::serve(sds_listener, snaps, attestor, clock, stopped(stop))
                .await
                .map_err(RunError::from)
        });
        tracing::info!(
            workload_api = %config.workload_api_socket.display(),
            sds = %config.sds_socket().display(),
            "Workload API and SDS listening"
        );
    }

    if let Some(addr) = config.ops_listen {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(RunError::Ops)?;
        tracing::info!(%addr, "ops endpoint listening");
        // Ready once the agent has its identity and a first sync published
        // a snapshot with the trust domain.
        let snaps = handle.subscribe();
        let ready = ops::from_fn(move || match snaps.borrow().trust_domain {
            Some(_) => Ok(()),
            None => Err(ops::NotReady::new("not synced with the CA yet")),
        });
        let server = ops::OpsServer::new(Arc::new(registry), Arc::new(ready));
        let stop = stopped(stop_rx.clone());
        tasks.spawn(async move {
            server.serve(listener, stop).await;
            Ok(())
        });
    }

    let mut first_error = None;
    while let Some(done) = tasks.join_next().await {
        let result = done.unwrap_or_else(|e| Err(RunError::Task(e.to_string())));
        if let Err(e) = result {
            tracing::error!(error = %e, "agent stopping");
            let _ = stop_tx.send(true);
            first_error.get_or_insert(e);
        }
    }
    first_error.map_or(Ok(()), Err)
}

async fn manager_task(manager: SvidManager, stop: watch::Receiver<bool>) -> Result<(), RunError> {
    manager.run(stop).await;
    Ok(())
}

async fn workload_api_task(
    listener: UdsListener,
    snaps: watch::Receiver<Arc<crate::cache::Snapshot>>,
    attestor: Arc<dyn WorkloadAttestor>,
    jwt: Arc<dyn JwtMinter>,
    clock: SharedClock,
    stop: watch::Receiver<bool>,
) -> Result<(), RunError> {
    workload_api::serve(listener, snaps, attestor, jwt, clock, stopped(stop))
        .await
        .map_err(RunError::from)
}

/// The workload attestor of `config`: `unix`, plus `k8s` when configured.
fn workload_attestor(config: &AgentConfig) -> Result<Arc<dyn WorkloadAttestor>, RunError> {
    let unix = Arc::new(UnixAttestor::new(&config.workload_attestor.unix));
    let Some(k8s) = &config.workload_attestor.k8s else {
        return Ok(unix);
    };
    let k8s = Arc::new(K8sAttestor::new(k8s)?);
    tracing::info!("workload attestors: unix and k8s");
    Ok(Arc::new(ComposedAttestor::new(vec![unix, k8s])))
}

/// Completes once `stop` is raised (or its sender is gone).
async fn stopped(mut stop: watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

/// The stored or a fresh identity; retries while the CA is unreachable.
/// `None` when shut down first.
async fn start_identity(
    attestor: &Attestor,
    mut stop: watch::Receiver<bool>,
) -> Result<Option<AgentIdentity>, RunError> {
    let mut backoff = crate::backoff::ca_retry();
    loop {
        match attestor.start().await {
            Ok(id) => return Ok(Some(id)),
            Err(e) if e.is_retryable() => {
                let d = backoff.next_delay();
                tracing::warn!(error = %e, retry_in = ?d, "cannot attest yet");
                tokio::select! {
                    _ = tokio::time::sleep(d) => {}
                    _ = stop.wait_for(|s| *s) => return Ok(None),
                }
            }
            Err(e) => return Err(e.into()),
        }
    }
}
