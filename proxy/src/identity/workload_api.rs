//! Identity streamed from the SPIFFE Workload API of the local agent.

use super::{Identity, IdentityError, IdentitySource, IdentityWatch};
use meshid_identity::x509::split_chain;
use meshid_identity::{BundleSet, PrivateKey, SpiffeId, TrustBundle, TrustDomain};
use meshid_proto::workload::spiffe_workload_api_client::SpiffeWorkloadApiClient;
use meshid_proto::workload::{X509svidRequest, X509svidResponse};
use meshid_runtime::backoff::Backoff;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use tokio::sync::watch;

/// First retry delay after a failure.
const BACKOFF_MIN: Duration = Duration::from_millis(100);
/// Longest retry delay.
const BACKOFF_MAX: Duration = Duration::from_secs(10);
/// Largest Workload API message accepted.
const MAX_MESSAGE: usize = 4 * 1024 * 1024;

/// Streams `FetchX509SVID` from the agent's Unix socket, reconnecting with
/// exponential backoff (jittered) when the stream ends or fails.
#[derive(Clone, Debug)]
pub struct WorkloadApiSource {
    socket: PathBuf,
}

// === impl WorkloadApiSource ===

impl WorkloadApiSource {
    /// Talks to the agent at `socket`.
    pub fn new(socket: PathBuf) -> Self {
        Self { socket }
    }

    async fn run(self, tx: watch::Sender<Option<Arc<Identity>>>) {
        let mut backoff = Backoff::new(BACKOFF_MIN, BACKOFF_MAX);
        while !tx.is_closed() {
            let result = self.stream(&tx, &mut backoff).await;
            let delay = backoff.next_delay();
            match result {
                Ok(()) => {
                    tracing::info!(socket = %self.socket.display(), "workload API stream ended; reconnecting")
                }
                Err(e) => {
                    tracing::warn!(socket = %self.socket.display(), retry_in = ?delay, "workload API: {e}")
                }
            }
            tokio::time::sleep(delay).await;
        }
    }

    /// One connection: stream updates until the stream ends.
    async fn stream(
        &self,
        tx: &watch::Sender<Option<Arc<Identity>>>,
        backoff: &mut Backoff,
    ) -> Result<(), IdentityError> {
        let channel = meshid_runtime::uds::channel(&self.socket)
            .await
            .map_err(|e| IdentityError::WorkloadApi(e.to_string()))?;
        let mut client =
            SpiffeWorkloadApiClient::new(channel).max_decoding_message_size(MAX_MESSAGE);
        let mut req = tonic::Request::new(X509svidRequest {});
        req.metadata_mut().insert(
            "workload.spiffe.io",
            tonic::metadata::MetadataValue::from_static("true"),
        );
        let mut stream = client
            .fetch_x509svid(req)
            .await
            .map_err(|s| {
                IdentityError::WorkloadApi(format!("FetchX509SVID refused: {}", s.message()))
            })?
            .into_inner();
        loop {
            let msg = stream.message().await.map_err(|s| {
                IdentityError::WorkloadApi(format!("stream failed: {}", s.message()))
            })?;
            let Some(msg) = msg else { return Ok(()) };
            match from_response(msg, SystemTime::now()) {
                Ok(id) => {
                    backoff.reset();
                    tracing::info!(id = %id.spiffe_id.as_str(), serial = %id.serial, "identity received from workload API");
                    tx.send_replace(Some(Arc::new(id)));
                }
                Err(e) => tracing::warn!("ignoring workload API update: {e}"),
            }
        }
    }
}

impl IdentitySource for WorkloadApiSource {
    fn start(self: Box<Self>) -> IdentityWatch {
        let (tx, rx) = watch::channel(None);
        tokio::spawn(self.run(tx));
        rx
    }
}

/// Turns one `X509SVIDResponse` into an identity (the first SVID is the default).
pub fn from_response(msg: X509svidResponse, now: SystemTime) -> Result<Identity, IdentityError> {
    let svid = msg
        .svids
        .into_iter()
        .next()
        .ok_or_else(|| IdentityError::WorkloadApi("the response carries no SVID".into()))?;
    let id = SpiffeId::parse(&svid.spiffe_id).map_err(|e| IdentityError::Svid(e.to_string()))?;
    let chain = split_chain(&svid.x509_svid).map_err(|e| IdentityError::Svid(e.to_string()))?;
    let key = PrivateKey::from_pkcs8_der(svid.x509_svid_key)
        .map_err(|e| IdentityError::Key(e.to_string()))?;
    let mut own = TrustBundle::new(id.trust_domain());
    own.x509_authorities =
        split_chain(&svid.bundle).map_err(|e| IdentityError::Bundle(e.to_string()))?;
    let mut bundles: BundleSet = std::iter::once(own).collect();
    for (td, der) in msg.federated_bundles {
        let td = td.strip_prefix("spiffe://").unwrap_or(&td);
        let Ok(td) = TrustDomain::new(td) else {
            tracing::warn!("ignoring federated bundle with invalid trust domain {td:?}");
            continue;
        };
        if td == id.trust_domain() {
            tracing::warn!("ignoring a federated bundle for the workload's own trust domain");
            continue;
        }
        let mut b = TrustBundle::new(td);
        b.x509_authorities = split_chain(&der).map_err(|e| IdentityError::Bundle(e.to_string()))?;
        bundles.insert(b);
    }
    let identity = Identity::new(chain, key, bundles, now)?;
    if identity.spiffe_id != id {
        return Err(IdentityError::Svid(format!(
            "spiffe_id field {} does not match the certificate's {}",
            id.as_str(),
            identity.spiffe_id.as_str()
        )));
    }
    Ok(identity)
}
