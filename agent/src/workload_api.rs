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
//! Connections go through `meshid_runtime::uds`: a cap on connections in
//! total and per Unix user, a handshake (header-read) timeout, an idle
//! timeout for connections without an open stream (an open
//! `FetchX509SVID` watch is never cut), and the `:authority` rewrite that
//! lets gRPC C-core (Python `grpcio`, pyspiffe, C++, Ruby), grpc-java and
//! grpc-swift clients in: they send the socket path, percent-encoded, as
//! the HTTP/2 `:authority`, which the HTTP/2 server would refuse with
//! `RST_STREAM(PROTOCOL_ERROR)` (see `meshid_runtime::authority`).

mod caller;
mod jwt;
pub(crate) mod messages;
mod service;
mod socket;
mod view;
mod watch_stream;

pub use jwt::{JwtMinter, MintError};
pub use service::WorkloadApi;
pub use socket::{BindError, bind_socket, check_socket_reachable};

pub(crate) use caller::{Caller, ShutdownSignal};
pub(crate) use view::View;
pub(crate) use watch_stream::{Build, watch_stream};

use std::future::Future;
use std::sync::Arc;

use meshid_proto::workload::spiffe_workload_api_server::SpiffeWorkloadApiServer;
use meshid_runtime::uds::UdsListener;
use tokio::sync::watch;

use crate::attestor::{self, WorkloadAttestor};
use crate::cache::Snapshot;
use meshid_runtime::clock::SharedClock;

/// Largest request the Workload API decodes (requests are tiny; a JWT to
/// validate is the largest at 8 KiB).
pub const MAX_REQUEST_SIZE: usize = 64 * 1024;

/// Most concurrent RPCs (HTTP/2 streams) one connection may hold open,
/// so a single caller cannot pin unbounded server tasks.
pub const MAX_STREAMS_PER_CONNECTION: u32 = 64;

/// Serves the Workload API on `listener` (a `UnixListener` gets the
/// default limits) until `shutdown` completes. Open streams end when
/// `shutdown` completes, so it returns promptly.
pub async fn serve(
    listener: impl Into<UdsListener>,
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
