//! TCP + TLS for tonic client channels: [`endpoint`] turns a `host:port`
//! into a tonic `Endpoint` and the TLS server name, [`connector`] dials the
//! URI's `host:port` and runs a [`Handshake`] over it, so a channel made
//! with `Endpoint::connect_with_connector` speaks gRPC over a TLS the caller
//! fully controls (e.g. a verifier pinned to a SPIFFE ID). [`Rustls`] is the
//! rustls handshake; the OpenSSL backend brings its own, over the same dial
//! path.

use std::future::Future;
use std::io;
use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::TokioIo;
use rustls::ClientConfig;
use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tonic::transport::Endpoint;

/// The endpoint of `address` (`host:port`, IPv6 in brackets) with one
/// RPC's and one connect's timeout and no Nagle, and the server name TLS
/// sends for it. The error says what is wrong with `address`.
pub fn endpoint(
    address: &str,
    rpc_timeout: Duration,
    connect_timeout: Duration,
) -> Result<(Endpoint, ServerName<'static>), String> {
    let (host, _) = address
        .rsplit_once(':')
        .ok_or_else(|| format!("{address:?} is not host:port"))?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let server_name = ServerName::try_from(host.to_owned())
        .map_err(|_| format!("the host {host:?} of {address:?} is not a DNS name or IP"))?;
    let endpoint = Endpoint::from_shared(format!("http://{address}"))
        .map_err(|e| format!("{address:?}: {e}"))?
        .timeout(rpc_timeout)
        .connect_timeout(connect_timeout)
        .tcp_nodelay(true);
    Ok((endpoint, server_name))
}

/// The client side of a TLS handshake over a dialled TCP connection: what
/// [`connector`] runs once per connection.
pub trait Handshake: Clone + Send + Sync + 'static {
    /// The TLS stream once the handshake succeeded.
    type Stream: AsyncRead + AsyncWrite + Send + Unpin + 'static;

    /// Runs the handshake over `tcp`; the error says why it failed (and may
    /// wrap the backend's error for the caller to downcast).
    fn handshake(&self, tcp: TcpStream) -> impl Future<Output = io::Result<Self::Stream>> + Send;
}

/// The rustls handshake with `config`, sending `server_name` as SNI.
#[derive(Debug, Clone)]
pub struct Rustls {
    config: Arc<ClientConfig>,
    server_name: ServerName<'static>,
}

impl Rustls {
    /// A handshake with `config`, sending `server_name` as SNI.
    pub fn new(config: Arc<ClientConfig>, server_name: ServerName<'static>) -> Self {
        Self {
            config,
            server_name,
        }
    }
}

impl Handshake for Rustls {
    type Stream = TlsStream<TcpStream>;

    fn handshake(&self, tcp: TcpStream) -> impl Future<Output = io::Result<Self::Stream>> + Send {
        tokio_rustls::TlsConnector::from(Arc::clone(&self.config))
            .connect(self.server_name.clone(), tcp)
    }
}

/// A connector for `Endpoint::connect_with_connector{,_lazy}`: TCP (no
/// Nagle) to the URI's authority, then `handshake`.
pub fn connector<H: Handshake>(
    handshake: H,
) -> impl tower::Service<http::Uri, Response = TokioIo<H::Stream>, Error = io::Error, Future = impl Send>
+ Send
+ Clone
+ 'static {
    tower::service_fn(move |uri: http::Uri| {
        let handshake = handshake.clone();
        async move {
            let authority = uri
                .authority()
                .ok_or_else(|| io::Error::other("the URI has no host:port"))?
                .to_string();
            let tcp = TcpStream::connect(authority).await?;
            tcp.set_nodelay(true)?;
            Ok(TokioIo::new(handshake.handshake(tcp).await?))
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_take_host_port_and_name_the_host() {
        let t = Duration::from_secs(1);
        let (_, name) = endpoint("ca.example.org:8443", t, t).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(name.to_str(), "ca.example.org");
        let (_, name) = endpoint("[::1]:8443", t, t).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(name.to_str(), "::1");
        let err = endpoint("no-port", t, t).err().unwrap_or_default();
        assert!(err.contains("not host:port"), "{err}");
    }
}
