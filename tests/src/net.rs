//! Ports and sockets on this machine only.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::time::Duration;

use crate::eventually;

/// A TCP port on 127.0.0.1 that was free a moment ago.
pub fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("bind: {e}"));
    l.local_addr()
        .unwrap_or_else(|e| panic!("local_addr: {e}"))
        .port()
}

/// Waits until something accepts TCP connections on `127.0.0.1:port`.
pub fn wait_for_port(port: u16, timeout: Duration) {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    eventually(&format!("port {port} to accept"), timeout, || {
        TcpStream::connect_timeout(&addr, Duration::from_millis(100))
            .ok()
            .map(|_| ())
    });
}

/// Waits until a Unix socket at `path` accepts connections.
pub fn wait_for_socket(path: &Path, timeout: Duration) {
    eventually(&format!("socket {}", path.display()), timeout, || {
        std::os::unix::net::UnixStream::connect(path)
            .ok()
            .map(|_| ())
    });
}
