//! Plain HTTP/1.1 on loopback for tests: a backend that records what it
//! receives, a one-request client and a keep-alive client.

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
    if s.write_all(request(method, path, false).as_bytes())
        .is_err()
    {
        return (0, String::new());
    }
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    let text = String::from_utf8_lossy(&out);
    let status = text.lines().next().map_or(0, status_of);
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

/// A request head with no body; `keep_alive` leaves the connection open.
fn request(method: &str, path: &str, keep_alive: bool) -> String {
    let connection = if keep_alive { "keep-alive" } else { "close" };
    format!(
        "{method} {path} HTTP/1.1\r\nhost: svc.example.org\r\ncontent-length: 0\r\nconnection: {connection}\r\n\r\n"
    )
}

/// The status code of a status line, 0 if it is not one.
fn status_of(line: &str) -> u16 {
    line.split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0)
}

/// Why a [`Client`] request got no answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Failure {
    /// No TCP connection.
    Connect,
    /// The server closed a connection that had already carried a response
    /// before this request was answered (a dropped keep-alive connection).
    ClosedReused,
    /// The server closed a fresh connection before answering.
    Closed,
    /// Reading or writing failed (including the timeout).
    Io(std::io::ErrorKind),
    /// The response head was not HTTP/1.1 with a length.
    Malformed,
}

/// The longest response head and body a [`Client`] reads.
const MAX_RESPONSE: usize = 64 * 1024;

/// An HTTP/1.1 client of `127.0.0.1:port`. Keep-alive: one connection
/// stays open across requests, a new one is opened only after the server
/// closed it (`connection: close`, or a response without a length).
/// Otherwise every request has a connection of its own.
#[derive(Debug)]
pub struct Client {
    port: u16,
    keep_alive: bool,
    conn: Option<(TcpStream, u64)>,
    /// Connections opened so far.
    pub connections: u64,
}

impl Client {
    /// A client for `127.0.0.1:port`; it connects on the first request.
    pub fn new(port: u16, keep_alive: bool) -> Self {
        Self {
            port,
            keep_alive,
            conn: None,
            connections: 0,
        }
    }

    /// Sends `method path` and reads the response: (status, body).
    pub fn send(&mut self, method: &str, path: &str) -> Result<(u16, String), Failure> {
        if self.conn.is_none() {
            let s = TcpStream::connect(("127.0.0.1", self.port)).map_err(|_| Failure::Connect)?;
            let _ = s.set_read_timeout(Some(IO_TIMEOUT));
            self.connections += 1;
            self.conn = Some((s, 0));
        }
        let Some((mut s, used)) = self.conn.take() else {
            return Err(Failure::Connect);
        };
        s.write_all(request(method, path, self.keep_alive).as_bytes())
            .map_err(|e| Failure::Io(e.kind()))?;
        let (status, body, open) = read_response(&mut s).map_err(|f| match f {
            Failure::Closed if used > 0 => Failure::ClosedReused,
            f => f,
        })?;
        if open && self.keep_alive {
            self.conn = Some((s, used + 1));
        }
        Ok((status, body))
    }
}

/// Reads one response with a `content-length` (or up to EOF when the server
/// closes): (status, body, whether the connection stays open).
fn read_response(s: &mut TcpStream) -> Result<(u16, String, bool), Failure> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        if buf.len() > MAX_RESPONSE {
            return Err(Failure::Malformed);
        }
        match s.read(&mut chunk) {
            Ok(0) if buf.is_empty() => return Err(Failure::Closed),
            Ok(0) => return Err(Failure::Malformed),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) => return Err(Failure::Io(e.kind())),
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_ascii_lowercase();
    let header = |name: &str| {
        head.lines()
            .find_map(|l| l.strip_prefix(name).and_then(|v| v.strip_prefix(':')))
            .map(str::trim)
    };
    let status = head.lines().next().map_or(0, status_of);
    let close = header("connection") == Some("close");
    let mut body = buf[head_end..].to_vec();
    match header("content-length").map(str::parse::<usize>) {
        Some(Ok(len)) if len <= MAX_RESPONSE => {
            while body.len() < len {
                match s.read(&mut chunk) {
                    Ok(0) => return Err(Failure::Malformed),
                    Ok(n) => body.extend_from_slice(&chunk[..n]),
                    Err(e) => return Err(Failure::Io(e.kind())),
                }
            }
            body.truncate(len);
            Ok((status, String::from_utf8_lossy(&body).into_owned(), !close))
        }
        Some(_) => Err(Failure::Malformed),
        None if close => {
            let _ = Read::take(&mut *s, u64::try_from(MAX_RESPONSE).unwrap_or(u64::MAX))
                .read_to_end(&mut body);
            Ok((status, String::from_utf8_lossy(&body).into_owned(), false))
        }
        None => Err(Failure::Malformed),
    }
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
    fn a_keep_alive_client_reconnects_after_the_server_closes() {
        let (port, seen) = backend();
        let mut c = Client::new(port, true);
        for i in 0..3 {
            assert_eq!(c.send("GET", &format!("/k/{i}")), Ok((200, "hello".into())));
        }
        // The backend answers `connection: close`: one connection each.
        assert_eq!(c.connections, 3);
        assert_eq!(seen.lock().unwrap_or_else(|e| panic!("{e}")).len(), 3);
        assert_eq!(
            Client::new(crate::free_port(), false).send("GET", "/"),
            Err(Failure::Connect)
        );
    }

    #[test]
    fn a_closed_port_is_status_0() {
        assert_eq!(http(crate::free_port(), "GET", "/").0, 0);
    }
}
