//! Many concurrent Workload API `FetchX509SVID` streams, one connection
//! each, timed to their first message and then to their first rotated SVID.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use meshid_proto::workload::X509svidRequest;
use meshid_proto::workload::spiffe_workload_api_client::SpiffeWorkloadApiClient;
use tokio::sync::{Barrier, mpsc};
use tokio::task::JoinHandle;

/// What the first message of one stream looked like.
#[derive(Debug)]
pub struct First {
    /// From the start signal (before connecting) to the first message.
    pub latency: Duration,
    /// SVIDs in the first message.
    pub svids: usize,
}

/// Open streams, their first-message results, and rotation arrivals.
#[derive(Debug)]
pub struct Streams {
    /// One per stream: the first message, or why there was none.
    pub first: Vec<Result<First, String>>,
    /// From the start signal until the last stream had its first message.
    pub wall: Duration,
    /// When each stream received an SVID different from its first one.
    pub rotated: mpsc::UnboundedReceiver<Instant>,
    tasks: Vec<JoinHandle<()>>,
}

/// Opens `n` streams at once on `socket`, waits (at most `timeout`) for
/// every first message and leaves the streams open, watching for rotation.
pub async fn open(socket: &Path, n: usize, timeout: Duration) -> Streams {
    let barrier = Arc::new(Barrier::new(n + 1));
    let (first_tx, mut first_rx) = mpsc::unbounded_channel();
    let (rot_tx, rotated) = mpsc::unbounded_channel();
    let tasks = (0..n)
        .map(|_| {
            let socket = socket.to_path_buf();
            let (barrier, first_tx, rot_tx) = (barrier.clone(), first_tx.clone(), rot_tx.clone());
            tokio::spawn(async move {
                barrier.wait().await;
                stream(socket, first_tx, rot_tx).await;
            })
        })
        .collect();
    drop(first_tx);
    barrier.wait().await;
    let start = Instant::now();
    let mut first = Vec::with_capacity(n);
    let deadline = tokio::time::Instant::now() + timeout;
    while first.len() < n {
        match tokio::time::timeout_at(deadline, first_rx.recv()).await {
            Ok(Some(r)) => first.push(r),
            Ok(None) => break,
            Err(_) => {
                let missing = n - first.len();
                first.extend(
                    (0..missing).map(|_| Err(format!("no first message within {timeout:?}"))),
                );
            }
        }
    }
    Streams {
        first,
        wall: start.elapsed(),
        rotated,
        tasks,
    }
}

// === impl Streams ===

impl Streams {
    /// Waits until `n` streams saw a rotated SVID or `timeout` passes;
    /// returns the arrival instants, sorted.
    pub async fn rotations(&mut self, n: usize, timeout: Duration) -> Vec<Instant> {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut seen = Vec::with_capacity(n);
        while seen.len() < n {
            match tokio::time::timeout_at(deadline, self.rotated.recv()).await {
                Ok(Some(t)) => seen.push(t),
                Ok(None) | Err(_) => break,
            }
        }
        seen.sort();
        seen
    }

    /// Closes every stream.
    pub fn close(self) {
        for t in self.tasks {
            t.abort();
        }
    }
}

async fn stream(
    socket: PathBuf,
    first_tx: mpsc::UnboundedSender<Result<First, String>>,
    rot_tx: mpsc::UnboundedSender<Instant>,
) {
    let start = Instant::now();
    let mut s = match connect(socket).await {
        Ok(s) => s,
        Err(e) => {
            let _ = first_tx.send(Err(e));
            return;
        }
    };
    let initial = match s.message().await {
        Ok(Some(m)) => m,
        Ok(None) => {
            let _ = first_tx.send(Err("stream ended before a message".into()));
            return;
        }
        Err(e) => {
            let _ = first_tx.send(Err(format!("stream error: {}", e.message())));
            return;
        }
    };
    let _ = first_tx.send(Ok(First {
        latency: start.elapsed(),
        svids: initial.svids.len(),
    }));
    let first_cert = initial.svids.first().map(|s| s.x509_svid.clone());
    while let Ok(Some(m)) = s.message().await {
        if m.svids.first().map(|s| &s.x509_svid) != first_cert.as_ref() {
            let _ = rot_tx.send(Instant::now());
            return;
        }
    }
}

/// Opens a `FetchX509SVID` stream on `socket`.
pub async fn connect(
    socket: PathBuf,
) -> Result<tonic::Streaming<meshid_proto::workload::X509svidResponse>, String> {
    let channel = meshid_runtime::uds::channel(&socket)
        .await
        .map_err(|e| e.to_string())?;
    let mut client = SpiffeWorkloadApiClient::new(channel)
        .max_decoding_message_size(meshid_proto::MAX_MESSAGE_SIZE);
    let mut req = tonic::Request::new(X509svidRequest {});
    req.metadata_mut().insert(
        meshid_proto::WORKLOAD_HEADER,
        tonic::metadata::MetadataValue::from_static("true"),
    );
    client
        .fetch_x509svid(req)
        .await
        .map(tonic::Response::into_inner)
        .map_err(|s| format!("FetchX509SVID refused: {} ({:?})", s.message(), s.code()))
}
