//! Enterprise chains the CA must not run on, through the real binary: each
//! is refused by `meshid ca validate` (non-zero exit, its own message on
//! stderr) and by `meshid ca serve`, which exits non-zero with the same
//! message before any listener, so `/readyz` never reports ready for a
//! chain agents could not verify. A PKCS#1 RSA key is accepted. An
//! intermediate close to expiry starts with a warning that names the file,
//! notAfter and what to do; one that expires while the CA runs turns
//! `/readyz` to 503. The CA's own tests (`ca/tests/upstream_files.rs`)
//! check more chains in process.
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::time::{Duration, SystemTime};

use meshid_tests::http::http;
use meshid_tests::pki::{Alg, Pki};
use meshid_tests::{Cmd, Start, TestCa, eventually, wait_for_line};

const DAY: Duration = Duration::from_secs(86_400);
/// How long the intermediate of the expiry test lives after the test starts.
const LIFETIME: Duration = Duration::from_secs(12);
const MESH_CA: &str =
    "basicConstraints=critical,CA:TRUE,pathlen:0\nkeyUsage=critical,keyCertSign,cRLSign";

/// An `[upstream]` section: `chain` and `key` (names of `pki` files) and
/// the root `root`; `extra` adds settings.
fn upstream(pki: &Pki, chain: &Path, key: &str, extra: &str) -> String {
    let q = |p: &Path| format!("{:?}", p.display().to_string());
    format!(
        "[upstream]\ncert_chain_file = {}\nkey_file = {}\nroot_file = {}\n{extra}",
        q(chain),
        q(&pki.key(key)),
        q(&pki.cert("root")),
    )
}

/// A root → policy CA (pathlen `policy_pathlen`) → mesh CA PKI, the mesh CA
/// with `mesh_extra` extensions.
fn two_level(dir: &Path, policy_pathlen: u32, mesh_extra: &str) -> Pki {
    let pki = Pki::new(dir);
    pki.root("root", Alg::P256);
    pki.ca(
        "policy",
        "root",
        Alg::P256,
        &format!(
            "basicConstraints=critical,CA:TRUE,pathlen:{policy_pathlen}\n\
             keyUsage=critical,keyCertSign,cRLSign"
        ),
    );
    pki.mesh_ca("mesh", "policy", Alg::P256, mesh_extra);
    pki
}

/// A root → mesh CA PKI, the mesh CA valid from `not_before` to `not_after`.
fn dated(dir: &Path, not_before: SystemTime, not_after: SystemTime) -> Pki {
    let pki = Pki::new(dir);
    pki.root("root", Alg::P256);
    pki.ca_between("mesh", "root", Alg::P256, MESH_CA, not_before, not_after);
    pki
}

/// One broken case: its CA config and the parts its message must hold.
struct Broken {
    name: &'static str,
    config: String,
    message: Vec<&'static str>,
}

