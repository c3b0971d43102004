//! Creating the agent's Unix sockets.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use tokio::net::UnixListener;

/// Why a socket could not be created.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BindError {
    /// The socket's directory could not be created or opened up.
    #[error(
        "cannot prepare socket directory {path}: {source}; check that the agent may write there"
    )]
    Directory {
        /// The directory.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The path exists and is not a socket; refusing to delete it.
    #[error("{0} exists and is not a socket; remove it or choose another socket path")]
    NotASocket(PathBuf),
    /// A directory on the way to the socket does not let other users
    /// through, so workloads running as other users could not connect.
    #[error(
        "socket {socket}: {reason}, so workloads of other users could not connect; \
         put the socket in a directory of its own that others may traverse \
         (e.g. /run/meshid/agent.sock) or `chmod o+x {dir}`"
    )]
    Unreachable {
        /// The socket path.
        socket: PathBuf,
        /// The directory that blocks the way.
        dir: PathBuf,
        /// Why it blocks.
        reason: String,
    },
    /// bind(2) or chmod failed.
    #[error("cannot listen on {path}: {source}")]
    Bind {
        /// The socket path.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
}

/// Checks, before anything is bound, that workloads of other users will be
/// able to reach `socket`: its directory, and every directory of the
/// agent's own `data_dir` on the way, must let others through (`o+x`);
/// `data_dir` itself is created `0700` when missing (it holds the agent's
/// key), so a socket inside a missing `data_dir` is refused too. Other
/// parents that are closed to others are the operator's choice (e.g. a
/// group-only tree) and only logged.
pub fn check_socket_reachable(socket: &Path, data_dir: &Path) -> Result<(), BindError> {
    use std::os::unix::fs::MetadataExt;
    let Some(dir) = socket.parent().filter(|d| !d.as_os_str().is_empty()) else {
        return Ok(());
    };
    let refuse = |d: &Path, reason: String| BindError::Unreachable {
        socket: socket.to_owned(),
        dir: d.to_owned(),
        reason,
    };
    for d in dir.ancestors().take_while(|d| !d.as_os_str().is_empty()) {
        let ours = d == dir || d.starts_with(data_dir);
        match std::fs::metadata(d) {
            Ok(meta) if meta.mode() & 0o001 == 0 => {
                let reason = format!(
                    "directory {} is mode {:o}, closed to other users",
                    d.display(),
                    meta.mode() & 0o7777
                );
                if ours {
                    return Err(refuse(d, reason));
                }
                tracing::warn!(socket = %socket.display(), "{reason}; only users allowed through it can reach the socket");
            }
            Err(_) if d == data_dir => {
                let reason = format!(
                    "it is inside data_dir {}, which the agent creates 0700 because it holds the agent's key",
                    d.display()
                );
                return Err(refuse(d, reason));
            }
            _ => {}
        }
    }
    Ok(())
}

/// Binds a Unix socket at `path` that every local user may connect to.
///
/// Creates missing parent directories (mode 0755), removes a stale socket
/// left by a previous run (never any other kind of file), binds, then sets
/// the socket to mode 0777. Like SPIRE's agent socket, connecting is open
/// to all: the server attests each caller and serves only what its entries
/// grant, so file permissions are not the access control.
pub fn bind_socket(path: &Path) -> Result<UnixListener, BindError> {
    use std::os::unix::fs::FileTypeExt;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty())
        && !dir.exists()
    {
        let dir_err = |source| BindError::Directory {
            path: dir.to_owned(),
            source,
        };
        std::fs::create_dir_all(dir).map_err(dir_err)?;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).map_err(dir_err)?;
    }
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_socket() => {
            std::fs::remove_file(path).map_err(|source| BindError::Bind {
                path: path.to_owned(),
                source,
            })?;
        }
        Ok(_) => return Err(BindError::NotASocket(path.to_owned())),
        Err(_) => {}
    }
    let bind_err = |source| BindError::Bind {
        path: path.to_owned(),
        source,
    };
    let listener = UnixListener::bind(path).map_err(bind_err)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o777)).map_err(bind_err)?;
    Ok(listener)
}
