//! Envoy's Secret Discovery Service (SDS v3) on a Unix socket.
//!
//! Envoy connects over a `pipe` cluster; the agent attests it like any
//! workload (Envoy's process must match an entry) and serves these secrets:
//!
//! | resource name        | secret                                                     |
//! |----------------------|------------------------------------------------------------|
//! | `default`            | the caller's first SVID (`TlsCertificate`, PEM inline)      |
//! | `spiffe://td/path`   | that SVID, if the caller is entitled to it                  |
//! | `ROOTCA`             | own trust domain roots (`trusted_ca`)                       |
//! | `ALL`                | own + federated roots via Envoy's SPIFFE cert validator     |
//! | `spiffe://td`        | that trust domain's roots, if own or federated for the caller |
//!
//! An unknown or unentitled name is left out of the response with a
//! warning in the agent's log (as SPIRE does); Envoy then keeps waiting for
//! that secret, and its listener stays warming, which is visible in Envoy's
//! admin `/config_dump`.
//!
//! Protocol (state of the world, [`StreamSecrets`](https://www.envoyproxy.io/docs/envoy/latest/api-docs/xds_protocol)):
//! every response carries `version_info` (the snapshot generation) and a
//! fresh nonce; a request echoing the last nonce without `error_detail` is
//! an ACK and gets nothing; with `error_detail` it is a NACK, logged, and
//! the same content is not sent again (only a changed secret is); a request
//! naming other resources gets them at once; a request with a stale nonce
//! is ignored. Every open stream gets a push when its secrets change
//! (rotation, bundle update, expiry). `DeltaSecrets` is `Unimplemented`.

mod resources;
mod service;
mod xds;

pub use resources::{ALL, DEFAULT, ROOTCA, SPIFFE_VALIDATOR};
pub use service::SecretDiscovery;

use std::future::Future;
use std::sync::Arc;

use meshid_proto::envoy::pb::envoy::service::secret::v3::secret_discovery_service_server::SecretDiscoveryServiceServer;
use meshid_runtime::uds::UdsListener;
use tokio::sync::watch;

use crate::attestor::{self, WorkloadAttestor};
use crate::cache::Snapshot;
use crate::workload_api::{MAX_STREAMS_PER_CONNECTION, ShutdownSignal};
use meshid_runtime::clock::SharedClock;

/// Largest DiscoveryRequest accepted (Envoy's node metadata included).
pub const MAX_REQUEST_SIZE: usize = 1024 * 1024;

/// Most resource names one request may subscribe to.
pub const MAX_RESOURCE_NAMES: usize = 256;

/// Serves SDS on `listener` (a `UnixListener` gets the default limits)
/// until `shutdown` completes; open streams end then too.
pub async fn serve(
    listener: impl Into<UdsListener>,
    snapshots: watch::Receiver<Arc<Snapshot>>,
    attestor: Arc<dyn WorkloadAttestor>,
    clock: SharedClock,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), tonic::transport::Error> {
    let (signal, stop) = ShutdownSignal::new(shutdown);
    let sds = SecretDiscovery::new(snapshots, attestor, clock, stop);
    let service = SecretDiscoveryServiceServer::new(sds)
        .max_decoding_message_size(MAX_REQUEST_SIZE)
        .max_encoding_message_size(meshid_proto::MAX_MESSAGE_SIZE);
    tonic::transport::Server::builder()
        .max_concurrent_streams(MAX_STREAMS_PER_CONNECTION)
        .add_service(service)
        .serve_with_incoming_shutdown(attestor::incoming(listener), signal)
        .await
}
