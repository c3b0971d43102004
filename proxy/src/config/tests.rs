use super::*;

const YAML: &str = r#"
identity:
  files: { cert: /c.pem, key: /k.pem, bundle: /b.pem }
inbound:
  - { listen: "127.0.0.1:15006", forward_to: "127.0.0.1:8080" }
outbound:
  - { listen: "127.0.0.1:15001", upstream: "127.0.0.1:15006", server_id: "spiffe://example.org/b", protocol: tcp, pool: false }
mode: audit
access_log: off
"#;

#[test]
fn parses_yaml_with_defaults() {
    let c = ProxyConfig::from_yaml(YAML).unwrap();
    assert_eq!(c.inbound[0].protocol, Protocol::Http);
    assert_eq!(c.outbound[0].protocol, Protocol::Tcp);
    assert!(!c.outbound[0].pool);
    assert_eq!(c.mode, Mode::Audit);
    assert_eq!(c.access_log, AccessLogTarget::Off);
    assert_eq!(c.workers, 1);
    assert_eq!(c.identity.poll_interval(), Some(Duration::from_secs(1)));
    assert_eq!(c.drain_timeout(), Duration::from_secs(10));
    assert_eq!(c.connections.idle_timeout(), Duration::from_secs(300));
    assert!(c.deprecated().is_empty());
}

#[test]
fn parses_toml() {
    let c = ProxyConfig::from_toml(
        r#"
ops_listen = "127.0.0.1:15020"
access_log = "/tmp/access.log"
[identity.workload_api]
socket = "/run/agent.sock"
[[outbound]]
listen = "127.0.0.1:1"
upstream = "127.0.0.1:2"
trust_domain = "example.org"
"#,
    )
    .unwrap();
    assert_eq!(
        c.access_log,
        AccessLogTarget::File(PathBuf::from("/tmp/access.log"))
    );
    assert!(c.outbound[0].pool);
}

#[test]
fn unknown_field_is_refused() {
    let bad = YAML.replace("mode: audit", "mode: audit\nfrobnicate: 1");
    let e = ProxyConfig::from_yaml(&bad).unwrap_err().to_string();
    assert!(e.contains("frobnicate"), "{e}");
}

#[test]
fn outbound_needs_exactly_one_peer_constraint() {
    let both = YAML.replace(
        "server_id: \"spiffe://example.org/b\"",
        "server_id: \"spiffe://example.org/b\", trust_domain: example.org",
    );
    let e = ProxyConfig::from_yaml(&both).unwrap_err().to_string();
    assert!(e.contains("exactly one"), "{e}");
    let bad_id = YAML.replace("spiffe://example.org/b", "https://example.org/b");
    assert!(ProxyConfig::from_yaml(&bad_id).is_err());
}

#[test]
fn duplicate_listen_address_is_refused() {
    let dup = YAML.replace("127.0.0.1:15001", "127.0.0.1:15006");
    let e = ProxyConfig::from_yaml(&dup).unwrap_err().to_string();
    assert!(e.contains("two listeners"), "{e}");
}

#[test]
fn no_listener_is_refused() {
    let e = ProxyConfig::from_yaml("identity: { workload_api: { socket: /s } }")
        .unwrap_err()
        .to_string();
    assert!(e.contains("no listeners"), "{e}");
}

#[test]
fn workers_must_be_between_1_and_64() {
    for (n, ok) in [(0, false), (1, true), (64, true), (65, false)] {
        let c = ProxyConfig::from_yaml(&format!("{YAML}workers: {n}\n"));
        match c {
            Ok(c) => assert!(ok, "workers {n} accepted: {c:?}"),
            Err(e) => {
                assert!(!ok, "workers {n} refused: {e}");
                assert!(e.to_string().contains("workers"), "{e}");
            }
        }
    }
}

