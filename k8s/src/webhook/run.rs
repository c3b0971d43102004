//! Wiring: config → identity source → certificate resolver → HTTPS
//! listener, plus the ops endpoint (ready once a certificate is loaded).

use super::cert::{SvidResolver, server_config};
use super::config::WebhookConfig;
use super::server::{self, Handler, Limits};
use meshid_runtime::ops::{self, OpsServer};
use prometheus_client::registry::Registry;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// Why the webhook could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RunError {
    /// The config is invalid.
    #[error(transparent)]
    Config(#[from] super::config::ConfigError),
    /// A listener could not be bound.
    #[error("cannot listen on {addr}: {source}; is another process using the port?")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The TLS config could not be built.
    #[error("TLS: {0}")]
    Tls(#[from] rustls::Error),
}

/// A started webhook; [`Running::stop`] shuts it down.
#[derive(Debug)]
pub struct Running {
    /// The HTTPS listener's address.
    pub addr: SocketAddr,
    /// The ops endpoint's address, when there is one.
    pub ops_addr: Option<SocketAddr>,
    stop: Vec<oneshot::Sender<()>>,
    tasks: Vec<JoinHandle<()>>,
}

/// Binds the listeners and serves until [`Running::stop`].
pub async fn start(cfg: WebhookConfig) -> Result<Running, RunError> {
    cfg.validate()?;
    let mut registry = Registry::default();
    let source = meshid_proxy::identity::from_config(
        &cfg.identity,
        registry.sub_registry_with_prefix("meshid_webhook"),
    );
    let resolver = Arc::new(SvidResolver::spawn(source.start()));
    let tls = server_config(resolver.clone())?;
    let handler = Arc::new(Handler::new(cfg.inject.clone(), &mut registry));
    let bind = |addr: SocketAddr| async move {
        TcpListener::bind(addr)
            .await
            .map_err(|source| RunError::Bind { addr, source })
    };
    let listener = bind(cfg.listen).await?;
    let addr = listener.local_addr().map_err(|source| RunError::Bind {
        addr: cfg.listen,
        source,
    })?;
    let mut running = Running {
        addr,
        ops_addr: None,
        stop: Vec::new(),
        tasks: Vec::new(),
    };
    if let Some(ops_listen) = cfg.ops_listen {
        let ops_listener = bind(ops_listen).await?;
        running.ops_addr = ops_listener.local_addr().ok();
        let ready = ops::from_fn(move || match resolver.is_ready() {
            true => Ok(()),
            false => Err(ops::NotReady::new(
                "not ready: no serving certificate (SVID) loaded yet; is the agent's socket mounted and an entry registered for the webhook?",
            )),
        });
        let (tx, rx) = oneshot::channel();
        let ops = OpsServer::new(Arc::new(registry), Arc::new(ready));
        running.stop.push(tx);
        running.tasks.push(tokio::spawn(async move {
            ops.serve(ops_listener, async {
                let _ = rx.await;
            })
            .await;
        }));
    }
    let (tx, rx) = oneshot::channel();
    running.stop.push(tx);
    running.tasks.push(tokio::spawn(server::serve(
        listener,
        tls,
        handler,
        Limits::default(),
        async {
            let _ = rx.await;
        },
    )));
    tracing::info!(%addr, "sidecar-injection webhook listening on {addr}{}", server::PATH);
    Ok(running)
}

// === impl Running ===

impl Running {
    /// Stops accepting, lets open requests finish, and returns.
    pub async fn stop(self) {
        for tx in self.stop {
            let _ = tx.send(());
        }
        for t in self.tasks {
            let _ = t.await;
        }
    }
}
