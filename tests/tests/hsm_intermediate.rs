//! README "Keep the CA key in an HSM", the intermediate path, with the real
//! binary and SoftHSM2: `meshid ca csr --config ca.toml --hsm` makes the key
//! pair on the token and signs the CSR through it (no key file is written);
//! `openssl x509 -req` signs it under an RSA-4096 root (pathlen:0, a URI
//! name constraint on the trust domain); `meshid ca validate` runs the CA's start-up checks
//! on the chain with the token's key; `meshid ca import --hsm` checks it
//! against the token and writes only chain and roots, on which the CA
//! validates. A second `--hsm` CSR uses the same key; a config without
//! `[keys.pkcs11]` is refused.
#![allow(clippy::unwrap_used)]

use std::path::Path;

use meshid_tests::pki::Pki;
use meshid_tests::softhsm::{MODULE, SoftHsm};
use meshid_tests::{Cmd, tempdir};

/// `cmd` in `dir` with `SOFTHSM2_CONF`: (succeeded, stdout + stderr).
fn run(cmd: Cmd, dir: &Path) -> (bool, String) {
    let out = cmd
        .env("SOFTHSM2_CONF", dir.join("softhsm2.conf"))
        .dir(dir)
        .output();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

fn ok(cmd: Cmd, dir: &Path) -> String {
    let (success, text) = run(cmd, dir);
    assert!(success, "failed:\n{text}");
    text
}

#[test]
fn csr_hsm_makes_the_key_on_the_token_and_the_signed_chain_validates_with_it() {
    let tmp = tempdir();
    let dir = tmp.path();
    SoftHsm::new(dir).init_token("meshid", "user-secret");
    std::fs::write(dir.join("hsm.pin"), "user-secret\n").unwrap();
    let config = format!(
        "trust_domain = \"example.org\"\ndata_dir = \"{}\"\n\n[keys]\nmanager = \"pkcs11\"\n\n\
         [keys.pkcs11]\nmodule = \"{MODULE}\"\ntoken_label = \"meshid\"\npin_file = \"hsm.pin\"\n\
         key_type = \"ec-p384\"\n",
        dir.join("data").display()
    );
    std::fs::write(dir.join("ca.toml"), &config).unwrap();
    let csr =
        |out: &str| Cmd::meshid().args(["ca", "csr", "--config", "ca.toml", "--hsm", "--out", out]);

    let text = ok(csr("mesh.csr"), dir);
    assert!(
        text.contains("pkcs11:token=meshid;object=meshid-x509-ca (ec-p384, generated on the token"),
        "{text}"
    );
    assert!(!dir.join("mesh.key.pem").exists(), "no key file: {text}");
    let text = ok(csr("again.csr"), dir);
    assert!(text.contains("found on the token"), "{text}");

    let pki = Pki::new(dir);
    pki.rsa_4096_root("root");
    pki.sign(
        "mesh",
        &dir.join("mesh.csr"),
        "root",
        "basicConstraints=critical,CA:TRUE,pathlen:0\nkeyUsage=critical,keyCertSign,cRLSign\n\
         subjectAltName=URI:spiffe://example.org\nnameConstraints=critical,permitted;URI:example.org",
    );
    std::fs::write(
        dir.join("ca.toml"),
        format!("{config}\n[upstream]\ncert_chain_file = \"mesh.pem\"\nroot_file = \"root.pem\"\n"),
    )
    .unwrap();
    let validate = || Cmd::meshid().args(["ca", "validate", "--config", "ca.toml"]);
    ok(validate(), dir);

    // `meshid ca import --hsm`: checked against the token's key; only the
    // chain and the roots are written, and the CA validates on them.
    let import = |to: &str| {
        Cmd::meshid().args([
            "ca", "import", "--config", "ca.toml", "--hsm", "--cert", "mesh.pem", "--root",
            "root.pem", "--dir", to,
        ])
    };
    let text = ok(import("up"), dir);
    assert!(
        text.contains("cert_chain_file = \"up/cert-chain.pem\""),
        "{text}"
    );
    let mut written: Vec<_> = std::fs::read_dir(dir.join("up"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    written.sort();
    assert_eq!(written, ["cert-chain.pem", "root-cert.pem"], "{text}");
    std::fs::write(
        dir.join("ca.toml"),
        format!(
            "{config}\n[upstream]\ncert_chain_file = \"up/cert-chain.pem\"\nroot_file = \"up/root-cert.pem\"\n"
        ),
    )
    .unwrap();
    ok(validate(), dir);
    // A directory that holds a key file is not imported into with --hsm.
    std::fs::create_dir(dir.join("keyed")).unwrap();
    std::fs::write(dir.join("keyed/ca-key.pem"), "").unwrap();
    let (success, text) = run(import("keyed"), dir);
    assert!(
        !success
            && text.contains("but the CA key is on the token")
            && text.contains("nothing was written"),
        "{text}"
    );

    // The same chain, with the key label pointing at no key: refused.
    std::fs::write(
        dir.join("ca.toml"),
        format!(
            "{}key_label = \"nothing-here\"\n\n[upstream]\ncert_chain_file = \"mesh.pem\"\nroot_file = \"root.pem\"\n",
            config
        ),
    )
    .unwrap();
    let (success, text) = run(validate(), dir);
    assert!(!success, "{text}");
    assert!(
        text.contains("the intermediate's key is not on the token"),
        "{text}"
    );

    // --hsm without a token in the config.
    std::fs::write(
        dir.join("disk.toml"),
        "trust_domain = \"example.org\"\ndata_dir = \"data\"\n",
    )
    .unwrap();
    let (success, text) = run(
        Cmd::meshid().args([
            "ca",
            "csr",
            "--config",
            "disk.toml",
            "--hsm",
            "--out",
            "x.csr",
        ]),
        dir,
    );
    assert!(
        !success && text.contains("--hsm needs [keys] manager = \"pkcs11\""),
        "{text}"
    );
}
