//! Listener limits against real Unix sockets, with a raw "server" that
//! reads each admitted connection until it ends or fails.

use std::path::PathBuf;
use std::time::Duration;

use futures::StreamExt;
use prometheus_client::registry::Registry;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::mpsc;

use super::*;
use crate::authority::PREFACE;

const LONG: Duration = Duration::from_secs(30);

struct Server {
    _dir: tempfile::TempDir,
    path: PathBuf,
    /// How each connection ended: `Ok(())` at EOF, else the error kind.
    ended: mpsc::UnboundedReceiver<Result<(), io::ErrorKind>>,
    registry: Registry,
}

/// A listener whose connections echo nothing: the server side reads, and
/// for each HEADERS it receives on stream `n` it writes back the bytes
/// `respond(n)` returns (e.g. an END_STREAM frame).
fn serve(limits: UdsLimits, respond: fn(u32) -> Option<Vec<u8>>) -> Server {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.sock");
    let listener = UnixListener::bind(&path).unwrap();
    let mut registry = Registry::default();
    let metrics = UdsMetrics::register(&mut registry).listener("test");
    let (tx, ended) = mpsc::unbounded_channel();
    let mut conns = Box::pin(UdsListener::new(listener, limits, metrics).incoming(Ok));
    tokio::spawn(async move {
        while let Some(Ok(mut conn)) = conns.next().await {
            let tx = tx.clone();
            tokio::spawn(async move {
                let mut buf = vec![0; 4096];
                let mut seen = Vec::new();
                let mut responded = false;
                let end = loop {
                    match conn.read(&mut buf).await {
                        Ok(0) => break Ok(()),
                        Ok(n) => {
                            seen.extend_from_slice(&buf[..n]);
                            // A HEADERS frame right after the preface and SETTINGS.
                            if !responded && seen.len() >= 43 && seen[36] == 0x1 {
                                let id =
                                    u32::from_be_bytes([seen[38], seen[39], seen[40], seen[41]]);
                                if let Some(reply) = respond(id) {
                                    conn.write_all(&reply).await.unwrap();
                                }
                                responded = true;
                            }
                        }
                        Err(e) => break Err(e.kind()),
                    }
                };
                let _ = tx.send(end);
            });
        }
    });
    Server {
        _dir: dir,
        path,
        ended,
        registry,
    }
}

impl Server {
    async fn connect(&self) -> UnixStream {
        UnixStream::connect(&self.path).await.unwrap()
    }

    async fn next_end(&mut self) -> Result<(), io::ErrorKind> {
        tokio::time::timeout(LONG, self.ended.recv())
            .await
            .expect("no connection ended in time")
            .unwrap()
    }

    fn metrics(&self) -> String {
        let mut s = String::new();
        prometheus_client::encoding::text::encode(&mut s, &self.registry).unwrap();
        s
    }
}

fn short(handshake_ms: u64, idle_ms: u64) -> UdsLimits {
    UdsLimits {
        handshake_timeout: Duration::from_millis(handshake_ms),
        idle_timeout: Duration::from_millis(idle_ms),
        ..UdsLimits::default()
    }
}

/// Preface, empty SETTINGS, and a one-field HEADERS (`:method GET`) on `id`.
fn request(id: u32) -> Vec<u8> {
    let mut v = PREFACE.to_vec();
    v.extend([0, 0, 0, 4, 0, 0, 0, 0, 0]);
    v.extend([0, 0, 1, 1, 0x4]);
    v.extend(id.to_be_bytes());
    v.push(0x82);
    v
}

/// Server HEADERS with END_STREAM | END_HEADERS on `id` (`:status 200`).
fn end_stream(id: u32) -> Option<Vec<u8>> {
    let mut v = vec![0, 0, 1, 1, 0x5];
    v.extend(id.to_be_bytes());
    v.push(0x88);
    Some(v)
}