#[test]
fn durations_use_the_humantime_grammar() {
    let text = YAML.replace("/b.pem }", "/b.pem, poll_interval: 250ms }")
        + "drain_timeout: 1m 30s\nconnections: { header_read_timeout: 5s, idle_timeout: 1h30m }\n";
    let c = ProxyConfig::from_yaml(&text).unwrap();
    assert_eq!(c.identity.poll_interval(), Some(Duration::from_millis(250)));
    assert_eq!(c.drain_timeout(), Duration::from_secs(90));
    assert_eq!(c.connections.header_read_timeout(), Duration::from_secs(5));
    assert_eq!(c.connections.idle_timeout(), Duration::from_secs(5400));
    assert!(c.deprecated().is_empty());
    let toml = ProxyConfig::from_toml(
        "drain_timeout = \"2m\"\n[identity.workload_api]\nsocket = \"/s\"\n\
         [connections]\nidle_timeout = \"1h 30m\"\n\
         [[inbound]]\nlisten = \"127.0.0.1:1\"\nforward_to = \"127.0.0.1:2\"\n",
    )
    .unwrap();
    assert_eq!(toml.drain_timeout(), Duration::from_secs(120));
    assert_eq!(toml.connections.idle_timeout(), Duration::from_secs(5400));
}

#[test]
fn bad_durations_are_refused_naming_the_key() {
    for (extra, key) in [
        ("drain_timeout: soon\n", "drain_timeout"),
        ("drain_timeout: 10\n", "drain_timeout"),
        ("connections: { idle_timeout: 5x }\n", "idle_timeout"),
        (
            "connections: { header_read_timeout: 0s }\n",
            "header_read_timeout",
        ),
    ] {
        let e = ProxyConfig::from_yaml(&format!("{YAML}{extra}"))
            .unwrap_err()
            .to_string();
        assert!(e.contains(key), "{extra}: {e}");
    }
}

#[test]
fn old_integer_keys_still_work_and_are_reported_as_deprecated() {
    let text = YAML.replace("/b.pem }", "/b.pem, poll_ms: 50 }")
        + "drain_timeout_secs: 3\nconnections: { header_read_timeout_secs: 4, idle_timeout_secs: 60 }\n";
    let c = ProxyConfig::from_yaml(&text).unwrap();
    assert_eq!(c.identity.poll_interval(), Some(Duration::from_millis(50)));
    assert_eq!(c.drain_timeout(), Duration::from_secs(3));
    assert_eq!(c.connections.header_read_timeout(), Duration::from_secs(4));
    assert_eq!(c.connections.idle_timeout(), Duration::from_secs(60));
    let warnings: Vec<String> = c.deprecated().iter().map(ToString::to_string).collect();
    assert_eq!(warnings.len(), 4, "{warnings:?}");
    assert!(
        warnings.contains(
            &"proxy config key `drain_timeout_secs` is deprecated and will be removed; \
              write `drain_timeout: 3s` instead"
                .to_owned()
        ),
        "{warnings:?}"
    );
    assert!(
        warnings
            .iter()
            .any(|w| w.contains("`identity.files.poll_interval: 50ms`")),
        "{warnings:?}"
    );
}

