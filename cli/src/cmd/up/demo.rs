//! The two demo applications: tiny plaintext HTTP/1.1 servers on loopback,
//! served by the `up` process itself.

use std::convert::Infallible;
use std::net::SocketAddr;

use anyhow::Context as _;
use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// Both demo services, running.
#[derive(Debug)]
pub struct DemoServices {
    /// Service A's address.
    pub a: SocketAddr,
    /// Service B's address.
    pub b: SocketAddr,
    tasks: Vec<JoinHandle<()>>,
}

// === impl DemoServices ===

impl DemoServices {
    /// Binds both on `127.0.0.1:0` and starts serving.
    pub async fn start() -> anyhow::Result<Self> {
        let (a, ta) = serve("service-a").await?;
        let (b, tb) = serve("service-b").await?;
        Ok(Self {
            a,
            b,
            tasks: vec![ta, tb],
        })
    }

    /// Stops serving.
    pub async fn stop(self) {
        for t in self.tasks {
            t.abort();
            let _ = t.await;
        }
    }
}

async fn serve(name: &'static str) -> anyhow::Result<(SocketAddr, JoinHandle<()>)> {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .with_context(|| format!("cannot bind a loopback port for {name}"))?;
    let addr = listener.local_addr()?;
    let task = tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |req| answer(name, req));
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    Ok((addr, task))
}

/// `GET /hello` and `POST /admin`; 404 otherwise.
async fn answer(
    name: &'static str,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    Ok(respond(name, req.method(), req.uri().path()))
}

fn respond(name: &str, method: &Method, path: &str) -> Response<Full<Bytes>> {
    let (status, body) = match (method, path) {
        (&Method::GET, "/hello") => (StatusCode::OK, format!("hello from {name}\n")),
        (&Method::POST, "/admin") => (StatusCode::OK, "admin done\n".to_owned()),
        _ => (StatusCode::NOT_FOUND, format!("{name}: no route\n")),
    };
    let mut resp = Response::new(Full::new(Bytes::from(body)));
    *resp.status_mut() = status;
    resp
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn routes() {
        assert_eq!(
            respond("b", &Method::GET, "/hello").status(),
            StatusCode::OK
        );
        assert_eq!(
            respond("b", &Method::POST, "/admin").status(),
            StatusCode::OK
        );
        assert_eq!(
            respond("b", &Method::GET, "/admin").status(),
            StatusCode::NOT_FOUND
        );
    }
}
