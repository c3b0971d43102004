//! The webhook's serving certificate: its SVID (whose DNS SAN
//! `meshid-webhook.meshid-system.svc` comes from its entry's DNS names),
//! followed from the proxy's identity source. Each new identity becomes
//! the certificate of every handshake that starts after it; connections
//! already open keep theirs.

use meshid_identity::crypto;
use meshid_proxy::identity::{Identity, IdentityWatch};
use rustls::ServerConfig;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use std::sync::Arc;
use tokio::sync::watch;

/// Picks the current SVID for each handshake; none until one is loaded.
#[derive(Debug)]
pub struct SvidResolver {
    rx: watch::Receiver<Option<Arc<CertifiedKey>>>,
}

// === impl SvidResolver ===

impl SvidResolver {
    /// Follows `identity` from a task of the current runtime.
    pub fn spawn(mut identity: IdentityWatch) -> Self {
        let first = identity.borrow_and_update().as_deref().and_then(certified);
        let (tx, rx) = watch::channel(first);
        tokio::spawn(async move {
            while identity.changed().await.is_ok() {
                let next = identity.borrow_and_update().clone();
                if let Some(key) = next.as_deref().and_then(certified) {
                    tx.send_replace(Some(key));
                }
                if tx.is_closed() {
                    break;
                }
            }
        });
        Self { rx }
    }

    /// True once a certificate is loaded.
    pub fn is_ready(&self) -> bool {
        self.rx.borrow().is_some()
    }
}

impl ResolvesServerCert for SvidResolver {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.rx.borrow().clone()
    }
}

/// A TLS 1.2/1.3 server config presenting the resolver's certificate,
/// HTTP/1.1 only, no client certificate asked (the API server sends none
/// by default).
pub fn server_config(resolver: Arc<SvidResolver>) -> Result<Arc<ServerConfig>, rustls::Error> {
    let mut cfg = ServerConfig::builder_with_provider(crypto::provider())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
        .with_no_client_auth()
        .with_cert_resolver(resolver);
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(cfg))
}

fn certified(id: &Identity) -> Option<Arc<CertifiedKey>> {
    match crypto::signing_key(&id.key) {
        Ok(key) => {
            tracing::info!(spiffe_id = %id.spiffe_id, serial = %id.serial, "serving certificate loaded");
            Some(Arc::new(CertifiedKey::new(id.chain.clone(), key)))
        }
        Err(e) => {
            tracing::warn!("cannot use the new SVID's key, keeping the previous certificate: {e}");
            None
        }
    }
}