#[test]
fn old_and_new_key_together_are_refused() {
    for extra in [
        "drain_timeout: 3s\ndrain_timeout_secs: 3\n",
        "connections: { idle_timeout: 1m, idle_timeout_secs: 60 }\n",
    ] {
        let e = ProxyConfig::from_yaml(&format!("{YAML}{extra}"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("both set") && e.contains("deprecated"), "{e}");
    }
    let both = YAML.replace("/b.pem }", "/b.pem, poll_ms: 5, poll_interval: 5ms }");
    let e = ProxyConfig::from_yaml(&both).unwrap_err().to_string();
    assert!(e.contains("identity.files.poll_interval"), "{e}");
}

#[test]
fn peer_ids_are_parsed_at_load_naming_the_key() {
    let bad_id = YAML.replace("spiffe://example.org/b", "spiffe://example.org/b/");
    let e = ProxyConfig::from_yaml(&bad_id).unwrap_err().to_string();
    assert!(e.contains("server_id"), "{e}");
    let c = ProxyConfig::from_yaml(YAML).unwrap();
    assert_eq!(
        c.outbound[0].server_id.as_ref().map(|id| id.as_str()),
        Some("spiffe://example.org/b")
    );
    assert_eq!(c.outbound[0].destination(), "spiffe://example.org/b");
    let bad_td = YAML.replace(
        "server_id: \"spiffe://example.org/b\"",
        "trust_domain: \"Example.org\"",
    );
    let e = ProxyConfig::from_yaml(&bad_td).unwrap_err().to_string();
    assert!(e.contains("trust_domain"), "{e}");
}

#[test]
fn a_zero_drain_timeout_still_means_close_at_once() {
    for extra in ["drain_timeout: 0s\n", "drain_timeout_secs: 0\n"] {
        let c = ProxyConfig::from_yaml(&format!("{YAML}{extra}")).unwrap();
        assert_eq!(c.drain_timeout(), Duration::ZERO, "{extra}");
    }
}

#[test]
fn tls_backend_and_algorithms_default_to_rustls_and_default() {
    let c = ProxyConfig::from_yaml(YAML).unwrap();
    assert_eq!(c.tls_backend, TlsBackend::Rustls);
    assert!(!c.fips);
    assert_eq!(c.tls.algorithms, Algorithms::Default);
    let t = c.tls_options();
    assert_eq!(
        (t.backend, t.min_version, t.algorithms),
        (TlsBackend::Rustls, TlsVersion::Tls12, Algorithms::Default)
    );
    let fips = ProxyConfig::from_yaml(&format!("{YAML}tls: {{ algorithms: fips }}\n")).unwrap();
    assert_eq!(fips.tls_options().algorithms, Algorithms::Fips);
    let bad = ProxyConfig::from_yaml(&format!("{YAML}tls: {{ algorithms: weak }}\n"));
    assert!(bad.unwrap_err().to_string().contains("weak"));
    let bad = ProxyConfig::from_yaml(&format!("{YAML}tls_backend: boringssl\n"));
    assert!(bad.unwrap_err().to_string().contains("boringssl"));
}

#[test]
fn fips_implies_fips_algorithms() {
    // Parsed without validation: whether `fips: true` starts depends on
    // the OpenSSL on this machine.
    let c: ProxyConfig =
        serde_yaml_ng::from_str(&format!("{YAML}tls_backend: openssl\nfips: true\n")).unwrap();
    assert_eq!(c.tls_backend, TlsBackend::Openssl);
    let t = c.tls_options();
    assert_eq!(t.algorithms, Algorithms::Fips);
    assert_eq!(t.backend, TlsBackend::Openssl);
}

#[test]
fn fips_with_rustls_is_refused() {
    for text in [
        format!("{YAML}fips: true\n"),
        format!("{YAML}tls_backend: rustls\nfips: true\n"),
    ] {
        let e = ProxyConfig::from_yaml(&text)
            .and_then(|c| c.validate())
            .unwrap_err()
            .to_string();
        assert!(
            e.contains(
                "fips = true needs tls_backend = \"openssl\" (rustls here uses ring, which is not a FIPS-validated module)"
            ),
            "{e}"
        );
    }
    let toml = "fips = true\ntls_backend = \"rustls\"\n[identity.workload_api]\nsocket = \"/s\"\n\
                [[inbound]]\nlisten = \"127.0.0.1:1\"\nforward_to = \"127.0.0.1:2\"\n";
    let e = ProxyConfig::from_toml(toml)
        .and_then(|c| c.validate())
        .unwrap_err()
        .to_string();
    assert!(e.contains("fips = true needs tls_backend"), "{e}");
}

#[cfg(not(feature = "openssl"))]
#[test]
fn openssl_needs_the_feature() {
    // It parses (a `--tls-backend rustls` flag may still override it) ...
    let mut c = ProxyConfig::from_yaml(&format!("{YAML}tls_backend: openssl\n")).unwrap();
    let e = c.validate().unwrap_err().to_string();
    assert!(
        e.contains(
            "tls_backend = \"openssl\" needs a meshid built with the OpenSSL backend (cargo build --features openssl)"
        ),
        "{e}"
    );
    // ... and the flag's value is what is validated.
    c.tls_backend = TlsBackend::Rustls;
    c.validate().unwrap();
}

#[cfg(feature = "openssl")]
#[test]
fn openssl_is_accepted_and_fips_needs_the_provider() {
    let c = ProxyConfig::from_yaml(&format!("{YAML}tls_backend: openssl\n")).unwrap();
    assert_eq!(c.tls_options().backend, TlsBackend::Openssl);
    let fips = ProxyConfig::from_yaml(&format!("{YAML}tls_backend: openssl\nfips: true\n"))
        .and_then(|c| c.validate().map(|()| c));
    if meshid_identity::openssl::fips::available() {
        assert_eq!(fips.unwrap().tls_options().algorithms, Algorithms::Fips);
    } else {
        let e = fips.unwrap_err().to_string();
        assert!(e.contains("fips = true, but OpenSSL"), "{e}");
        assert!(e.contains("has no \"fips\" provider"), "{e}");
    }
}
