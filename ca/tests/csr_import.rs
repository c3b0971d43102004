//! The PKI team's workflow through the library that `meshid ca csr` and
//! `meshid ca import` call: a CSR per key type that `openssl req -verify`
//! accepts with the CA extensions, signed by the commands of the README
//! guide (`examples/enterprise-root/pki-team.sh`), imported into an Istio
//! plug-in directory the CA starts on; broken sets are refused with the
//! start-up messages and leave the directory as it was.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, SystemTime};

use meshid_ca::config::{CaConfig, DEFAULT_MIN_REMAINING, UpstreamConfig};
use meshid_ca::csr::{self, IntermediateCsr};
use meshid_ca::upstream::{Import, ImportError};
use meshid_identity::x509::pem_certs;
use meshid_identity::{KeyAlgorithm, PrivateKey, TrustDomain};
use meshid_tests::pki::{Alg, Pki};

#[path = "support/server.rs"]
mod server;

fn td() -> TrustDomain {
    TrustDomain::new(server::TD).unwrap()
}

/// Runs the guide's `pki-team.sh` in `dir`; panics with its output on failure.
fn pki_team(dir: &Path, args: &[&Path]) {
    let script =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/enterprise-root/pki-team.sh");
    let out = Command::new(script)
        .args(args)
        .current_dir(dir)
        .env("TRUST_DOMAIN", server::TD)
        .env("ROOT_KEY_PASS", "test-only-passphrase")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "pki-team.sh {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `openssl req -verify -text -noout` of `csr`: (succeeded, stdout+stderr).
fn openssl_req_verify(csr: &Path) -> (bool, String) {
    let out = Command::new("openssl")
        .args(["req", "-verify", "-text", "-noout", "-in"])
        .arg(csr)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// A key of `alg` and its CSR in `dir`: (key path, csr path).
fn make_csr(dir: &Path, alg: KeyAlgorithm) -> (PathBuf, PathBuf) {
    let key_path = dir.join(format!("{alg}.key.pem"));
    let csr_path = dir.join(format!("{alg}.csr"));
    let key = PrivateKey::generate(alg).unwrap();
    csr::create(
        &IntermediateCsr::new(td()),
        &key,
        &key_path,
        &csr_path,
        false,
    )
    .unwrap();
    (key_path, csr_path)
}

fn import(cert: &Path, root: &Path, key: &Path, dir: &Path) -> Import {
    Import {
        cert: cert.to_path_buf(),
        chain: None,
        roots: root.to_path_buf(),
        key: Some(key.to_path_buf()),
        dir: dir.to_path_buf(),
        min_remaining: DEFAULT_MIN_REMAINING,
    }
}

/// Every file of `dir` with its bytes and mode.
fn snapshot(dir: &Path) -> BTreeMap<String, (Vec<u8>, u32)> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            let mode = e.metadata().unwrap().permissions().mode() & 0o777;
            let bytes = std::fs::read(e.path()).unwrap();
            (e.file_name().to_string_lossy().into_owned(), (bytes, mode))
        })
        .collect()
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[tokio::test]
async fn each_key_type_is_requested_signed_by_the_guide_and_imported_for_the_ca() {
    let dir = meshid_tests::tempdir();
    pki_team(dir.path(), &[Path::new("root")]);
    let root = dir.path().join("root.pem");
    for alg in KeyAlgorithm::ALL {
        let (key, csr) = make_csr(dir.path(), alg);
        assert_eq!(mode(&key), 0o600, "{alg}");
        let (ok, text) = openssl_req_verify(&csr);
        assert!(ok, "{alg}: {text}");
        for want in [
            "verify OK",
            "X509v3 Basic Constraints: critical",
            "CA:TRUE, pathlen:0",
            "X509v3 Key Usage: critical",
            "Certificate Sign, CRL Sign",
            "URI:spiffe://example.org",
            "Subject: O = meshid, CN = meshid intermediate example.org",
        ] {
            assert!(text.contains(want), "{alg}: no {want:?} in\n{text}");
        }
        let cert = dir.path().join(format!("{alg}.pem"));
        pki_team(dir.path(), &[Path::new("sign"), &csr, &cert]);
        let cacerts = dir.path().join(format!("cacerts-{alg}"));
        let done = import(&cert, &root, &key, &cacerts)
            .run(&td(), SystemTime::now())
            .unwrap();
        assert_eq!(done.subject, "O=meshid, CN=meshid intermediate example.org");
        assert_eq!(done.issuer, "O=Example Corp, CN=Example Corp Root CA");
        let names: Vec<_> = done.files.iter().map(|f| f.file_name().unwrap()).collect();
        assert_eq!(
            names,
            [
                "root-cert.pem",
                "cert-chain.pem",
                "ca-key.pem",
                "ca-cert.pem"
            ],
            "the signing certificate is written last"
        );
        assert_eq!(mode(&cacerts), 0o700);
        assert_eq!(mode(&cacerts.join("ca-key.pem")), 0o600);
        let certs = |p: &Path| pem_certs(&std::fs::read_to_string(p).unwrap()).unwrap();
        assert_eq!(certs(&cacerts.join("root-cert.pem")), certs(&root));
        let chain = certs(&cacerts.join("cert-chain.pem"));
        assert_eq!(chain, [certs(&cert), certs(&root)].concat());
        let cfg = CaConfig {
            upstream: Some(UpstreamConfig::dir(&cacerts)),
            ..server::config(&dir.path().join(format!("ca-data-{alg}")))
        };
        cfg.clone().preflight(SystemTime::now()).unwrap();
        if alg == KeyAlgorithm::Rsa3072 {
            // The CA starts on the directory.
            server::start(cfg).await.shutdown().await.unwrap();
        }
    }
}

