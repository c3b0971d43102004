//! Ports and sockets on this machine only.

use std::collections::BTreeSet;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

use crate::eventually;

/// A TCP port on 127.0.0.1 that was free a moment ago and that this test
/// process has not handed out before (the kernel may return one ephemeral
/// port twice in a row once its probe socket is closed; two components of
/// one test must not be given the same port).
pub fn free_port() -> u16 {
    static GIVEN: Mutex<BTreeSet<u16>> = Mutex::new(BTreeSet::new());
    for _ in 0..64 {
        let l = TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("bind: {e}"));
        let port = l
            .local_addr()
            .unwrap_or_else(|e| panic!("local_addr: {e}"))
            .port();
        let mut given = GIVEN.lock().unwrap_or_else(|e| e.into_inner());
        if given.insert(port) {
            return port;
        }
    }
    panic!("no loopback port left that this test process has not used");
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
