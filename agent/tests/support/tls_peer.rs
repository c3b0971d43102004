//! A TLS server on loopback that presents a chosen X.509-SVID and records
//! what clients did: whether their handshake completed and every byte of
//! application data they sent (a gRPC request's body is in there verbatim,
//! so a join token that reached the server can be found in it).
#![allow(clippy::unwrap_used)]
#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use meshid_identity::PrivateKey;
use rustls::pki_types::CertificateDer;
use tokio::io::AsyncReadExt;

/// Most application bytes recorded per connection.
const MAX_RECORDED: usize = 64 * 1024;
/// A connection idle this long is closed (so the client fails fast).
const IDLE: Duration = Duration::from_millis(300);
/// How long [`TlsPeer::wait_for_handshakes`] waits.
const HANDSHAKES_WITHIN: Duration = Duration::from_secs(5);

/// What the server saw.
#[derive(Debug, Default)]
pub struct Seen {
    /// Connections accepted on TCP.
    pub connections: usize,
    /// TLS handshakes that completed.
    pub handshakes_ok: usize,
    /// TLS handshakes the client (or the server) aborted.
    pub handshakes_failed: usize,
    /// Application data received, all connections concatenated.
    pub received: Vec<u8>,
}

/// A running server; stops when dropped.
pub struct TlsPeer {
    pub addr: SocketAddr,
    pub seen: Arc<Mutex<Seen>>,
    task: tokio::task::JoinHandle<()>,
}

impl TlsPeer {
    /// Serves TLS 1.3 (ALPN h2) with `chain` and `key`, no client auth
    /// required (a client certificate, if sent, is accepted unverified).
    pub async fn start(chain: Vec<CertificateDer<'static>>, key: &PrivateKey) -> Self {
        let provider = meshid_identity::crypto::provider();
        let key = meshid_identity::crypto::private_key_der(key);
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13])
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .unwrap();
        config.alpn_protocols = vec![b"h2".to_vec()];
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(Mutex::new(Seen::default()));
        let task = {
            let seen = seen.clone();
            tokio::spawn(async move {
                while let Ok((tcp, _)) = listener.accept().await {
                    seen.lock().unwrap().connections += 1;
                    tokio::spawn(record(acceptor.clone(), tcp, seen.clone()));
                }
            })
        };
        Self { addr, seen, task }
    }

    /// `host:port` to give the agent as `ca_address`.
    pub fn address(&self) -> String {
        self.addr.to_string()
    }

    /// Waits (bounded) until `n` handshakes finished either way.
    pub async fn wait_for_handshakes(&self, n: usize) {
        let what = format!("{n} finished handshakes");
        meshid_tests::eventually_async(&what, HANDSHAKES_WITHIN, || async {
            let s = self.seen.lock().unwrap();
            (s.handshakes_ok + s.handshakes_failed >= n).then_some(())
        })
        .await;
    }

    /// True if `needle` occurs in the application data received.
    pub fn received_contains(&self, needle: &[u8]) -> bool {
        self.seen
            .lock()
            .unwrap()
            .received
            .windows(needle.len())
            .any(|w| w == needle)
    }
}

impl Drop for TlsPeer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn record(
    acceptor: tokio_rustls::TlsAcceptor,
    tcp: tokio::net::TcpStream,
    seen: Arc<Mutex<Seen>>,
) {
    let mut tls = match acceptor.accept(tcp).await {
        Ok(tls) => tls,
        Err(_) => {
            seen.lock().unwrap().handshakes_failed += 1;
            return;
        }
    };
    seen.lock().unwrap().handshakes_ok += 1;
    let mut buf = vec![0u8; 4096];
    let mut total = 0;
    while total < MAX_RECORDED {
        match tokio::time::timeout(IDLE, tls.read(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => {
                total += n;
                seen.lock().unwrap().received.extend_from_slice(&buf[..n]);
            }
            _ => return,
        }
    }
}
