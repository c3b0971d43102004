//! The README guide "Use your enterprise root", command for command: `meshid
//! ca csr`, the PKI team's `examples/enterprise-root/pki-team.sh` (an
//! offline RSA-4096 root with an encrypted key; the CSR signed with
//! pathlen:0 and a URI name constraint on the trust domain), `meshid ca
//! import` into an Istio plug-in directory, then `meshid ca serve` with
//! `[upstream] dir` and an agent: the SVID it serves verifies with
//! `openssl verify -x509_strict` against the enterprise root; a second
//! intermediate imported into the same directory is taken by the running
//! CA. Also the
//! CLI's refusals: an existing key without `--force`, a wrong key at import
//! (the directory stays as it was).
#![allow(clippy::unwrap_used)]

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use std::time::Duration;

use meshid_identity::x509::pem_certs;
use meshid_tests::{Cmd, Mesh, eventually, tempdir};

/// How long a running CA may take to notice the imported intermediate.
const READY: Duration = Duration::from_secs(30);

/// Runs `cmd` in `dir`; (succeeded, stdout, stderr).
fn run(cmd: Cmd, dir: &Path) -> (bool, String, String) {
    let out = cmd.dir(dir).output();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `cmd` in `dir` must succeed; its stdout.
fn ok(cmd: Cmd, dir: &Path) -> String {
    let (success, stdout, stderr) = run(cmd, dir);
    assert!(success, "failed:\n{stdout}{stderr}");
    stdout
}

/// The PKI team's script, as the guide runs it.
fn pki_team(args: &[&str]) -> Cmd {
    let script =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/enterprise-root/pki-team.sh");
    Cmd::new(script)
        .args(args)
        .env("TRUST_DOMAIN", "example.org")
        .env("ROOT_KEY_PASS", "test-only-passphrase")
}

fn csr(args: &[&str]) -> Cmd {
    Cmd::meshid()
        .args(["ca", "csr", "--trust-domain", "example.org"])
        .args(args)
}

fn import(args: &[&str]) -> Cmd {
    Cmd::meshid()
        .args(["ca", "import", "--trust-domain", "example.org"])
        .args(args)
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
fn the_guide_from_csr_to_an_svid_that_openssl_verifies_under_the_enterprise_root() {
    let tmp = tempdir();
    let pki = tmp.path();
    // meshid: the key and the CSR (relative paths, as the guide types them).
    let out = ok(csr(&["--out", "mesh-intermediate.csr"]), pki);
    assert!(
        out.contains("mesh-intermediate.key.pem (ec-p256, mode 0600)"),
        "{out}"
    );
    assert_eq!(mode(&pki.join("mesh-intermediate.key.pem")), 0o600);
    let text = ok(
        Cmd::new("openssl").args([
            "req",
            "-verify",
            "-text",
            "-noout",
            "-in",
            "mesh-intermediate.csr",
        ]),
        pki,
    );
    for want in [
        "CA:TRUE, pathlen:0",
        "Certificate Sign, CRL Sign",
        "URI:spiffe://example.org",
    ] {
        assert!(text.contains(want), "no {want:?} in\n{text}");
    }
    // The PKI team.
    ok(pki_team(&["root"]), pki);
    ok(
        pki_team(&["sign", "mesh-intermediate.csr", "mesh-intermediate.pem"]),
        pki,
    );
    // meshid: import, then the CA on the directory.
    let out = ok(
        import(&[
            "--cert",
            "mesh-intermediate.pem",
            "--root",
            "root.pem",
            "--key",
            "mesh-intermediate.key.pem",
            "--dir",
            "cacerts",
        ]),
        pki,
    );
    for want in [
        "intermediate  O=meshid, CN=meshid intermediate example.org",
        "issuer        O=Example Corp, CN=Example Corp Root CA",
        "trust domain  example.org",
        "cacerts/ca-cert.pem",
        "[upstream] dir = \"cacerts\"",
    ] {
        assert!(out.contains(want), "no {want:?} in\n{out}");
    }
    let cacerts = pki.join("cacerts");
    let mesh = Mesh::builder()
        .ca_config(&format!(
            "[upstream]\ndir = \"{}\"\nwatch_interval = \"200ms\"\n",
            cacerts.display()
        ))
        .start();
    let svids = mesh.tmp.path().join("svids");
    ok(
        Cmd::meshid()
            .args(["agent", "api", "fetch", "--socket"])
            .args([mesh.workload_socket()])
            .args(["--write"])
            .args([&svids]),
        pki,
    );
    let verified = ok(
        Cmd::new("openssl")
            .args(["verify", "-x509_strict", "-CAfile"])
            .args([pki.join("root.pem")])
            .args(["-untrusted", "svid.0.pem", "svid.0.pem"]),
        &svids,
    );
    assert_eq!(verified.trim(), "svid.0.pem: OK");

    // Rotation: a new key and CSR, signed, imported again with the CA's
    // config; the running CA takes the new intermediate.
    let config = pki.join("ca.toml");
    std::fs::write(
        &config,
        format!(
            "trust_domain = \"example.org\"\n[upstream]\ndir = \"{}\"\n",
            cacerts.display()
        ),
    )
    .unwrap();
    let cfg = config.to_str().unwrap();
    ok(
        Cmd::meshid().args(["ca", "csr", "--config", cfg, "--out", "next.csr"]),
        pki,
    );
    ok(pki_team(&["sign", "next.csr", "next.pem"]), pki);
    ok(
        Cmd::meshid().args([
            "ca",
            "import",
            "--config",
            cfg,
            "--cert",
            "next.pem",
            "--root",
            "root.pem",
            "--key",
            "next.key.pem",
        ]),
        pki,
    );
    let next = std::fs::read_to_string(pki.join("next.pem")).unwrap();
    let next = pem_certs(&next).unwrap();
    eventually("the CA signs with the new intermediate", READY, || {
        let shown = mesh.ca.admin_json(&["ca", "show"]);
        let chain = pem_certs(shown["chain_pem"].as_str()?).ok()?;
        (chain.first() == next.first()).then_some(())
    });
}

#[test]
fn csr_keeps_an_existing_key_without_force_and_import_refuses_a_wrong_key() {
    let tmp = tempdir();
    let pki = tmp.path();
    ok(csr(&["--out", "a.csr", "--key-type", "rsa-3072"]), pki);
    let key = std::fs::read(pki.join("a.key.pem")).unwrap();
    let (success, _, stderr) = run(csr(&["--out", "a.csr"]), pki);
    assert!(!success);
    assert!(
        stderr.contains("a.key.pem exists; refusing to overwrite it (pass --force"),
        "{stderr}"
    );
    assert_eq!(std::fs::read(pki.join("a.key.pem")).unwrap(), key);
    ok(csr(&["--out", "a.csr", "--force"]), pki);
    assert_ne!(std::fs::read(pki.join("a.key.pem")).unwrap(), key);

    // Sign a.csr, then import it with the key of another CSR.
    ok(csr(&["--out", "b.csr", "--key-type", "ec-p384"]), pki);
    ok(pki_team(&["root"]), pki);
    ok(pki_team(&["sign", "a.csr", "a.pem"]), pki);
    let dir = &["--cert", "a.pem", "--root", "root.pem", "--dir", "cacerts"];
    ok(import(dir).args(["--key", "a.key.pem"]), pki);
    let before = std::fs::read(pki.join("cacerts/ca-key.pem")).unwrap();
    let (success, _, stderr) = run(import(dir).args(["--key", "b.key.pem"]), pki);
    assert!(!success);
    assert!(
        stderr.contains("b.key.pem: the key does not match the signing certificate"),
        "{stderr}"
    );
    assert!(stderr.contains("nothing was written"), "{stderr}");
    assert_eq!(
        std::fs::read(pki.join("cacerts/ca-key.pem")).unwrap(),
        before
    );
}
