//! TCP + TLS for tonic client channels: [`connector`] dials the URI's
//! `host:port` and runs the TLS handshake with a given rustls config, so
//! a channel made with `Endpoint::connect_with_connector` speaks gRPC over
//! a TLS the caller fully controls (e.g. a verifier pinned to a SPIFFE ID).

use std::sync::Arc;

use hyper_util::rt::TokioIo;
use rustls::ClientConfig;
use rustls::pki_types::ServerName;
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

/// A connector for `Endpoint::connect_with_connector{,_lazy}`: TCP (no
/// Nagle) to the URI's authority, then TLS with `config`, sending
/// `server_name` as SNI.
pub fn connector(
    config: Arc<ClientConfig>,
    server_name: ServerName<'static>,
) -> impl tower::Service<
    http::Uri,
    Response = TokioIo<TlsStream<TcpStream>>,
    Error = std::io::Error,
    Future = impl Send,
> + Send
+ Clone
+ 'static {
    tower::service_fn(move |uri: http::Uri| {
        let config = config.clone();
        let server_name = server_name.clone();
        async move {
            let authority = uri
                .authority()
                .ok_or_else(|| std::io::Error::other("the URI has no host:port"))?
                .to_string();
            let tcp = TcpStream::connect(authority).await?;
            tcp.set_nodelay(true)?;
            let tls = tokio_rustls::TlsConnector::from(config)
                .connect(server_name, tcp)
                .await?;
            Ok(TokioIo::new(tls))
        }
    })
}