/// Every broken chain, each in its own directory under `root`.
fn broken_cases(root: &Path) -> Vec<Broken> {
    let now = SystemTime::now();
    let case = |name: &str| {
        let dir = root.join(name);
        std::fs::create_dir(&dir).unwrap();
        dir
    };
    let mut cases = Vec::new();

    let pki = two_level(
        &case("excluded"),
        1,
        "nameConstraints=critical,excluded;URI:example.org",
    );
    let chain = pki.bundle("chain.pem", &["mesh", "policy"]);
    cases.push(Broken {
        name: "nameConstraints exclude the trust domain",
        config: upstream(&pki, &chain, "mesh", ""),
        message: vec![
            "chain.pem: the nameConstraints of certificate \"O=Example Corp, CN=mesh\" exclude \
             this trust domain's SPIFFE IDs (spiffe://example.org/…)",
            "permit URI:example.org",
        ],
    });

    let pki = two_level(&case("pathlen"), 0, "");
    let chain = pki.bundle("chain.pem", &["mesh", "policy"]);
    cases.push(Broken {
        name: "a pathLen violation",
        config: upstream(&pki, &chain, "mesh", ""),
        message: vec![
            "chain.pem: certificate \"O=Example Corp, CN=policy\" has pathLenConstraint 0, which \
             forbids the 1 CA(s) below it",
        ],
    });

    let pki = two_level(&case("unlinked"), 1, "");
    pki.root("stray-root", Alg::P256);
    pki.mesh_ca("stray", "stray-root", Alg::P256, "");
    let chain = pki.bundle("chain.pem", &["mesh", "policy", "stray"]);
    cases.push(Broken {
        name: "an unlinked chain",
        config: upstream(&pki, &chain, "mesh", ""),
        message: vec![
            "chain.pem: the chain does not link: certificate \"O=Example Corp, CN=stray\"",
        ],
    });

    let pki = two_level(&case("middle"), 1, "");
    cases.push(Broken {
        name: "a missing middle CA",
        config: upstream(&pki, &pki.cert("mesh"), "mesh", ""),
        message: vec![
            "mesh.pem: certificate \"O=Example Corp, CN=mesh\" was issued by a CA that is \
             neither in the chain nor among the roots in ",
            "a middle CA is missing from the chain",
        ],
    });

    let pki = dated(&case("not-yet-valid"), now + DAY, now + 10 * DAY);
    cases.push(Broken {
        name: "a not-yet-valid intermediate",
        config: upstream(&pki, &pki.cert("mesh"), "mesh", ""),
        message: vec![
            "mesh.pem: certificate \"O=Example Corp, CN=mesh\" is not valid yet (notBefore ",
            "check the clock or wait",
        ],
    });

    let pki = dated(&case("expired"), now - 10 * DAY, now - DAY);
    cases.push(Broken {
        name: "an expired intermediate",
        config: upstream(&pki, &pki.cert("mesh"), "mesh", ""),
        message: vec![
            "mesh.pem: certificate \"O=Example Corp, CN=mesh\" has expired (notAfter ",
            "renew it",
        ],
    });

    let pki = two_level(&case("key"), 1, "");
    let chain = pki.bundle("chain.pem", &["mesh", "policy"]);
    cases.push(Broken {
        name: "a key that does not match",
        config: upstream(&pki, &chain, "policy", ""),
        message: vec![
            "policy.key: the key does not match the signing certificate \"O=Example Corp, CN=mesh\"",
        ],
    });
    cases
}

/// `meshid ca validate` on `config` with a data dir under `dir`.
fn validate(dir: &Path, config: &str) -> std::process::Output {
    let file = dir.join("validate.toml");
    std::fs::write(&file, config).unwrap();
    Cmd::meshid()
        .args([
            "ca",
            "validate",
            "--trust-domain",
            "example.org",
            "--config",
        ])
        .args([&file])
        .args(["--data-dir"])
        .args([dir.join("validate-data")])
        .output()
}

/// A CA on `config` with its data and logs under `dir`.
fn ca(dir: &Path, config: &str) -> meshid_tests::TestCaBuilder {
    TestCa::builder(dir.join("ca"), dir).config(config)
}

#[test]
fn every_broken_chain_is_refused_at_start_up_with_its_own_message() {
    let tmp = meshid_tests::tempdir();
    let cases = broken_cases(tmp.path());
    let mut seen = Vec::new();
    for (i, case) in cases.iter().enumerate() {
        let dir = tmp.path().join(format!("run-{i}"));
        std::fs::create_dir(&dir).unwrap();
        let out = validate(&dir, &case.config);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{}: validate passed", case.name);
        for part in &case.message {
            assert!(
                stderr.contains(part),
                "{}: {part:?} not on stderr of validate:\n{stderr}",
                case.name
            );
        }
        match ca(&dir, &case.config).try_start() {
            Start::Exited { status, child } => {
                assert!(!status.success(), "{}: serve exited 0", case.name);
                let log = child.log();
                for part in &case.message {
                    assert!(log.contains(part), "{}: {part:?} not in:\n{log}", case.name);
                }
            }
            Start::Running(ca) => {
                let (code, why) = http(ca.ops_port, "GET", "/readyz");
                panic!(
                    "{}: the CA started on a chain agents cannot verify (/readyz {code}: {why})",
                    case.name
                );
            }
        }
        // Each case fails with a message of its own.
        assert!(!seen.contains(&case.message[0]), "{}", case.name);
        seen.push(case.message[0]);
    }
}

