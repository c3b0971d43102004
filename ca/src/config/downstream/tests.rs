use std::path::Path;

use super::super::CaConfig;
use super::*;

fn config(dir: &Path, upstream: &str) -> String {
    let bundle = dir.join("upstream-bundle.pem");
    if !bundle.exists() {
        std::fs::write(&bundle, "").unwrap();
    }
    format!(
        "trust_domain = \"example.org\"\ndata_dir = {:?}\n[upstream.meshid]\n\
         ca_address = \"ca-root.example.org:8443\"\ntrust_bundle_file = {:?}\n{upstream}",
        dir.join("data").display().to_string(),
        bundle.display().to_string(),
    )
}

fn refusal(dir: &Path, upstream: &str) -> String {
    let c = CaConfig::from_toml(&config(dir, upstream)).unwrap();
    c.validate().unwrap_err().to_string()
}

#[test]
fn an_upstream_meshid_table_parses_with_the_agents_names_and_defaults() {
    let dir = tempfile::tempdir().unwrap();
    let text = config(dir.path(), "join_token = \"secret\"\n");
    let c = CaConfig::from_toml(&format!("{text}[downstream]\nca_ttl = \"12h\"\n")).unwrap();
    let m = c.upstream.as_ref().unwrap().meshid.clone().unwrap();
    assert_eq!(m.ca_address, "ca-root.example.org:8443");
    assert_eq!(m.join_token().unwrap().unwrap().expose(), "secret");
    assert!(
        !format!("{m:?}").contains("secret"),
        "Debug hides the token"
    );
    let td = "example.org".parse().unwrap();
    assert_eq!(
        m.ca_spiffe_id(&td).unwrap().as_str(),
        "spiffe://example.org/meshid/ca"
    );
    assert_eq!(c.downstream.ca_ttl, Duration::from_secs(12 * 3600));
    let v = c.validate().unwrap();
    assert!(
        v.raw
            .upstream
            .unwrap()
            .describe()
            .contains("upstream meshid CA")
    );
    assert_eq!(
        CaConfig::default().downstream.ca_ttl,
        Duration::from_secs(24 * 3600)
    );
}

#[test]
fn the_token_may_come_from_a_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("token");
    std::fs::write(&file, "from-file\n").unwrap();
    let text = config(
        dir.path(),
        &format!("join_token_file = {:?}\n", file.display().to_string()),
    );
    let c = CaConfig::from_toml(&text).unwrap();
    let m = c.upstream.unwrap().meshid.unwrap();
    assert_eq!(m.join_token().unwrap().unwrap().expose(), "from-file");
}

#[test]
fn bad_upstream_meshid_settings_are_refused_with_the_fix() {
    let dir = tempfile::tempdir().unwrap();
    let err = refusal(
        dir.path(),
        "ca_spiffe_id = \"spiffe://other.org/meshid/ca\"\n",
    );
    assert!(err.contains("not in the trust domain example.org"), "{err}");
    let err = refusal(dir.path(), "join_token = \"a\"\njoin_token_file = \"/t\"\n");
    assert!(err.contains("not both"), "{err}");
    let text = config(dir.path(), "").replace(
        "[upstream.meshid]",
        "[upstream]\ncert_chain_file = \"/c.pem\"\n[upstream.meshid]",
    );
    let err = CaConfig::from_toml(&text)
        .unwrap()
        .validate()
        .unwrap_err()
        .to_string();
    assert!(err.contains("drop cert_chain_file"), "{err}");
    let text = config(dir.path(), "").replace("ca-root.example.org:8443", "no-port");
    let err = CaConfig::from_toml(&text)
        .unwrap()
        .validate()
        .unwrap_err()
        .to_string();
    assert!(err.contains("host:port"), "{err}");
    let text = config(dir.path(), "").replace("upstream-bundle.pem", "missing.pem");
    let err = CaConfig::from_toml(&text)
        .unwrap()
        .validate()
        .unwrap_err()
        .to_string();
    assert!(err.contains("trust_bundle_file"), "{err}");
    let text = format!("{}[downstream]\nca_ttl = \"0s\"\n", config(dir.path(), ""));
    let err = CaConfig::from_toml(&text)
        .unwrap()
        .validate()
        .unwrap_err()
        .to_string();
    assert!(err.contains("downstream.ca_ttl"), "{err}");
}

#[test]
fn preflight_reads_the_upstream_bundle_without_contacting_it() {
    let dir = tempfile::tempdir().unwrap();
    let c = CaConfig::from_toml(&config(dir.path(), "")).unwrap();
    let err = c
        .preflight(std::time::SystemTime::now())
        .unwrap_err()
        .to_string();
    assert!(err.contains("upstream.meshid"), "{err}");
    assert!(err.contains("CERTIFICATE"), "{err}");
    let root = meshid_identity::PrivateKey::generate_p256().unwrap();
    let template = meshid_identity::CaTemplate {
        trust_domain: "example.org".parse().unwrap(),
        common_name: "upstream root".into(),
        not_before: std::time::SystemTime::now(),
        not_after: std::time::SystemTime::now() + Duration::from_secs(3600),
        path_len: None,
    };
    let cert = meshid_identity::x509::self_signed_ca(&template, &root.key_pair().unwrap()).unwrap();
    let pem = meshid_identity::x509::to_pem(&[cert]);
    std::fs::write(dir.path().join("upstream-bundle.pem"), pem).unwrap();
    let c = CaConfig::from_toml(&config(dir.path(), "")).unwrap();
    // The bundle is fine; the unreachable upstream is not contacted.
    c.preflight(std::time::SystemTime::now()).unwrap();
}
