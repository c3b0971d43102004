//! Authorization end to end: per-request HTTP decisions, per-connection TCP
//! decisions, and audit mode.
#![allow(clippy::unwrap_used)]

#[path = "support/net.rs"]
mod net;
#[path = "support/pki.rs"]
mod pki;

use std::path::Path;

const HTTP_POLICY: &str = r#"
policies:
  - name: frontend-reads-hello
    action: ALLOW
    rules:
      - from: [{ source: { principals: ["example.org/frontend"] } }]
        to: [{ operation: { methods: ["GET"], paths: ["/hello"] } }]
"#;

struct Pair {
    _dir: tempfile::TempDir,
    inbound: meshid_proxy::run::Running,
    outbound: meshid_proxy::run::Running,
}

async fn pair(
    dir: tempfile::TempDir,
    policy: &str,
    protocol: &str,
    backend: std::net::SocketAddr,
    extra: &str,
) -> Pair {
    let ca = pki::Ca::new("example.org");
    let server = ca.write_svid(dir.path(), "server", "spiffe://example.org/backend");
    let client = ca.write_svid(dir.path(), "client", "spiffe://example.org/frontend");
    let policy_path = dir.path().join("policy.yaml");
    std::fs::write(&policy_path, policy).unwrap();
    let extra = format!("policy: \"{}\"\n{extra}", policy_path.display());
    let inbound = net::proxy(&net::inbound_yaml(&server, backend, protocol, &extra)).await;
    let outbound = net::proxy(&net::outbound_yaml(
        &client,
        inbound.bound.inbound[0],
        "spiffe://example.org/backend",
        protocol,
    ))
    .await;
    net::ready(&inbound).await;
    net::ready(&outbound).await;
    Pair {
        _dir: dir,
        inbound,
        outbound,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_requests_are_authorized_one_by_one() {
    let backend = net::http_backend().await;
    let p = pair(
        tempfile::tempdir().unwrap(),
        HTTP_POLICY,
        "http",
        backend,
        "",
    )
    .await;
    let out = p.outbound.bound.outbound[0];
    let (status, _, body) = net::get_h1(out, "GET", "/hello").await;
    assert_eq!((status, body.as_str()), (200, "backend GET /hello"));
    let (status, headers, body) = net::get_h1(out, "POST", "/admin").await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(
        headers["x-meshid-denied"].to_str().unwrap(),
        "denied: no ALLOW policy matched"
    );
    assert!(!body.contains("backend"));
    p.outbound.stop().await;
    p.inbound.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn denied_tcp_port_closes_the_connection() {
    let echo = net::echo_backend().await;
    let policy = format!(
        r#"
policies:
  - name: no-db
    action: DENY
    rules:
      - to: [{{ operation: {{ ports: ["{}"] }} }}]
"#,
        echo.port()
    );
    let p = pair(tempfile::tempdir().unwrap(), &policy, "tcp", echo, "").await;
    assert!(
        net::tcp_roundtrip(p.outbound.bound.outbound[0], b"hello")
            .await
            .is_empty()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_mode_lets_denied_requests_through_and_logs_them() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("access.log");
    let backend = net::http_backend().await;
    let extra = format!("mode: audit\naccess_log: \"{}\"", log.display());
    let p = pair_with_log(dir, backend, &extra).await;
    let out = p.outbound.bound.outbound[0];
    let (status, _, body) = net::get_h1(out, "POST", "/admin").await;
    assert_eq!((status, body.as_str()), (200, "backend POST /admin"));
    let line = wait_for_line(&log, "\"/admin\"").await;
    let v: serde_json::Value = serde_json::from_str(&line).unwrap();
    assert_eq!(v["decision"], "deny(audit)");
    assert_eq!(v["source"], "spiffe://example.org/frontend");
    assert_eq!(v["status"], 200);
}

async fn pair_with_log(dir: tempfile::TempDir, backend: std::net::SocketAddr, extra: &str) -> Pair {
    let ca = pki::Ca::new("example.org");
    let server = ca.write_svid(dir.path(), "server", "spiffe://example.org/backend");
    let client = ca.write_svid(dir.path(), "client", "spiffe://example.org/frontend");
    let policy_path = dir.path().join("policy.yaml");
    std::fs::write(&policy_path, HTTP_POLICY).unwrap();
    let yaml = net::inbound_yaml(&server, backend, "http", "").replace("access_log: \"off\"", "")
        + &format!("policy: \"{}\"\n{extra}\n", policy_path.display());
    let inbound = net::proxy(&yaml).await;
    let outbound = net::proxy(&net::outbound_yaml(
        &client,
        inbound.bound.inbound[0],
        "spiffe://example.org/backend",
        "http",
    ))
    .await;
    net::ready(&inbound).await;
    net::ready(&outbound).await;
    Pair {
        _dir: dir,
        inbound,
        outbound,
    }
}

/// Polls `path` (bounded) for a line containing `needle`.
pub async fn wait_for_line(path: &Path, needle: &str) -> String {
    for _ in 0..500 {
        if let Ok(text) = std::fs::read_to_string(path)
            && let Some(l) = text.lines().find(|l| l.contains(needle))
        {
            return l.to_owned();
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    panic!(
        "no access log line containing {needle} in {}",
        path.display()
    );
}
