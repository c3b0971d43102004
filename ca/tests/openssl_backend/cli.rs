//! Checks with the `openssl` CLI: X.509 chains with `openssl verify`,
//! ES256 JWTs with `openssl dgst -verify`; and an enterprise intermediate
//! made with it.

use std::path::{Path, PathBuf};
use std::process::Command;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use meshid_tests::pki::{Alg, Pki};
use rustls::pki_types::CertificateDer;

fn pem(label: &str, ders: &[impl AsRef<[u8]>]) -> String {
    ders.iter()
        .map(|d| pem::encode(&pem::Pem::new(label, d.as_ref().to_vec())))
        .collect()
}

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().expect("run openssl");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{cmd:?} failed: {text}");
    text
}

/// `openssl verify` accepts `chain` (leaf first) under `roots`.
pub fn verify_chain(
    dir: &Path,
    name: &str,
    chain: &[CertificateDer<'static>],
    roots: &[CertificateDer<'static>],
) {
    let roots_file = dir.join(format!("{name}-roots.pem"));
    let leaf_file = dir.join(format!("{name}-leaf.pem"));
    let untrusted_file = dir.join(format!("{name}-untrusted.pem"));
    std::fs::write(&roots_file, pem("CERTIFICATE", roots)).unwrap();
    std::fs::write(&leaf_file, pem("CERTIFICATE", &chain[..1])).unwrap();
    let mut cmd = Command::new("openssl");
    cmd.arg("verify").arg("-CAfile").arg(&roots_file);
    if chain.len() > 1 {
        std::fs::write(&untrusted_file, pem("CERTIFICATE", &chain[1..])).unwrap();
        cmd.arg("-untrusted").arg(&untrusted_file);
    }
    let text = run(cmd.arg(&leaf_file));
    assert!(text.contains(": OK"), "{name}: {text}");
}

/// `openssl dgst -sha256 -verify` accepts the ES256 signature of `token`
/// under the P-256 key `spki` (DER SubjectPublicKeyInfo).
pub fn verify_es256(dir: &Path, token: &str, spki: &[u8]) {
    let (input, sig) = token.rsplit_once('.').unwrap();
    let raw = URL_SAFE_NO_PAD.decode(sig).unwrap();
    assert_eq!(raw.len(), 64, "JWS ES256 signatures are r||s");
    let r = openssl::bn::BigNum::from_slice(&raw[..32]).unwrap();
    let s = openssl::bn::BigNum::from_slice(&raw[32..]).unwrap();
    let der = openssl::ecdsa::EcdsaSig::from_private_components(r, s)
        .unwrap()
        .to_der()
        .unwrap();
    let (input_file, sig_file, key_file) = (
        dir.join("jwt-input"),
        dir.join("jwt-sig.der"),
        dir.join("jwt-key.pem"),
    );
    std::fs::write(&input_file, input).unwrap();
    std::fs::write(&sig_file, der).unwrap();
    std::fs::write(&key_file, pem("PUBLIC KEY", &[spki])).unwrap();
    let text = run(Command::new("openssl")
        .args(["dgst", "-sha256", "-verify"])
        .arg(&key_file)
        .arg("-signature")
        .arg(&sig_file)
        .arg(&input_file));
    assert!(text.contains("Verified OK"), "{text}");
}

/// The files of an enterprise intermediate.
pub struct Intermediate {
    pub chain: PathBuf,
    pub key: PathBuf,
    pub root: PathBuf,
}

/// An RSA-2048 mesh intermediate below a P-256 enterprise root, made with
/// the `openssl` CLI (the key as PKCS#8).
pub fn enterprise_intermediate(dir: &Path) -> Intermediate {
    let pki = Pki::new(dir);
    pki.root("root", Alg::P256);
    pki.mesh_ca("mesh", "root", Alg::Rsa(2048), "");
    Intermediate {
        chain: pki.cert("mesh"),
        key: pki.key("mesh"),
        root: pki.cert("root"),
    }
}
