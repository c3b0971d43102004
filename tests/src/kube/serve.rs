//! The HTTP/1.1 side: accepting connections, bearer-token authentication,
//! bounded bodies, and turning replies into responses.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt as _, Full, Limited, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_stream::StreamExt as _;
use tokio_stream::wrappers::ReceiverStream;

use super::Shared;
use super::log::{MAX_LOG, Request};
use super::route::{Route, route};
use super::status::ApiError;
use super::verbs::{self, Query, Reply};
use super::{sar, tokenreview};

/// The largest request body taken (the real server's limit is 3 MiB of
/// object plus overhead).
pub const MAX_BODY: usize = 4 << 20;

/// Open connections at most; more wait to be accepted.
const MAX_CONNECTIONS: usize = 1024;

/// How long a client may take to send the request head.
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);

type Body = BoxBody<Bytes, Infallible>;

/// Accepts connections until the task is aborted (which ends them all).
pub async fn accept(listener: TcpListener, shared: Arc<Shared>) {
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let mut conns = JoinSet::new();
    loop {
        while conns.try_join_next().is_some() {}
        let Ok(permit) = slots.clone().acquire_owned().await else {
            return;
        };
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let shared = shared.clone();
        conns.spawn(async move {
            let service = hyper::service::service_fn(move |req| {
                let shared = shared.clone();
                async move { Ok::<_, Infallible>(respond(&shared, req).await) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT)
                .serve_connection(TokioIo::new(stream), service)
                .await;
            drop(permit);
        });
    }
}

fn json(code: u16, v: &serde_json::Value) -> http::Response<Body> {
    let body = serde_json::to_vec(v).unwrap_or_default();
    let mut resp = http::Response::new(Full::new(Bytes::from(body)).boxed());
    *resp.status_mut() =
        http::StatusCode::from_u16(code).unwrap_or(http::StatusCode::INTERNAL_SERVER_ERROR);
    resp.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    resp
}

fn error(e: &ApiError) -> http::Response<Body> {
    json(e.code, &e.to_status())
}

fn bearer(req: &http::Request<Incoming>) -> Option<String> {
    let value = req
        .headers()
        .get(http::header::AUTHORIZATION)?
        .to_str()
        .ok()?;
    let token = value.strip_prefix("Bearer ")?.trim();
    (!token.is_empty()).then(|| token.to_owned())
}

async fn respond(shared: &Shared, req: http::Request<Incoming>) -> http::Response<Body> {
    let Some(token) = bearer(&req).filter(|t| shared.knows(t)) else {
        return error(&ApiError::unauthorized());
    };
    let path = req.uri().path().to_owned();
    let query = Query::parse(req.uri().query().unwrap_or_default());
    let target = match route(&path, &shared.url) {
        None => return error(&ApiError::no_route(&path)),
        Some(Route::Discovery(doc)) => {
            return if req.method() == http::Method::GET {
                json(200, &doc)
            } else {
                error(&ApiError::method_not_allowed("discovery is read-only"))
            };
        }
        Some(Route::Resource(t)) => t,
    };
    let method = req.method().clone();
    shared.record(Request {
        token,
        verb: verbs::verb(&method, &target, &query),
        group: target.group.clone(),
        resource: match &target.sub {
            Some(sub) => format!("{}/{sub}", target.plural),
            None => target.plural.clone(),
        },
        namespace: target.namespace.clone().unwrap_or_default(),
        name: target.name.clone().unwrap_or_default(),
    });
    let accept = req
        .headers()
        .get(http::header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    if target.group == "authentication.k8s.io" && target.plural == "tokenreviews" {
        return token_review(shared, &target, req).await;
    }
    if target.group == "authorization.k8s.io" && target.plural == "subjectaccessreviews" {
        return access_review(shared, &target, req).await;
    }
    let call = match verbs::resolve(&target, &accept) {
        Ok(c) => c,
        Err(e) => return error(&e),
    };
    let content_type = req
        .headers()
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let body = match Limited::new(req.into_body(), MAX_BODY).collect().await {
        Ok(b) => b.to_bytes(),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => {
            return error(&ApiError::too_large(MAX_BODY));
        }
        Err(e) => return error(&ApiError::bad_request(format!("reading the body: {e}"))),
    };
    let reply = {
        let mut store = shared.store();
        let input = verbs::Input {
            method: &method,
            query: &query,
            content_type: &content_type,
            body: &body,
        };
        verbs::handle(&mut store, &shared.stop_rx(), &call, &input)
    };
    match reply {
        Ok(Reply::Json(code, v)) => json(code, &v),
        Ok(Reply::Watch(rx)) => {
            let stream = ReceiverStream::new(rx).map(|b| Ok::<_, Infallible>(Frame::data(b)));
            let mut resp = http::Response::new(StreamBody::new(stream).boxed());
            resp.headers_mut().insert(
                http::header::CONTENT_TYPE,
                http::HeaderValue::from_static("application/json"),
            );
            resp
        }
        Err(e) => error(&e),
    }
}

/// `POST /apis/authentication.k8s.io/v1/tokenreviews` (create only).
async fn token_review(
    shared: &Shared,
    target: &super::route::Target,
    req: http::Request<Incoming>,
) -> http::Response<Body> {
    if req.method() != http::Method::POST || target.name.is_some() || target.namespace.is_some() {
        return error(&ApiError::method_not_allowed(
            "tokenreviews support only create",
        ));
    }
    let body = match Limited::new(req.into_body(), MAX_BODY).collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => return error(&ApiError::too_large(MAX_BODY)),
    };
    let reviewed = tokenreview::review(&shared.sa_issuer, &shared.store(), &body);
    match reviewed {
        Ok(v) => json(201, &v),
        Err(e) => error(&e),
    }
}

/// `POST /apis/authorization.k8s.io/v1/subjectaccessreviews` (create only),
/// decided by the test's rules.
async fn access_review(
    shared: &Shared,
    target: &super::route::Target,
    req: http::Request<Incoming>,
) -> http::Response<Body> {
    if req.method() != http::Method::POST || target.name.is_some() || target.namespace.is_some() {
        return error(&ApiError::method_not_allowed(
            "subjectaccessreviews support only create",
        ));
    }
    let body = match Limited::new(req.into_body(), MAX_BODY).collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => return error(&ApiError::too_large(MAX_BODY)),
    };
    let rules = super::lock(&shared.access_rules).clone();
    match sar::review(&rules, &body) {
        Ok(v) => json(201, &v),
        Err(e) => error(&e),
    }
}

/// Keeps the log bounded.
pub fn push_bounded(log: &mut Vec<Request>, r: Request) {
    if log.len() >= MAX_LOG {
        log.drain(..MAX_LOG / 10);
    }
    log.push(r);
}
