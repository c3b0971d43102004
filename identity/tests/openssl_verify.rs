//! Our X.509-SVID profile, checked by an independent implementation: OpenSSL.
//!
//! Runs the real `openssl` binary to verify chains we build and to produce
//! CSRs (some of them hostile) that our CA-side checks must handle.

#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::process::Command;
use std::time::{Duration, SystemTime};

use meshid_identity::key::PrivateKey;
use meshid_identity::x509::{
    self, BACKDATE, CaTemplate, SvidTemplate, csr::verify_csr, self_signed_ca, sign_ca, sign_svid,
};
use meshid_identity::{BundleSet, CsrError, SpiffeId, TrustBundle, TrustDomain, verify_x509_svid};
use rustls_pki_types::CertificateDer;
use x509_parser::extensions::{GeneralName, ParsedExtension};
use x509_parser::prelude::{FromDer, X509Certificate};

const OPENSSL: &str = "/usr/bin/openssl";
const HOUR: Duration = Duration::from_secs(3600);

#[path = "openssl_verify/name_constraints.rs"]
mod name_constraints;

struct Pki {
    root: CertificateDer<'static>,
    root_key: PrivateKey,
    inter: CertificateDer<'static>,
    inter_key: PrivateKey,
    bundles: BundleSet,
}

fn td() -> TrustDomain {
    TrustDomain::new("example.org").unwrap()
}

/// root (pathlen 1) → intermediate (pathlen 0), both for example.org.
fn pki(now: SystemTime) -> Pki {
    let root_key = PrivateKey::generate_p256().unwrap();
    let root_kp = root_key.key_pair().unwrap();
    let ca = |cn: &str, path_len| CaTemplate {
        trust_domain: td(),
        common_name: cn.to_string(),
        not_before: now,
        not_after: now + 24 * HOUR,
        path_len: Some(path_len),
    };
    let root = self_signed_ca(&ca("meshid root", 1), &root_kp).unwrap();
    let inter_key = PrivateKey::generate_p256().unwrap();
    let inter = sign_ca(
        &ca("meshid intermediate", 0),
        &inter_key.public_key_der(),
        &root,
        &root_kp,
    )
    .unwrap();
    let mut bundle = TrustBundle::new(td());
    bundle.x509_authorities.push(root.clone());
    let mut bundles = BundleSet::new();
    bundles.insert(bundle);
    Pki {
        root,
        root_key,
        inter,
        inter_key,
        bundles,
    }
}

fn svid_template(now: SystemTime) -> SvidTemplate {
    SvidTemplate {
        spiffe_id: SpiffeId::parse("spiffe://example.org/ns/payments/sa/api").unwrap(),
        dns_names: vec!["api.payments.svc".to_string()],
        not_before: now,
        not_after: now + HOUR,
    }
}

fn openssl(dir: &Path, args: &[&str]) -> std::process::Output {
    Command::new(OPENSSL)
        .args(args)
        .current_dir(dir)
        .env("OPENSSL_CONF", "/dev/null")
        .output()
        .unwrap()
}

