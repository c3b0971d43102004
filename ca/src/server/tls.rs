//! The node API's TLS: the CA's own serving certificate (re-issued at half
//! its lifetime, and when the authority is replaced) and client
//! authentication that is optional at the TLS layer (so `Attest` works
//! without a certificate) but verified whenever a certificate is presented,
//! against the bundle the CA serves now. Every RPC except `Attest` then
//! requires one. On rustls ([`server_config`]) or OpenSSL (`tls/openssl.rs`);
//! [`NodeAcceptor`] accepts on either.

use std::io;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use meshid_identity::tls::{PeerMatch, SpiffeVerifier, TlsBackend};
use meshid_identity::{BundleSet, PrivateKey, SpiffeId, TrustBundle, crypto};
use rustls::ServerConfig;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use tokio::net::TcpStream;
use tokio_rustls::TlsAcceptor;

use crate::authority::{Authority, CurrentAuthority, X509SvidSpec};
use crate::node::TlsConnection;

mod client;
#[cfg(feature = "openssl")]
mod openssl;
#[cfg(not(feature = "openssl"))]
#[path = "tls/openssl_absent.rs"]
mod openssl;

/// The node API's TLS handshake, on the configured backend.
#[derive(Clone)]
pub enum NodeAcceptor {
    /// rustls with [`server_config`].
    Rustls(TlsAcceptor),
    /// OpenSSL.
    Openssl(Arc<openssl::Acceptor>),
}

// === impl NodeAcceptor ===

impl NodeAcceptor {
    /// The acceptor of `backend` for `authority`.
    pub fn new(authority: CurrentAuthority, backend: TlsBackend) -> Result<Self, rustls::Error> {
        Ok(match backend {
            TlsBackend::Rustls => {
                Self::Rustls(TlsAcceptor::from(Arc::new(server_config(authority)?)))
            }
            TlsBackend::Openssl => Self::Openssl(Arc::new(openssl::Acceptor::new(authority)?)),
        })
    }

    /// One handshake on `tcp` (the caller bounds its time).
    pub async fn accept(&self, tcp: TcpStream) -> io::Result<TlsConnection> {
        match self {
            Self::Rustls(acceptor) => acceptor.accept(tcp).await.map(TlsConnection::rustls),
            Self::Openssl(acceptor) => acceptor.accept(tcp).await,
        }
    }
}

impl std::fmt::Debug for NodeAcceptor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Rustls(_) => "NodeAcceptor(rustls)",
            Self::Openssl(_) => "NodeAcceptor(openssl)",
        })
    }
}

/// The node server's rustls configuration (TLS 1.3, h2).
pub fn server_config(authority: CurrentAuthority) -> Result<ServerConfig, rustls::Error> {
    let provider = crypto::provider();
    let verifier = client::CurrentBundleVerifier::new(authority.clone(), provider.clone())?;
    let resolver = ServingCert::new(authority)?;
    let mut cfg = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_client_cert_verifier(Arc::new(verifier))
        .with_cert_resolver(Arc::new(resolver));
    cfg.alpn_protocols = vec![b"h2".to_vec()];
    Ok(cfg)
}

/// A verifier of agents' certificates against `bundle` (optional client
/// authentication, peers of the bundle's trust domain).
fn agent_verifier(
    bundle: &TrustBundle,
    provider: Arc<rustls::crypto::CryptoProvider>,
) -> Result<Arc<SpiffeVerifier>, rustls::Error> {
    let bundles: BundleSet = [bundle.clone()].into_iter().collect();
    Ok(SpiffeVerifier::builder(Arc::new(bundles))
        .peer(PeerMatch::TrustDomain(bundle.trust_domain.clone()))
        .provider(provider)
        .allow_unauthenticated()
        .build()?)
}

/// The CA's serving certificate: an SVID for `spiffe://<td>/meshid/ca`
/// signed by the CA itself, re-issued once half its lifetime has passed or
/// when [`CurrentAuthority::serving`] names another authority than the one
/// that signed it.
#[derive(Debug)]
struct ServingCert {
    authority: CurrentAuthority,
    id: SpiffeId,
    key: PrivateKey,
    signer: Arc<dyn rustls::sign::SigningKey>,
    current: Mutex<Option<Issued>>,
}

/// A serving certificate, when to renew it, and the authority that signed it.
#[derive(Debug)]
struct Issued {
    key: Arc<CertifiedKey>,
    renew_at: SystemTime,
    by: Arc<Authority>,
}

impl ServingCert {
    fn new(authority: CurrentAuthority) -> Result<Self, rustls::Error> {
        let id = authority
            .load()
            .trust_domain()
            .id_with_path(meshid_identity::id::CA_PATH)
            .map_err(|e| rustls::Error::General(e.to_string()))?;
        let key = PrivateKey::generate_p256().map_err(|e| rustls::Error::General(e.to_string()))?;
        let signer = crypto::signing_key(&key)?;
        let me = Self {
            authority,
            id,
            key,
            signer,
            current: Mutex::new(None),
        };
        me.refresh(SystemTime::now()).ok_or_else(|| {
            rustls::Error::General("cannot issue the CA's serving certificate".into())
        })?;
        Ok(me)
    }

    fn refresh(&self, now: SystemTime) -> Option<Arc<CertifiedKey>> {
        let authority = self.authority.serving(now);
        let mut current = self.current.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(issued) = current.as_ref()
            && now < issued.renew_at
            && Arc::ptr_eq(&issued.by, &authority)
        {
            return Some(Arc::clone(&issued.key));
        }
        let spki = self.key.public_key_der();
        let spec = X509SvidSpec {
            spiffe_id: &self.id,
            dns_names: &[],
            public_key_der: &spki,
            requested_ttl: std::time::Duration::ZERO,
            entry_ttl: std::time::Duration::ZERO,
        };
        match authority.sign_x509_svid(&spec, now) {
            Ok(issued) => {
                let half = issued.not_after.duration_since(now).unwrap_or_default() / 2;
                let ck = Arc::new(CertifiedKey::new(issued.chain, Arc::clone(&self.signer)));
                *current = Some(Issued {
                    key: Arc::clone(&ck),
                    renew_at: now + half,
                    by: authority,
                });
                Some(ck)
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot renew the CA's serving certificate");
                current.as_ref().map(|i| Arc::clone(&i.key))
            }
        }
    }
}

impl ResolvesServerCert for ServingCert {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.refresh(SystemTime::now())
    }
}