#[test]
fn a_pkcs1_rsa_key_is_accepted() {
    let tmp = meshid_tests::tempdir();
    let pki = Pki::new(tmp.path());
    pki.root("root", Alg::P256);
    pki.mesh_ca("mesh", "root", Alg::Rsa(2048), "");
    pki.traditional_key("mesh");
    let key = std::fs::read_to_string(pki.key("mesh")).unwrap();
    assert!(key.starts_with("-----BEGIN RSA PRIVATE KEY-----"), "{key}");
    let config = upstream(&pki, &pki.cert("mesh"), "mesh", "");
    let out = validate(tmp.path(), &config);
    assert!(
        out.status.success(),
        "validate refused a PKCS#1 key:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let ca = ca(tmp.path(), &config).start();
    let ready = eventually("the CA's /readyz", Duration::from_secs(30), || {
        let r = http(ca.ops_port, "GET", "/readyz");
        (r.0 == 200).then_some(r)
    });
    assert_eq!(ready.0, 200);
}

#[tokio::test]
async fn an_intermediate_close_to_expiry_starts_with_a_warning() {
    let tmp = meshid_tests::tempdir();
    let pki = Pki::new(tmp.path());
    pki.root("root", Alg::P256);
    pki.mesh_ca("mesh", "root", Alg::P256, ""); // 20 days left
    let config = upstream(&pki, &pki.cert("mesh"), "mesh", "min_remaining = \"25d\"\n");
    let not_after = openssl_not_after(&pki.cert("mesh"));
    let ca = ca(tmp.path(), &config).start();
    let line = wait_for_line(ca.child.log_file(), "expires soon", Duration::from_secs(10)).await;
    for part in [
        "WARN",
        &pki.cert("mesh").display().to_string(),
        &not_after,
        "renew",
    ] {
        assert!(line.contains(part), "{part:?} not in the warning: {line}");
    }
    // `meshid ca validate` warns too (by default below 30 days), but not
    // with 20 days left and a threshold of 10.
    let out = validate(tmp.path(), &upstream(&pki, &pki.cert("mesh"), "mesh", ""));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("expires soon"), "{stderr}");
    let quiet = upstream(&pki, &pki.cert("mesh"), "mesh", "min_remaining = \"10d\"\n");
    let out = validate(tmp.path(), &quiet);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(!stderr.contains("expires soon"), "{stderr}");
    // A root that expires before the intermediate is the one named.
    let now = SystemTime::now();
    pki.ca_between("long", "root", Alg::P256, MESH_CA, now, now + 60 * DAY);
    let root_first = upstream(&pki, &pki.cert("long"), "long", "min_remaining = \"40d\"\n");
    let out = validate(tmp.path(), &root_first);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let line = meshid_tests::lines::first_line(&stderr, "expires soon")
        .unwrap_or_else(|| panic!("no warning:\n{stderr}"));
    assert!(
        line.contains(&openssl_not_after(&pki.cert("root"))),
        "{line}"
    );
    assert!(line.contains("CN=root"), "{line}");
}

#[test]
fn readyz_turns_503_when_the_intermediate_expires_under_the_running_ca() {
    let tmp = meshid_tests::tempdir();
    let now = SystemTime::now();
    let not_after = now + LIFETIME;
    let pki = dated(tmp.path(), now - DAY, not_after);
    let config = upstream(&pki, &pki.cert("mesh"), "mesh", "");
    let ca = match ca(tmp.path(), &config).try_start() {
        Start::Running(ca) => ca,
        Start::Exited { child, .. } => {
            // A machine too loaded to start the CA within LIFETIME: the
            // chain had expired, and the CA refused it.
            let log = child.log();
            assert!(log.contains("has expired (notAfter "), "{log}");
            return;
        }
    };
    let up_at = SystemTime::now();
    // Poll until well past notAfter (whole seconds in the certificate);
    // the CA must never be ready at or after it.
    let mut ready_before = false;
    let end = not_after + Duration::from_secs(3);
    while SystemTime::now() < end {
        let asked = SystemTime::now();
        let (code, body) = http(ca.ops_port, "GET", "/readyz");
        if asked >= not_after {
            assert_ne!(
                code, 200,
                "/readyz is ready after the intermediate expired: {body}"
            );
        } else if code == 200 {
            ready_before = true;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    // (Unless it came up in the chain's last seconds, too late to ask.)
    let had_time = not_after
        .duration_since(up_at)
        .is_ok_and(|left| left > Duration::from_secs(2));
    assert!(
        ready_before || !had_time,
        "the CA was never ready while its chain was valid"
    );
    let (code, body) = http(ca.ops_port, "GET", "/readyz");
    assert_eq!(code, 503, "{body}");
    assert!(body.contains("issuance"), "{body}");
}

/// notAfter of `cert` in RFC 3339 (as the CA logs it), read by `openssl`.
fn openssl_not_after(cert: &Path) -> String {
    let out = Cmd::new("openssl")
        .args(["x509", "-noout", "-enddate", "-dateopt", "iso_8601", "-in"])
        .args([cert])
        .run_ok();
    // notAfter=2026-12-21 13:00:00Z
    out.trim()
        .trim_start_matches("notAfter=")
        .replacen(' ', "T", 1)
}
