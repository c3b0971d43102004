//! The client side of the ops endpoint: one bounded `GET` (container probes,
//! `meshid healthcheck --url`).

use std::time::Duration;

use bytes::Bytes;
use http::{Request, StatusCode, Uri, header};
use http_body_util::{BodyExt, Empty, Limited};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio::task::JoinSet;

/// How much of an answer's body is kept (for the reason it gives).
const MAX_BODY: usize = 4 * 1024;

/// Why a probe did not get a `200 OK`; each names the URL.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProbeError {
    /// The URL is not `http://HOST[:PORT]/PATH`.
    #[error("{url:?} is not a URL to probe: {reason} (expected e.g. http://127.0.0.1:9090/readyz)")]
    BadUrl {
        /// The URL as given.
        url: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// Nothing answered on the address.
    #[error("cannot connect to {url} (is the process running, and is this its ops address?)")]
    Connect {
        /// The URL.
        url: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The connection was made but HTTP failed.
    #[error("{url} did not answer HTTP/1.1")]
    Http {
        /// The URL.
        url: String,
        /// Why.
        #[source]
        source: hyper::Error,
    },
    /// An answer other than `200 OK`.
    #[error("{url} answered {status}: {}", .body.trim_end())]
    Status {
        /// The URL.
        url: String,
        /// The status.
        status: StatusCode,
        /// The start of the body (the reason, on `/readyz`).
        body: String,
    },
    /// No complete answer within the timeout.
    #[error("{url} did not answer within {after:?}")]
    TimedOut {
        /// The URL.
        url: String,
        /// The timeout.
        after: Duration,
    },
}

/// `GET url` within `timeout`; `Ok` with the start of the body on
/// `200 OK`, otherwise why not. Only plain `http://` is spoken (the ops
/// endpoints do not use TLS).
pub async fn probe(url: &str, timeout: Duration) -> Result<String, ProbeError> {
    let uri: Uri = url.parse().map_err(|_| bad(url, "it does not parse"))?;
    if uri.scheme_str() != Some("http") {
        return Err(bad(url, "only http:// is supported"));
    }
    let authority = uri
        .authority()
        .ok_or_else(|| bad(url, "it has no host"))?
        .clone();
    if authority.as_str().contains('@') {
        return Err(bad(url, "user info is not supported"));
    }
    let addr = format!(
        "{}:{}",
        authority.host(),
        authority.port_u16().unwrap_or(80)
    );
    let path = uri.path_and_query().map_or("/", |p| p.as_str()).to_owned();
    let get = async {
        let tcp = TcpStream::connect(&addr)
            .await
            .map_err(|source| ProbeError::Connect {
                url: url.to_owned(),
                source,
            })?;
        let http = |source| ProbeError::Http {
            url: url.to_owned(),
            source,
        };
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
            .await
            .map_err(http)?;
        // Dropped (and so aborted) with this future: no task outlives the probe.
        let mut driver = JoinSet::new();
        driver.spawn(conn);
        let req = Request::get(path)
            .header(header::HOST, authority.as_str())
            .header(header::CONNECTION, "close")
            .body(Empty::<Bytes>::new())
            .map_err(|_| bad(url, "it is not a valid request target"))?;
        let resp = sender.send_request(req).await.map_err(http)?;
        let status = resp.status();
        let body = read_body(resp.into_body()).await;
        if status == StatusCode::OK {
            Ok(body)
        } else {
            Err(ProbeError::Status {
                url: url.to_owned(),
                status,
                body,
            })
        }
    };
    tokio::time::timeout(timeout, get)
        .await
        .map_err(|_| ProbeError::TimedOut {
            url: url.to_owned(),
            after: timeout,
        })?
}

/// The first [`MAX_BODY`] bytes of `body` as text (lossy), or what was
/// read before an error.
async fn read_body(body: hyper::body::Incoming) -> String {
    let mut limited = Limited::new(body, MAX_BODY);
    let mut out = Vec::new();
    while let Some(Ok(frame)) = limited.frame().await {
        if let Ok(data) = frame.into_data() {
            out.extend_from_slice(&data);
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn bad(url: &str, reason: &'static str) -> ProbeError {
    ProbeError::BadUrl {
        url: url.to_owned(),
        reason,
    }
}
