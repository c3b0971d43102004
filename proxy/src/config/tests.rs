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
    assert!(matches!(
        c.identity,
        IdentityConfig::Files { poll_ms: 1000, .. }
    ));
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
