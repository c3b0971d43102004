//! `/readyz` reflects whether the CA can issue SVIDs that agents verify,
//! not only whether its store answers; an enterprise chain (upstream
//! `cert_chain_file`) that is not valid yet, or whose root forbids the
//! intermediate the CA signs with, is refused before the CA starts.
#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, SystemTime};

use meshid_ca::config::{CaConfig, UpstreamConfig};
use meshid_ca::server::CaServer;
use meshid_identity::x509::{self_signed_ca, sign_ca, to_pem};
use meshid_identity::{CaTemplate, PrivateKey, TrustDomain};
use rustls_pki_types::CertificateDer;

#[path = "support/server.rs"]
mod server;

const DAY: Duration = Duration::from_secs(24 * 3600);

fn td() -> TrustDomain {
    TrustDomain::new(server::TD).unwrap()
}

fn template(name: &str, not_before: SystemTime, path_len: Option<u8>) -> CaTemplate {
    CaTemplate {
        trust_domain: td(),
        common_name: name.into(),
        not_before,
        not_after: SystemTime::now() + 30 * DAY,
        path_len,
    }
}

/// Writes an enterprise root (with `root_path_len`) and a signing
/// intermediate valid from `signing_from` into `dir`, as the upstream
/// files of a CA.
fn enterprise_chain(
    dir: &Path,
    root_path_len: Option<u8>,
    signing_from: SystemTime,
) -> UpstreamConfig {
    let now = SystemTime::now();
    let root_key = PrivateKey::generate_p256().unwrap();
    let root_kp = root_key.key_pair().unwrap();
    let root = self_signed_ca(&template("root", now, root_path_len), &root_kp).unwrap();
    let signing_key = PrivateKey::generate_p256().unwrap();
    let signing = sign_ca(
        &template("signing", signing_from, None),
        &signing_key.public_key_der(),
        &root,
        &root_kp,
    )
    .unwrap();
    let chain: Vec<CertificateDer<'_>> = vec![signing, root];
    std::fs::write(dir.join("chain.pem"), to_pem(&chain)).unwrap();
    std::fs::write(dir.join("key.pem"), signing_key.to_pkcs8_pem().as_bytes()).unwrap();
    UpstreamConfig::files(dir.join("chain.pem"), dir.join("key.pem"))
}

async fn start(dir: &Path, upstream: UpstreamConfig) -> CaServer {
    let cfg = CaConfig {
        upstream: Some(upstream),
        ..server::config(&dir.join("ca"))
    };
    server::start(cfg).await
}

async fn readyz(addr: SocketAddr) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(b"GET /readyz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).await.unwrap();
    out
}

#[tokio::test]
async fn a_valid_enterprise_chain_is_ready() {
    let dir = tempfile::tempdir().unwrap();
    let up = enterprise_chain(dir.path(), Some(1), SystemTime::now());
    let ca = start(dir.path(), up).await;
    let body = readyz(ca.ops_addr).await;
    assert!(body.starts_with("HTTP/1.1 200"), "{body}");
    assert!(body.ends_with("ready\n"), "{body}");
    ca.shutdown().await.unwrap();
}

/// Starting the CA with `up` fails; the error's text.
async fn start_error(dir: &Path, up: UpstreamConfig) -> String {
    let cfg = CaConfig {
        upstream: Some(up),
        ..server::config(&dir.join("ca"))
    };
    match CaServer::start(cfg.validate().unwrap()).await {
        Ok(_) => panic!("the CA started with a chain agents could not verify"),
        Err(e) => e.to_string(),
    }
}

// A chain agents could not verify never gets as far as /readyz: start-up
// refuses it, naming the certificate and the file.

#[tokio::test]
async fn a_not_yet_valid_intermediate_is_refused_at_start_up() {
    let dir = tempfile::tempdir().unwrap();
    let up = enterprise_chain(dir.path(), None, SystemTime::now() + DAY);
    let e = start_error(dir.path(), up).await;
    assert!(e.contains("chain.pem"), "{e}");
    assert!(
        e.contains("chain.pem: certificate \"O=meshid, CN=signing\" ")
            && e.contains("is not valid yet (notBefore "),
        "{e}"
    );
}

#[tokio::test]
async fn a_root_whose_path_len_forbids_the_intermediate_is_refused_at_start_up() {
    let dir = tempfile::tempdir().unwrap();
    // pathLenConstraint 0 on the root: it may issue leaves only, so an SVID
    // from the intermediate the CA signs with can never verify.
    let up = enterprise_chain(dir.path(), Some(0), SystemTime::now());
    let e = start_error(dir.path(), up).await;
    assert!(
        e.contains("chain.pem: certificate \"O=meshid, CN=root\" ")
            && e.contains("has pathLenConstraint 0"),
        "{e}"
    );
}
