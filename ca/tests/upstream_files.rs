//! An enterprise intermediate from files, as PKI teams hand them over:
//! chains made with the real `openssl` CLI, loaded through the CA's
//! `[upstream]` config (files, Istio's plug-in directory, a Kubernetes TLS
//! Secret). Valid chains issue SVIDs that `openssl verify -x509_strict`
//! accepts; every broken chain is refused with its own message.
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::time::{Duration, SystemTime};

use meshid_ca::authority::{Authority, AuthorityConfig};
use meshid_ca::config::{CaConfig, UpstreamConfig};
use meshid_ca::keymanager::MemoryKeyManager;
use meshid_ca::upstream::Disk;
use meshid_identity::x509::{pem_certs, to_pem};
use meshid_identity::{PrivateKey, SpiffeId, TrustDomain};

#[path = "support/server.rs"]
mod server;

use meshid_tests::pki::{Alg, Pki};

const DAY: Duration = Duration::from_secs(86400);

fn td() -> TrustDomain {
    TrustDomain::new(server::TD).unwrap()
}

/// The CA's own config check (`meshid ca validate` / start-up) at `now`.
fn preflight(dir: &Path, up: UpstreamConfig, now: SystemTime) -> Result<(), String> {
    let cfg = CaConfig {
        upstream: Some(up),
        ..server::config(&dir.join("ca-data"))
    };
    cfg.preflight(now).map(|_| ()).map_err(|e| e.to_string())
}

/// Loads `up` as the CA does, signs an SVID and has `openssl verify
/// -x509_strict` check it against `root` with the CA's chain as untrusted.
fn issues_verifiable_svids(dir: &Path, up: &UpstreamConfig, root: &Path) {
    let now = SystemTime::now();
    preflight(dir, up.clone(), now).unwrap();
    let authority = Authority::new(
        AuthorityConfig::new(td()),
        &Disk::from_config(up),
        &MemoryKeyManager::new(),
        now,
    )
    .unwrap();
    let id: SpiffeId = "spiffe://example.org/ns/payments/sa/api".parse().unwrap();
    let key = PrivateKey::generate_p256().unwrap();
    let svid = authority
        .sign_agent_svid(&id, &key.public_key_der(), now)
        .unwrap();
    let (leaf, chain) = svid.chain.split_first().unwrap();
    assert!(!chain.is_empty(), "the SVID chain carries the intermediate");
    let leaf_path = dir.join("svid.pem");
    let chain_path = dir.join("svid-chain.pem");
    std::fs::write(&leaf_path, to_pem(std::slice::from_ref(leaf))).unwrap();
    std::fs::write(&chain_path, to_pem(chain)).unwrap();
    let out = std::process::Command::new("openssl")
        .arg("verify")
        .arg("-x509_strict")
        .arg("-CAfile")
        .arg(root)
        .arg("-untrusted")
        .arg(&chain_path)
        .arg(&leaf_path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "openssl verify refused the SVID: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // The bundle publishes the enterprise root, never the intermediate.
    let roots = &authority.bundle().x509_authorities;
    let given = pem_certs(&std::fs::read_to_string(root).unwrap()).unwrap();
    assert_eq!(roots, &given);
}

fn files(pki: &Pki, chain: &Path, key: &str, root: Option<&str>) -> UpstreamConfig {
    UpstreamConfig {
        root_file: root.map(|r| pki.cert(r)),
        ..UpstreamConfig::files(chain, pki.key(key))
    }
}

#[test]
fn a_pathlen_0_intermediate_under_an_ec_root_issues_verifiable_svids() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new(dir.path());
    pki.root("root", Alg::P256);
    pki.mesh_ca("mesh", "root", Alg::P256, "");
    let up = files(&pki, &pki.cert("mesh"), "mesh", Some("root"));
    issues_verifiable_svids(dir.path(), &up, &pki.cert("root"));
    // The same files with the root appended to the chain instead.
    let chain = pki.bundle("chain.pem", &["mesh", "root"]);
    let up = files(&pki, &chain, "mesh", None);
    issues_verifiable_svids(dir.path(), &up, &pki.cert("root"));
}

