//! TLS configurations built from the current identity, on the configured
//! backend: rustls ([`rustls`]) or OpenSSL (`openssl`, with the cargo
//! feature of that name).
//!
//! A [`TlsStore`] watches the identity and republishes [`TlsConfigs`] on a
//! `tokio::sync::watch` channel. Listeners read the latest configs at
//! handshake time, so rotation needs no listener restart and established
//! connections keep their session. Handshakes return a backend-neutral
//! stream ([`ServerTls`], [`ClientTls`]); failures get the same labels on
//! both backends ([`handshake_error_reason`]).

pub mod build;
mod error;
#[cfg(feature = "openssl")]
mod openssl;
pub mod rustls;
mod stream;

pub use build::{BuildError, ClientSettings, TlsConfigs, TlsOptions};
pub use error::{handshake_error_reason, is_handshake_error, peer_not_allowed};
pub use stream::{ClientTls, ServerTls};

use crate::identity::{Identity, IdentityWatch};
use std::sync::Arc;
use tokio::sync::watch;

/// The latest TLS configurations; `None` until an identity is loaded.
#[derive(Clone, Debug)]
pub struct TlsStore {
    rx: watch::Receiver<Option<Arc<TlsConfigs>>>,
}

// === impl TlsStore ===

impl TlsStore {
    /// Rebuilds configs for every new identity published on `identity`.
    ///
    /// `clients` lists one client profile per outbound listener, in order.
    pub fn spawn(
        mut identity: IdentityWatch,
        opts: TlsOptions,
        clients: Vec<ClientSettings>,
    ) -> Self {
        let build = move |id: &Identity| TlsConfigs::build(id, &opts, &clients);
        let first = identity
            .borrow_and_update()
            .as_deref()
            .and_then(|id| log_err(build(id)));
        let (tx, rx) = watch::channel(first.map(Arc::new));
        tokio::spawn(async move {
            while identity.changed().await.is_ok() {
                let next = identity.borrow_and_update().clone();
                if let Some(id) = next
                    && let Some(cfg) = log_err(build(&id))
                {
                    tx.send_replace(Some(Arc::new(cfg)));
                }
                if tx.is_closed() {
                    break;
                }
            }
        });
        Self { rx }
    }

    /// The configs to use for a handshake starting now.
    pub fn current(&self) -> Option<Arc<TlsConfigs>> {
        self.rx.borrow().clone()
    }

    /// True once an identity has been loaded.
    pub fn is_ready(&self) -> bool {
        self.rx.borrow().is_some()
    }

    /// A receiver for tasks that follow changes (metrics).
    pub fn subscribe(&self) -> watch::Receiver<Option<Arc<TlsConfigs>>> {
        self.rx.clone()
    }
}

fn log_err(r: Result<TlsConfigs, BuildError>) -> Option<TlsConfigs> {
    r.map_err(|e| {
        tracing::warn!(
            "cannot build TLS config from the new identity, keeping the previous one: {e}"
        )
    })
    .ok()
}
