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

use meshid_identity::x509::pem_certs;
use meshid_tests::http::{backend, http};
use meshid_tests::{Alg, Child, Cmd, Mesh, Pki, eventually, free_port, tempdir};

/// How long the proxies may take to get their SVIDs and connect.
const READY: Duration = Duration::from_secs(45);
/// Requests before the swap, and at most in all.
const BEFORE_SWAP: usize = 100;
const MAX_REQUESTS: usize = 1500;
/// Requests still sent once the agent serves SVIDs of the new intermediate.
const AFTER_NEW_SVID: usize = 150;
const PAUSE: Duration = Duration::from_millis(20);

/// Puts `text` at `path` by renaming a sibling over it.
fn replace(path: &Path, text: &[u8]) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

/// Points the CA's files at intermediate `mesh` (key first, then chain).
fn install(pki: &Pki, mesh: &str) {
    replace(
        &pki.dir.join("key.pem"),
        &std::fs::read(pki.key(mesh)).unwrap(),
    );
    replace(
        &pki.dir.join("chain.pem"),
        &std::fs::read(pki.cert(mesh)).unwrap(),
    );
}

fn der(path: &Path) -> Vec<Vec<u8>> {
    pem_certs(&std::fs::read_to_string(path).unwrap())
        .unwrap()
        .into_iter()
        .map(|c| c.to_vec())
        .collect()
}

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
    der(&out.join("svid.0.pem")).get(1).cloned()
}

/// `meshid proxy run` on `body` (YAML), logging into the mesh's log dir.
fn proxy(mesh: &Mesh, name: &str, body: String) -> Child {
    let file = mesh.tmp.path().join(format!("{name}-proxy.yaml"));
    std::fs::write(&file, body).unwrap();
    Cmd::meshid()
        .args(["proxy", "run", "--config"])
        .args([&file])
        .spawn(&mesh.logs)
}

#[test]
fn the_intermediate_is_replaced_under_continuous_mtls_traffic_without_a_failed_request() {
    let files = tempdir();
    let pki = Pki::new(files.path());
    pki.root("root", Alg::P256);
    pki.mesh_ca("mesh-a", "root", Alg::P256, "");
    pki.mesh_ca("mesh-b", "root", Alg::P256, "");
    replace(
        &pki.dir.join("root.pem"),
        &std::fs::read(pki.cert("root")).unwrap(),
    );
    install(&pki, "mesh-a");
    let show = |n: &str| pki.dir.join(n).display().to_string();
    let mesh = Mesh::builder()
        .ca_config(&format!(
            "default_x509_ttl = \"20s\"\nmax_x509_ttl = \"20s\"\n\
             [upstream]\ncert_chain_file = {:?}\nkey_file = {:?}\nroot_file = {:?}\n\
             watch_interval = \"200ms\"\n",
            show("chain.pem"),
            show("key.pem"),
            show("root.pem"),
        ))
        .start();
    let dir = mesh.tmp.path();
    let mesh_a = der(&pki.cert("mesh-a")).remove(0);
    let mesh_b = der(&pki.cert("mesh-b")).remove(0);
    assert_eq!(
        served_intermediate(&mesh, &dir.join("svid-a")),
        Some(mesh_a)
    );

    // backend ← inbound proxy (mTLS) ← outbound proxy (plain HTTP in).
    let (backend_port, seen) = backend();
    let (inbound, outbound) = (free_port(), free_port());
    let socket = mesh.workload_socket().display().to_string();
    let mut inbound_proxy = proxy(
        &mesh,
        "inbound",
        format!(
            "identity:\n  workload_api: {{ socket: {socket:?} }}\ninbound:\n  - {{ listen: \
             \"127.0.0.1:{inbound}\", forward_to: \"127.0.0.1:{backend_port}\", protocol: http }}\n\
             ops_listen: \"127.0.0.1:{}\"\n",
            free_port(),
        ),
    );
    let mut outbound_proxy = proxy(
        &mesh,
        "outbound",
        format!(
            "identity:\n  workload_api: {{ socket: {socket:?} }}\noutbound:\n  - {{ listen: \
             \"127.0.0.1:{outbound}\", upstream: \"127.0.0.1:{inbound}\", server_id: {:?}, \
             protocol: http }}\nops_listen: \"127.0.0.1:{}\"\n",
            mesh.spiffe_id,
            free_port(),
        ),
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
            install(&pki, "mesh-b");
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
