//! Listener hardening: idle and slow (slow-loris) connections are closed,
//! each listener holds at most `connections.max_per_listener`, and
//! legitimate requests still pass while hostile connections are held.
#![allow(clippy::unwrap_used)]

#[path = "support/net.rs"]
mod net;
#[path = "support/pki.rs"]
mod pki;

use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A sidecar pair whose outbound listener has `limits` (YAML flow map).
async fn pair_with(dir: &std::path::Path, limits: &str) -> (net::Pair, SocketAddr) {
    let ca = pki::Ca::new("example.org");
    let server = ca.write_svid(dir, "server", "spiffe://example.org/backend");
    let client = ca.write_svid(dir, "client", "spiffe://example.org/app");
    let backend = net::http_backend().await;
    let inbound = net::proxy(&net::inbound_yaml(&server, backend, "http", "")).await;
    let yaml = net::outbound_yaml(
        &client,
        inbound.bound.inbound[0],
        "spiffe://example.org/backend",
        "http",
    ) + &format!("connections: {limits}\nops_listen: \"127.0.0.1:0\"\n");
    let outbound = net::proxy(&yaml).await;
    net::ready(&inbound).await;
    net::ready(&outbound).await;
    let out = outbound.bound.outbound[0];
    let ops = outbound.bound.ops.unwrap();
    (
        net::Pair {
            inbound,
            outbound,
            out,
        },
        ops,
    )
}

/// True if the peer closes `s` within `within` (EOF or reset; a short
/// error response before the close is fine).
async fn closed_within(s: &mut TcpStream, within: Duration) -> bool {
    let mut buf = [0u8; 512];
    let read_to_end = async {
        loop {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    };
    tokio::time::timeout(within, read_to_end).await.is_ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_and_slow_connections_are_closed() {
    let dir = tempfile::tempdir().unwrap();
    let (p, _) = pair_with(
        dir.path(),
        "{ idle_timeout_secs: 1, header_read_timeout_secs: 1 }",
    )
    .await;
    // Never sends a byte.
    let mut idle = TcpStream::connect(p.out).await.unwrap();
    // Slow-loris: a header line one byte at a time, never finished.
    let mut slow = TcpStream::connect(p.out).await.unwrap();
    let drip = async {
        for b in b"GET /hello HTTP/1.1\r\nHost: svc.test\r\nX-Slow: aaaaaaaaaaaaaaaa" {
            if slow.write_all(&[*b]).await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(10), drip)
        .await
        .ok();
    assert!(
        closed_within(&mut slow, Duration::from_secs(5)).await,
        "slow-loris kept open"
    );
    assert!(
        closed_within(&mut idle, Duration::from_secs(5)).await,
        "idle connection kept open"
    );
    // A keep-alive connection that goes idle after a request is closed too,
    // and a normal request still works.
    let (status, _, body) = net::get_h1(p.out, "GET", "/hello").await;
    assert_eq!((status, body.as_str()), (200, "backend GET /hello"));
    p.outbound.stop().await;
    p.inbound.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_listener_refuses_and_counts_then_recovers() {
    let dir = tempfile::tempdir().unwrap();
    let (p, ops) = pair_with(dir.path(), "{ max_per_listener: 4, idle_timeout_secs: 60 }").await;
    let mut held = Vec::new();
    for _ in 0..4 {
        held.push(TcpStream::connect(p.out).await.unwrap());
    }
    // The open gauge reaches the cap before the next one is tried.
    let gauge = format!(
        "meshid_proxy_listener_connections{{direction=\"outbound\",listen=\"{}\"}} 4",
        p.out
    );
    let gauge_at = |n: usize| gauge.replace("} 4", &format!("}} {n}"));
    let open_gauge_is = |n: usize| {
        let line = gauge_at(n);
        async move {
            let metrics = net::get_h1(ops, "GET", "/metrics").await.2;
            metrics.contains(&line).then_some(())
        }
    };
    meshid_tests::eventually_async("the open gauge at the cap", net::WAIT, || open_gauge_is(4))
        .await;
    let mut extra = TcpStream::connect(p.out).await.unwrap();
    assert!(
        closed_within(&mut extra, Duration::from_secs(5)).await,
        "over the cap: closed at once"
    );
    let metrics = net::get_h1(ops, "GET", "/metrics").await.2;
    assert!(
        metrics.contains(&format!(
            "meshid_proxy_listener_connections_refused_total{{direction=\"outbound\",listen=\"{}\"}} 1",
            p.out
        )),
        "{metrics}"
    );
    // Closing held connections frees slots: a legitimate request passes
    // while the other hostile connections are still held.
    held.truncate(2);
    meshid_tests::eventually_async("slots to be freed", net::WAIT, || open_gauge_is(2)).await;
    let (status, _, body) = net::get_h1(p.out, "GET", "/hello").await;
    assert_eq!((status, body.as_str()), (200, "backend GET /hello"));
    drop(held);
    p.outbound.stop().await;
    p.inbound.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_tcp_connections_are_closed_and_busy_ones_kept() {
    let dir = tempfile::tempdir().unwrap();
    let ca = pki::Ca::new("example.org");
    let server = ca.write_svid(dir.path(), "server", "spiffe://example.org/backend");
    let client = ca.write_svid(dir.path(), "client", "spiffe://example.org/app");
    let limits = "connections: { idle_timeout_secs: 1 }\n";
    let echo = net::echo_backend().await;
    let inbound = net::proxy(&net::inbound_yaml(&server, echo, "tcp", limits)).await;
    let outbound = net::proxy(
        &(net::outbound_yaml(
            &client,
            inbound.bound.inbound[0],
            "spiffe://example.org/backend",
            "tcp",
        ) + limits),
    )
    .await;
    net::ready(&inbound).await;
    net::ready(&outbound).await;
    let out = outbound.bound.outbound[0];
    // Never sends a byte.
    let mut idle = TcpStream::connect(out).await.unwrap();
    // Echoes a byte every 400 ms for 2.4 s: longer than the timeout in
    // all, never idle for it.
    let mut busy = TcpStream::connect(out).await.unwrap();
    for i in 0..6u8 {
        let echoed = async {
            busy.write_all(&[i]).await.unwrap();
            let mut b = [0u8; 1];
            busy.read_exact(&mut b).await.map(|_| b[0])
        };
        let got = tokio::time::timeout(net::WAIT, echoed).await;
        assert!(matches!(got, Ok(Ok(b)) if b == i), "round {i}: {got:?}");
        tokio::time::sleep(Duration::from_millis(400)).await;
    }
    assert!(
        closed_within(&mut idle, Duration::from_secs(5)).await,
        "idle TCP connection kept open"
    );
    assert!(
        closed_within(&mut busy, Duration::from_secs(5)).await,
        "TCP connection kept open after it went idle"
    );
    outbound.stop().await;
    inbound.stop().await;
}
