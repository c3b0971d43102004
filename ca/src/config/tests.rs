use std::time::SystemTime;

use super::*;

fn base(dir: &Path) -> String {
    format!(
        "trust_domain = \"example.org\"\ndata_dir = {:?}\n",
        dir.display().to_string()
    )
}

#[test]
fn parses_a_full_file_and_fills_defaults() {
    let dir = tempfile::tempdir().unwrap();
    let text = format!("{}max_x509_ttl = \"2h\"\n", base(dir.path()));
    let v = CaConfig::from_toml(&text).unwrap().validate().unwrap();
    assert_eq!(v.trust_domain.to_string(), "example.org");
    assert_eq!(v.raw.max_x509_ttl, Duration::from_secs(7200));
    assert_eq!(v.raw.listen, default_listen());
    assert_eq!(v.admin_socket, dir.path().join("admin.sock"));
    assert!(v.store.to_string().starts_with("sqlite:///"));
}

#[test]
fn durations_use_the_humantime_grammar() {
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        "{}max_x509_ttl = \"1h30m\"\ndefault_x509_ttl = \"1h 15m\"\nagent_ttl = \"90m\"\nca_ttl = \"2y\"\ndefault_jwt_ttl = \"90s\"\n",
        base(dir.path())
    );
    let c = CaConfig::from_toml(&text).unwrap();
    assert_eq!(c.max_x509_ttl, Duration::from_secs(5400));
    assert_eq!(c.default_x509_ttl, Duration::from_secs(4500));
    assert_eq!(c.agent_ttl, Duration::from_secs(5400));
    assert_eq!(c.default_jwt_ttl, Duration::from_secs(90));
    assert!(c.validate().is_ok());
    let c = CaConfig::from_toml("ca_ttl = \"365d\"").unwrap();
    assert_eq!(c.ca_ttl, Duration::from_secs(365 * 86400));
}

#[test]
fn upstream_watch_interval_defaults_to_10s_and_0s_turns_watching_off() {
    let parse = |extra: &str| {
        let text = format!("[upstream]\ndir = \"/etc/cacerts\"\n{extra}");
        CaConfig::from_toml(&text).map(|c| c.upstream.unwrap().watch_interval)
    };
    assert_eq!(parse("").unwrap(), DEFAULT_WATCH_INTERVAL);
    assert_eq!(parse("watch_interval = \"0s\"").unwrap(), Duration::ZERO);
    assert_eq!(
        parse("watch_interval = \"500ms\"").unwrap(),
        Duration::from_millis(500)
    );
    let e = parse("watch_interval = \"10\"").unwrap_err().to_string();
    assert!(e.contains("watch_interval"), "{e}");
}

#[test]
fn bad_durations_are_refused_naming_the_key_and_the_fix() {
    for (text, hint) in [
        ("max_x509_ttl = \"soon\"", "max_x509_ttl"),
        ("agent_ttl = \"1x\"", "unknown time unit"),
        ("default_jwt_ttl = \"-5m\"", "default_jwt_ttl"),
        // A bare number has no unit: refused, with an example of the fix.
        ("ca_ttl = \"3600\"", "3600sec"),
        ("ca_ttl = 3600", "ca_ttl"),
    ] {
        let e = CaConfig::from_toml(text).unwrap_err().to_string();
        assert!(e.contains(hint), "{text}: {e}");
        let key = text.split(' ').next().unwrap();
        assert!(e.contains(key), "{text}: {e}");
    }
    let dir = tempfile::tempdir().unwrap();
    let text = format!("{}ca_ttl = \"1000y\"\n", base(dir.path()));
    let e = CaConfig::from_toml(&text).unwrap().validate().unwrap_err();
    assert!(e.to_string().contains("ca_ttl"), "{e}");
}

#[test]
fn unknown_fields_and_missing_settings_are_named() {
    let e = CaConfig::from_toml("trust_domain = \"a.org\"\nlisten_addr = \"x\"").unwrap_err();
    assert!(e.to_string().contains("listen_addr"), "{e}");
    let e = CaConfig::default().validate().unwrap_err();
    assert!(e.to_string().contains("trust_domain"), "{e}");
}

#[test]
fn bad_trust_domain_or_admin_id_fails_the_load_naming_the_key() {
    let e = CaConfig::from_toml("trust_domain = \"Example.org\"").unwrap_err();
    assert!(e.to_string().contains("trust_domain"), "{e}");
    let e = CaConfig::from_toml("admin_ids = [\"spiffe://example.org/a//b\"]").unwrap_err();
    assert!(e.to_string().contains("admin_ids"), "{e}");
}

#[test]
fn admin_ids_must_be_in_the_trust_domain_and_outside_the_reserved_space() {
    let dir = tempfile::tempdir().unwrap();
    let with = |id: &str| {
        let text = format!("{}admin_ids = [{id:?}]\n", base(dir.path()));
        CaConfig::from_toml(&text).unwrap().validate()
    };
    assert!(with("spiffe://example.org/ops/admin").is_ok());
    for (id, hint) in [
        ("spiffe://example.org/meshid/ca", "reserves"),
        ("spiffe://example.org/meshid/agent/join_token/x", "reserves"),
        (
            "spiffe://other.org/ops/admin",
            "not in the trust domain example.org",
        ),
    ] {
        let e = with(id).unwrap_err().to_string();
        assert!(e.contains("admin_ids") && e.contains(hint), "{id}: {e}");
    }
}

#[test]
fn unwritable_data_dir_is_reported_with_its_path() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("plain-file");
    std::fs::write(&file, b"x").unwrap();
    let cfg = CaConfig {
        trust_domain: Some("example.org".parse().unwrap()),
        data_dir: Some(file.clone()),
        ..CaConfig::default()
    };
    let e = cfg.clone().validate().unwrap_err().to_string();
    assert!(
        e.contains("data_dir") && e.contains(&file.display().to_string()),
        "{e}"
    );
    let e = cfg.preflight(SystemTime::now()).unwrap_err().to_string();
    assert!(e.contains("data_dir"), "{e}");
}

#[test]
fn preflight_creates_nothing_and_reads_the_upstream_files() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("not-yet").join("ca");
    let text = format!(
        "trust_domain = \"example.org\"\ndata_dir = {:?}\n",
        data.display().to_string()
    );
    let v = CaConfig::from_toml(&text)
        .unwrap()
        .preflight(SystemTime::now())
        .unwrap();
    assert_eq!(v.data_dir, data);
    assert!(!dir.path().join("not-yet").exists());

    let chain = dir.path().join("chain.pem");
    let key = dir.path().join("key.pem");
    std::fs::write(&chain, "not a certificate").unwrap();
    std::fs::write(&key, "not a key").unwrap();
    let text = format!(
        "{text}upstream = {{ cert_chain_file = {:?}, key_file = {:?} }}\n",
        chain.display().to_string(),
        key.display().to_string()
    );
    let e = CaConfig::from_toml(&text)
        .unwrap()
        .preflight(SystemTime::now())
        .unwrap_err()
        .to_string();
    assert!(e.contains("upstream"), "{e}");
}
