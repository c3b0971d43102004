//! Data-plane threads. Each runs a single-threaded tokio runtime that
//! accepts from every listener, so the tasks of one connection (downstream,
//! upstream, timers) live on one thread and wake each other without
//! cross-thread signalling; the control plane (identity, policy reload,
//! ops, log writers) stays on the caller's runtime.

use crate::config::{InboundConfig, OutboundConfig};
use crate::context::Shared;
use crate::limit::ConnLimit;
use std::io;
use std::net::TcpListener as StdListener;
use std::sync::Arc;
use std::thread::JoinHandle;
use tokio::net::TcpListener;
use tokio::sync::watch;

/// The bound listening sockets, shared by every worker.
#[derive(Debug, Default)]
pub struct Listeners {
    /// Inbound sockets with their config and connection cap.
    pub inbound: Vec<(StdListener, InboundConfig, ConnLimit)>,
    /// Outbound sockets with their config and connection cap, in config order.
    pub outbound: Vec<(StdListener, OutboundConfig, ConnLimit)>,
}

/// The running data-plane threads; they stop when told or when dropped.
#[derive(Debug)]
pub struct Workers {
    stop: watch::Sender<bool>,
    threads: Vec<JoinHandle<()>>,
}

// === impl Workers ===

impl Workers {
    /// Starts `n` threads serving `listeners`.
    pub fn start(n: usize, listeners: &Listeners, shared: &Arc<Shared>) -> io::Result<Self> {
        let (stop, _) = watch::channel(false);
        let mut threads = Vec::with_capacity(n);
        for i in 0..n {
            let inbound = listeners
                .inbound
                .iter()
                .map(|(l, c, cap)| Ok((l.try_clone()?, c.clone(), cap.clone())))
                .collect::<io::Result<Vec<_>>>()?;
            let outbound = listeners
                .outbound
                .iter()
                .map(|(l, c, cap)| Ok((l.try_clone()?, c.clone(), cap.clone())))
                .collect::<io::Result<Vec<_>>>()?;
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            let shared = shared.clone();
            let mut stopped = stop.subscribe();
            let t = std::thread::Builder::new()
                .name(format!("meshid-proxy-{i}"))
                .spawn(move || {
                    rt.block_on(async move {
                        serve(inbound, outbound, shared);
                        let _ = stopped.wait_for(|s| *s).await;
                    });
                })?;
            threads.push(t);
        }
        Ok(Self { stop, threads })
    }

    /// Stops every thread (open connections are cut) and waits for them.
    pub async fn join(mut self) {
        self.stop.send_replace(true);
        let threads = std::mem::take(&mut self.threads);
        let _ = tokio::task::spawn_blocking(move || {
            for t in threads {
                let _ = t.join();
            }
        })
        .await;
    }
}

impl Drop for Workers {
    fn drop(&mut self) {
        self.stop.send_replace(true);
    }
}

/// Spawns the accept loops on the current (worker) runtime. `shared` is
/// dropped here so that only live listeners and connections hold it.
fn serve(
    inbound: Vec<(StdListener, InboundConfig, ConnLimit)>,
    outbound: Vec<(StdListener, OutboundConfig, ConnLimit)>,
    shared: Arc<Shared>,
) {
    for (l, cfg, cap) in inbound {
        match TcpListener::from_std(l) {
            Ok(l) => drop(tokio::spawn(crate::inbound::serve(
                l,
                cfg,
                cap,
                shared.clone(),
            ))),
            Err(e) => tracing::error!(listen = %cfg.listen, "cannot watch the listener: {e}"),
        }
    }
    for (i, (l, cfg, cap)) in outbound.into_iter().enumerate() {
        match TcpListener::from_std(l) {
            Ok(l) => drop(tokio::spawn(crate::outbound::serve(
                l,
                cfg,
                (i, cap),
                shared.clone(),
            ))),
            Err(e) => tracing::error!(listen = %cfg.listen, "cannot watch the listener: {e}"),
        }
    }
}