#[tokio::test]
async fn an_istio_plug_in_directory_with_an_rsa_4096_root_and_a_policy_ca() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new(dir.path());
    pki.root("root", Alg::Rsa(4096));
    pki.ca(
        "policy",
        "root",
        Alg::Rsa(3072),
        "basicConstraints=critical,CA:TRUE,pathlen:1\nkeyUsage=critical,keyCertSign,cRLSign",
    );
    pki.mesh_ca("mesh", "policy", Alg::P384, "");
    pki.traditional_key("mesh"); // SEC1 P-384
    let cacerts = dir.path().join("cacerts");
    std::fs::create_dir(&cacerts).unwrap();
    std::fs::copy(pki.cert("mesh"), cacerts.join("ca-cert.pem")).unwrap();
    std::fs::copy(pki.key("mesh"), cacerts.join("ca-key.pem")).unwrap();
    let chain = pki.bundle("cert-chain.pem", &["mesh", "policy", "root"]);
    std::fs::copy(chain, cacerts.join("cert-chain.pem")).unwrap();
    std::fs::copy(pki.cert("root"), cacerts.join("root-cert.pem")).unwrap();
    issues_verifiable_svids(
        dir.path(),
        &UpstreamConfig::dir(&cacerts),
        &pki.cert("root"),
    );
    // And the CA starts on it.
    let ca = server::start(CaConfig {
        upstream: Some(UpstreamConfig::dir(&cacerts)),
        ..server::config(&dir.path().join("ca-data"))
    })
    .await;
    ca.shutdown().await.unwrap();
}

#[test]
fn a_kubernetes_secret_with_a_pkcs1_rsa_intermediate_permitted_by_name_constraints() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new(dir.path());
    pki.root("root", Alg::P256);
    pki.mesh_ca(
        "mesh",
        "root",
        Alg::Rsa(2048),
        "nameConstraints=critical,permitted;URI:example.org",
    );
    pki.traditional_key("mesh"); // PKCS#1
    assert!(
        std::fs::read_to_string(pki.key("mesh"))
            .unwrap()
            .starts_with("-----BEGIN RSA PRIVATE KEY-----")
    );
    let secret = dir.path().join("secret");
    std::fs::create_dir(&secret).unwrap();
    std::fs::copy(pki.cert("mesh"), secret.join("tls.crt")).unwrap();
    std::fs::copy(pki.key("mesh"), secret.join("tls.key")).unwrap();
    std::fs::copy(pki.cert("root"), secret.join("ca.crt")).unwrap();
    issues_verifiable_svids(dir.path(), &UpstreamConfig::dir(&secret), &pki.cert("root"));
}

#[test]
fn a_chain_out_of_order_with_the_root_inside_is_normalised() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new(dir.path());
    pki.root("root", Alg::P256);
    pki.ca(
        "policy",
        "root",
        Alg::P256,
        "basicConstraints=critical,CA:TRUE,pathlen:1\nkeyUsage=critical,keyCertSign,cRLSign",
    );
    pki.mesh_ca("mesh", "policy", Alg::P256, "");
    let chain = pki.bundle("chain.pem", &["mesh", "root", "policy"]);
    let up = files(&pki, &chain, "mesh", None);
    issues_verifiable_svids(dir.path(), &up, &pki.cert("root"));
    let up = files(&pki, &chain, "mesh", Some("root"));
    issues_verifiable_svids(dir.path(), &up, &pki.cert("root"));
}

/// A root → policy → mesh PKI; `mesh_extra` adds extensions to the mesh CA.
fn two_level(dir: &Path, mesh_extra: &str) -> Pki {
    let pki = Pki::new(dir);
    pki.root("root", Alg::P256);
    pki.ca(
        "policy",
        "root",
        Alg::P256,
        "basicConstraints=critical,CA:TRUE,pathlen:1\nkeyUsage=critical,keyCertSign,cRLSign",
    );
    pki.mesh_ca("mesh", "policy", Alg::P256, mesh_extra);
    pki
}