/// An imported directory and the PKI that made it, for refusal tests.
struct Imported {
    _tmp: tempfile::TempDir,
    pki: Pki,
    cacerts: PathBuf,
}

fn imported() -> Imported {
    let tmp = meshid_tests::tempdir();
    let pki = Pki::new(tmp.path());
    pki.root("root", Alg::P256);
    pki.mesh_ca("mesh", "root", Alg::P256, "");
    let cacerts = tmp.path().join("cacerts");
    import(
        &pki.cert("mesh"),
        &pki.cert("root"),
        &pki.key("mesh"),
        &cacerts,
    )
    .run(&td(), SystemTime::now())
    .unwrap();
    Imported {
        _tmp: tmp,
        pki,
        cacerts,
    }
}

/// `import` is refused with a message holding `want`, and leaves the
/// directory as it was.
fn refused(at: &Imported, import: Import, want: &str) {
    let before = snapshot(&at.cacerts);
    let e = import.run(&td(), SystemTime::now()).unwrap_err();
    assert!(matches!(e, ImportError::Refused(_)), "{e}");
    let msg = e.to_string();
    assert!(msg.contains(want), "expected {want:?} in: {msg}");
    assert!(msg.ends_with("nothing was written"), "{msg}");
    assert_eq!(snapshot(&at.cacerts), before, "the directory changed");
}

#[test]
fn broken_sets_are_refused_with_the_start_up_messages_and_write_nothing() {
    let at = imported();
    let pki = &at.pki;
    let (cert, root) = (pki.cert("mesh"), pki.cert("root"));
    // A key that is not the certificate's.
    pki.mesh_ca("other", "root", Alg::P256, "");
    refused(
        &at,
        import(&cert, &root, &pki.key("other"), &at.cacerts),
        "the key does not match the signing certificate \"O=Example Corp, CN=mesh\"",
    );
    // A chain file holding a CA that does not link.
    pki.root("stranger-root", Alg::P256);
    pki.ca(
        "stranger",
        "stranger-root",
        Alg::P256,
        "basicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign",
    );
    refused(
        &at,
        Import {
            chain: Some(pki.cert("stranger")),
            ..import(&cert, &root, &pki.key("mesh"), &at.cacerts)
        },
        "the chain does not link",
    );
    // No root: the "root" file holds the intermediate itself.
    refused(
        &at,
        import(&cert, &cert, &pki.key("mesh"), &at.cacerts),
        "neither in the chain nor among the roots",
    );
    // Name constraints that exclude the trust domain.
    pki.mesh_ca(
        "excluded",
        "root",
        Alg::P256,
        "nameConstraints=critical,excluded;URI:example.org",
    );
    refused(
        &at,
        import(
            &pki.cert("excluded"),
            &root,
            &pki.key("excluded"),
            &at.cacerts,
        ),
        "exclude this trust domain's SPIFFE IDs",
    );
    // The root itself is not an intermediate to import.
    refused(
        &at,
        import(&root, &root, &pki.key("root"), &at.cacerts),
        "is a root; import the intermediate",
    );
}

#[test]
fn a_kubernetes_secret_directory_or_a_file_is_not_written_into() {
    let at = imported();
    let pki = &at.pki;
    let secret = at.pki.dir.join("secret");
    std::fs::create_dir(&secret).unwrap();
    std::fs::write(secret.join("tls.crt"), "x").unwrap();
    let e = import(
        &pki.cert("mesh"),
        &pki.cert("root"),
        &pki.key("mesh"),
        &secret,
    )
    .run(&td(), SystemTime::now())
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("holds a Kubernetes TLS Secret's files (tls.crt)"),
        "{e}"
    );
    assert_eq!(snapshot(&secret).len(), 1);
    let file = secret.join("tls.crt");
    let e = import(
        &pki.cert("mesh"),
        &pki.cert("root"),
        &pki.key("mesh"),
        &file,
    )
    .run(&td(), SystemTime::now())
    .unwrap_err()
    .to_string();
    assert!(e.contains("tls.crt: is not a directory"), "{e}");
}

#[test]
fn importing_again_rotates_and_a_key_already_in_the_directory_stays() {
    let at = imported();
    let pki = &at.pki;
    // Rotation: a new intermediate with its own key replaces the set.
    pki.mesh_ca("next", "root", Alg::P384, "");
    import(
        &pki.cert("next"),
        &pki.cert("root"),
        &pki.key("next"),
        &at.cacerts,
    )
    .run(&td(), SystemTime::now())
    .unwrap();
    let key_file = at.cacerts.join("ca-key.pem");
    let key = PrivateKey::from_pem(&std::fs::read_to_string(&key_file).unwrap()).unwrap();
    let next = PrivateKey::from_pem(&std::fs::read_to_string(pki.key("next")).unwrap()).unwrap();
    assert_eq!(key.public_key_der(), next.public_key_der());
    // The certificate re-issued for the same key, the key taken from the
    // directory: the key file is not rewritten.
    let before = std::fs::metadata(&key_file).unwrap().modified().unwrap();
    std::thread::sleep(Duration::from_millis(20));
    let done = Import {
        key: None,
        ..import(&pki.cert("next"), &pki.cert("root"), &key_file, &at.cacerts)
    }
    .run(&td(), SystemTime::now())
    .unwrap();
    assert_eq!(done.files.len(), 3, "{:?}", done.files);
    assert_eq!(
        std::fs::metadata(&key_file).unwrap().modified().unwrap(),
        before
    );
}
