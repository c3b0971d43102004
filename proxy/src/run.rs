//! Wiring: config → identity source → TLS store → listeners; graceful drain.

mod listen;
mod workers;

use crate::access_log::AccessLog;
use crate::config::{Protocol, ProxyConfig};
use crate::context::Shared;
use crate::drain::{Drain, DrainHandle};
use crate::limit::ConnLimit;
use crate::metrics::{INBOUND, Metrics, OUTBOUND};
use crate::policy::{PolicySet, PolicyWatcher};
use crate::tls::{ClientSettings, TlsStore, build::ALPN_HTTP11};
use crate::trace::SpanExporter;
use arc_swap::ArcSwap;
use meshid_runtime::ops;
use prometheus_client::registry::Registry;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use workers::{Listeners, Workers};

/// How often the policy file is checked for changes.
const POLICY_POLL: Duration = Duration::from_secs(2);

/// Why the proxy could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RunError {
    /// A listener address could not be bound.
    #[error("cannot listen on {addr}: {source}; is another process using the port?")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The policy file is invalid (the proxy does not start with it).
    #[error("policy file {path}: {source}")]
    Policy {
        /// The policy file.
        path: std::path::PathBuf,
        /// What is wrong with it.
        source: crate::policy::PolicyError,
    },
    /// The configuration is invalid.
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    /// The access log could not be opened.
    #[error("cannot open the access log: {0}")]
    AccessLog(std::io::Error),
    /// The data-plane threads could not be started.
    #[error("cannot start the proxy worker threads: {0}")]
    Workers(std::io::Error),
}

/// The addresses actually bound (useful with port 0).
#[derive(Clone, Debug)]
pub struct Bound {
    /// Inbound listeners, in config order.
    pub inbound: Vec<SocketAddr>,
    /// Outbound listeners, in config order.
    pub outbound: Vec<SocketAddr>,
    /// The ops server, if configured.
    pub ops: Option<SocketAddr>,
}

/// Runs the proxy until `shutdown` resolves, then stops accepting, lets open
/// connections finish (up to the drain timeout) and returns.
pub async fn run(config: ProxyConfig, shutdown: impl Future<Output = ()>) -> Result<(), RunError> {
    let started = start(config).await?;
    shutdown.await;
    started.stop().await;
    Ok(())
}

/// A running proxy (see [`start`]).
#[derive(Debug)]
pub struct Running {
    /// Bound addresses.
    pub bound: Bound,
    /// Shared state (TLS store, metrics...).
    pub shared: Arc<Shared>,
    drain: DrainHandle,
    drain_timeout: Duration,
    workers: Workers,
    _policy: Option<PolicyWatcher>,
}

