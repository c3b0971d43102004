use super::*;

const MINIMAL: &str = r#"
trust_domain = "example.org"
ca_address = "127.0.0.1:8081"
data_dir = "/tmp/x"
workload_api_socket = "/tmp/x/agent.sock"
"#;

#[test]
fn minimal_config_gets_defaults() {
    let c = AgentConfig::from_toml(MINIMAL).unwrap();
    assert_eq!(c.sync_interval, Duration::from_secs(5));
    assert_eq!(c.batch_size, 500);
    assert_eq!(c.sds_socket(), std::path::Path::new("/tmp/x/agent.sock"));
    assert_eq!(c.trust_domain.as_str(), "example.org");
}

#[test]
fn unknown_field_is_refused() {
    let err = AgentConfig::from_toml(&format!("{MINIMAL}\nbogus = 1\n")).unwrap_err();
    assert!(err.to_string().contains("bogus"), "{err}");
}

#[test]
fn bad_values_are_refused_with_the_field_named() {
    for (extra, field) in [
        ("sync_interval = \"5\"", "sync_interval"),
        ("rotation_fraction = 0.95", "rotation_fraction"),
        ("batch_size = 501", "batch_size"),
    ] {
        let err = AgentConfig::from_toml(&format!("{MINIMAL}\n{extra}\n")).unwrap_err();
        assert!(err.to_string().contains(field), "{extra}: {err}");
    }
    let err = AgentConfig::from_toml(&MINIMAL.replace("127.0.0.1:8081", "nohost")).unwrap_err();
    assert!(err.to_string().contains("ca_address"));
}

#[test]
fn join_token_is_not_debug_printed() {
    let c = AgentConfig::from_toml(&format!("{MINIMAL}\njoin_token = \"s3cret\"\n")).unwrap();
    assert!(!format!("{c:?}").contains("s3cret"));
    assert_eq!(c.join_token.unwrap().expose(), "s3cret");
}

#[test]
fn durations_use_the_humantime_grammar() {
    let text = format!(
        "{MINIMAL}\nsync_interval = \"1m 30s\"\nlistener_handshake_timeout = \"1500ms\"\nlistener_idle_timeout = \"1h30m\"\n"
    );
    let c = AgentConfig::from_toml(&text).unwrap();
    assert_eq!(c.sync_interval, Duration::from_secs(90));
    assert_eq!(c.listener_handshake_timeout, Duration::from_millis(1500));
    assert_eq!(c.listener_idle_timeout, Duration::from_secs(5400));
    for (extra, hint) in [
        ("sync_interval = \"soon\"", "sync_interval"),
        ("listener_idle_timeout = \"5\"", "5sec"),
        ("listener_idle_timeout = 5", "listener_idle_timeout"),
        ("sync_interval = \"1d\"", "between 100ms and 1h"),
    ] {
        let err = AgentConfig::from_toml(&format!("{MINIMAL}\n{extra}\n")).unwrap_err();
        let key = extra.split(' ').next().unwrap();
        let err = err.to_string();
        assert!(err.contains(key) && err.contains(hint), "{extra}: {err}");
    }
}

