//! The SPIFFE Workload API on a Unix socket.
//!
//! ```text
//!  workload ──UDS──▶ UdsConnection (SO_PEERCRED) ──▶ header check
//!                                                        │
//!                 WorkloadAttestor::attest ──▶ selectors ◀┘
//!                                                 │
//!      watch::Receiver<Arc<Snapshot>> ──▶ Snapshot::svids_for(selectors, now)
//!                                                 │
//!   FetchX509SVID / FetchX509Bundles / FetchJWTBundles: full state, then a
//!   new message whenever what this caller may see changes
//! ```
//!
//! Access control: every request must carry the metadata
//! `workload.spiffe.io: true` (else `InvalidArgument`, as the spec asks, so
//! a browser or SSRF cannot reach the API). The caller is attested from the
//! kernel's peer credentials; a caller matching no entry gets
//! `PermissionDenied`. Selectors are computed once per RPC (they describe a
//! process, which does not change identity), but before every message the
//! server checks that the pid still names the very process that connected
//! and ends the stream otherwise.
//!
//! The socket is created world-connectable (mode 0777, like SPIRE's): any
//! local process may *ask*, attestation decides what it *gets*. See
//! [`bind_socket`].
//!
//! Interop note: gRPC C-core clients (Python `grpcio`, C++, Ruby) dialing
//! `unix:/path` send the socket path as the HTTP/2 `:authority`, which the
//! HTTP/2 server refuses (`RST_STREAM` PROTOCOL_ERROR). Such clients must
//! set the channel option `grpc.default_authority` to `localhost` (as our
//! Python test client does). The `spiffe` Rust crate is unaffected.

mod caller;
mod jwt;
pub(crate) mod messages;
mod service;
mod socket;
mod view;
mod watch_stream;

pub use jwt::{JwtMinter, MintError};
pub use service::WorkloadApi;
pub use socket::{BindError, bind_socket};

pub(crate) use caller::{Caller, ShutdownSignal};
pub(crate) use view::View;
pub(crate) use watch_stream::{Build, watch_stream};

use std::future::Future;
use std::sync::Arc;

use meshid_proto::workload::spiffe_workload_api_server::SpiffeWorkloadApiServer;
use tokio::net::UnixListener;
use tokio::sync::watch;

use crate::attestor::{self, WorkloadAttestor};
use crate::cache::Snapshot;
use crate::clock::SharedClock;

/// Largest request the Workload API decodes (requests are tiny; a JWT to
/// validate is the largest at 8 KiB).
pub const MAX_REQUEST_SIZE: usize = 64 * 1024;

/// Most concurrent RPCs (HTTP/2 streams) one connection may hold open,
/// so a single caller cannot pin unbounded server tasks.
pub const MAX_STREAMS_PER_CONNECTION: u32 = 64;

/// Serves the Workload API on `listener` until `shutdown` completes. Open
/// streams end when `shutdown` completes, so it returns promptly.
pub async fn serve(
    listener: UnixListener,
    snapshots: watch::Receiver<Arc<Snapshot>>,
    attestor: Arc<dyn WorkloadAttestor>,
    jwt: Arc<dyn JwtMinter>,
    clock: SharedClock,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), tonic::transport::Error> {
    let (signal, stop) = ShutdownSignal::new(shutdown);
    let api = WorkloadApi::new(snapshots, attestor, jwt, clock, stop);
    let service = SpiffeWorkloadApiServer::new(api)
        .max_decoding_message_size(MAX_REQUEST_SIZE)
        .max_encoding_message_size(meshid_proto::MAX_MESSAGE_SIZE);
    tonic::transport::Server::builder()
        .max_concurrent_streams(MAX_STREAMS_PER_CONNECTION)
        .add_service(service)
        .serve_with_incoming_shutdown(attestor::incoming(listener), signal)
        .await
}