/// Waits until the peer closes `s` (EOF or reset), within [`LONG`].
async fn closed(s: &mut UnixStream) {
    let mut b = [0u8; 64];
    let r = tokio::time::timeout(LONG, async {
        loop {
            match s.read(&mut b).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await;
    assert!(r.is_ok(), "the server did not close the connection");
}

#[tokio::test]
async fn a_silent_connection_is_closed_after_the_handshake_timeout() {
    let mut server = serve(short(200, 60_000), |_| None);
    let mut c = server.connect().await;
    assert_eq!(server.next_end().await, Err(io::ErrorKind::TimedOut));
    closed(&mut c).await;
    let m = server.metrics();
    assert!(
        m.contains(r#"uds_connections_timed_out_total{listener="test",reason="handshake"} 1"#),
        "{m}"
    );
    assert!(
        m.contains(r#"uds_connections_open{listener="test"} 0"#),
        "{m}"
    );
}

#[tokio::test]
async fn a_slow_client_is_closed_although_it_keeps_sending() {
    let mut server = serve(short(300, 60_000), |_| None);
    let mut c = server.connect().await;
    let bytes = request(1);
    let writer = tokio::spawn(async move {
        for b in bytes {
            if c.write_all(&[b]).await.is_err() {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        false
    });
    assert_eq!(server.next_end().await, Err(io::ErrorKind::TimedOut));
    assert!(
        writer.await.unwrap(),
        "the slow client could send everything"
    );
}

#[tokio::test]
async fn idle_closes_only_connections_without_an_open_stream() {
    // Stream 1 ends at once (server END_STREAM): the connection goes idle.
    let mut server = serve(short(5_000, 200), end_stream);
    let mut c = server.connect().await;
    c.write_all(&request(1)).await.unwrap();
    assert_eq!(server.next_end().await, Err(io::ErrorKind::TimedOut));
    closed(&mut c).await;
    let m = server.metrics();
    assert!(
        m.contains(r#"uds_connections_timed_out_total{listener="test",reason="idle"} 1"#),
        "{m}"
    );

    // The server never ends stream 1: a long watch is never cut.
    let mut server = serve(short(5_000, 100), |_| None);
    let mut c = server.connect().await;
    c.write_all(&request(1)).await.unwrap();
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert!(server.ended.try_recv().is_err(), "an active stream was cut");
    // A client reset of that stream makes it idle, and it is closed.
    c.write_all(&[0, 0, 4, 3, 0, 0, 0, 0, 1, 0, 0, 0, 8])
        .await
        .unwrap();
    assert_eq!(server.next_end().await, Err(io::ErrorKind::TimedOut));
}

#[tokio::test]
async fn bytes_that_are_not_http2_close_the_connection() {
    let mut server = serve(short(5_000, 5_000), |_| None);
    let mut c = server.connect().await;
    c.write_all(b"GET / HTTP/1.1\r\n\r\n").await.unwrap();
    assert_eq!(server.next_end().await, Err(io::ErrorKind::InvalidData));
}

#[tokio::test]
async fn per_user_and_total_caps_refuse_at_once_and_free_on_close() {
    let limits = UdsLimits {
        max_connections: 10,
        max_connections_per_uid: 2,
        ..UdsLimits::default()
    };
    let server = serve(limits, |_| None);
    let a = server.connect().await;
    let _b = server.connect().await;
    let mut refused = server.connect().await;
    closed(&mut refused).await;
    drop(a);
    // The place is free again once the first connection is gone.
    meshid_eventually(|| {
        server
            .metrics()
            .contains(r#"uds_connections_open{listener="test"} 1"#)
    })
    .await;
    let mut c = server.connect().await;
    c.write_all(&PREFACE[..4]).await.unwrap();
    let mut b = [0u8; 1];
    assert!(
        tokio::time::timeout(Duration::from_millis(300), c.read(&mut b))
            .await
            .is_err(),
        "an admitted connection was closed"
    );
    let m = server.metrics();
    assert!(
        m.contains(
            r#"uds_connections_refused_total{listener="test",reason="max_connections_per_uid"} 1"#
        ),
        "{m}"
    );

    let limits = UdsLimits {
        max_connections: 1,
        ..UdsLimits::default()
    };
    let server = serve(limits, |_| None);
    let _a = server.connect().await;
    let mut refused = server.connect().await;
    closed(&mut refused).await;
    let m = server.metrics();
    assert!(
        m.contains(r#"uds_connections_refused_total{listener="test",reason="max_connections"} 1"#),
        "{m}"
    );
}

async fn meshid_eventually(mut f: impl FnMut() -> bool) {
    for _ in 0..300 {
        if f() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("condition not met in time");
}