#[track_caller]
fn assert_refused(result: Result<(), String>, parts: &[&str]) {
    let e = result.unwrap_err();
    for p in parts {
        assert!(e.contains(p), "{p:?} not in: {e}");
    }
}

#[test]
fn name_constraints_that_exclude_the_trust_domain_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let pki = two_level(
        dir.path(),
        "nameConstraints=critical,excluded;URI:example.org",
    );
    let chain = pki.bundle("chain.pem", &["mesh", "policy"]);
    let up = files(&pki, &chain, "mesh", Some("root"));
    assert_refused(
        preflight(dir.path(), up, SystemTime::now()),
        &[
            "chain.pem: the nameConstraints of certificate \"O=Example Corp, CN=mesh\" exclude \
             this trust domain's SPIFFE IDs (spiffe://example.org/…)",
            "permit URI:example.org",
        ],
    );
}

#[test]
fn an_expired_intermediate_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let pki = two_level(dir.path(), "");
    let chain = pki.bundle("chain.pem", &["mesh", "policy"]);
    let up = files(&pki, &chain, "mesh", Some("root"));
    // The mesh CA lives 20 days, the root 30: look at it on day 25.
    assert_refused(
        preflight(dir.path(), up, SystemTime::now() + 25 * DAY),
        &[
            "chain.pem: certificate \"O=Example Corp, CN=mesh\" has expired (notAfter ",
            "renew it",
        ],
    );
}

#[test]
fn a_key_that_does_not_match_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let pki = two_level(dir.path(), "");
    let chain = pki.bundle("chain.pem", &["mesh", "policy"]);
    let up = files(&pki, &chain, "policy", Some("root"));
    assert_refused(
        preflight(dir.path(), up, SystemTime::now()),
        &["policy.key: the key does not match the signing certificate \"O=Example Corp, CN=mesh\""],
    );
}

#[test]
fn a_chain_without_any_root_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let pki = two_level(dir.path(), "");
    let chain = pki.bundle("chain.pem", &["mesh", "policy"]);
    let up = files(&pki, &chain, "mesh", None);
    assert_refused(
        preflight(dir.path(), up, SystemTime::now()),
        &[
            "chain.pem: no root was given: the chain ends with certificate \"O=Example Corp, CN=policy\"",
            "an intermediate must not become the trust bundle, so give the enterprise root with `root_file`",
        ],
    );
}

#[test]
fn a_missing_middle_ca_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let pki = two_level(dir.path(), "");
    let up = files(&pki, &pki.cert("mesh"), "mesh", Some("root"));
    assert_refused(
        preflight(dir.path(), up, SystemTime::now()),
        &[
            "mesh.pem: certificate \"O=Example Corp, CN=mesh\" was issued by a CA that is neither \
             in the chain nor among the roots in ",
            "a middle CA is missing from the chain",
        ],
    );
}

#[test]
fn a_root_of_the_same_name_that_did_not_sign_the_chain_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let pki = two_level(dir.path(), "");
    let other = Pki::new(&dir.path().join("other"));
    std::fs::create_dir(&other.dir).unwrap();
    other.root("root", Alg::P256);
    let chain = pki.bundle("chain.pem", &["mesh", "policy"]);
    let up = UpstreamConfig {
        root_file: Some(other.cert("root")),
        ..UpstreamConfig::files(&chain, pki.key("mesh"))
    };
    assert_refused(
        preflight(dir.path(), up, SystemTime::now()),
        &[
            "chain.pem: a signature in the chain does not verify",
            "is the root given this chain's anchor",
        ],
    );
}

