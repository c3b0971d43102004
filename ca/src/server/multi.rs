//! Several trust domains in one process: one full [`CaServer`] per trust
//! domain (the top level's, then each `[[trust_domains]]`), each with its
//! own keys, store, bundle, node port, admin socket and ops endpoint, and
//! one shutdown for all. Nothing is shared between them but the process.

use std::future::Future;

use futures::future::join_all;

use super::{CaServer, ServerError};
use crate::config::ValidConfig;

/// The CAs of every trust domain of one config.
#[derive(Debug)]
pub struct MultiCaServer {
    /// The running CAs: the top level's first, then `[[trust_domains]]` in
    /// config order.
    pub servers: Vec<CaServer>,
}

// === impl MultiCaServer ===

impl MultiCaServer {
    /// Validates the `[[trust_domains]]` of `cfg`, then starts the CA of
    /// each trust domain in turn; when one cannot start, those already
    /// started are shut down and the error names its trust domain.
    pub async fn start(cfg: ValidConfig) -> Result<Self, ServerError> {
        let extra = cfg.extra_trust_domains()?;
        // With one trust domain, errors read as they always did.
        let several = !extra.is_empty();
        let mut servers = Vec::with_capacity(1 + extra.len());
        for cfg in std::iter::once(cfg).chain(extra) {
            let trust_domain = cfg.trust_domain.to_string();
            match CaServer::start(cfg).await {
                Ok(s) => servers.push(s),
                Err(e) => {
                    // Already failing: the first error is the one to report.
                    let _ = Self { servers }.shutdown().await;
                    return Err(if several {
                        ServerError::TrustDomain {
                            trust_domain,
                            error: Box::new(e),
                        }
                    } else {
                        e
                    });
                }
            }
        }
        Ok(Self { servers })
    }

    /// The top level's CA.
    pub fn primary(&self) -> Option<&CaServer> {
        self.servers.first()
    }

    /// Stops every CA at once (each finishes its in-flight RPCs); the first
    /// error (naming its trust domain when there are several).
    pub async fn shutdown(self) -> Result<(), ServerError> {
        let several = self.servers.len() > 1;
        let results = join_all(self.servers.into_iter().map(|s| async move {
            let trust_domain = s.authority.load().trust_domain().to_string();
            s.shutdown().await.map_err(|e| match several {
                true => ServerError::TrustDomain {
                    trust_domain,
                    error: Box::new(e),
                },
                false => e,
            })
        }))
        .await;
        results.into_iter().find(Result::is_err).unwrap_or(Ok(()))
    }

    /// Serves until `shutdown` completes, then stops every CA.
    pub async fn serve_until(self, shutdown: impl Future<Output = ()>) -> Result<(), ServerError> {
        shutdown.await;
        tracing::info!(
            trust_domains = self.servers.len(),
            "shutting down: finishing in-flight requests"
        );
        self.shutdown().await
    }
}