fn write_pem(dir: &Path, name: &str, certs: &[CertificateDer<'_>]) {
    std::fs::write(dir.join(name), x509::to_pem(certs)).unwrap();
}

#[test]
fn openssl_accepts_our_chain_in_strict_mode() {
    let now = SystemTime::now();
    let pki = pki(now);
    let leaf_key = PrivateKey::generate_p256().unwrap();
    let leaf = sign_svid(
        &svid_template(now),
        &leaf_key.public_key_der(),
        &pki.inter,
        &pki.inter_key.key_pair().unwrap(),
    )
    .unwrap();

    let dir = tempfile::tempdir().unwrap();
    write_pem(dir.path(), "root.pem", std::slice::from_ref(&pki.root));
    write_pem(dir.path(), "inter.pem", std::slice::from_ref(&pki.inter));
    write_pem(dir.path(), "leaf.pem", std::slice::from_ref(&leaf));
    for purpose in [None, Some("sslserver"), Some("sslclient")] {
        let mut args = vec!["verify", "-x509_strict"];
        if let Some(p) = purpose {
            args.extend(["-purpose", p]);
        }
        args.extend(["-CAfile", "root.pem", "-untrusted", "inter.pem", "leaf.pem"]);
        let out = openssl(dir.path(), &args);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && stdout.contains("leaf.pem: OK"),
            "openssl verify {purpose:?} failed: {stdout} {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    let chain = [leaf.clone(), pki.inter.clone()];
    let v = verify_x509_svid(&chain, &pki.bundles, now).unwrap();
    assert_eq!(
        v.spiffe_id.as_str(),
        "spiffe://example.org/ns/payments/sa/api"
    );
    assert_eq!(x509::spiffe_id_of(&leaf).unwrap(), v.spiffe_id);
    assert_eq!(x509::not_after(&leaf).unwrap(), v.not_after);
    // PEM round trip keeps order and bytes.
    let pem = x509::to_pem(&chain);
    assert_eq!(x509::pem_certs(&pem).unwrap(), chain.to_vec());
}

#[test]
fn leaf_profile_fields() {
    let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
    let pki = pki(now);
    let leaf_key = PrivateKey::generate_p256().unwrap();
    let der = sign_svid(
        &svid_template(now),
        &leaf_key.public_key_der(),
        &pki.inter,
        &pki.inter_key.key_pair().unwrap(),
    )
    .unwrap();
    let (_, cert) = X509Certificate::from_der(&der).unwrap();

    // Serial: positive, at least 64 random bits (we use 16 bytes).
    let serial = cert.raw_serial();
    assert!(serial.len() >= 8 && serial[0] & 0x80 == 0);
    // notBefore is back-dated by BACKDATE; notAfter is exact.
    let nb = cert.validity().not_before.timestamp();
    let expected = now - BACKDATE;
    assert_eq!(
        nb,
        expected
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64
    );

    let bc = cert.basic_constraints().unwrap().unwrap();
    assert!(bc.critical && !bc.value.ca);
    let ku = cert.key_usage().unwrap().unwrap();
    assert!(ku.critical);
    // digitalSignature only: keyEncipherment is not allowed for EC keys
    // (RFC 5480 §3), and nothing else is needed for TLS.
    assert!(ku.value.digital_signature());
    assert_eq!(ku.value.flags, 1, "leaf keyUsage is digitalSignature only");
    let eku = cert.extended_key_usage().unwrap().unwrap();
    assert!(eku.value.server_auth && eku.value.client_auth);

    let mut has_ski = false;
    let mut has_aki = false;
    for ext in cert.extensions() {
        match ext.parsed_extension() {
            ParsedExtension::SubjectKeyIdentifier(_) => has_ski = true,
            ParsedExtension::AuthorityKeyIdentifier(_) => has_aki = true,
            _ => {}
        }
    }
    assert!(has_ski && has_aki);
    let san = cert.subject_alternative_name().unwrap().unwrap();
    assert_eq!(
        san.value.general_names,
        vec![
            GeneralName::URI("spiffe://example.org/ns/payments/sa/api"),
            GeneralName::DNSName("api.payments.svc"),
        ]
    );
    assert!(cert.subject().iter_organization().next().is_some());
    assert!(cert.subject().iter_common_name().next().is_some());

    // The signing certificate names the trust domain and may sign.
    let (_, inter) = X509Certificate::from_der(&pki.inter).unwrap();
    let bc = inter.basic_constraints().unwrap().unwrap();
    assert!(bc.value.ca && bc.value.path_len_constraint == Some(0));
    // keyCertSign + cRLSign; digitalSignature is reserved for leaves
    // (X.509-SVID Appendix A). The root follows the same template.
    for ca in [&inter, &X509Certificate::from_der(&pki.root).unwrap().1] {
        let ku = ca.key_usage().unwrap().unwrap();
        assert!(ku.critical && ku.value.key_cert_sign() && ku.value.crl_sign());
        assert!(!ku.value.digital_signature());
    }
    let san = inter.subject_alternative_name().unwrap().unwrap();
    assert_eq!(
        san.value.general_names,
        vec![GeneralName::URI("spiffe://example.org")]
    );
}

/// Runs `openssl req` to make a P-256 CSR in `dir`; returns its DER.
fn openssl_csr(dir: &Path, extra: &[&str]) -> Vec<u8> {
    let mut args = vec![
        "req",
        "-new",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-subj",
        "/CN=x",
        "-keyout",
        "key.pem",
        "-outform",
        "DER",
        "-out",
        "csr.der",
    ];
    args.extend_from_slice(extra);
    let out = openssl(dir, &args);
    assert!(
        out.status.success(),
        "openssl req failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::read(dir.join("csr.der")).unwrap()
}

#[test]
fn openssl_csrs_are_accepted_for_their_key_only() {
    let now = SystemTime::now();
    let pki = pki(now);
    let cases: [&[&str]; 2] = [
        &[],
        &[
            "-addext",
            "subjectAltName=URI:spiffe://evil/x",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
        ],
    ];
    for extra in cases {
        let dir = tempfile::tempdir().unwrap();
        let csr = verify_csr(&openssl_csr(dir.path(), extra)).unwrap();

        // The key in the CSR is the key openssl wrote (PKCS#8), also
        // when converted to SEC1 ("EC PRIVATE KEY") and read back.
        let pkcs8 = std::fs::read_to_string(dir.path().join("key.pem")).unwrap();
        let key = PrivateKey::from_pem(&pkcs8).unwrap();
        assert_eq!(key.public_key_der(), csr.public_key_der);
        let out = openssl(dir.path(), &["ec", "-in", "key.pem", "-out", "sec1.pem"]);
        assert!(out.status.success());
        let sec1 = std::fs::read_to_string(dir.path().join("sec1.pem")).unwrap();
        assert!(sec1.contains("BEGIN EC PRIVATE KEY"));
        let key = PrivateKey::from_pem(&sec1).unwrap();
        assert_eq!(key.public_key_der(), csr.public_key_der);

        let leaf = sign_svid(
            &svid_template(now),
            &csr.public_key_der,
            &pki.inter,
            &pki.inter_key.key_pair().unwrap(),
        )
        .unwrap();
        let (_, cert) = X509Certificate::from_der(&leaf).unwrap();
        let san = cert.subject_alternative_name().unwrap().unwrap();
        assert_eq!(
            san.value.general_names,
            vec![
                GeneralName::URI("spiffe://example.org/ns/payments/sa/api"),
                GeneralName::DNSName("api.payments.svc"),
            ]
        );
        assert!(!cert.basic_constraints().unwrap().unwrap().value.ca);
        assert_eq!(cert.public_key().raw, csr.public_key_der.as_slice());
        let v = verify_x509_svid(&[leaf, pki.inter.clone()], &pki.bundles, now).unwrap();
        assert_eq!(
            v.spiffe_id.as_str(),
            "spiffe://example.org/ns/payments/sa/api"
        );
    }
}

#[test]
fn csr_with_corrupted_signature_is_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let mut der = openssl_csr(dir.path(), &[]);
    // The signature BIT STRING ends the CSR: flip a bit in its last byte.
    let last = der.len() - 1;
    der[last] ^= 0x01;
    assert_eq!(verify_csr(&der), Err(CsrError::BadSignature));
}

#[test]
fn openssl_and_we_both_reject_a_not_yet_valid_chain() {
    // Same verdict from both implementations on a chain that is not yet valid.
    let later = SystemTime::now() + 48 * HOUR;
    let pki = pki(later);
    let leaf_key = PrivateKey::generate_p256().unwrap();
    let leaf = sign_svid(
        &svid_template(later),
        &leaf_key.public_key_der(),
        &pki.inter,
        &pki.inter_key.key_pair().unwrap(),
    )
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    write_pem(dir.path(), "root.pem", std::slice::from_ref(&pki.root));
    write_pem(dir.path(), "inter.pem", std::slice::from_ref(&pki.inter));
    write_pem(dir.path(), "leaf.pem", std::slice::from_ref(&leaf));
    let out = openssl(
        dir.path(),
        &[
            "verify",
            "-x509_strict",
            "-CAfile",
            "root.pem",
            "-untrusted",
            "inter.pem",
            "leaf.pem",
        ],
    );
    assert!(!out.status.success());
    let err = verify_x509_svid(&[leaf, pki.inter.clone()], &pki.bundles, SystemTime::now());
    assert!(matches!(
        err,
        Err(meshid_identity::SvidError::NotYetValid { position: 0, .. })
    ));
}
