//! The demo's two calls from service A to service B, made through A's
//! outbound listener exactly as service A itself would.

use std::time::{Duration, Instant};

use anyhow::Context as _;
use bytes::Bytes;
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt as _, Empty, Limited};
use hyper_util::rt::TokioIo;

use super::children::Children;

/// Largest response body read.
const MAX_BODY: usize = 64 * 1024;
/// Per-call time limit.
const CALL_TIMEOUT: Duration = Duration::from_secs(5);

/// What one call returned.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// `GET /hello`, `POST /admin`.
    pub what: String,
    /// The status code.
    pub status: StatusCode,
    /// The body (trimmed, lossy UTF-8).
    pub body: String,
}

/// `GET /hello` through `127.0.0.1:port`, retried until 200 or `deadline`
/// (the proxies may still be fetching their first SVIDs).
pub async fn until_ok(
    port: u16,
    children: &mut Children,
    deadline: Instant,
) -> anyhow::Result<Outcome> {
    loop {
        let last = call(port, Method::GET, "/hello").await;
        if let Ok(o) = &last
            && o.status == StatusCode::OK
        {
            return Ok(o.clone());
        }
        if let Some((name, st)) = children.first_exited() {
            anyhow::bail!("{name} exited during start-up ({st})");
        }
        if Instant::now() > deadline {
            return match last {
                Ok(o) => Err(anyhow::anyhow!(
                    "GET /hello from service A to B never succeeded; last answer {} {}",
                    o.status,
                    o.body
                )),
                Err(e) => Err(e.context("GET /hello from service A to B never succeeded")),
            };
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// `POST /admin` through `127.0.0.1:port` (once).
pub async fn admin(port: u16) -> anyhow::Result<Outcome> {
    call(port, Method::POST, "/admin").await
}

/// One HTTP/1.1 request on a fresh connection.
pub async fn call(port: u16, method: Method, path: &str) -> anyhow::Result<Outcome> {
    tokio::time::timeout(CALL_TIMEOUT, call_inner(port, method.clone(), path))
        .await
        .with_context(|| {
            format!("{method} {path} via 127.0.0.1:{port} took over {CALL_TIMEOUT:?}")
        })?
}

async fn call_inner(port: u16, method: Method, path: &str) -> anyhow::Result<Outcome> {
    let what = format!("{method} {path}");
    let stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .with_context(|| format!("cannot connect to 127.0.0.1:{port}"))?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .context("HTTP/1.1 handshake failed")?;
    let driver = tokio::spawn(conn);
    let req = Request::builder()
        .method(method)
        .uri(path)
        .header(http::header::HOST, "service-b")
        .body(Empty::<Bytes>::new())
        .context("cannot build the request")?;
    let resp = sender
        .send_request(req)
        .await
        .with_context(|| format!("{what}: no response"))?;
    let status = resp.status();
    let body = Limited::new(resp.into_body(), MAX_BODY)
        .collect()
        .await
        .map_err(|e| anyhow::anyhow!("{what}: cannot read the body: {e}"))?
        .to_bytes();
    driver.abort();
    Ok(Outcome {
        what,
        status,
        body: String::from_utf8_lossy(&body).trim().to_owned(),
    })
}
