//! Peer authentication end to end: an inbound proxy under STRICT,
//! PERMISSIVE and DISABLE, seen by a plain HTTP client and by an mTLS
//! client (an outbound proxy), with a port-level override chosen by the
//! pod's labels file, a principal-only policy, and a mode change on reload.
#![allow(clippy::unwrap_used)]

#[path = "support/net.rs"]
mod net;
#[path = "support/pki.rs"]
mod pki;

use meshid_proxy::run::Running;
use meshid_tests::eventually_async;
use std::net::SocketAddr;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The frontend may call; nobody else (so not an unauthenticated peer).
const FRONTEND_ONLY: &str = r#"
policies:
  - name: shop/frontend-only
    action: ALLOW
    rules: [{ from: [{ source: { principals: ["example.org/frontend"] } }] }]
"#;

const ALLOW_ALL: &str = "policies: [{ name: meshid/allow-all, action: ALLOW, rules: [{}] }]\n";

/// A plaintext HTTP/1.1 GET straight to `addr`; the status line's code,
/// or `None` if the proxy closed the connection without an answer.
async fn plain_get(addr: SocketAddr) -> Option<u16> {
    let talk = async {
        let mut s = TcpStream::connect(addr).await.ok()?;
        s.write_all(b"GET /hello HTTP/1.1\r\nhost: svc.test\r\nconnection: close\r\n\r\n")
            .await
            .ok()?;
        let mut out = Vec::new();
        let _ = s.read_to_end(&mut out).await;
        let text = String::from_utf8_lossy(&out);
        text.strip_prefix("HTTP/1.1 ")?.get(..3)?.parse().ok()
    };
    tokio::time::timeout(net::WAIT, talk).await.unwrap()
}

/// The inbound proxy of `app=legacy` with its own labels file, forwarding
/// its two listeners to `apps` (one HTTP backend each), policy `policy`.
struct Inbound {
    proxy: Running,
    policy: std::path::PathBuf,
    ca: pki::Ca,
    dir: tempfile::TempDir,
}

async fn inbound(policy: &str, apps: &[SocketAddr]) -> Inbound {
    let http: Vec<_> = apps.iter().map(|a| (*a, "http")).collect();
    inbound_with(policy, &http).await
}

/// [`inbound`] with a protocol per listener.
async fn inbound_with(policy: &str, apps: &[(SocketAddr, &str)]) -> Inbound {
    let dir = tempfile::tempdir().unwrap();
    let ca = pki::Ca::new("example.org");
    let svid = ca.write_svid(dir.path(), "server", "spiffe://example.org/backend");
    let (policy_path, labels) = (dir.path().join("policy.yaml"), dir.path().join("labels"));
    std::fs::write(&policy_path, policy).unwrap();
    std::fs::write(&labels, "app=\"legacy\"\n").unwrap();
    let listeners: String = apps
        .iter()
        .map(|(a, protocol)| {
            format!(
                "  - {{ listen: \"127.0.0.1:0\", forward_to: \"{a}\", protocol: {protocol} }}\n"
            )
        })
        .collect();
    let yaml = format!(
        r#"
identity:
  files: {{ cert: "{}", key: "{}", bundle: "{}", poll_ms: 50 }}
inbound:
{listeners}access_log: "off"
ops_listen: "127.0.0.1:0"
policy: "{}"
pod_labels_file: "{}"
"#,
        svid.cert.display(),
        svid.key.display(),
        svid.bundle.display(),
        policy_path.display(),
        labels.display(),
    );
    let proxy = net::proxy(&yaml).await;
    net::ready(&proxy).await;
    Inbound {
        proxy,
        policy: policy_path,
        ca,
        dir,
    }
}

impl Inbound {
    /// An mTLS client: an outbound proxy presenting
    /// `spiffe://example.org/<name>`, to inbound listener `i`.
    async fn client(&self, name: &str, i: usize) -> Running {
        let id = format!("spiffe://example.org/{name}");
        let svid = self.ca.write_svid(self.dir.path(), name, &id);
        let to = self.proxy.bound.inbound[i];
        let out = net::proxy(&net::outbound_yaml(
            &svid,
            to,
            "spiffe://example.org/backend",
            "http",
        ))
        .await;
        net::ready(&out).await;
        out
    }
}

async fn mtls_get(client: &Running) -> u16 {
    net::get_h1(client.bound.outbound[0], "GET", "/hello")
        .await
        .0
}

