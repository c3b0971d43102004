//! Serving the admin API on a local Unix socket.
//!
//! By default its directory is made `0700` and the socket `0600`, so only
//! the CA's user (and root) can call it; they are its implicit
//! cluster-admins ([`default_admins`]). Opened (`[rbac] socket_open`, or
//! any `uid:`/`gid:` binding) the socket is `0666` and its directory gains
//! `0055`, so every local user can connect and the peer's uid and gid
//! (`SO_PEERCRED`) decide what they may do.
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

/// The socket peers that are cluster-admins without a binding: root and
/// the CA's own user (the owner of `/proc/self`).
pub fn default_admins() -> Vec<u32> {
    use std::os::unix::fs::MetadataExt;
    let mut uids = vec![0];
    if let Ok(meta) = std::fs::metadata("/proc/self")
        && meta.uid() != 0
    {
        uids.push(meta.uid());
    }
    uids
}

/// Binds the admin socket at `path` for the CA's user only; see [`bind_for`].
pub fn bind(path: &Path) -> io::Result<UnixListener> {
    bind_for(path, false)
}

/// Binds the admin socket at `path`: creates its directory (`0700`) if
/// missing, replaces a stale socket left by a previous run, and restricts the
/// socket to its owner (`0600`), or with `open` makes it `0666` and its
/// directory searchable by all (`0055` added). Refuses to replace anything
/// that is not a socket.
pub fn bind_for(path: &Path, open: bool) -> io::Result<UnixListener> {
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
    if open {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            let mode = std::fs::metadata(dir)?.permissions().mode();
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(mode | 0o055))?;
        }
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o666))?;
    } else {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    }
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
