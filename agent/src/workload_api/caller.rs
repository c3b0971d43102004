//! Who is calling: header check, attestation, and the server's stop signal.

use std::future::Future;

use meshid_identity::Selector;
use tokio::sync::watch;
use tonic::{Request, Status};

use crate::attestor::{PeerInfo, ProcessIdentity, WorkloadAttestor};

/// An attested caller: the process that connected and its selectors.
#[derive(Debug, Clone)]
pub(crate) struct Caller {
    /// The connected process, pinned by its start time.
    pub(crate) process: ProcessIdentity,
    /// What the attestor found.
    pub(crate) selectors: Vec<Selector>,
}

// === impl Caller ===

impl Caller {
    /// Fails with `InvalidArgument` unless the request carries the
    /// Workload API security header `workload.spiffe.io: true`.
    pub(crate) fn check_header<T>(request: &Request<T>) -> Result<(), Status> {
        match request.metadata().get(meshid_proto::WORKLOAD_HEADER) {
            Some(v) if v.as_bytes() == b"true" => Ok(()),
            _ => Err(Status::invalid_argument(
                "security header missing from request: \
                 Workload API calls must carry the metadata `workload.spiffe.io: true`",
            )),
        }
    }

    /// Attests the peer that sent `request`.
    pub(crate) async fn attest<T>(
        request: &Request<T>,
        attestor: &dyn WorkloadAttestor,
    ) -> Result<Self, Status> {
        let Some(peer) = request.extensions().get::<PeerInfo>().copied() else {
            return Err(Status::internal(
                "the connection carries no peer credentials; the server is misconfigured",
            ));
        };
        let process = peer.process().map_err(|e| {
            tracing::info!(pid = peer.pid, error = %e, "caller vanished before attestation");
            Status::permission_denied(format!("could not attest the caller: {e}"))
        })?;
        let selectors = attestor.attest(&peer).await.map_err(|e| {
            tracing::warn!(pid = peer.pid, uid = peer.uid, error = %e, "workload attestation failed");
            Status::permission_denied(format!("could not attest the caller: {e}"))
        })?;
        tracing::debug!(
            pid = peer.pid,
            uid = peer.uid,
            ?selectors,
            "caller attested"
        );
        Ok(Self { process, selectors })
    }

    /// `PermissionDenied` unless the pid still names the process that
    /// connected. Call right before sending anything.
    pub(crate) fn still_same(&self) -> Result<(), Status> {
        if self.process.still_same() {
            Ok(())
        } else {
            Err(Status::permission_denied(
                "the calling process exited or its pid was reused; reconnect",
            ))
        }
    }
}

/// Tells long-lived streams that the server is stopping.
#[derive(Debug, Clone)]
pub(crate) struct ShutdownSignal {
    rx: watch::Receiver<bool>,
}

// === impl ShutdownSignal ===

impl ShutdownSignal {
    /// Wraps `shutdown`: returns the future to give tonic (it completes
    /// when `shutdown` does, after raising the signal) and the signal.
    pub(crate) fn new(
        shutdown: impl Future<Output = ()> + Send,
    ) -> (impl Future<Output = ()> + Send, Self) {
        let (tx, rx) = watch::channel(false);
        let fut = async move {
            shutdown.await;
            let _ = tx.send(true);
        };
        (fut, Self { rx })
    }

    /// Completes once the server is stopping.
    pub(crate) async fn stopped(&mut self) {
        // An error means the sender is gone: the server is gone too.
        let _ = self.rx.wait_for(|stop| *stop).await;
    }
}
