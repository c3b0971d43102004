//! A fake SPIFFE Workload API server on a Unix socket: the test pushes the
//! X.509-SVID responses it wants a client to see, in order.
//!
//! It answers `FetchX509SVID` (one stream at a time, fed by
//! [`FakeWorkloadApi::push`]) and `FetchX509Bundles` (the bundles of the
//! SVIDs pushed last, then the stream stays open); every call without the
//! spec's `workload.spiffe.io: true` header is refused with
//! `InvalidArgument`, the JWT methods with `Unimplemented`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use meshid_proto::WORKLOAD_HEADER;
use meshid_proto::workload::spiffe_workload_api_server::{
    SpiffeWorkloadApi, SpiffeWorkloadApiServer,
};
use meshid_proto::workload::{
    JwtBundlesRequest, JwtBundlesResponse, JwtsvidRequest, JwtsvidResponse, ValidateJwtsvidRequest,
    ValidateJwtsvidResponse, X509BundlesRequest, X509BundlesResponse, X509svidRequest,
    X509svidResponse,
};
use tokio::sync::mpsc;
use tokio_stream::{Stream, StreamExt as _};
use tonic::{Request, Response, Status};

/// How many pushed responses may wait for the client.
const QUEUE: usize = 16;

type ResponseStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>>;

/// A running fake agent; the server stops when this is dropped.
#[derive(Debug)]
pub struct FakeWorkloadApi {
    socket: PathBuf,
    updates: mpsc::Sender<X509svidResponse>,
    state: Arc<State>,
    task: tokio::task::JoinHandle<()>,
}

#[derive(Debug)]
struct State {
    /// The receiving end for the one `FetchX509SVID` stream.
    updates: Mutex<Option<mpsc::Receiver<X509svidResponse>>>,
    /// The response pushed last (its bundles answer `FetchX509Bundles`).
    last: Mutex<Option<X509svidResponse>>,
    saw_header: AtomicBool,
}

#[derive(Debug)]
struct Service(Arc<State>);

impl FakeWorkloadApi {
    /// Binds `socket` and serves on it from a task of the current runtime.
    pub fn serve(socket: &Path) -> Self {
        let listener = tokio::net::UnixListener::bind(socket)
            .unwrap_or_else(|e| panic!("bind {}: {e}", socket.display()));
        let (tx, rx) = mpsc::channel(QUEUE);
        let state = Arc::new(State {
            updates: Mutex::new(Some(rx)),
            last: Mutex::new(None),
            saw_header: AtomicBool::new(false),
        });
        let server = tonic::transport::Server::builder()
            .add_service(SpiffeWorkloadApiServer::new(Service(state.clone())))
            .serve_with_incoming(tokio_stream::wrappers::UnixListenerStream::new(listener));
        let task = tokio::spawn(async move {
            let _ = server.await;
        });
        Self {
            socket: socket.to_owned(),
            updates: tx,
            state,
            task,
        }
    }

    /// The socket it serves on.
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// Queues `resp` for the `FetchX509SVID` stream (sent when a client
    /// reads it) and makes its bundles the `FetchX509Bundles` answer.
    pub async fn push(&self, resp: X509svidResponse) {
        *lock(&self.state.last) = Some(resp.clone());
        self.updates
            .send(resp)
            .await
            .unwrap_or_else(|_| panic!("the fake Workload API stopped"));
    }

    /// True once a call carried the `workload.spiffe.io: true` header.
    pub fn saw_header(&self) -> bool {
        self.state.saw_header.load(Ordering::Acquire)
    }
}

impl Drop for FakeWorkloadApi {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl State {
    fn require_header<T>(&self, req: &Request<T>) -> Result<(), Status> {
        match req.metadata().get(WORKLOAD_HEADER) {
            Some(v) if v == "true" => {
                self.saw_header.store(true, Ordering::Release);
                Ok(())
            }
            _ => Err(Status::invalid_argument(format!(
                "missing {WORKLOAD_HEADER} metadata"
            ))),
        }
    }
}

/// The bundles of `resp`'s SVIDs, keyed by `spiffe://<trust domain>`.
fn bundles_of(resp: &X509svidResponse) -> HashMap<String, Vec<u8>> {
    resp.svids
        .iter()
        .filter_map(|s| {
            let id = meshid_identity::SpiffeId::parse(&s.spiffe_id).ok()?;
            Some((format!("spiffe://{}", id.trust_domain()), s.bundle.clone()))
        })
        .collect()
}

#[tonic::async_trait]
impl SpiffeWorkloadApi for Service {
    type FetchX509SVIDStream = ResponseStream<X509svidResponse>;
    type FetchX509BundlesStream = ResponseStream<X509BundlesResponse>;
    type FetchJWTBundlesStream = ResponseStream<JwtBundlesResponse>;

