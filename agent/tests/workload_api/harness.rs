//! Starting the Workload API server in-process, and clients for it.

#![allow(dead_code, clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use meshid_agent::attestor::{UnixAttestor, UnixAttestorConfig};
use meshid_agent::cache::Snapshot;
use meshid_agent::sds;
use meshid_agent::workload_api::{self, JwtMinter, MintError};
use meshid_identity::JwtSigningKey;
use meshid_proto::envoy::pb::envoy::service::secret::v3::secret_discovery_service_client::SecretDiscoveryServiceClient;
use meshid_proto::workload::spiffe_workload_api_client::SpiffeWorkloadApiClient;
use meshid_proto::workload::{X509svidRequest, X509svidResponse};
use meshid_runtime::clock::SystemClock;
use tokio::sync::{oneshot, watch};
use tonic::Streaming;
use tonic::transport::Channel;

/// How long a test waits for a message it expects.
pub const MESSAGE_TIMEOUT: Duration = Duration::from_secs(10);

/// Mints JWT-SVIDs locally with a test key (the real agent asks the CA).
#[derive(Debug)]
pub struct LocalMinter {
    key: Option<JwtSigningKey>,
    snapshots: watch::Receiver<Arc<Snapshot>>,
}

#[async_trait::async_trait]
impl JwtMinter for LocalMinter {
    async fn mint(&self, entry_id: &str, audience: &[String]) -> Result<String, MintError> {
        let Some(key) = &self.key else {
            return Err(MintError::Unavailable("no JWT key in this test".into()));
        };
        let snap = self.snapshots.borrow().clone();
        let svid = snap
            .svids
            .iter()
            .find(|s| s.entry.id == entry_id)
            .ok_or_else(|| MintError::Refused("unknown entry".into()))?;
        let now = SystemTime::now();
        meshid_identity::jwt::sign(
            key,
            &svid.entry.spiffe_id,
            audience,
            now,
            now + Duration::from_secs(300),
        )
        .map_err(|e| MintError::Refused(e.to_string()))
    }
}

/// A Workload API server on a socket in a temp dir.
pub struct Agent {
    _dir: tempfile::TempDir,
    pub socket: PathBuf,
    tx: watch::Sender<Arc<Snapshot>>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Agent {
    pub async fn start(snap: Arc<Snapshot>) -> Self {
        Self::start_inner(snap, None).await
    }

    pub async fn start_with_jwt(snap: Arc<Snapshot>, key: JwtSigningKey) -> Self {
        Self::start_inner(snap, Some(key)).await
    }

    async fn start_inner(snap: Arc<Snapshot>, key: Option<JwtSigningKey>) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("public/api.sock");
        let listener = workload_api::bind_socket(&socket).unwrap();
        // Let other users reach the socket (the temp dir itself is 0700).
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let (tx, rx) = watch::channel(snap);
        let (stop_tx, stop_rx) = oneshot::channel::<()>();
        let minter = Arc::new(LocalMinter {
            key,
            snapshots: rx.clone(),
        });
        let attestor = Arc::new(UnixAttestor::new(&UnixAttestorConfig::default()));
        let task = tokio::spawn(async move {
            workload_api::serve(
                listener,
                rx,
                attestor,
                minter,
                Arc::new(SystemClock),
                async {
                    let _ = stop_rx.await;
                },
            )
            .await
            .unwrap();
        });
        Self {
            _dir: dir,
            socket,
            tx,
            stop: Some(stop_tx),
            task: Some(task),
        }
    }

    pub fn publish(&self, snap: Arc<Snapshot>) {
        self.tx.send(snap).unwrap();
    }

    /// Live receivers of the snapshot channel: one per open stream and per
    /// open connection, plus the server's own.
    pub fn receivers(&self) -> usize {
        self.tx.receiver_count()
    }

    /// Signals shutdown and waits for `serve` to return.
    pub async fn stop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.task.take() {
            tokio::time::timeout(Duration::from_secs(10), t)
                .await
                .expect("serve did not return after shutdown")
                .unwrap();
        }
    }
}

/// An SDS server on a socket in a temp dir.
pub struct SdsAgent {
    pub dir: tempfile::TempDir,
    pub socket: PathBuf,
    tx: watch::Sender<Arc<Snapshot>>,
    _stop: oneshot::Sender<()>,
}

