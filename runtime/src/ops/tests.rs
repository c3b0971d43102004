use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use futures::future::BoxFuture;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::registry::Registry;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use super::*;

/// A running ops server; dropping `stop` shuts it down.
struct Running {
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
}

impl Running {
    async fn start(server: OpsServer) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(server.serve(listener, async move {
            let _ = rx.await;
        }));
        Self {
            addr,
            stop: Some(tx),
            task,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    async fn stop(mut self) {
        drop(self.stop.take());
        tokio::time::timeout(Duration::from_secs(10), &mut self.task)
            .await
            .expect("the server stops")
            .unwrap();
    }
}

/// One raw request; the whole answer (head and body) as text, empty if
/// the server closed (or reset) the connection without one.
async fn raw(addr: SocketAddr, request: &str) -> String {
    let mut s = TcpStream::connect(addr).await.unwrap();
    let mut out = Vec::new();
    if s.write_all(request.as_bytes()).await.is_ok() {
        let _ = s.read_to_end(&mut out).await;
    }
    String::from_utf8(out).unwrap()
}

async fn get(addr: SocketAddr, path: &str) -> String {
    raw(addr, &format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n")).await
}

fn header<'a>(answer: &'a str, name: &str) -> Option<&'a str> {
    answer.lines().find_map(|l| {
        let (n, v) = l.split_once(':')?;
        n.eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

/// A registry with one counter at 3, and a readiness flag.
fn server(ready: Arc<AtomicBool>) -> OpsServer {
    let mut registry = Registry::with_prefix("demo");
    let c = Counter::<u64, AtomicU64>::default();
    c.inc_by(3);
    registry.register("things", "Things seen", c);
    let check = from_fn(move || {
        if ready.load(Ordering::SeqCst) {
            Ok(())
        } else {
            Err(NotReady::new("not synced with the CA yet"))
        }
    });
    OpsServer::new(Arc::new(registry), Arc::new(check))
}

#[tokio::test]
async fn readyz_is_503_with_the_reason_until_ready_then_200() {
    let ready = Arc::new(AtomicBool::new(false));
    let s = Running::start(server(ready.clone())).await;

    let answer = get(s.addr, "/readyz").await;
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    assert!(
        answer.ends_with("\r\n\r\nnot synced with the CA yet\n"),
        "{answer}"
    );
    let err = probe(&s.url("/readyz"), Duration::from_secs(5))
        .await
        .unwrap_err();
    assert!(
        matches!(err, ProbeError::Status { status, .. } if status == 503),
        "{err}"
    );
    assert!(
        err.to_string().ends_with("not synced with the CA yet"),
        "{err}"
    );

    ready.store(true, Ordering::SeqCst);
    let answer = get(s.addr, "/readyz").await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.ends_with("\r\n\r\nready\n"), "{answer}");
    assert_eq!(
        probe(&s.url("/readyz"), Duration::from_secs(5))
            .await
            .unwrap(),
        "ready\n"
    );
    assert!(get(s.addr, "/healthz").await.ends_with("\r\n\r\nok\n"));
    s.stop().await;
}

#[tokio::test]
async fn every_reason_is_one_line_and_a_slow_check_is_not_ready() {
    struct Slow;
    impl Readiness for Slow {
        fn check(&self) -> BoxFuture<'_, Result<(), NotReady>> {
            Box::pin(async {
                tokio::time::sleep(Duration::from_secs(3600)).await;
                Ok(())
            })
        }
    }
    let two =
        from_fn(|| NotReady::from_reasons(vec!["store: down\n".into(), "issuance: no key".into()]));
    let s = Running::start(OpsServer::new(Arc::new(Registry::default()), Arc::new(two))).await;
    assert!(
        get(s.addr, "/readyz")
            .await
            .ends_with("\r\n\r\nstore: down\nissuance: no key\n")
    );
    s.stop().await;

    let limits = OpsLimits {
        request_timeout: Duration::from_millis(100),
        ..OpsLimits::default()
    };
    let server = OpsServer::new(Arc::new(Registry::default()), Arc::new(Slow)).limits(limits);
    let s = Running::start(server).await;
    let answer = get(s.addr, "/readyz").await;
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    assert!(answer.contains("did not finish within 100ms"), "{answer}");
    s.stop().await;
}

#[tokio::test]
async fn metrics_are_openmetrics_text_of_the_registry() {
    let s = Running::start(server(Arc::new(AtomicBool::new(true)))).await;
    let answer = get(s.addr, "/metrics").await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert_eq!(header(&answer, "content-type"), Some(METRICS_CONTENT_TYPE));
    assert!(answer.contains("# TYPE demo_things counter\n"), "{answer}");
    assert!(answer.contains("\ndemo_things_total 3\n"), "{answer}");
    assert!(answer.ends_with("# EOF\n"), "{answer}");
    s.stop().await;
}

#[tokio::test]
async fn unknown_paths_are_404_and_other_methods_405() {
    let s = Running::start(server(Arc::new(AtomicBool::new(true)))).await;
    let answer = get(s.addr, "/nope").await;
    assert!(answer.starts_with("HTTP/1.1 404"), "{answer}");
    assert_eq!(
        header(&answer, "content-type"),
        Some("text/plain; charset=utf-8")
    );
    assert!(
        answer.ends_with("try /healthz, /readyz or /metrics\n"),
        "{answer}"
    );

    let answer = raw(
        s.addr,
        "POST /readyz HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n",
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 405"), "{answer}");
    assert_eq!(header(&answer, "allow"), Some("GET"));
    s.stop().await;
}

#[tokio::test]
async fn a_client_that_sends_its_header_slowly_is_dropped() {
    let limits = OpsLimits {
        header_read_timeout: Duration::from_millis(200),
        ..OpsLimits::default()
    };
    let s = Running::start(server(Arc::new(AtomicBool::new(true))).limits(limits)).await;
    let (mut read, mut write) = TcpStream::connect(s.addr).await.unwrap().into_split();
    // One header byte every 50 ms, never the blank line (at most 10 s).
    let trickle = tokio::spawn(async move {
        write.write_all(b"GET /healthz HTTP/1.1\r\n").await.unwrap();
        for b in b"X-Slow: ".iter().cycle().take(200) {
            if write.write_all(&[*b]).await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    });
    let mut answer = Vec::new();
    let closed = tokio::time::timeout(Duration::from_secs(5), read.read_to_end(&mut answer)).await;
    assert!(closed.is_ok(), "the slow client was not dropped");
    assert!(
        !answer.starts_with(b"HTTP/1.1 200"),
        "a partial request was answered"
    );
    trickle.abort();
    // The server still answers others.
    assert!(get(s.addr, "/healthz").await.starts_with("HTTP/1.1 200"));
    s.stop().await;
}

#[tokio::test]
async fn connections_over_the_cap_are_closed_at_once_until_one_ends() {
    let limits = OpsLimits {
        max_connections: 2,
        ..OpsLimits::default()
    };
    let s = Running::start(server(Arc::new(AtomicBool::new(true))).limits(limits)).await;
    let idle = [
        TcpStream::connect(s.addr).await.unwrap(),
        TcpStream::connect(s.addr).await.unwrap(),
    ];
    // Once the server has accepted both, a third is closed unanswered.
    let mut refused = false;
    for _ in 0..100 {
        if get(s.addr, "/healthz").await.is_empty() {
            refused = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(refused, "a third connection was served over a cap of 2");
    drop(idle);
    let mut served = false;
    for _ in 0..100 {
        if get(s.addr, "/healthz").await.starts_with("HTTP/1.1 200") {
            served = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        served,
        "no connection was served after the idle ones closed"
    );
    s.stop().await;
}

#[tokio::test]
async fn shutdown_finishes_the_request_in_flight() {
    /// Holds `/readyz` until a permit is added; says when a check started.
    struct Gate {
        open: tokio::sync::Semaphore,
        entered: tokio::sync::Notify,
    }
    impl Readiness for Gate {
        fn check(&self) -> BoxFuture<'_, Result<(), NotReady>> {
            Box::pin(async {
                self.entered.notify_one();
                let _ = self.open.acquire().await;
                Ok(())
            })
        }
    }
    let gate = Arc::new(Gate {
        open: tokio::sync::Semaphore::new(0),
        entered: tokio::sync::Notify::new(),
    });
    let s = Running::start(OpsServer::new(Arc::new(Registry::default()), gate.clone())).await;
    let addr = s.addr;
    let pending = tokio::spawn(async move { get(addr, "/readyz").await });
    tokio::time::timeout(Duration::from_secs(10), gate.entered.notified())
        .await
        .expect("the request reaches the readiness check");
    // Shut down while the request is in flight; once the listener is gone,
    // let the check finish: the answer must still arrive.
    drop(s.stop);
    let mut closed = false;
    for _ in 0..500 {
        if TcpStream::connect(addr).await.is_err() {
            closed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(closed, "still accepting after shutdown");
    gate.open.add_permits(1);
    let answer = tokio::time::timeout(Duration::from_secs(10), pending)
        .await
        .unwrap()
        .unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    tokio::time::timeout(Duration::from_secs(10), s.task)
        .await
        .unwrap()
        .unwrap();
}

#[tokio::test]
async fn probe_reports_a_closed_port_and_bad_urls() {
    let closed = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = closed.local_addr().unwrap();
    drop(closed);
    let err = probe(&format!("http://{addr}/readyz"), Duration::from_secs(5))
        .await
        .unwrap_err();
    assert!(matches!(err, ProbeError::Connect { .. }), "{err}");
    for url in [
        "https://127.0.0.1:1/readyz",
        "127.0.0.1:1",
        "http://u@127.0.0.1:1/",
    ] {
        let err = probe(url, Duration::from_secs(1)).await.unwrap_err();
        assert!(matches!(err, ProbeError::BadUrl { .. }), "{url}: {err}");
    }
}

#[tokio::test]
async fn probe_gives_up_on_a_server_that_never_answers() {
    let silent = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/readyz", silent.local_addr().unwrap());
    let err = probe(&url, Duration::from_millis(200)).await.unwrap_err();
    assert!(matches!(err, ProbeError::TimedOut { .. }), "{err}");
    drop(silent);
}
