//! Ports and sockets on this machine only, and a TCP echo server.

use std::collections::BTreeSet;
use std::io::{Read as _, Write as _};
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

/// How long an [`echo`] connection or [`echo_once`] waits for the peer.
const ECHO_TIMEOUT: Duration = Duration::from_secs(10);

/// A TCP server on loopback that writes back every byte it reads, each
/// connection on a thread of its own; its port.
pub fn echo() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("bind: {e}"));
    let port = listener
        .local_addr()
        .unwrap_or_else(|e| panic!("local_addr: {e}"))
        .port();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut s) = stream else { return };
            std::thread::spawn(move || {
                let _ = s.set_read_timeout(Some(ECHO_TIMEOUT));
                let mut buf = [0u8; 16 * 1024];
                loop {
                    match s.read(&mut buf) {
                        Ok(0) | Err(_) => return,
                        Ok(n) => {
                            if s.write_all(&buf[..n]).is_err() {
                                return;
                            }
                        }
                    }
                }
            });
        }
    });
    port
}

/// Connects to `127.0.0.1:port`, writes `data`, reads until as many bytes
/// came back (or the connection ends or times out); what came back.
pub fn echo_once(port: u16, data: &[u8]) -> Vec<u8> {
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else {
        return Vec::new();
    };
    let _ = s.set_read_timeout(Some(ECHO_TIMEOUT));
    if s.write_all(data).is_err() {
        return Vec::new();
    }
    let mut back = Vec::with_capacity(data.len());
    let mut buf = [0u8; 16 * 1024];
    while back.len() < data.len() {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => back.extend_from_slice(&buf[..n]),
        }
    }
    back
}
