//! An enterprise root CA through the whole agent path, every piece real:
//! chains made with the `openssl` CLI under one RSA-4096 root, `meshid ca
//! serve` on them (`[upstream]`), `meshid agent run` attested by join
//! token, and for each chain kind one run in which
//!
//! - the SVID the agent serves on the Workload API (`meshid agent api
//!   fetch --write`) verifies with `openssl verify -x509_strict -CAfile
//!   root.pem -untrusted chain.pem leaf.pem`, where chain.pem is what the
//!   response carries after the leaf, and the bundle is the enterprise
//!   root only;
//! - Envoy (`examples/envoy/envoy.yaml`, certificate and roots over SDS from
//!   the same agent) accepts `meshid proxy run`'s outbound mTLS: a request
//!   reaches the backend behind Envoy, which names our SPIFFE ID in
//!   `x-forwarded-client-cert`.
//!
//! Chain kinds: a P-256 intermediate with pathlen:0 (files + root_file), an
//! RSA-2048 one with a PKCS#1 key (Kubernetes TLS Secret), one whose
//! nameConstraints permit the trust domain (Istio plug-in directory), and
//! root → policy CA → mesh intermediate (chain file with the middle CA,
//! root apart).
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::time::Duration;

use meshid_identity::x509::{pem_certs, to_pem};
use meshid_tests::http::{backend, http};
use meshid_tests::pki::{Alg, Pki};
use meshid_tests::{Child, Cmd, Envoy, Mesh, eventually, free_port};

/// How long Envoy (warming until SDS answers) and the proxy may take.
const READY: Duration = Duration::from_secs(45);

/// The mesh intermediate's extensions besides pathlen:0.
const PATHLEN_0: &str = "";
const PERMIT_TD: &str = "nameConstraints=critical,permitted;URI:example.org";
const POLICY_CA: &str =
    "basicConstraints=critical,CA:TRUE,pathlen:1\nkeyUsage=critical,keyCertSign,cRLSign";

/// A PKI in a temp dir under the shared RSA-4096 root.
fn pki() -> (tempfile::TempDir, Pki) {
    let tmp = meshid_tests::tempdir();
    let pki = Pki::new(tmp.path());
    pki.rsa_4096_root("root");
    (tmp, pki)
}

/// Copies `files` (`(from, to)`) into a new directory `dir` under the PKI.
fn layout(pki: &Pki, dir: &str, files: &[(PathBuf, &str)]) -> PathBuf {
    let dir = pki.dir.join(dir);
    std::fs::create_dir(&dir).unwrap();
    for (from, to) in files {
        std::fs::copy(from, dir.join(to)).unwrap();
    }
    dir
}

fn toml_path(p: &Path) -> String {
    format!("{:?}", p.display().to_string())
}

#[test]
fn a_p256_pathlen_0_intermediate_from_files() {
    let (_tmp, pki) = pki();
    pki.mesh_ca("mesh", "root", Alg::P256, PATHLEN_0);
    let upstream = format!(
        "[upstream]\ncert_chain_file = {}\nkey_file = {}\nroot_file = {}\n",
        toml_path(&pki.cert("mesh")),
        toml_path(&pki.key("mesh")),
        toml_path(&pki.cert("root")),
    );
    mesh_run(&pki, &upstream, &["mesh"]);
}

#[test]
fn an_rsa_2048_intermediate_with_a_pkcs1_key_from_a_kubernetes_secret() {
    let (_tmp, pki) = pki();
    pki.mesh_ca("mesh", "root", Alg::Rsa(2048), PATHLEN_0);
    pki.traditional_key("mesh");
    let key = std::fs::read_to_string(pki.key("mesh")).unwrap();
    assert!(key.starts_with("-----BEGIN RSA PRIVATE KEY-----"), "{key}");
    let secret = layout(
        &pki,
        "secret",
        &[
            (pki.cert("mesh"), "tls.crt"),
            (pki.key("mesh"), "tls.key"),
            (pki.cert("root"), "ca.crt"),
        ],
    );
    mesh_run(
        &pki,
        &format!("[upstream]\ndir = {}\n", toml_path(&secret)),
        &["mesh"],
    );
}

#[test]
fn an_intermediate_whose_name_constraints_permit_the_trust_domain_from_an_istio_dir() {
    let (_tmp, pki) = pki();
    pki.mesh_ca("mesh", "root", Alg::P256, PERMIT_TD);
    let chain = pki.bundle("cert-chain.pem", &["mesh", "root"]);
    let cacerts = layout(
        &pki,
        "cacerts",
        &[
            (pki.cert("mesh"), "ca-cert.pem"),
            (pki.key("mesh"), "ca-key.pem"),
            (chain, "cert-chain.pem"),
            (pki.cert("root"), "root-cert.pem"),
        ],
    );
    mesh_run(
        &pki,
        &format!("[upstream]\ndir = {}\n", toml_path(&cacerts)),
        &["mesh"],
    );
}

