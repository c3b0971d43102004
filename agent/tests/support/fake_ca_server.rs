//! The in-memory [`FakeCa`] served over gRPC and TLS on loopback as
//! `spiffe://example.org/meshid/ca`, so the agent's real client talks to
//! it. Several servers over one `FakeCa` are replicas sharing one store.
//! [`FakeCaServer::kill`] closes the listener and cuts every connection at
//! once, as SIGKILL would; [`FakeCaServer::die_during_sign`] does that in
//! the middle of the next `SignX509Svids` call; [`FakeCaServer::restart`]
//! serves again on the same port.
#![allow(clippy::unwrap_used)]
#![allow(dead_code)]

use std::net::{Shutdown, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use meshid_agent::node_client::{AgentCredentials, CaClient, CaError};
use meshid_identity::tls::SpiffeVerifier;
use meshid_identity::{BundleSet, PrivateKey};
use meshid_proto::ca::node_server::{Node, NodeServer};
use meshid_proto::ca::*;
use rustls::pki_types::CertificateDer;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

use super::fake_ca::FakeCa;

/// The CA's SPIFFE ID the agent requires by default.
pub const CA_ID: &str = "spiffe://example.org/meshid/ca";

/// One replica; stops when dropped.
pub struct FakeCaServer {
    pub addr: SocketAddr,
    pub ca: Arc<FakeCa>,
    shared: Arc<Shared>,
}

/// What the handlers and the server share.
struct Shared {
    /// RPCs this replica received.
    calls: AtomicUsize,
    die_during_sign: AtomicBool,
    /// Every accepted connection (a duplicate of its socket), to cut them.
    conns: Mutex<Vec<std::net::TcpStream>>,
    /// Tasks of the current run, aborted by a kill.
    tasks: Mutex<Vec<tokio::task::JoinHandle<()>>>,
    identity: (Vec<CertificateDer<'static>>, PrivateKey),
}

struct Handler {
    ca: Arc<FakeCa>,
    shared: Arc<Shared>,
}

impl FakeCaServer {
    /// Serves `ca` on a free loopback port.
    pub async fn start(ca: Arc<FakeCa>) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let shared = Arc::new(Shared {
            calls: AtomicUsize::new(0),
            die_during_sign: AtomicBool::new(false),
            conns: Mutex::new(Vec::new()),
            tasks: Mutex::new(Vec::new()),
            identity: ca.issue(CA_ID),
        });
        let s = Self { addr, ca, shared };
        s.serve(listener);
        s
    }

    /// `host:port` for the agent.
    pub fn address(&self) -> String {
        self.addr.to_string()
    }

    /// RPCs received so far.
    pub fn calls(&self) -> usize {
        self.shared.calls.load(Ordering::SeqCst)
    }

    /// Closes the port and cuts every open connection, in-flight calls
    /// included; returns once nothing is served any more.
    pub async fn kill(&self) {
        for t in kill_now(&self.shared) {
            let _ = t.await;
        }
    }

    /// Serves again on the same port.
    pub async fn restart(&self) {
        let listener = tokio::net::TcpListener::bind(self.addr).await.unwrap();
        self.serve(listener);
    }

    /// The next `SignX509Svids` call kills this replica after the request
    /// arrived and before it is answered.
    pub fn die_during_sign(&self) {
        self.shared.die_during_sign.store(true, Ordering::SeqCst);
    }

    fn serve(&self, listener: tokio::net::TcpListener) {
        let (tx, rx) = mpsc::channel(16);
        let shared = self.shared.clone();
        let ca = self.ca.clone();
        let accept = tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let dup = tcp.into_std().unwrap();
                shared.conns.lock().unwrap().push(dup.try_clone().unwrap());
                let tcp = tokio::net::TcpStream::from_std(dup).unwrap();
                // A fresh config per connection: client SVIDs verify against
                // the bundle as it is now (after a rotation too).
                let acceptor = tokio_rustls::TlsAcceptor::from(server_config(&ca, &shared));
                let tx = tx.clone();
                tokio::spawn(async move {
                    if let Ok(tls) = acceptor.accept(tcp).await {
                        let _ = tx.send(Ok::<_, std::io::Error>(tls)).await;
                    }
                });
            }
        });
        let handler = Handler {
            ca: self.ca.clone(),
            shared: self.shared.clone(),
        };
        let server = tokio::spawn(async move {
            let _ = tonic::transport::Server::builder()
                .add_service(NodeServer::new(handler))
                .serve_with_incoming(ReceiverStream::new(rx))
                .await;
        });
        self.shared.tasks.lock().unwrap().extend([accept, server]);
    }
}

