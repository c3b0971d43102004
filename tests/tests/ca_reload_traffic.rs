//! The CA's intermediate is replaced on disk while mTLS traffic flows,
//! every piece a real process: `meshid ca serve` on openssl-made files
//! (`[upstream]`, polled every 200 ms), an agent, and two `meshid proxy`
//! processes (outbound → inbound over mTLS → backend). SVIDs live 20 s, so
//! the agent rotates them every few seconds during the run. Halfway through
//! a bounded request loop the intermediate files are swapped for another
//! intermediate of the same root: no request fails, and the SVIDs the agent
//! serves afterwards chain to the new intermediate.
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::time::{Duration, Instant};

use meshid_tests::certs::read_pem;
use meshid_tests::http::{backend, http};
use meshid_tests::proxy::Listener;
use meshid_tests::{Alg, Cmd, Mesh, Pki, TestProxy, eventually, free_port, tempdir};

/// How long the proxies may take to get their SVIDs and connect.
const READY: Duration = Duration::from_secs(45);
/// Requests before the swap, and at most in all.
const BEFORE_SWAP: usize = 100;
const MAX_REQUESTS: usize = 1500;
/// Requests still sent once the agent serves SVIDs of the new intermediate.
const AFTER_NEW_SVID: usize = 150;
const PAUSE: Duration = Duration::from_millis(20);

/// The intermediate the agent's current X.509-SVID chains to, as written
/// by `meshid agent api fetch --write` (leaf + intermediates).
fn served_intermediate(mesh: &Mesh, out: &Path) -> Option<Vec<u8>> {
    let fetched = Cmd::meshid()
        .args(["agent", "api", "fetch", "--socket"])
        .args([mesh.workload_socket()])
        .args(["--write"])
        .args([out])
        .output();
    if !fetched.status.success() {
        return None;
    }
    read_pem(&out.join("svid.0.pem")).get(1).cloned()
}

#[test]
fn the_intermediate_is_replaced_under_continuous_mtls_traffic_without_a_failed_request() {
    let files = tempdir();
    let pki = Pki::new(files.path());
    pki.root("root", Alg::P256);
    pki.mesh_ca("mesh-a", "root", Alg::P256, "");
    pki.mesh_ca("mesh-b", "root", Alg::P256, "");
    pki.install("mesh-a", "root");
    let mesh = Mesh::builder()
        .ca_config(&format!(
            "default_x509_ttl = \"20s\"\nmax_x509_ttl = \"20s\"\n{}",
            pki.upstream_config("200ms")
        ))
        .start();
    let dir = mesh.tmp.path();
    let mesh_a = read_pem(&pki.cert("mesh-a")).remove(0);
    let mesh_b = read_pem(&pki.cert("mesh-b")).remove(0);
    assert_eq!(
        served_intermediate(&mesh, &dir.join("svid-a")),
        Some(mesh_a)
    );

    // backend ← inbound proxy (mTLS) ← outbound proxy (plain HTTP in).
    let (backend_port, seen) = backend();
    let (inbound, outbound) = (free_port(), free_port());
    let socket = mesh.workload_socket();
    let TestProxy {
        child: mut inbound_proxy,
        ..
    } = TestProxy::start(
        dir,
        &mesh.logs,
        "inbound",
        socket,
        &[Listener::Inbound {
            port: inbound,
            forward_to: backend_port,
        }],
    );
    let TestProxy {
        child: mut outbound_proxy,
        ..
    } = TestProxy::start(
        dir,
        &mesh.logs,
        "outbound",
        socket,
        &[Listener::Outbound {
            port: outbound,
            upstream: inbound,
            server_id: mesh.spiffe_id.clone(),
            pool: true,
        }],
    );
    eventually("a first request through both proxies", READY, || {
        assert!(inbound_proxy.is_running(), "{}", inbound_proxy.log());
        assert!(outbound_proxy.is_running(), "{}", outbound_proxy.log());
        (http(outbound, "GET", "/warm-up").0 == 200).then_some(())
    });

    // The bounded loop: swap after BEFORE_SWAP requests, go on until the
    // agent has served SVIDs of the new intermediate for AFTER_NEW_SVID more.
    let start = Instant::now();
    let mut failed = Vec::new();
    let mut new_svid_at = None;
    let mut sent = 0;
    while sent < MAX_REQUESTS && new_svid_at.is_none_or(|at| sent < at + AFTER_NEW_SVID) {
        let (status, body) = http(outbound, "GET", &format!("/req/{sent}"));
        if status != 200 || body != "hello" {
            failed.push((sent, status, body));
        }
        sent += 1;
        if sent == BEFORE_SWAP {
            pki.install("mesh-b", "root");
        }
        if sent > BEFORE_SWAP && new_svid_at.is_none() && sent.is_multiple_of(25) {
            let out = dir.join(format!("svid-{sent}"));
            if served_intermediate(&mesh, &out).as_ref() == Some(&mesh_b) {
                new_svid_at = Some(sent);
            }
        }
        std::thread::sleep(PAUSE);
    }
    let took = start.elapsed();
    eprintln!(
        "{sent} requests in {took:?}; new-intermediate SVIDs served from request {new_svid_at:?}"
    );
    assert!(
        failed.is_empty(),
        "{} of {sent} requests failed (request, status, body): {failed:?}",
        failed.len()
    );
    assert!(
        new_svid_at.is_some(),
        "after {sent} requests ({took:?}) the agent still serves SVIDs of the old intermediate:\n{}",
        mesh.ca.child.log()
    );
    assert_eq!(
        served_intermediate(&mesh, &dir.join("svid-after")),
        Some(mesh_b),
        "SVIDs fetched after the swap chain to the new intermediate"
    );
    let ca_log = mesh.ca.child.log();
    assert!(
        ca_log.contains("replaced intermediate taken"),
        "the CA did not log the reload:\n{ca_log}"
    );
    let received = seen.lock().unwrap();
    let looped = received
        .iter()
        .filter(|h| h.starts_with("GET /req/"))
        .count();
    assert_eq!(
        looped, sent,
        "every request of the loop reached the backend"
    );
}
