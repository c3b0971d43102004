//! The client side: a tonic [`Channel`] to a gRPC server on a Unix socket.
//!
//! Every meshid client of a local socket (the CLI on the CA's admin socket,
//! the proxy and the CLI on the agent's Workload API, tests and benchmarks)
//! opens its channel with [`channel`]: the socket is dialled by path, the
//! connect is bounded by [`CONNECT_TIMEOUT`] (also when the channel
//! reconnects later), and requests carry `:authority` `localhost`, the
//! value gRPC's own Unix-socket clients send and the one the
//! [`authority`](crate::authority) rewrite turns other values into.

use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use hyper_util::rt::TokioIo;
use tokio::net::UnixStream;
use tonic::transport::{Channel, Endpoint};

/// Longest time a connect to the socket may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// The URI of every Unix-socket channel. Only its authority is sent
/// (as `:authority`); the connector dials the socket path.
const URI: &str = "http://localhost";

/// Why [`channel`] could not connect. Each message names the socket and
/// what is wrong with it; callers add what to do (which server to start,
/// which flag points elsewhere).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ChannelError {
    /// No socket exists at the path.
    #[error("no Unix socket at {} (its server has not created it, or the path is wrong)", .path.display())]
    NotFound {
        /// The socket path.
        path: PathBuf,
    },
    /// The socket file exists but no process accepts on it.
    #[error(
        "nothing accepts connections on the Unix socket {} (its server has stopped)",
        .path.display()
    )]
    Refused {
        /// The socket path.
        path: PathBuf,
    },
    /// The socket (or a directory above it) may not be opened by this user.
    #[error(
        "permission denied on the Unix socket {} (check its owner and mode, and those of the directories above it)",
        .path.display()
    )]
    PermissionDenied {
        /// The socket path.
        path: PathBuf,
    },
    /// The connect did not complete within [`CONNECT_TIMEOUT`].
    #[error("the Unix socket {} did not accept the connection within {CONNECT_TIMEOUT:?}", .path.display())]
    TimedOut {
        /// The socket path.
        path: PathBuf,
    },
    /// Any other failure, with its cause.
    #[error("cannot connect to the Unix socket {}: {reason}", .path.display())]
    Other {
        /// The socket path.
        path: PathBuf,
        /// The underlying errors, outermost first.
        reason: String,
    },
}

// === impl ChannelError ===

impl ChannelError {
    /// The socket the connect was for.
    pub fn path(&self) -> &Path {
        match self {
            Self::NotFound { path }
            | Self::Refused { path }
            | Self::PermissionDenied { path }
            | Self::TimedOut { path }
            | Self::Other { path, .. } => path,
        }
    }

    fn new(path: PathBuf, err: &tonic::transport::Error) -> Self {
        let mut chain: Vec<String> = Vec::new();
        let mut kind = None;
        let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(err);
        while let Some(e) = cause {
            if let Some(io) = e.downcast_ref::<io::Error>() {
                kind.get_or_insert(io.kind());
            }
            chain.push(e.to_string());
            cause = e.source();
        }
        match kind {
            Some(io::ErrorKind::NotFound) => Self::NotFound { path },
            Some(io::ErrorKind::ConnectionRefused) => Self::Refused { path },
            Some(io::ErrorKind::PermissionDenied) => Self::PermissionDenied { path },
            Some(io::ErrorKind::TimedOut) => Self::TimedOut { path },
            _ => Self::Other {
                path,
                reason: chain.join(": "),
            },
        }
    }
}

/// A channel to the gRPC server on the Unix socket at `path`, connected
/// before it is returned (so a missing server is reported here, not on the
/// first call). If the connection drops, the channel dials the same path
/// again on the next call.
pub async fn channel(path: impl AsRef<Path>) -> Result<Channel, ChannelError> {
    let path = path.as_ref().to_path_buf();
    let target = path.clone();
    let connector = tower::service_fn(move |_: http::Uri| {
        let target = target.clone();
        async move { UnixStream::connect(target).await.map(TokioIo::new) }
    });
    Endpoint::from_static(URI)
        .connect_timeout(CONNECT_TIMEOUT)
        .connect_with_connector(connector)
        .await
        .map_err(|e| ChannelError::new(path, &e))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests;
