//! TCP + TLS for tonic client channels: [`endpoint`] turns a `host:port`
//! into a tonic `Endpoint` and the TLS server name, [`connector`] dials the
//! URI's `host:port` and runs the TLS handshake with a given rustls config,
//! so a channel made with `Endpoint::connect_with_connector` speaks gRPC
//! over a TLS the caller fully controls (e.g. a verifier pinned to a
//! SPIFFE ID).

use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::TokioIo;
use rustls::ClientConfig;
use rustls::pki_types::ServerName;
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