impl Drop for FakeCaServer {
    fn drop(&mut self) {
        kill_now(&self.shared);
    }
}

/// Cuts every connection and aborts the listener and server; returns the
/// aborted tasks to wait for.
fn kill_now(shared: &Shared) -> Vec<tokio::task::JoinHandle<()>> {
    for c in shared.conns.lock().unwrap().drain(..) {
        let _ = c.shutdown(Shutdown::Both);
    }
    let tasks: Vec<_> = shared.tasks.lock().unwrap().drain(..).collect();
    for t in &tasks {
        t.abort();
    }
    tasks
}

fn server_config(ca: &FakeCa, shared: &Shared) -> Arc<rustls::ServerConfig> {
    let bundles: Arc<BundleSet> = Arc::new(std::iter::once(ca.trust_bundle()).collect());
    let verifier = SpiffeVerifier::builder(bundles)
        .allow_unauthenticated()
        .build()
        .unwrap();
    let (chain, key) = &shared.identity;
    let mut config =
        rustls::ServerConfig::builder_with_provider(meshid_identity::crypto::provider())
            .with_protocol_versions(&[&rustls::version::TLS13])
            .unwrap()
            .with_client_cert_verifier(verifier)
            .with_single_cert(chain.clone(), meshid_identity::crypto::private_key_der(key))
            .unwrap();
    config.alpn_protocols = vec![b"h2".to_vec()];
    Arc::new(config)
}

fn status(e: CaError) -> Status {
    match e {
        CaError::Unavailable(m) => Status::unavailable(m),
        CaError::AgentUnknown(m) => Status::unauthenticated(m),
        CaError::Banned(m) => Status::permission_denied(m),
        CaError::Rejected { code, message } => Status::new(code, message),
        CaError::NoCredentials => Status::unauthenticated("no client certificate"),
        e => Status::internal(e.to_string()),
    }
}

/// The fake's answer as gRPC.
fn answer<T>(r: Result<T, CaError>) -> Result<Response<T>, Status> {
    r.map(Response::new).map_err(status)
}

impl Handler {
    /// Counts the call; for mTLS calls lets the fake see credentials (a
    /// client certificate, if sent, was verified by the TLS layer; the
    /// agent's client sends mTLS calls only with one).
    fn enter<T>(&self, _req: &Request<T>, mutual: bool) -> Result<(), Status> {
        self.shared.calls.fetch_add(1, Ordering::SeqCst);
        if !mutual {
            return Ok(());
        }
        let mut st = self.ca.lock();
        if st.creds.is_none() {
            st.creds = Some(AgentCredentials {
                chain: vec![],
                key: PrivateKey::generate_p256().unwrap(),
            });
        }
        Ok(())
    }
}

#[tonic::async_trait]
impl Node for Handler {
    async fn attest(
        &self,
        req: Request<AttestRequest>,
    ) -> Result<Response<AttestResponse>, Status> {
        self.enter(&req, false)?;
        answer(self.ca.attest(req.into_inner()).await)
    }

    async fn renew_agent(
        &self,
        req: Request<RenewAgentRequest>,
    ) -> Result<Response<RenewAgentResponse>, Status> {
        self.enter(&req, true)?;
        answer(self.ca.renew_agent(req.into_inner()).await)
    }

    async fn sync(&self, req: Request<SyncRequest>) -> Result<Response<SyncResponse>, Status> {
        self.enter(&req, true)?;
        answer(self.ca.sync(req.into_inner()).await)
    }

    async fn sign_x509_svids(
        &self,
        req: Request<SignX509SvidsRequest>,
    ) -> Result<Response<SignX509SvidsResponse>, Status> {
        self.enter(&req, true)?;
        if self.shared.die_during_sign.swap(false, Ordering::SeqCst) {
            // The request arrived; the replica dies before it answers.
            drop(kill_now(&self.shared));
            tokio::time::sleep(Duration::from_secs(30)).await;
            return Err(Status::internal("dead replica answered"));
        }
        answer(self.ca.sign_x509_svids(req.into_inner()).await)
    }

    async fn mint_jwt_svids(
        &self,
        req: Request<MintJwtSvidsRequest>,
    ) -> Result<Response<MintJwtSvidsResponse>, Status> {
        self.enter(&req, true)?;
        answer(self.ca.mint_jwt_svids(req.into_inner()).await)
    }

    async fn sign_downstream_ca(
        &self,
        _req: Request<SignDownstreamCaRequest>,
    ) -> Result<Response<SignDownstreamCaResponse>, Status> {
        Err(Status::unimplemented("not in the fake"))
    }
}
