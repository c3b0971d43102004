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

#[test]
fn attestor_tables_default_to_unix_only_and_no_psat() {
    let c = AgentConfig::from_toml(MINIMAL).unwrap();
    assert_eq!(c.node_attestor.k8s_psat, None);
    assert_eq!(c.workload_attestor.unix, UnixAttestorConfig::default());
    assert_eq!(c.workload_attestor.k8s, None);
}

#[test]
fn k8s_psat_and_the_k8s_attestor_take_their_defaults() {
    let text = format!(
        "{MINIMAL}\n[node_attestor.k8s_psat]\ncluster = \"prod\"\n\
         [workload_attestor.unix]\nhash_executables = true\n\
         [workload_attestor.k8s]\n"
    );
    let c = AgentConfig::from_toml(&text).unwrap();
    let psat = c.node_attestor.k8s_psat.as_ref().unwrap();
    assert_eq!(psat.cluster, "prod");
    assert_eq!(
        psat.token_path,
        std::path::Path::new("/var/run/secrets/meshid/token")
    );
    assert!(c.workload_attestor.unix.hash_executables);
    let k8s = c.workload_attestor.k8s.as_ref().unwrap();
    assert_eq!(k8s, &K8sAttestorConfig::default());
    assert_eq!(k8s.kubelet_url, "https://127.0.0.1:10250");
    assert_eq!(
        k8s.kubelet_ca_path,
        std::path::Path::new("/var/run/secrets/kubernetes.io/serviceaccount/ca.crt")
    );
    assert_eq!(
        k8s.token_path,
        std::path::Path::new("/var/run/secrets/kubernetes.io/serviceaccount/token")
    );
    assert!(!k8s.skip_kubelet_verification);
    assert_eq!(
        (k8s.cache_ttl, k8s.retry_interval, k8s.max_wait),
        (
            Duration::from_secs(1),
            Duration::from_millis(250),
            Duration::from_secs(10)
        )
    );

    let full = format!(
        "{MINIMAL}\n[workload_attestor.k8s]\nkubelet_url = \"https://node-1:10250\"\n\
         kubelet_host_env = \"HOST_IP\"\nkubelet_ca_path = \"/etc/kubelet-ca.pem\"\n\
         kubelet_tls_server_name = \"node-1\"\nskip_kubelet_verification = true\n\
         token_path = \"/t\"\ncache_ttl = \"2s\"\nretry_interval = \"100ms\"\nmax_wait = \"30s\"\n"
    );
    let k8s = AgentConfig::from_toml(&full)
        .unwrap()
        .workload_attestor
        .k8s
        .unwrap();
    assert_eq!(k8s.kubelet_host_env.as_deref(), Some("HOST_IP"));
    assert_eq!(k8s.max_wait, Duration::from_secs(30));
}

#[test]
fn psat_excludes_a_join_token_and_the_env_token() {
    let psat = format!("{MINIMAL}\n[node_attestor.k8s_psat]\ncluster = \"prod\"\n");
    let both = format!("join_token = \"tok\"\n{psat}");
    let err = AgentConfig::from_toml(&both).unwrap_err().to_string();
    assert!(
        err.contains("node_attestor.k8s_psat") && err.contains("not both"),
        "{err}"
    );
    // MESHID_JOIN_TOKEN is not taken over a configured k8s_psat.
    let mut c = AgentConfig::from_toml(&psat).unwrap();
    c.join_token = None;
    assert!(c.node_attestor.k8s_psat.is_some());
}

#[test]
fn bad_attestor_values_are_refused_with_the_field_named() {
    for (table, says) in [
        ("[node_attestor.k8s_psat]\ncluster = \"Prod\"", "a-z"),
        ("[node_attestor.k8s_psat]\ncluster = \"\"", "cluster"),
        ("[node_attestor.k8s_psat]\ntoken_path = \"/t\"", "cluster"),
        (
            "[node_attestor.k8s_psat]\ncluster = \"p\"\ntoken_path = \"t\"",
            "absolute",
        ),
        (
            "[node_attestor.k8s_psat]\ncluster = \"p\"\nbogus = 1",
            "bogus",
        ),
        ("[node_attestor.join_token]", "join_token"),
        (
            "[workload_attestor.k8s]\nkubelet_url = \"http://127.0.0.1:10255\"",
            "kubelet_url",
        ),
        (
            "[workload_attestor.k8s]\nkubelet_url = \"https://h:1/pods\"",
            "no path",
        ),
        (
            "[workload_attestor.k8s]\nkubelet_host_env = \"\"",
            "kubelet_host_env",
        ),
        (
            "[workload_attestor.k8s]\nkubelet_tls_server_name = \"a b\"",
            "kubelet_tls_server_name",
        ),
        (
            "[workload_attestor.k8s]\nkubelet_ca_path = \"ca.crt\"",
            "kubelet_ca_path",
        ),
        (
            "[workload_attestor.k8s]\ntoken_path = \"token\"",
            "token_path",
        ),
        (
            "[workload_attestor.k8s]\nretry_interval = \"1ms\"",
            "retry_interval",
        ),
        ("[workload_attestor.k8s]\nmax_wait = \"1h\"", "max_wait"),
        ("[workload_attestor.k8s]\ncache_ttl = \"2m\"", "cache_ttl"),
        ("[workload_attestor.k8s]\nmax_wait = \"10\"", "max_wait"),
        ("[workload_attestor.k8s]\nbogus = 1", "bogus"),
        ("[workload_attestor.unix]\nbogus = 1", "bogus"),
        ("[workload_attestor.docker]", "docker"),
    ] {
        let err = AgentConfig::from_toml(&format!("{MINIMAL}\n{table}\n"))
            .unwrap_err()
            .to_string();
        assert!(err.contains(says), "{table}: {err}");
    }
}

#[test]
fn attestor_files_are_checked_for_validate() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().display();
    let text = format!(
        "{MINIMAL}\n[node_attestor.k8s_psat]\ncluster = \"prod\"\ntoken_path = \"{d}/psat\"\n\
         [workload_attestor.k8s]\nkubelet_ca_path = \"{d}/ca.crt\"\ntoken_path = \"{d}/sa\"\n"
    );
    let c = AgentConfig::from_toml(&text).unwrap();
    let err = c.check_attestor_files().unwrap_err().to_string();
    assert!(
        err.contains("node_attestor.k8s_psat") && err.contains("psat"),
        "{err}"
    );
    std::fs::write(dir.path().join("psat"), "jwt").unwrap();
    let err = c.check_attestor_files().unwrap_err().to_string();
    assert!(
        err.contains("workload_attestor.k8s") && err.contains("ca.crt"),
        "{err}"
    );
    let ca = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    std::fs::write(dir.path().join("ca.crt"), ca.cert.pem()).unwrap();
    let err = c.check_attestor_files().unwrap_err().to_string();
    assert!(err.contains("bearer token") && err.contains("/sa"), "{err}");
    std::fs::write(dir.path().join("sa"), "sa-token").unwrap();
    c.check_attestor_files().unwrap();
}

#[cfg(not(feature = "openssl"))]
#[test]
fn a_backend_this_build_lacks_parses_and_is_refused_only_by_validate() {
    // A `--tls-backend rustls` flag may still override the file.
    let mut c = AgentConfig::from_toml(&format!("tls_backend = \"openssl\"\n{MINIMAL}")).unwrap();
    let err = c.validate().unwrap_err().to_string();
    assert!(
        err.contains("needs a meshid built with the OpenSSL backend"),
        "{err}"
    );
    c.tls_backend = meshid_identity::tls::TlsBackend::Rustls;
    c.validate().unwrap();
}
