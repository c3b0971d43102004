//! The Workload API identity source against an in-test agent on a Unix
//! socket: the first SVID is loaded, a pushed rotation replaces it, and the
//! spec's `workload.spiffe.io` header is sent.
#![allow(clippy::unwrap_used)]

#[path = "support/pki.rs"]
mod pki;

use meshid_proto::workload::spiffe_workload_api_server::{
    SpiffeWorkloadApi, SpiffeWorkloadApiServer,
};
use meshid_proto::workload::*;
use meshid_proxy::identity::{IdentitySource, WorkloadApiSource};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use tokio::sync::{Mutex, mpsc};
use tokio_stream::Stream;
use tonic::{Request, Response, Status};

type Stream2<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>>;

struct FakeAgent {
    updates: Mutex<Option<mpsc::Receiver<Result<X509svidResponse, Status>>>>,
    saw_header: Arc<AtomicBool>,
}

#[tonic::async_trait]
impl SpiffeWorkloadApi for FakeAgent {
    type FetchX509SVIDStream = Stream2<X509svidResponse>;
    type FetchX509BundlesStream = Stream2<X509BundlesResponse>;
    type FetchJWTBundlesStream = Stream2<JwtBundlesResponse>;

    async fn fetch_x509svid(
        &self,
        req: Request<X509svidRequest>,
    ) -> Result<Response<Self::FetchX509SVIDStream>, Status> {
        if req
            .metadata()
            .get("workload.spiffe.io")
            .map(|v| v.as_bytes())
            != Some(b"true")
        {
            return Err(Status::invalid_argument(
                "missing workload.spiffe.io metadata",
            ));
        }
        self.saw_header.store(true, Ordering::Release);
        let rx = self
            .updates
            .lock()
            .await
            .take()
            .ok_or_else(|| Status::unavailable("one stream only"))?;
        Ok(Response::new(Box::pin(
            tokio_stream::wrappers::ReceiverStream::new(rx),
        )))
    }
    async fn fetch_x509_bundles(
        &self,
        _: Request<X509BundlesRequest>,
    ) -> Result<Response<Self::FetchX509BundlesStream>, Status> {
        Err(Status::unimplemented("test"))
    }
    async fn fetch_jwtsvid(
        &self,
        _: Request<JwtsvidRequest>,
    ) -> Result<Response<JwtsvidResponse>, Status> {
        Err(Status::unimplemented("test"))
    }
    async fn fetch_jwt_bundles(
        &self,
        _: Request<JwtBundlesRequest>,
    ) -> Result<Response<Self::FetchJWTBundlesStream>, Status> {
        Err(Status::unimplemented("test"))
    }
    async fn validate_jwtsvid(
        &self,
        _: Request<ValidateJwtsvidRequest>,
    ) -> Result<Response<ValidateJwtsvidResponse>, Status> {
        Err(Status::unimplemented("test"))
    }
}

fn response(ca: &pki::Ca, id: &str) -> (X509svidResponse, String) {
    let (cert, key) = ca.issue(id);
    let serial = x509_parser::parse_x509_certificate(&cert)
        .unwrap()
        .1
        .raw_serial_as_string()
        .replace(':', "");
    let svid = X509svid {
        spiffe_id: id.into(),
        x509_svid: cert.to_vec(),
        x509_svid_key: key.pkcs8_der().to_vec(),
        bundle: ca.cert.to_vec(),
        hint: String::new(),
    };
    (
        X509svidResponse {
            svids: vec![svid],
            ..Default::default()
        },
        serial,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workload_api_source_follows_the_agent_stream() {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("agent.sock");
    let listener = tokio::net::UnixListener::bind(&sock).unwrap();
    let (tx, rx) = mpsc::channel(4);
    let saw_header = Arc::new(AtomicBool::new(false));
    let agent = FakeAgent {
        updates: Mutex::new(Some(rx)),
        saw_header: saw_header.clone(),
    };
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(SpiffeWorkloadApiServer::new(agent))
            .serve_with_incoming(tokio_stream::wrappers::UnixListenerStream::new(listener)),
    );
    let ca = pki::Ca::new("example.org");
    let (first, serial1) = response(&ca, "spiffe://example.org/web");
    tx.send(Ok(first)).await.unwrap();

    let mut watch = Box::new(WorkloadApiSource::new(sock)).start();
    let id = watch
        .wait_for(Option::is_some)
        .await
        .unwrap()
        .clone()
        .unwrap();
    assert_eq!(id.spiffe_id.as_str(), "spiffe://example.org/web");
    assert_eq!(id.serial, serial1);
    assert!(saw_header.load(Ordering::Acquire));

    // A response whose SPIFFE ID field lies about the certificate is ignored…
    let (mut bad, _) = response(&ca, "spiffe://example.org/web");
    bad.svids[0].spiffe_id = "spiffe://example.org/admin".into();
    tx.send(Ok(bad)).await.unwrap();
    // …and the next valid rotation is published.
    let (second, serial2) = response(&ca, "spiffe://example.org/web");
    tx.send(Ok(second)).await.unwrap();
    let id = watch
        .wait_for(|i| i.as_ref().is_some_and(|i| i.serial != serial1))
        .await
        .unwrap()
        .clone()
        .unwrap();
    assert_eq!(id.serial, serial2);
}
