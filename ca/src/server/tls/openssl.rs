//! The node API's TLS on OpenSSL (`tls_backend = "openssl"`): the same
//! serving certificate as the rustls path ([`ServingCert`], re-issued at
//! half its lifetime and when the authority is replaced) and the same
//! optional client authentication, every presented certificate checked
//! against the bundle the CA serves now. A context is built per serving
//! certificate and a [`PeerCheck`] per bundle, so new handshakes follow
//! both without restarting the listener.

use std::io;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use meshid_identity::openssl::{
    ClientAuth, ContextOptions, ServerContext, TlsMin, accept, peer_chain,
};
use meshid_identity::tls::{Algorithms, PeerCheck, PeerMatch};
use meshid_identity::{BundleSet, TrustBundle};
use rustls::sign::CertifiedKey;
use tokio::net::TcpStream;

use super::ServingCert;
use crate::authority::CurrentAuthority;
use crate::node::{PeerCertificates, TlsConnection};

/// Accepts node API connections on OpenSSL.
#[derive(Debug)]
pub struct Acceptor {
    serving: ServingCert,
    authority: CurrentAuthority,
    /// The context of the serving certificate it was built for.
    context: Mutex<Option<(Arc<CertifiedKey>, Arc<ServerContext>)>>,
    /// The check of the bundle it was built for.
    check: Mutex<Option<(Arc<TrustBundle>, Arc<PeerCheck>)>>,
}

// === impl Acceptor ===

impl Acceptor {
    /// An acceptor serving `authority`'s current certificate; fails if
    /// the first context cannot be built.
    pub fn new(authority: CurrentAuthority) -> Result<Self, rustls::Error> {
        let me = Self {
            serving: ServingCert::new(authority.clone())?,
            authority,
            context: Mutex::new(None),
            check: Mutex::new(None),
        };
        me.context()
            .and_then(|_| me.check())
            .map_err(|e| rustls::Error::General(e.to_string()))?;
        Ok(me)
    }

    /// One handshake on `tcp`; the connection reports the client's chain
    /// only if the check accepted it.
    pub async fn accept(&self, tcp: TcpStream) -> io::Result<TlsConnection> {
        let remote_addr = tcp.peer_addr().ok();
        let (ssl, slot) = self
            .context()?
            .ssl(self.check()?)
            .map_err(io::Error::other)?;
        let stream = accept(ssl, &slot, tcp).await?;
        let certs = slot
            .verified()
            .map(|_| peer_chain(stream.ssl()))
            .filter(|chain| !chain.is_empty())
            .map(Arc::new);
        Ok(TlsConnection::new(
            stream,
            PeerCertificates { remote_addr, certs },
        ))
    }

    /// The context presenting the serving certificate of now.
    fn context(&self) -> io::Result<Arc<ServerContext>> {
        let cert = self
            .serving
            .refresh(SystemTime::now())
            .ok_or_else(|| io::Error::other("the CA has no serving certificate"))?;
        let mut cached = self.context.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((for_cert, context)) = cached.as_ref()
            && Arc::ptr_eq(for_cert, &cert)
        {
            return Ok(Arc::clone(context));
        }
        let options = ContextOptions {
            min_version: TlsMin::Tls13,
            alpn: vec![b"h2".to_vec()],
            algorithms: Algorithms::Default,
            // Every agent connection is long-lived; a full handshake
            // checks every client certificate against the bundle of now.
            resumption: false,
        };
        let context = Arc::new(
            ServerContext::new(
                &options,
                &cert.cert,
                &self.serving.key,
                ClientAuth::Optional,
            )
            .map_err(io::Error::other)?,
        );
        *cached = Some((cert, Arc::clone(&context)));
        Ok(context)
    }

    /// The check of agents' certificates against the bundle served now.
    fn check(&self) -> io::Result<Arc<PeerCheck>> {
        let bundle = self.authority.bundle();
        let mut cached = self.check.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((for_bundle, check)) = cached.as_ref()
            && Arc::ptr_eq(for_bundle, &bundle)
        {
            return Ok(Arc::clone(check));
        }
        let bundles: BundleSet = [(*bundle).clone()].into_iter().collect();
        let peer = PeerMatch::TrustDomain(bundle.trust_domain.clone());
        let check = Arc::new(PeerCheck::new(Arc::new(bundles), peer).map_err(io::Error::other)?);
        *cached = Some((bundle, Arc::clone(&check)));
        Ok(check)
    }
}