async fn metric(p: &Running, series: &str) -> u64 {
    let (_, _, text) = net::get_h1(p.bound.ops.unwrap(), "GET", "/metrics").await;
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn permissive_takes_plaintext_and_mtls_and_policy_still_needs_a_principal() {
    let app = net::http_backend().await;
    let pa = "peerAuthentication: [{ name: shop/default, scope: namespace, mode: PERMISSIVE }]\n";
    let inb = inbound(&format!("{ALLOW_ALL}{pa}"), &[app]).await;
    let listen = inb.proxy.bound.inbound[0];
    assert_eq!(plain_get(listen).await, Some(200));
    let frontend = inb.client("frontend", 0).await;
    assert_eq!(mtls_get(&frontend).await, 200);
    let plain = "meshid_proxy_inbound_peer_authentication_total{peer_authentication=\"PERMISSIVE\",transport=\"plaintext\"}";
    let mtls = "meshid_proxy_inbound_peer_authentication_total{peer_authentication=\"PERMISSIVE\",transport=\"mtls\"}";
    assert_eq!(metric(&inb.proxy, plain).await, 1);
    assert!(metric(&inb.proxy, mtls).await >= 1);

    // A policy naming principals never matches the unauthenticated peer.
    std::fs::write(&inb.policy, format!("{FRONTEND_ONLY}{pa}")).unwrap();
    eventually_async("frontend-only in force", net::WAIT, || async {
        (plain_get(listen).await == Some(403)).then_some(())
    })
    .await;
    assert_eq!(mtls_get(&frontend).await, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strict_refuses_plaintext_disable_refuses_mtls_and_reload_switches() {
    let app = net::http_backend().await;
    let inb = inbound(ALLOW_ALL, &[app]).await;
    let listen = inb.proxy.bound.inbound[0];
    let frontend = inb.client("frontend", 0).await;
    // No peerAuthentication: STRICT.
    assert_eq!(plain_get(listen).await, None);
    assert_eq!(mtls_get(&frontend).await, 200);

    // DISABLE: plaintext only; a TLS client's handshake reaches the app.
    let pa = "peerAuthentication: [{ name: meshid-system/default, scope: mesh, mode: DISABLE }]\n";
    std::fs::write(&inb.policy, format!("{ALLOW_ALL}{pa}")).unwrap();
    eventually_async("DISABLE in force", net::WAIT, || async {
        (plain_get(listen).await == Some(200)).then_some(())
    })
    .await;
    // Mode changes apply to new connections: the pooled one lives on, a
    // new client's handshake fails.
    assert_eq!(mtls_get(&frontend).await, 200);
    let late = inb.client("late", 0).await;
    assert_eq!(mtls_get(&late).await, 502);

    // Back to STRICT by an explicit item.
    std::fs::write(
        &inb.policy,
        format!("{ALLOW_ALL}{}", pa.replace("DISABLE", "STRICT")),
    )
    .unwrap();
    eventually_async("STRICT in force", net::WAIT, || async {
        (plain_get(listen).await.is_none()).then_some(())
    })
    .await;
    let again = inb.client("again", 0).await;
    assert_eq!(mtls_get(&again).await, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn port_level_override_for_the_labelled_workload() {
    let (strict_app, open_app) = (net::http_backend().await, net::http_backend().await);
    let pa = format!(
        r#"peerAuthentication:
  - {{ name: shop/default, scope: namespace, mode: PERMISSIVE }}
  - {{ name: shop/legacy, scope: workload, selector: {{ matchLabels: {{ app: legacy }} }},
      mode: STRICT, portLevelMtls: {{ "{}": {{ mode: DISABLE }} }} }}
"#,
        open_app.port()
    );
    let inb = inbound(&format!("{ALLOW_ALL}{pa}"), &[strict_app, open_app]).await;
    let (strict, open) = (inb.proxy.bound.inbound[0], inb.proxy.bound.inbound[1]);
    // The workload item (STRICT) beats the namespace's PERMISSIVE...
    assert_eq!(plain_get(strict).await, None);
    let frontend = inb.client("frontend", 0).await;
    assert_eq!(mtls_get(&frontend).await, 200);
    // ...and its port-level DISABLE beats both on the other port.
    assert_eq!(plain_get(open).await, Some(200));

    // Relabelled: the workload item no longer applies, the namespace's does.
    std::fs::write(inb.dir.path().join("labels"), "app=\"web\"\n").unwrap();
    eventually_async("PERMISSIVE on the first port", net::WAIT, || async {
        (plain_get(strict).await == Some(200)).then_some(())
    })
    .await;
    assert_eq!(mtls_get(&frontend).await, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn permissive_tcp_listener_takes_plaintext_and_authorizes_it_per_connection() {
    let echo = net::echo_backend().await;
    let pa = "peerAuthentication: [{ name: m, scope: mesh, mode: PERMISSIVE }]\n";
    let inb = inbound_with(&format!("{ALLOW_ALL}{pa}"), &[(echo, "tcp")]).await;
    let listen = inb.proxy.bound.inbound[0];
    assert_eq!(net::tcp_roundtrip(listen, b"ping").await, b"ping");
    // Principal-only: the plaintext connection is closed unanswered.
    std::fs::write(&inb.policy, format!("{FRONTEND_ONLY}{pa}")).unwrap();
    eventually_async("frontend-only in force", net::WAIT, || async {
        net::tcp_roundtrip(listen, b"ping")
            .await
            .is_empty()
            .then_some(())
    })
    .await;
}