#[test]
fn root_then_policy_ca_then_mesh_intermediate_with_the_middle_ca_in_the_chain() {
    let (_tmp, pki) = pki();
    pki.ca("policy", "root", Alg::P256, POLICY_CA);
    pki.mesh_ca("mesh", "policy", Alg::P256, PATHLEN_0);
    let chain = pki.bundle("chain.pem", &["mesh", "policy"]);
    let upstream = format!(
        "[upstream]\ncert_chain_file = {}\nkey_file = {}\nroot_file = {}\n",
        toml_path(&chain),
        toml_path(&pki.key("mesh")),
        toml_path(&pki.cert("root")),
    );
    mesh_run(&pki, &upstream, &["mesh", "policy"]);
}

/// One full run on the CA config `upstream`: the served SVID's chain is the
/// certificates `cas` (names in `pki`) after the leaf, it verifies with
/// `openssl`, and Envoy accepts it from our proxy.
fn mesh_run(pki: &Pki, upstream: &str, cas: &[&str]) {
    let envoy = Envoy::from_env("the enterprise-root Envoy check");
    let mesh = Mesh::builder().ca_config(upstream).start();
    let root = pki.cert("root");
    let svid_files = mesh.tmp.path().join("svids");
    Cmd::meshid()
        .args(["agent", "api", "fetch", "--socket"])
        .args([mesh.workload_socket()])
        .args(["--write"])
        .args([&svid_files])
        .run_ok();

    // The chain after the leaf is the enterprise CAs, the bundle the root.
    let served = read_certs(&svid_files.join("svid.0.pem"));
    let (leaf, chain) = served.split_first().unwrap();
    let expected: Vec<_> = cas.iter().flat_map(|n| read_certs(&pki.cert(n))).collect();
    assert_eq!(chain, expected.as_slice(), "the SVID's chain");
    assert_eq!(
        read_certs(&svid_files.join("bundle.0.pem")),
        read_certs(&root),
        "the bundle is the enterprise root, never an intermediate"
    );
    let leaf_pem = svid_files.join("leaf.pem");
    let chain_pem = svid_files.join("chain.pem");
    std::fs::write(&leaf_pem, to_pem(std::slice::from_ref(leaf))).unwrap();
    std::fs::write(&chain_pem, to_pem(chain)).unwrap();
    let verified = Cmd::new("openssl")
        .args(["verify", "-x509_strict", "-CAfile"])
        .args([&root])
        .args(["-untrusted"])
        .args([&chain_pem, &leaf_pem])
        .run_ok();
    assert!(verified.trim().ends_with("leaf.pem: OK"), "{verified}");

    if let Some(envoy) = envoy {
        envoy_accepts_our_proxy(&mesh, &envoy);
    }
}

fn read_certs(path: &Path) -> Vec<rustls::pki_types::CertificateDer<'static>> {
    pem_certs(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// meshid proxy outbound → Envoy's mTLS inbound (the example config, SDS
/// from the mesh's agent) → backend. Both run as this process's uid, so
/// both hold the mesh's SVID; the proxy pins Envoy to it.
fn envoy_accepts_our_proxy(mesh: &Mesh, envoy: &Envoy) {
    let dir = mesh.tmp.path();
    let wl = mesh.workload_socket().display().to_string();
    let (backend_port, seen) = backend();
    let (envoy_in, proxy_out) = (free_port(), free_port());
    let envoy_yaml = dir.join("envoy.yaml");
    let vars = [
        ("SDS_SOCKET", wl.clone()),
        ("ADMIN_PORT", free_port().to_string()),
        ("LISTEN_PORT", envoy_in.to_string()),
        ("BACKEND_PORT", backend_port.to_string()),
        ("TRUST_DOMAIN", "example.org".to_owned()),
    ];
    std::fs::write(&envoy_yaml, meshid_tests::envoy::example_config(&vars)).unwrap();
    let mut envoy = envoy.spawn(&envoy_yaml, &mesh.logs);
    let proxy_yaml = dir.join("proxy.yaml");
    std::fs::write(
        &proxy_yaml,
        format!(
            "identity:\n  workload_api: {{ socket: {wl:?} }}\n\
             outbound:\n  - {{ listen: \"127.0.0.1:{proxy_out}\", upstream: \"127.0.0.1:{envoy_in}\", \
             server_id: \"{id}\", protocol: http }}\n\
             ops_listen: \"127.0.0.1:{ops}\"\n",
            id = mesh.spiffe_id,
            ops = free_port(),
        ),
    )
    .unwrap();
    let mut proxy = Cmd::meshid()
        .args(["proxy", "run", "--config"])
        .args([&proxy_yaml])
        .spawn(&mesh.logs);
    let alive = |c: &mut Child, what: &str| assert!(c.is_running(), "{what} exited:\n{}", c.log());
    let (code, body) = eventually("GET through the meshid outbound and Envoy", READY, || {
        alive(&mut proxy, "meshid proxy");
        alive(&mut envoy, "Envoy");
        let r = http(proxy_out, "GET", "/enterprise");
        (r.0 == 200).then_some(r)
    });
    assert_eq!((code, body.as_str()), (200, "hello"));
    let seen = seen.lock().unwrap();
    let head = seen
        .iter()
        .find(|h| h.starts_with("GET /enterprise "))
        .unwrap_or_else(|| panic!("the backend never saw the request: {seen:?}"));
    assert!(
        head.to_ascii_lowercase()
            .contains(&format!("uri={}", mesh.spiffe_id)),
        "Envoy did not name our SPIFFE ID in x-forwarded-client-cert:\n{head}"
    );
}
