//! The OpenSSL backend: one server context and the client contexts of the
//! outbound listeners, built from one identity. Peers are verified by
//! [`PeerCheck`] from OpenSSL's verify callback (`meshid_identity::openssl`),
//! the same rules as rustls's `SpiffeVerifier`.

use super::build::{ALPN_H2, ALPN_HTTP11, BuildError, ClientSettings, TlsOptions, no_client};
use crate::config::TlsVersion;
use crate::identity::Identity;
use meshid_identity::openssl::{
    self as backend, ClientAuth, ClientContext, ContextOptions, ServerContext, TlsMin,
};
use meshid_identity::tls::{PeerCheck, PeerMatch};
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::TcpStream;
use tokio_openssl::SslStream;

/// OpenSSL contexts for inbound and outbound listeners.
pub struct OpensslConfigs {
    server: ServerContext,
    /// Inbound: any verified peer of a trusted trust domain.
    server_check: Arc<PeerCheck>,
    clients: Box<[Client]>,
}

/// The contexts of one outbound listener.
struct Client {
    check: Arc<PeerCheck>,
    ctx: ClientContext,
    /// Offering ALPN `h2` first (where asked).
    h2: Option<ClientContext>,
}

// === impl OpensslConfigs ===

impl OpensslConfigs {
    /// Builds every context for `id` with the same versions, ALPN and
    /// resumption as the rustls backend; `opts.algorithms` picks the
    /// default or FIPS-approved lists.
    pub fn build(
        id: &Identity,
        opts: &TlsOptions,
        clients: &[ClientSettings],
    ) -> Result<Self, BuildError> {
        let err = |e: backend::OpensslError| BuildError::Openssl(e.to_string());
        let options = |alpn: Vec<Vec<u8>>, resumption: bool| ContextOptions {
            min_version: match opts.min_version {
                TlsVersion::Tls12 => TlsMin::Tls12,
                _ => TlsMin::Tls13,
            },
            alpn,
            algorithms: opts.algorithms,
            resumption,
        };
        let check = |peer: PeerMatch| PeerCheck::new(id.bundles.clone(), peer).map(Arc::new);
        let server = ServerContext::new(
            &options(vec![ALPN_H2.to_vec(), ALPN_HTTP11.to_vec()], true),
            &id.chain,
            &id.key,
            ClientAuth::Required,
        )
        .map_err(err)?;
        let me = Some((id.chain.as_slice(), &id.key));
        let clients = clients
            .iter()
            .map(|c| {
                let ctx =
                    ClientContext::new(&options(c.alpn.clone(), c.resumption), me).map_err(err)?;
                let h2 =
                    c.h2.then(|| {
                        let alpn = vec![ALPN_H2.to_vec(), ALPN_HTTP11.to_vec()];
                        ClientContext::new(&options(alpn, c.resumption), me)
                    })
                    .transpose()
                    .map_err(err)?;
                Ok(Client {
                    check: check(c.peer.clone())?,
                    ctx,
                    h2,
                })
            })
            .collect::<Result<_, BuildError>>()?;
        Ok(Self {
            server,
            server_check: check(PeerMatch::Any)?,
            clients,
        })
    }

    /// Accepts a TLS connection on `tcp` with the server context.
    pub async fn accept(&self, tcp: TcpStream) -> io::Result<SslStream<TcpStream>> {
        let (ssl, slot) = self
            .server
            .ssl(self.server_check.clone())
            .map_err(io::Error::other)?;
        Ok(backend::accept(ssl, &slot, tcp).await?)
    }

    /// Handshakes as a client of `addr` with the contexts of outbound
    /// listener `index`; sessions are cached per upstream address.
    pub async fn connect(
        &self,
        (index, h2): (usize, bool),
        addr: SocketAddr,
        tcp: TcpStream,
    ) -> io::Result<SslStream<TcpStream>> {
        let c = self.clients.get(index).ok_or_else(|| no_client(index))?;
        let ctx = match (&c.h2, h2) {
            (Some(h2), true) => h2,
            _ => &c.ctx,
        };
        let (ssl, slot) = ctx
            .ssl(c.check.clone(), &addr.to_string())
            .map_err(io::Error::other)?;
        Ok(backend::connect(ssl, &slot, tcp).await?)
    }
}
