//! `meshid agent api fetch --write DIR` against a running CA + agent, checked
//! with the real `openssl`: the files are the SVID chain, its PKCS#8 key
//! (0600) and its bundle under SPIRE's names, the chain verifies against the
//! bundle, and the key is the certificate's.
#![allow(clippy::unwrap_used)]

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use meshid_tests::{Cmd, Mesh};

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

fn openssl(args: &[&str], dir: &Path) -> String {
    Cmd::new("openssl").args(args).dir(dir).run_ok()
}

fn fetch_write(mesh: &Mesh, dir: &Path, extra: &[&str]) -> std::process::Output {
    let out = Cmd::meshid()
        .args(["agent", "api", "fetch", "--socket"])
        .args([mesh.workload_socket()])
        .args(["--write"])
        .args([dir])
        .args(extra)
        .output();
    assert!(
        out.status.success(),
        "fetch --write failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

#[test]
fn fetch_write_gives_files_openssl_accepts() {
    let mesh = Mesh::start("/fetch-write");
    let dir = mesh.tmp.path().join("out/svids");

    let out = fetch_write(&mesh, &dir, &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    for f in ["svid.0.pem", "svid.0.key", "bundle.0.pem"] {
        assert!(dir.join(f).is_file(), "{f} missing; stderr:\n{stderr}");
        assert!(stderr.contains(f), "{stderr}");
    }
    assert_eq!(mode(&dir), 0o700, "a new DIR is private");
    assert_eq!(mode(&dir.join("svid.0.key")), 0o600);
    assert_eq!(mode(&dir.join("svid.0.pem")), 0o644);

    let verified = openssl(
        &[
            "verify",
            "-CAfile",
            "bundle.0.pem",
            "-untrusted",
            "svid.0.pem",
            "svid.0.pem",
        ],
        &dir,
    );
    assert_eq!(verified.trim(), "svid.0.pem: OK");
    let cert_key = openssl(&["x509", "-in", "svid.0.pem", "-noout", "-pubkey"], &dir);
    let key_pub = openssl(&["pkey", "-in", "svid.0.key", "-pubout"], &dir);
    assert!(cert_key.contains("BEGIN PUBLIC KEY"), "{cert_key}");
    assert_eq!(cert_key, key_pub, "the key is the certificate's");
    let uri = openssl(
        &[
            "x509",
            "-in",
            "svid.0.pem",
            "-noout",
            "-ext",
            "subjectAltName",
        ],
        &dir,
    );
    assert!(uri.contains(&format!("URI:{}", mesh.spiffe_id)), "{uri}");

    // Again, with JSON output: the files are replaced in place, stdout stays
    // one JSON document and no temporary file is left behind.
    let out = fetch_write(&mesh, &dir, &["--output", "json"]);
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["svids"][0]["spiffe_id"], mesh.spiffe_id.as_str());
    let verified = openssl(
        &[
            "verify",
            "-CAfile",
            "bundle.0.pem",
            "-untrusted",
            "svid.0.pem",
            "svid.0.pem",
        ],
        &dir,
    );
    assert_eq!(verified.trim(), "svid.0.pem: OK");
    let names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(!names.iter().any(|n| n.starts_with('.')), "{names:?}");
    assert_eq!(names.len(), 3, "{names:?}");
}

#[test]
fn fetch_write_is_refused_with_jwt() {
    let out = Cmd::meshid()
        .args([
            "agent",
            "api",
            "fetch",
            "--jwt",
            "--audience",
            "x",
            "--write",
            "/tmp/x",
        ])
        .output();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--write"), "{err}");
}