/// Binds every listener and starts serving; returns once listening.
pub async fn start(config: ProxyConfig) -> Result<Running, RunError> {
    config.validate()?;
    let mut registry = Registry::default();
    let source = crate::identity::from_config(
        &config.identity,
        registry.sub_registry_with_prefix("meshid_proxy"),
    );
    let identity = source.start();
    let clients = config
        .outbound
        .iter()
        .map(|o| {
            // HTTP keeps its version between sidecars (as Istio does by
            // default): HTTP/1.1 requests use `http/1.1` connections, HTTP/2
            // requests (gRPC) connections that offer `h2` first.
            let http = o.protocol != Protocol::Tcp;
            let alpn = if http {
                vec![ALPN_HTTP11.to_vec()]
            } else {
                vec![]
            };
            Ok(ClientSettings {
                peer: o.peer_match()?,
                alpn,
                h2: http,
                resumption: o.pool,
            })
        })
        .collect::<Result<Vec<_>, crate::config::ConfigError>>()?;
    let tls = TlsStore::spawn(identity, config.tls_options(), clients);

    let (policy, watcher) = match &config.policy {
        Some(p) => {
            let labels = config.pod_labels_file.clone();
            let w =
                PolicyWatcher::start_for_workload(p, labels, POLICY_POLL).map_err(|source| {
                    RunError::Policy {
                        path: p.clone(),
                        source,
                    }
                })?;
            w.reload_metrics().register(
                registry.sub_registry_with_prefix("meshid_proxy"),
                "policy",
                "policy file",
            );
            (w.shared(), Some(w))
        }
        None => (Arc::new(ArcSwap::from_pointee(PolicySet::default())), None),
    };
    let metrics = Metrics::register(&mut registry, config.mode);
    spawn_expiry_gauge(&tls, metrics.clone());
    let spans = config
        .tracing
        .as_ref()
        .map(|t| SpanExporter::start(t, &mut registry))
        .transpose()?;
    let access_log = AccessLog::start(&config.access_log).map_err(RunError::AccessLog)?;
    let (drain, handle) = Drain::new();
    let shared = Arc::new(Shared {
        tls: tls.clone(),
        policy,
        mode: config.mode,
        metrics,
        access_log,
        drain: drain.clone(),
        spans,
        limits: config.connections.clone(),
    });

    let mut bound = Bound {
        inbound: vec![],
        outbound: vec![],
        ops: None,
    };
    let bind = |addr| listen::bind(addr).map_err(|source| RunError::Bind { addr, source });
    let mut listeners = Listeners::default();
    let max = config.connections.max_per_listener;
    for cfg in &config.inbound {
        let l = bind(cfg.listen)?;
        let addr = l.local_addr().unwrap_or(cfg.listen);
        bound.inbound.push(addr);
        let (open, refused) = shared.metrics.listener(INBOUND, addr);
        let cap = ConnLimit::new(max, open, refused);
        listeners.inbound.push((l, cfg.clone(), cap));
    }
    for cfg in &config.outbound {
        let l = bind(cfg.listen)?;
        let addr = l.local_addr().unwrap_or(cfg.listen);
        bound.outbound.push(addr);
        let (open, refused) = shared.metrics.listener(OUTBOUND, addr);
        let cap = ConnLimit::new(max, open, refused);
        listeners.outbound.push((l, cfg.clone(), cap));
    }
    if let Some(addr) = config.ops_listen {
        let l = bind(addr)?;
        bound.ops = Some(l.local_addr().unwrap_or(addr));
        let l = tokio::net::TcpListener::from_std(l)
            .map_err(|source| RunError::Bind { addr, source })?;
        let d = drain.clone();
        let identity = tls.clone();
        let ready = ops::from_fn(move || match identity.is_ready() {
            true => Ok(()),
            false => Err(ops::NotReady::new("not ready: no identity loaded yet")),
        });
        let server = ops::OpsServer::new(Arc::new(registry), Arc::new(ready));
        tokio::spawn(server.serve(l, async move { d.signaled().await }));
    }
    let workers = Workers::start(config.workers, &listeners, &shared).map_err(RunError::Workers)?;
    tracing::info!(?bound, workers = config.workers, "proxy listening");
    Ok(Running {
        bound,
        shared,
        drain: handle,
        drain_timeout: config.drain_timeout(),
        workers,
        _policy: watcher,
    })
}

// === impl Running ===

impl Running {
    /// Stops accepting and waits (bounded) for open connections to finish.
    pub async fn stop(self) {
        let Self {
            shared,
            drain,
            drain_timeout,
            workers,
            ..
        } = self;
        let keep = shared.drain.clone();
        drop(shared);
        if tokio::time::timeout(drain_timeout, drain.drain(keep))
            .await
            .is_err()
        {
            tracing::warn!(
                ?drain_timeout,
                "drain timeout: closing remaining connections"
            );
        } else {
            tracing::info!("drained");
        }
        workers.join().await;
    }
}

fn spawn_expiry_gauge(tls: &TlsStore, metrics: Metrics) {
    let mut rx = tls.subscribe();
    tokio::spawn(async move {
        loop {
            if let Some(c) = rx.borrow_and_update().as_ref() {
                metrics.set_cert_expiry(c.identity.not_after);
            }
            if rx.changed().await.is_err() {
                return;
            }
        }
    });
}