#[test]
fn a_certificate_that_is_not_a_ca_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new(dir.path());
    pki.root("root", Alg::P256);
    pki.ca(
        "mesh",
        "root",
        Alg::P256,
        "basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature",
    );
    let up = files(&pki, &pki.cert("mesh"), "mesh", Some("root"));
    assert_refused(
        preflight(dir.path(), up, SystemTime::now()),
        &[
            "mesh.pem: certificate \"O=Example Corp, CN=mesh\" is not a CA (needs basicConstraints CA:true)",
        ],
    );
    pki.ca(
        "mesh",
        "root",
        Alg::P256,
        "basicConstraints=critical,CA:TRUE\nkeyUsage=critical,digitalSignature",
    );
    let up = files(&pki, &pki.cert("mesh"), "mesh", Some("root"));
    assert_refused(
        preflight(dir.path(), up, SystemTime::now()),
        &["certificate \"O=Example Corp, CN=mesh\" lacks keyUsage keyCertSign"],
    );
}

#[test]
fn a_policy_ca_whose_pathlen_forbids_the_mesh_intermediate_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new(dir.path());
    pki.root("root", Alg::P256);
    pki.ca(
        "policy",
        "root",
        Alg::P256,
        "basicConstraints=critical,CA:TRUE,pathlen:0\nkeyUsage=critical,keyCertSign,cRLSign",
    );
    pki.mesh_ca("mesh", "policy", Alg::P256, "");
    let chain = pki.bundle("chain.pem", &["mesh", "policy"]);
    let up = files(&pki, &chain, "mesh", Some("root"));
    assert_refused(
        preflight(dir.path(), up, SystemTime::now()),
        &[
            "chain.pem: certificate \"O=Example Corp, CN=policy\" has pathLenConstraint 0, which forbids the 1 CA(s) below it",
        ],
    );
}

#[test]
fn upstream_settings_are_either_a_directory_or_files() {
    let dir = tempfile::tempdir().unwrap();
    let base = format!(
        "trust_domain = \"example.org\"\ndata_dir = {:?}\n",
        dir.path().join("ca").display().to_string()
    );
    let check = |upstream: &str| {
        CaConfig::from_toml(&format!("{base}[upstream]\n{upstream}\n"))
            .unwrap()
            .validate()
            .unwrap_err()
            .to_string()
    };
    let d = dir.path().display().to_string();
    let e = check(&format!("dir = {d:?}\nkey_file = {d:?}"));
    assert!(e.contains("`upstream.dir`: names the files itself"), "{e}");
    let e = check(&format!("cert_chain_file = {d:?}"));
    assert!(
        e.contains("needs cert_chain_file and key_file (optionally root_file), or dir"),
        "{e}"
    );
    let e = check(&format!(
        "dir = {:?}",
        dir.path().join("nope").display().to_string()
    ));
    assert!(e.contains("`upstream.dir`") && e.contains("nope"), "{e}");
    let cacerts = dir.path().join("cacerts");
    std::fs::create_dir(&cacerts).unwrap();
    std::fs::write(cacerts.join("ca-cert.pem"), b"").unwrap();
    let e = preflight(dir.path(), UpstreamConfig::dir(&cacerts), SystemTime::now()).unwrap_err();
    assert!(
        e.contains("cacerts: is incomplete: it holds ca-cert.pem; expected either"),
        "{e}"
    );
}

#[test]
fn a_chain_that_does_not_link_or_holds_a_foreign_root_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let pki = two_level(dir.path(), "");
    pki.root("stray-root", Alg::P256);
    pki.mesh_ca("stray", "stray-root", Alg::P256, "");
    let chain = pki.bundle("chain.pem", &["mesh", "policy", "stray"]);
    let up = files(&pki, &chain, "mesh", Some("root"));
    assert_refused(
        preflight(dir.path(), up, SystemTime::now()),
        &[
            "chain.pem: the chain does not link: certificate \"O=Example Corp, CN=stray\" neither \
             issued nor was issued by",
        ],
    );
    let chain = pki.bundle("chain.pem", &["mesh", "policy", "stray-root"]);
    let up = files(&pki, &chain, "mesh", Some("root"));
    assert_refused(
        preflight(dir.path(), up, SystemTime::now()),
        &["certificate \"O=Example Corp, CN=stray-root\" is a root that is not in the root file "],
    );
}
