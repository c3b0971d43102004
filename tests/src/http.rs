//! Plain HTTP/1.1 on loopback for tests: a backend that records what it
//! receives, and a one-request client.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How long either side waits for the other.
const IO_TIMEOUT: Duration = Duration::from_secs(10);

/// Requests a [`backend`] received: the raw request heads.
pub type Seen = Arc<Mutex<Vec<String>>>;

/// A plain HTTP/1.1 backend on loopback answering every request with
/// 200 "hello" (and closing the connection); records each request head.
/// Returns its port.
pub fn backend() -> (u16, Seen) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("bind: {e}"));
    let port = listener
        .local_addr()
        .unwrap_or_else(|e| panic!("local_addr: {e}"))
        .port();
    let seen: Seen = Arc::default();
    let record = seen.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut s) = stream else { return };
            let record = record.clone();
            std::thread::spawn(move || {
                let _ = s.set_read_timeout(Some(IO_TIMEOUT));
                let mut head = Vec::new();
                let mut buf = [0u8; 4096];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match s.read(&mut buf) {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                if let Ok(mut seen) = record.lock() {
                    seen.push(String::from_utf8_lossy(&head).into_owned());
                }
                let _ = s.write_all(
                    b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 5\r\nconnection: close\r\n\r\nhello",
                );
            });
        }
    });
    (port, seen)
}

/// One HTTP/1.1 request to `127.0.0.1:port`: (status, body); status 0 when
/// the connection failed or no status line came back.
pub fn http(port: u16, method: &str, path: &str) -> (u16, String) {
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else {
        return (0, String::new());
    };
    let _ = s.set_read_timeout(Some(IO_TIMEOUT));
    let req = format!(
        "{method} {path} HTTP/1.1\r\nhost: svc.example.org\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
    );
    if s.write_all(req.as_bytes()).is_err() {
        return (0, String::new());
    }
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    let text = String::from_utf8_lossy(&out);
    let status = text
        .lines()
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_backend_answers_and_records_the_request() {
        let (port, seen) = backend();
        assert_eq!(http(port, "GET", "/x"), (200, "hello".to_owned()));
        let seen = seen.lock().unwrap_or_else(|e| panic!("{e}"));
        assert!(seen[0].starts_with("GET /x HTTP/1.1\r\n"), "{seen:?}");
    }

    #[test]
    fn a_closed_port_is_status_0() {
        assert_eq!(http(crate::free_port(), "GET", "/").0, 0);
    }
}
