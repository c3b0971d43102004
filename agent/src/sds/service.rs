//! The `SecretDiscoveryService` gRPC service.

use std::sync::Arc;
use std::time::Duration;

use meshid_proto::envoy::pb::envoy::service::discovery::v3::{
    DeltaDiscoveryRequest, DeltaDiscoveryResponse, DiscoveryRequest, DiscoveryResponse,
};
use meshid_proto::envoy::pb::envoy::service::secret::v3::secret_discovery_service_server::SecretDiscoveryService;
use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

use super::resources;
use super::xds::{Action, XdsState};
use crate::attestor::WorkloadAttestor;
use crate::cache::Snapshot;
use crate::workload_api::{Caller, ShutdownSignal, View};
use meshid_runtime::clock::SharedClock;

/// Shortest wait before re-checking expiry (see the Workload API's).
const MIN_RECHECK: Duration = Duration::from_millis(200);

/// The SDS service (see [`serve`](super::serve) to run it).
#[derive(Debug, Clone)]
pub struct SecretDiscovery {
    snapshots: watch::Receiver<Arc<Snapshot>>,
    attestor: Arc<dyn WorkloadAttestor>,
    clock: SharedClock,
    stop: ShutdownSignal,
}

type Stream<T> = ReceiverStream<Result<T, Status>>;

// === impl SecretDiscovery ===

impl SecretDiscovery {
    pub(crate) fn new(
        snapshots: watch::Receiver<Arc<Snapshot>>,
        attestor: Arc<dyn WorkloadAttestor>,
        clock: SharedClock,
        stop: ShutdownSignal,
    ) -> Self {
        Self {
            snapshots,
            attestor,
            clock,
            stop,
        }
    }
}

#[tonic::async_trait]
impl SecretDiscoveryService for SecretDiscovery {
    type DeltaSecretsStream = Stream<DeltaDiscoveryResponse>;
    type StreamSecretsStream = Stream<DiscoveryResponse>;

    async fn delta_secrets(
        &self,
        _request: Request<Streaming<DeltaDiscoveryRequest>>,
    ) -> Result<Response<Self::DeltaSecretsStream>, Status> {
        Err(Status::unimplemented(
            "incremental (delta) SDS is not supported; use StreamSecrets (api_type: GRPC)",
        ))
    }

    #[tracing::instrument(name = "StreamSecrets", skip_all)]
    async fn stream_secrets(
        &self,
        request: Request<Streaming<DiscoveryRequest>>,
    ) -> Result<Response<Self::StreamSecretsStream>, Status> {
        let caller = Caller::attest(&request, self.attestor.as_ref()).await?;
        let (tx, rx) = mpsc::channel(4);
        let task = StreamTask {
            caller,
            inbound: request.into_inner(),
            snapshots: self.snapshots.clone(),
            clock: self.clock.clone(),
            stop: self.stop.clone(),
            tx,
            state: XdsState::default(),
            last_view: None,
        };
        tokio::spawn(task.run());
        Ok(Response::new(ReceiverStream::new(rx)))
    }

    #[tracing::instrument(name = "FetchSecrets", skip_all)]
    async fn fetch_secrets(
        &self,
        request: Request<DiscoveryRequest>,
    ) -> Result<Response<DiscoveryResponse>, Status> {
        let caller = Caller::attest(&request, self.attestor.as_ref()).await?;
        let req = request.into_inner();
        let mut state = XdsState::default();
        state.on_request(&req)?;
        let snap = self.snapshots.borrow().clone();
        let view = View::of(&snap, &caller.selectors, self.clock.now())?;
        let secrets = resources::build(&snap, view.svids(), &req.resource_names);
        caller.still_same()?;
        let mut resp = state.respond(snap.generation, secrets);
        resp.nonce.clear();
        Ok(Response::new(resp))
    }
}

/// One StreamSecrets stream.
struct StreamTask {
    caller: Caller,
    inbound: Streaming<DiscoveryRequest>,
    snapshots: watch::Receiver<Arc<Snapshot>>,
    clock: SharedClock,
    stop: ShutdownSignal,
    tx: mpsc::Sender<Result<DiscoveryResponse, Status>>,
    state: XdsState,
    /// The caller's view when the secrets were last built.
    last_view: Option<View>,
}

// === impl StreamTask ===

impl StreamTask {
    async fn run(mut self) {
        let mut wake = None;
        loop {
            let pause = wake.map(|t: std::time::SystemTime| {
                t.duration_since(self.clock.now())
                    .unwrap_or_default()
                    .max(MIN_RECHECK)
            });
            let subscribed = self.state.names().is_some();
            let force = tokio::select! {
                msg = self.inbound.message() => match msg {
                    Ok(Some(req)) => match self.state.on_request(&req) {
                        Ok(Action::Send) => true,
                        Ok(Action::Nothing) => continue,
                        Err(status) => {
                            let _ = self.tx.send(Err(status)).await;
                            return;
                        }
                    },
                    Ok(None) => return,
                    Err(status) => {
                        tracing::debug!(%status, "SDS stream ended by Envoy");
                        return;
                    }
                },
                changed = self.snapshots.changed(), if subscribed => {
                    if changed.is_err() {
                        return;
                    }
                    false
                }
                () = sleep_opt(pause), if subscribed => false,
                () = self.tx.closed() => return,
                () = self.stop.stopped() => return,
            };
            match self.push(force).await {
                Ok(next) => wake = next,
                Err(()) => return,
            }
        }
    }

    /// Sends the current secrets if `force` or if they changed; skips even
    /// building them when the caller's view did not change. Returns the
    /// next expiry re-check time; `Err` ends the stream.
    async fn push(&mut self, force: bool) -> Result<Option<std::time::SystemTime>, ()> {
        let snap = self.snapshots.borrow_and_update().clone();
        let view = match View::of(&snap, &self.caller.selectors, self.clock.now()) {
            Ok(view) => view,
            Err(status) => {
                let _ = self.tx.send(Err(status)).await;
                return Err(());
            }
        };
        let wake = view.next_expiry();
        if !force && self.last_view.as_ref().is_some_and(|v| v.same_as(&view)) {
            return Ok(wake);
        }
        let names = self.state.names().unwrap_or_default();
        let secrets = resources::build(&snap, view.svids(), names);
        if let Err(status) = self.caller.still_same() {
            let _ = self.tx.send(Err(status)).await;
            return Err(());
        }
        self.last_view = Some(view);
        if force || self.state.changed(&secrets) {
            let resp = self.state.respond(snap.generation, secrets);
            tracing::debug!(version = %resp.version_info, nonce = %resp.nonce, n = resp.resources.len(), "SDS push");
            self.tx.send(Ok(resp)).await.map_err(|_| ())?;
        }
        Ok(wake)
    }
}

async fn sleep_opt(d: Option<Duration>) {
    match d {
        Some(d) => tokio::time::sleep(d).await,
        None => std::future::pending().await,
    }
}
