//! Authorization end to end: per-request HTTP decisions, per-connection TCP
//! decisions, and audit mode.
#![allow(clippy::unwrap_used)]

#[path = "support/net.rs"]
mod net;
#[path = "support/pki.rs"]
mod pki;

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
    let line = meshid_tests::wait_for_line(&log, "\"/admin\"", net::WAIT).await;
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

/// The inbound proxy's `/metrics` text.
async fn metrics(p: &meshid_proxy::run::Running) -> String {
    net::get_h1(p.bound.ops.unwrap(), "GET", "/metrics").await.2
}

/// Polls `/metrics` (bounded: the policy file is polled every 2 s) until it
/// has `line`.
async fn wait_for_metric(p: &meshid_proxy::run::Running, line: &str) {
    let what = format!("metric line {line:?}");
    meshid_tests::eventually_async(&what, net::WAIT, || async {
        metrics(p).await.lines().any(|l| l == line).then_some(())
    })
    .await;
}

/// A policy file rewritten in place (truncated to nothing, or cut after a
/// comment) must not open the proxy: the previous policy stays in force
/// and the rejection is counted; allowing everything is written out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn emptied_policy_file_keeps_the_previous_policy() {
    let dir = tempfile::tempdir().unwrap();
    let policy_path = dir.path().join("policy.yaml");
    let backend = net::http_backend().await;
    let p = pair(
        dir,
        HTTP_POLICY,
        "http",
        backend,
        "ops_listen: \"127.0.0.1:0\"",
    )
    .await;
    let out = p.outbound.bound.outbound[0];
    assert_eq!(net::get_h1(out, "POST", "/admin").await.0, 403);

    std::fs::write(&policy_path, "").unwrap();
    wait_for_metric(
        &p.inbound,
        "meshid_proxy_policy_reloads_total{result=\"rejected\"} 1",
    )
    .await;
    assert!(
        metrics(&p.inbound)
            .await
            .contains("meshid_proxy_policy_last_reload_success 0")
    );
    let (status, _, body) = net::get_h1(out, "POST", "/admin").await;
    assert_eq!(
        status, 403,
        "an empty file must not allow everything: {body}"
    );
    assert_eq!(net::get_h1(out, "GET", "/hello").await.0, 200);

    std::fs::write(
        &policy_path,
        "# policies for the backend\n# owner: team-a\n",
    )
    .unwrap();
    wait_for_metric(
        &p.inbound,
        "meshid_proxy_policy_reloads_total{result=\"rejected\"} 2",
    )
    .await;
    assert_eq!(net::get_h1(out, "POST", "/admin").await.0, 403);

    std::fs::write(
        &policy_path,
        "policies: [{ name: allow-all, action: ALLOW, rules: [{}] }]\n",
    )
    .unwrap();
    wait_for_metric(
        &p.inbound,
        "meshid_proxy_policy_reloads_total{result=\"ok\"} 1",
    )
    .await;
    assert!(
        metrics(&p.inbound)
            .await
            .contains("meshid_proxy_policy_last_reload_success 1")
    );
    let (status, _, body) = net::get_h1(out, "POST", "/admin").await;
    assert_eq!(
        (status, body.as_str()),
        (200, "backend POST /admin"),
        "explicit allow-all"
    );
    p.outbound.stop().await;
    p.inbound.stop().await;
}

/// A proxy refuses to start with an empty policy file, naming the file.
#[tokio::test]
async fn proxy_refuses_to_start_with_an_empty_policy_file() {
    let dir = tempfile::tempdir().unwrap();
    let ca = pki::Ca::new("example.org");
    let server = ca.write_svid(dir.path(), "server", "spiffe://example.org/backend");
    let policy_path = dir.path().join("policy.yaml");
    std::fs::write(&policy_path, "# nothing yet\n").unwrap();
    let extra = format!("policy: \"{}\"", policy_path.display());
    let yaml = net::inbound_yaml(&server, "127.0.0.1:9".parse().unwrap(), "http", &extra);
    let cfg = meshid_proxy::ProxyConfig::from_yaml(&yaml).unwrap();
    let e = meshid_proxy::start(cfg).await.unwrap_err().to_string();
    assert!(e.contains(&policy_path.display().to_string()), "{e}");
    assert!(e.contains("lists no policies"), "{e}");
}
