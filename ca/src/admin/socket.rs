//! Serving the admin API on a local Unix socket.
//!
//! The socket is the admin API's only authentication: its directory is made
//! `0700` and the socket `0600`, so only the CA's user (and root) can call it.
//! Connections go through `meshid_runtime::uds` (default limits and
//! timeouts, and the `:authority` rewrite so gRPC C-core, Java and Swift
//! clients, which send the socket path as `:authority`, are served).

use std::future::Future;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use meshid_runtime::uds::UdsListener;
use tokio::net::UnixListener;

use super::AdminService;

/// Binds the admin socket at `path`: creates its directory (`0700`) if
/// missing, replaces a stale socket left by a previous run, and restricts the
/// socket to its owner (`0600`). Refuses to replace anything that is not a
/// socket.
pub fn bind(path: &Path) -> io::Result<UnixListener> {
    if let Some(dir) = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty() && !d.exists())
    {
        std::fs::create_dir_all(dir)?;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
    }
    match std::fs::symlink_metadata(path) {
        Ok(meta) => {
            use std::os::unix::fs::FileTypeExt;
            if !meta.file_type().is_socket() {
                return Err(io::Error::new(
                    io::ErrorKind::AlreadyExists,
                    format!(
                        "{} exists and is not a socket; remove it or choose another admin socket path",
                        path.display()
                    ),
                ));
            }
            if std::os::unix::net::UnixStream::connect(path).is_ok() {
                return Err(io::Error::new(
                    io::ErrorKind::AddrInUse,
                    format!(
                        "another process serves {}; stop it or choose another admin socket path",
                        path.display()
                    ),
                ));
            }
            std::fs::remove_file(path)?;
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let listener = UnixListener::bind(path)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    Ok(listener)
}

/// Serves `service` on `listener` (a `UnixListener` gets the default
/// limits) until `shutdown` completes.
pub async fn serve(
    service: AdminService,
    listener: impl Into<UdsListener>,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), tonic::transport::Error> {
    tonic::transport::Server::builder()
        .add_service(service.into_server())
        .serve_with_incoming_shutdown(listener.into().incoming(Ok), shutdown)
        .await
}
