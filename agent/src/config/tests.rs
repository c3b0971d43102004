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
    assert_eq!(c.trust_domain().unwrap().as_str(), "example.org");
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
fn durations_parse() {
    assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
    assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
    assert!(parse_duration("x").is_err());
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