impl SdsAgent {
    pub fn start(snap: Arc<Snapshot>) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("sds.sock");
        let listener = workload_api::bind_socket(&socket).unwrap();
        let (tx, rx) = watch::channel(snap);
        let (stop, stopped) = oneshot::channel::<()>();
        let attestor = Arc::new(UnixAttestor::new(&UnixAttestorConfig::default()));
        tokio::spawn(async move {
            sds::serve(listener, rx, attestor, Arc::new(SystemClock), async {
                let _ = stopped.await;
            })
            .await
            .unwrap();
        });
        Self {
            dir,
            socket,
            tx,
            _stop: stop,
        }
    }

    pub fn publish(&self, snap: Arc<Snapshot>) {
        self.tx.send(snap).unwrap();
    }

    pub async fn client(&self) -> SecretDiscoveryServiceClient<Channel> {
        SecretDiscoveryServiceClient::new(meshid_runtime::uds::channel(&self.socket).await.unwrap())
    }
}

/// `msg` with the Workload API security header set.
pub fn with_header<T>(msg: T) -> tonic::Request<T> {
    let mut r = tonic::Request::new(msg);
    r.metadata_mut()
        .insert(meshid_proto::WORKLOAD_HEADER, "true".parse().unwrap());
    r
}

/// Opens a FetchX509SVID stream (with the header) on `c`.
pub async fn x509_stream(c: &mut SpiffeWorkloadApiClient<Channel>) -> Streaming<X509svidResponse> {
    c.fetch_x509svid(with_header(X509svidRequest::default()))
        .await
        .unwrap()
        .into_inner()
}

/// The next message on `stream`; fails the test if none comes within
/// [`MESSAGE_TIMEOUT`] or the stream ends or errs.
pub async fn next_message<T>(stream: &mut Streaming<T>) -> T {
    tokio::time::timeout(MESSAGE_TIMEOUT, stream.message())
        .await
        .expect("no message within the timeout")
        .unwrap()
        .expect("the stream ended")
}

/// Our generated client over the Unix socket (no header added).
pub async fn client(socket: &Path) -> SpiffeWorkloadApiClient<Channel> {
    SpiffeWorkloadApiClient::new(meshid_runtime::uds::channel(socket).await.unwrap())
}

/// The Python interpreter with grpcio: `$MESHID_TEST_PYTHON`, else the
/// test venv `scripts/test` creates.
pub fn python() -> PathBuf {
    if let Some(p) = std::env::var_os("MESHID_TEST_PYTHON") {
        return p.into();
    }
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/test-venv/bin/python")
}

/// Runs a Python gRPC client (optionally under `prefix`, e.g. setpriv)
/// that calls FetchX509SVID with the header; returns its one line of
/// output: `OK <bytes>` or `<STATUS_CODE> <details>`.
pub async fn python_fetch(socket: &Path, prefix: &[&str]) -> String {
    let script = r#"
import sys, grpc
ch = grpc.insecure_channel("unix:" + sys.argv[1], options=(("grpc.default_authority", "localhost"),))
call = ch.unary_stream("/SpiffeWorkloadAPI/FetchX509SVID",
                       request_serializer=lambda m: m, response_deserializer=lambda b: b)
try:
    for msg in call(b"", metadata=(("workload.spiffe.io", "true"),), timeout=20):
        print("OK", len(msg))
        break
except grpc.RpcError as e:
    print(e.code().name, e.details())
"#;
    let py = python();
    let mut args: Vec<String> = prefix.iter().map(|s| s.to_string()).collect();
    args.push(py.display().to_string());
    let mut cmd = tokio::process::Command::new(&args[0]);
    cmd.args(&args[1..])
        .arg("-c")
        .arg(script)
        .arg(socket)
        .kill_on_drop(true);
    let out = cmd.output().await.unwrap_or_else(|e| {
        panic!(
            "cannot run {} ({e}); create it with `python3 -m venv target/test-venv && \
             target/test-venv/bin/pip install grpcio` or set MESHID_TEST_PYTHON",
            py.display()
        )
    });
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success() && !stdout.is_empty(),
        "python client failed ({}): {stdout}\n{}\n(needs grpcio: `{} -m pip install grpcio`)",
        out.status,
        String::from_utf8_lossy(&out.stderr),
        py.display()
    );
    stdout
}
