//! The files `meshid up` writes are accepted by the real component configs.

use std::net::SocketAddr;

use super::*;

fn plan(dir: &Path, isolation: Isolation) -> (Layout, Plan) {
    let layout = Layout::new(dir, isolation).unwrap();
    let apps: [SocketAddr; 2] = [
        "127.0.0.1:18080".parse().unwrap(),
        "127.0.0.1:18081".parse().unwrap(),
    ];
    let plan = Plan::new(&layout, "example.org".parse().unwrap(), isolation, apps).unwrap();
    (layout, plan)
}

#[test]
fn ca_config_is_valid_and_points_into_the_data_dir() {
    let dir = tempfile::tempdir().unwrap();
    let (layout, plan) = plan(dir.path(), Isolation::Path);
    plan.write_ca_config(&layout).unwrap();
    let cfg = meshid_ca::config::CaConfig::from_file(&layout.ca_toml)
        .unwrap()
        .validate()
        .unwrap();
    assert_eq!(cfg.trust_domain.to_string(), "example.org");
    assert_eq!(cfg.admin_socket, layout.admin_socket);
    assert_eq!(cfg.raw.listen.port(), plan.ports.ca_node);
    assert!(
        cfg.store
            .to_string()
            .contains(&layout.ca_dir.display().to_string())
    );
}

#[test]
fn agent_config_is_valid_and_owner_only() {
    let dir = tempfile::tempdir().unwrap();
    let (layout, plan) = plan(dir.path(), Isolation::Path);
    plan.write_agent_config(&layout, "tok-123").unwrap();
    let cfg = meshid_agent::config::AgentConfig::load(&layout.agent_toml).unwrap();
    assert_eq!(cfg.workload_api_socket, layout.workload_socket);
    assert_eq!(cfg.join_token.as_ref().unwrap().expose(), "tok-123");
    assert_eq!(cfg.ca_address, format!("127.0.0.1:{}", plan.ports.ca_node));
    let mode = std::fs::metadata(&layout.agent_toml)
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(
        mode & 0o777,
        0o600,
        "the join token must not be world-readable"
    );
}

#[test]
fn proxy_configs_and_policy_allow_only_a_to_read_hello() {
    use meshid_identity::SpiffeId;
    use meshid_proxy::policy::{PolicySet, Request};

    let dir = tempfile::tempdir().unwrap();
    let (layout, plan) = plan(dir.path(), Isolation::Uid);
    plan.write_proxy_configs(&layout).unwrap();
    let [a, b] = &plan.services;
    let pa = meshid_proxy::config::ProxyConfig::from_file(&a.config).unwrap();
    let pb = meshid_proxy::config::ProxyConfig::from_file(&b.config).unwrap();
    assert_eq!(pa.outbound.len(), 1);
    assert_eq!(pa.outbound[0].upstream.port(), b.inbound_port);
    assert_eq!(
        pa.outbound[0].server_id.as_ref().map(|id| id.as_str()),
        Some(b.spiffe_id.as_str())
    );
    assert!(pb.outbound.is_empty());
    assert_eq!(pb.inbound[0].forward_to, b.app);
    assert_eq!(pb.policy.as_deref(), Some(layout.policy_yaml.as_path()));

    let text = std::fs::read_to_string(&layout.policy_yaml).unwrap();
    let (set, _) = PolicySet::from_yaml(&text).unwrap();
    let id_a = SpiffeId::parse(&a.spiffe_id).unwrap();
    let id_b = SpiffeId::parse(&b.spiffe_id).unwrap();
    let port = b.inbound_port;
    assert!(
        set.evaluate(&Request::http(Some(&id_a), port, "GET", "/hello"))
            .allowed
    );
    assert!(
        !set.evaluate(&Request::http(Some(&id_a), port, "POST", "/admin"))
            .allowed
    );
    assert!(
        !set.evaluate(&Request::http(Some(&id_b), port, "GET", "/hello"))
            .allowed
    );
    assert!(
        !set.evaluate(&Request::http(None, port, "GET", "/hello"))
            .allowed
    );
}

#[test]
fn each_proxy_has_selectors_the_other_lacks() {
    for isolation in [Isolation::Uid, Isolation::Path] {
        let dir = tempfile::tempdir().unwrap();
        let (_layout, plan) = plan(dir.path(), isolation);
        let [a, b] = &plan.services;
        assert_ne!(a.spiffe_id, b.spiffe_id);
        assert!(
            a.selectors.iter().any(|s| !b.selectors.contains(s)),
            "{isolation:?}: service-b would also match service-a's entry"
        );
        assert!(b.selectors.iter().any(|s| !a.selectors.contains(s)));
    }
}

#[test]
fn tls_backend_goes_into_every_generated_config_and_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let (layout, plan) = plan(dir.path(), Isolation::Path);
    assert!(
        !plan
            .ca_command(&layout)
            .contains(&"--tls-backend".to_owned())
    );
    let plan = plan.with_tls_backend(Some(TlsBackend::Openssl));
    plan.write_ca_config(&layout).unwrap();
    plan.write_agent_config(&layout, "tok-123").unwrap();
    plan.write_proxy_configs(&layout).unwrap();

    let ca = meshid_ca::config::CaConfig::from_file(&layout.ca_toml).unwrap();
    assert_eq!(ca.tls_backend, TlsBackend::Openssl);
    // The agent's and the proxy's loaders also check the backend: without
    // the OpenSSL backend compiled in they refuse a file naming openssl.
    says_openssl(
        meshid_agent::config::AgentConfig::load(&layout.agent_toml),
        |c| c.tls_backend,
        "agent.toml",
    );
    for svc in &plan.services {
        says_openssl(
            meshid_proxy::config::ProxyConfig::from_file(&svc.config),
            |c| c.tls_backend,
            svc.name,
        );
    }

    let flag = ["--tls-backend".to_owned(), "openssl".to_owned()];
    let commands = [
        plan.ca_command(&layout),
        plan.agent_command(&layout),
        plan.proxy_command(&layout, &plan.services[0]),
        plan.proxy_command(&layout, &plan.services[1]),
    ];
    for cmd in commands {
        assert!(cmd.windows(2).any(|w| w == flag), "{cmd:?}");
    }
}

/// The loaded config names the openssl backend, or (a build without it)
/// the loader refused the file for naming it.
fn says_openssl<T, E: std::fmt::Display>(
    loaded: Result<T, E>,
    backend: impl Fn(&T) -> TlsBackend,
    what: &str,
) {
    match loaded {
        Ok(c) => assert_eq!(backend(&c), TlsBackend::Openssl, "{what}"),
        Err(e) => {
            if cfg!(feature = "openssl") {
                panic!("{what} refused with the OpenSSL backend compiled in: {e}");
            }
            assert!(
                e.to_string()
                    .contains("tls_backend = \"openssl\" needs a meshid built with"),
                "{what}: {e}"
            );
        }
    }
}