#[test]
fn malformed_trust_domain_fails_the_load_naming_the_key() {
    let err = AgentConfig::from_toml(&MINIMAL.replace("example.org", "Example.org:443"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("trust_domain"), "{err}");
}

#[test]
fn an_endless_or_oversized_trust_bundle_file_is_refused_without_reading_it_all() {
    let text = format!("{MINIMAL}\ntrust_bundle_file = \"/dev/zero\"\n");
    let err = AgentConfig::from_toml(&text)
        .unwrap()
        .trust_bundle()
        .unwrap_err()
        .to_string();
    assert!(err.contains("larger than"), "{err}");
    let err = AgentConfig::load(std::path::Path::new("/dev/zero"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("1 MiB"), "{err}");
}

#[test]
fn trust_bundle_file_is_read_as_the_roots_of_the_trust_domain() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bundle.pem");
    let text = format!(
        "{MINIMAL}\ntrust_bundle_file = {:?}\n",
        file.display().to_string()
    );
    let c = AgentConfig::from_toml(&text).unwrap();
    let err = c.trust_bundle().unwrap_err().to_string();
    assert!(err.contains("trust_bundle_file"), "{err}");
    std::fs::write(&file, "no PEM here").unwrap();
    let err = c.trust_bundle().unwrap_err().to_string();
    assert!(err.contains("trust_bundle_file"), "{err}");
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::default();
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    std::fs::write(&file, params.self_signed(&key).unwrap().pem()).unwrap();
    let bundle = c.trust_bundle().unwrap().unwrap();
    assert_eq!(bundle.trust_domain.as_str(), "example.org");
    assert!(
        AgentConfig::from_toml(MINIMAL)
            .unwrap()
            .trust_bundle()
            .unwrap()
            .is_none()
    );
}

#[test]
fn ca_spiffe_id_defaults_to_the_meshid_ca_of_the_trust_domain() {
    let c = AgentConfig::from_toml(MINIMAL).unwrap();
    assert_eq!(
        c.ca_spiffe_id().unwrap().as_str(),
        "spiffe://example.org/meshid/ca"
    );
    let custom = format!("{MINIMAL}\nca_spiffe_id = \"spiffe://example.org/infra/ca\"\n");
    let c = AgentConfig::from_toml(&custom).unwrap();
    assert_eq!(
        c.ca_spiffe_id().unwrap().as_str(),
        "spiffe://example.org/infra/ca"
    );
}

#[test]
fn ca_spiffe_id_outside_the_trust_domain_or_malformed_is_refused() {
    for bad in [
        "spiffe://other.org/meshid/ca",
        "https://example.org/ca",
        "/meshid/ca",
    ] {
        let text = format!("{MINIMAL}\nca_spiffe_id = \"{bad}\"\n");
        let err = AgentConfig::from_toml(&text).unwrap_err().to_string();
        assert!(err.contains("ca_spiffe_id"), "{bad}: {err}");
    }
    let text = format!("{MINIMAL}\nca_spiffe_id = \"spiffe://other.org/meshid/ca\"\n");
    let err = AgentConfig::from_toml(&text).unwrap_err().to_string();
    assert!(err.contains("trust domain example.org"), "{err}");
}

#[test]
fn several_ca_addresses_are_taken_in_order_and_checked() {
    let several = MINIMAL.replace(
        "ca_address = \"127.0.0.1:8081\"",
        "ca_addresses = [\"ca-0.example.org:8081\", \"[::1]:8081\"]",
    );
    let c = AgentConfig::from_toml(&several).unwrap();
    assert_eq!(c.ca_targets(), vec!["ca-0.example.org:8081", "[::1]:8081"]);
    assert_eq!(
        AgentConfig::from_toml(MINIMAL).unwrap().ca_targets(),
        vec!["127.0.0.1:8081"]
    );

    let both = format!("{MINIMAL}\nca_addresses = [\"a:1\"]\n");
    let none = MINIMAL.replace("ca_address = \"127.0.0.1:8081\"", "");
    let list = |l: &str| {
        MINIMAL.replace(
            "ca_address = \"127.0.0.1:8081\"",
            &format!("ca_addresses = [{l}]"),
        )
    };
    let many = (0..17)
        .map(|i| format!("\"ca-{i}:1\""))
        .collect::<Vec<_>>()
        .join(",");
    for (text, field, says) in [
        (both, "ca_addresses", "not both"),
        (none, "ca_address", "required"),
        (list("\"a:1\", \"nohost\""), "ca_addresses", "nohost"),
        (list("\"a:1\", \"a:1\""), "ca_addresses", "twice"),
        (list(&many), "ca_addresses", "at most 16"),
    ] {
        let err = AgentConfig::from_toml(&text).unwrap_err().to_string();
        assert!(err.contains(field) && err.contains(says), "{err}");
    }
}
