use std::collections::HashMap;
use std::time::Duration;

use meshid_identity::TrustDomain;
use meshid_identity::x509::{CaTemplate, SvidTemplate, self_signed_ca, sign_svid};
use meshid_proto::workload::X509svid;

use super::*;

/// A root of `td` and an SVID for `spiffe://<td>/w` with its key.
fn svid(td: &str) -> (CertificateDer<'static>, X509svid) {
    let td = TrustDomain::new(td).unwrap();
    let now = SystemTime::now();
    let root_key = PrivateKey::generate_p256().unwrap();
    let root = self_signed_ca(
        &CaTemplate {
            trust_domain: td.clone(),
            common_name: "root".into(),
            not_before: now,
            not_after: now + Duration::from_secs(3600),
            path_len: None,
        },
        &root_key.key_pair().unwrap(),
    )
    .unwrap();
    let key = PrivateKey::generate_p256().unwrap();
    let id = td.id_with_path("/w").unwrap();
    let leaf = sign_svid(
        &SvidTemplate {
            spiffe_id: id.clone(),
            dns_names: vec![],
            not_before: now,
            not_after: now + Duration::from_secs(600),
        },
        &key.public_key_der(),
        &root,
        &root_key.key_pair().unwrap(),
    )
    .unwrap();
    let s = X509svid {
        spiffe_id: id.as_str().into(),
        x509_svid: leaf.to_vec(),
        x509_svid_key: key.pkcs8_der().to_vec(),
        bundle: root.to_vec(),
        hint: String::new(),
    };
    (root, s)
}

fn mode(p: &Path) -> u32 {
    fs::symlink_metadata(p).unwrap().permissions().mode() & 0o777
}

#[test]
fn writes_spire_named_files_with_private_keys_and_creates_the_dir_0700() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("new/svids");
    let (_, a) = svid("example.org");
    let (fed_b, _) = svid("b.example");
    let (fed_a, _) = svid("a.example");
    let resp = X509svidResponse {
        svids: vec![a.clone(), a],
        crl: vec![],
        federated_bundles: HashMap::from([
            ("b.example".to_string(), fed_b.to_vec()),
            ("a.example".to_string(), fed_a.to_vec()),
        ]),
    };
    let written = x509(&dir, &resp).unwrap();
    let names: Vec<_> = written
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        names,
        [
            "svid.0.pem",
            "svid.0.key",
            "bundle.0.pem",
            "federated_bundle.0.0.pem",
            "federated_bundle.0.1.pem",
            "svid.1.pem",
            "svid.1.key",
            "bundle.1.pem",
            "federated_bundle.1.0.pem",
            "federated_bundle.1.1.pem",
        ]
    );
    assert_eq!(mode(&dir), 0o700);
    assert_eq!(mode(&dir.join("svid.0.key")), 0o600);
    assert_eq!(mode(&dir.join("svid.0.pem")), 0o644);
    let key = fs::read_to_string(dir.join("svid.0.key")).unwrap();
    assert!(key.starts_with("-----BEGIN PRIVATE KEY-----"), "{key}");
    // Federated bundles are numbered by trust-domain name.
    let first = fs::read_to_string(dir.join("federated_bundle.0.0.pem")).unwrap();
    assert_eq!(first, meshid_identity::x509::to_pem(&[fed_a]));
    let leftovers: Vec<_> = fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with('.'))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn a_symlink_at_a_target_name_is_replaced_not_followed() {
    let tmp = tempfile::tempdir().unwrap();
    let victim = tmp.path().join("victim");
    fs::write(&victim, "keep me").unwrap();
    let dir = tmp.path().join("out");
    fs::create_dir(&dir).unwrap();
    std::os::unix::fs::symlink(&victim, dir.join("svid.0.key")).unwrap();
    let (_, s) = svid("example.org");
    let resp = X509svidResponse {
        svids: vec![s],
        ..Default::default()
    };
    x509(&dir, &resp).unwrap();
    assert_eq!(fs::read_to_string(&victim).unwrap(), "keep me");
    assert!(
        !fs::symlink_metadata(dir.join("svid.0.key"))
            .unwrap()
            .is_symlink()
    );
    assert_eq!(mode(&dir.join("svid.0.key")), 0o600);
}

#[test]
fn an_svid_that_does_not_verify_or_fit_its_key_writes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let (_, good) = svid("example.org");
    let (_, other) = svid("example.org");
    let mut wrong_key = good.clone();
    wrong_key.x509_svid_key = other.x509_svid_key.clone();
    let mut wrong_bundle = good.clone();
    wrong_bundle.bundle = other.bundle.clone();
    for (what, bad) in [("key", wrong_key), ("bundle", wrong_bundle)] {
        let dir = tmp.path().join(what);
        let resp = X509svidResponse {
            svids: vec![good.clone(), bad],
            ..Default::default()
        };
        let err = x509(&dir, &resp).unwrap_err();
        assert!(format!("{err:#}").contains("SVID #1"), "{what}: {err:#}");
        assert!(!dir.exists(), "{what}: nothing written");
    }
    let err = x509(tmp.path(), &X509svidResponse::default()).unwrap_err();
    assert!(err.to_string().contains("no X.509-SVID"), "{err}");
}
