//! Scenario (2) of live CA rotation: the CA signs with an intermediate of
//! an openssl-made enterprise root, read from files it watches
//! (`[upstream]`). While continuous load runs over meshid proxy → meshid
//! proxy and Envoy (SDS from the agent) → meshid proxy, pooled and one TLS
//! handshake per request, the operator writes a new intermediate of the
//! same root into the files. No request fails, no agent, proxy or Envoy
//! restarts, every served SVID is re-issued under the new intermediate
//! (issuer and AKI), each served SVID has exactly one issuance record, and
//! the bundle holds the enterprise root alone.
#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use meshid_identity::x509::pem_certs;
use meshid_tests::certs::{authority_key_id, read_pem, serial, subject_key_id};
use meshid_tests::load::Load;
use meshid_tests::{Alg, Mesh, Pki, Traffic, eventually_every, tempdir};

/// Requests sent before the swap, and after every SVID is re-issued (about
/// 20s: the SVIDs renew once more under the new intermediate meanwhile).
const LOAD_BEFORE: u64 = 200;
const LOAD_AFTER: u64 = 3000;
/// How long the agent may take to re-issue every SVID (SVIDs live 20s and
/// are renewed at half their life; the file watch polls every 200ms).
const REISSUED: Duration = Duration::from_secs(90);

/// The first certificate of a PEM file.
fn der(path: &std::path::Path) -> Vec<u8> {
    read_pem(path).remove(0)
}

#[test]
fn a_new_enterprise_intermediate_is_taken_under_continuous_mtls_load_without_a_failed_request() {
    let files = tempdir();
    let pki = Pki::new(files.path());
    pki.root("root", Alg::P256);
    pki.mesh_ca("mesh-a", "root", Alg::P256, "");
    pki.mesh_ca("mesh-b", "root", Alg::P256, "");
    pki.install("mesh-a", "root");
    let mut mesh = Mesh::builder()
        .ca_config(&format!(
            "default_x509_ttl = \"20s\"\nmax_x509_ttl = \"20s\"\nagent_ttl = \"30s\"\n{}",
            pki.upstream_config("200ms")
        ))
        .start();
    let mut traffic = Traffic::start(&mesh, "rotation scenario (2), Envoy part");
    let scratch = mesh.tmp.path();
    let (mesh_a, mesh_b) = (der(&pki.cert("mesh-a")), der(&pki.cert("mesh-b")));
    let new_key_id = subject_key_id(&mesh_b, scratch).unwrap();
    for (who, chain) in traffic.served_chains() {
        assert_eq!(chain.get(1), Some(&mesh_a), "{who} before the swap");
    }

    let load = Load::start(traffic.targets());
    load.wait_for_more(LOAD_BEFORE, Duration::from_secs(60));
    pki.install("mesh-b", "root");
    let swapped = Instant::now();
    eventually_every(
        "every proxy and Envoy serving an SVID of the new intermediate",
        REISSUED,
        Duration::from_millis(500),
        || {
            traffic.assert_running();
            let chains = traffic.served_chains();
            chains
                .iter()
                .all(|(_, chain)| chain.get(1) == Some(&mesh_b))
                .then_some(chains)
        },
    );
    // The journal took the new intermediate through prepare → activate.
    let old_key_id = subject_key_id(&mesh_a, scratch).unwrap();
    assert_eq!(mesh.ca.key_ids("x509", "active"), vec![new_key_id.clone()]);
    assert_eq!(mesh.ca.key_ids("x509", "old"), vec![old_key_id]);
    eprintln!(
        "every served SVID under the new intermediate {:.1}s after the swap",
        swapped.elapsed().as_secs_f64()
    );
    load.wait_for_more(LOAD_AFTER, Duration::from_secs(60));
    traffic.finish(load, 50, &mut mesh.agent);
    for (who, chain) in traffic.served_chains() {
        let leaf = &chain[0];
        assert_eq!(chain.get(1), Some(&mesh_b), "{who} after the swap");
        assert_eq!(
            authority_key_id(leaf, scratch).as_ref(),
            Some(&new_key_id),
            "{who}'s SVID is signed by the new intermediate's key"
        );
        assert_eq!(
            mesh.ca.issuance_records(&serial(leaf)),
            vec![new_key_id.clone()],
            "{who}'s SVID has one issuance record, naming its key"
        );
    }
    let bundle = pem_certs(&mesh.ca.bundle_pem()).unwrap();
    assert_eq!(
        bundle.iter().map(|c| c.to_vec()).collect::<Vec<_>>(),
        vec![der(&pki.cert("root"))],
        "the bundle is the enterprise root alone"
    );
    assert!(
        mesh.ca.child.log().contains("replaced intermediate taken"),
        "the CA did not log the new intermediate:\n{}",
        mesh.ca.child.log()
    );
}