    async fn fetch_x509svid(
        &self,
        req: Request<X509svidRequest>,
    ) -> Result<Response<Self::FetchX509SVIDStream>, Status> {
        self.0.require_header(&req)?;
        let rx = lock(&self.0.updates)
            .take()
            .ok_or_else(|| Status::unavailable("the fake Workload API serves one stream"))?;
        let stream = tokio_stream::wrappers::ReceiverStream::new(rx).map(Ok);
        Ok(Response::new(Box::pin(stream)))
    }

    async fn fetch_x509_bundles(
        &self,
        req: Request<X509BundlesRequest>,
    ) -> Result<Response<Self::FetchX509BundlesStream>, Status> {
        self.0.require_header(&req)?;
        let bundles = lock(&self.0.last)
            .as_ref()
            .map(bundles_of)
            .unwrap_or_default();
        let msg = X509BundlesResponse {
            bundles,
            ..Default::default()
        };
        let stream = tokio_stream::iter([Ok(msg)]).chain(tokio_stream::pending());
        Ok(Response::new(Box::pin(stream)))
    }

    async fn fetch_jwtsvid(
        &self,
        _: Request<JwtsvidRequest>,
    ) -> Result<Response<JwtsvidResponse>, Status> {
        Err(Status::unimplemented(
            "the fake Workload API serves X.509 only",
        ))
    }

    async fn fetch_jwt_bundles(
        &self,
        _: Request<JwtBundlesRequest>,
    ) -> Result<Response<Self::FetchJWTBundlesStream>, Status> {
        Err(Status::unimplemented(
            "the fake Workload API serves X.509 only",
        ))
    }

    async fn validate_jwtsvid(
        &self,
        _: Request<ValidateJwtsvidRequest>,
    ) -> Result<Response<ValidateJwtsvidResponse>, Status> {
        Err(Status::unimplemented(
            "the fake Workload API serves X.509 only",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use meshid_proto::workload::spiffe_workload_api_client::SpiffeWorkloadApiClient;
    use tonic::Code;

    fn request<T>(msg: T, header: bool) -> Request<T> {
        let mut req = Request::new(msg);
        if header {
            req.metadata_mut().insert(
                WORKLOAD_HEADER,
                tonic::metadata::MetadataValue::from_static("true"),
            );
        }
        req
    }

    fn response(id: &str) -> X509svidResponse {
        X509svidResponse {
            svids: vec![meshid_proto::workload::X509svid {
                spiffe_id: id.into(),
                bundle: b"root".to_vec(),
                ..Default::default()
            }],
            ..Default::default()
        }
    }

    #[tokio::test]
    async fn serves_pushed_responses_in_order_to_callers_with_the_header() {
        let dir = crate::tempdir();
        let fake = FakeWorkloadApi::serve(&dir.path().join("agent.sock"));
        let channel = meshid_runtime::uds::channel(fake.socket())
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let mut client = SpiffeWorkloadApiClient::new(channel);

        let refused = client
            .fetch_x509svid(request(X509svidRequest {}, false))
            .await
            .err();
        assert_eq!(refused.map(|s| s.code()), Some(Code::InvalidArgument));
        assert!(!fake.saw_header());

        fake.push(response("spiffe://example.org/a")).await;
        fake.push(response("spiffe://example.org/b")).await;
        let mut stream = client
            .fetch_x509svid(request(X509svidRequest {}, true))
            .await
            .unwrap_or_else(|e| panic!("{e}"))
            .into_inner();
        for want in ["spiffe://example.org/a", "spiffe://example.org/b"] {
            let got = stream.message().await.unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(
                got.map(|r| r.svids[0].spiffe_id.clone()).as_deref(),
                Some(want)
            );
        }
        assert!(fake.saw_header());

        let second = client
            .fetch_x509svid(request(X509svidRequest {}, true))
            .await
            .err();
        assert_eq!(second.map(|s| s.code()), Some(Code::Unavailable));

        let mut bundles = client
            .fetch_x509_bundles(request(X509BundlesRequest {}, true))
            .await
            .unwrap_or_else(|e| panic!("{e}"))
            .into_inner();
        let got = bundles.message().await.unwrap_or_else(|e| panic!("{e}"));
        let bundles = got.map(|r| r.bundles).unwrap_or_default();
        assert_eq!(
            bundles.get("spiffe://example.org").map(Vec::as_slice),
            Some(&b"root"[..])
        );
    }
}
