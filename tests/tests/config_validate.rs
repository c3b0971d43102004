//! `meshid ca|agent|proxy validate --config FILE` with the real binary: a
//! good config prints "config OK" and exits 0 without starting or creating
//! anything; a bad one exits non-zero naming the key and the fix.
#![allow(clippy::unwrap_used)]

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Output;

use meshid_tests::{meshid_bin, tempdir};

fn validate(component: &str, config: &Path) -> Output {
    std::process::Command::new(meshid_bin())
        .args([component, "validate", "--config"])
        .arg(config)
        .env_remove("MESHID_TRUST_DOMAIN")
        .env_remove("MESHID_CA_DATA_DIR")
        .env_remove("MESHID_JOIN_TOKEN")
        .output()
        .unwrap()
}

fn text(out: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Writes `body` to `dir/name` and validates it; asserts the exit status.
fn run(component: &str, dir: &Path, name: &str, body: &str, ok: bool) -> (String, String) {
    let file = dir.join(name);
    std::fs::write(&file, body).unwrap();
    let out = validate(component, &file);
    let (stdout, stderr) = text(&out);
    assert_eq!(
        out.status.success(),
        ok,
        "{component} validate {body}\nstdout: {stdout}\nstderr: {stderr}"
    );
    (stdout, stderr)
}

fn ca_root_pem() -> String {
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::default();
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    params.self_signed(&key).unwrap().pem()
}

#[test]
fn validate_has_help_for_each_component() {
    for component in ["ca", "agent", "proxy"] {
        let out = std::process::Command::new(meshid_bin())
            .args([component, "validate", "--help"])
            .output()
            .unwrap();
        let (stdout, _) = text(&out);
        assert!(out.status.success(), "{component}: {stdout}");
        assert!(
            stdout.contains("--config") && stdout.contains("without starting anything"),
            "{component}: {stdout}"
        );
    }
}

#[test]
fn ca_validate_accepts_a_good_config_and_creates_nothing() {
    let dir = tempdir();
    let data = dir.path().join("ca-data");
    let body = format!(
        "trust_domain = \"example.org\"\ndata_dir = {:?}\nmax_x509_ttl = \"1h 30m\"\n\
         default_x509_ttl = \"45m\"\nca_ttl = \"2y\"\nadmin_ids = [\"spiffe://example.org/ops/admin\"]\n\
         store = \"postgres://meshid:s3cret@db.invalid:5432/meshid\"\n",
        data.display().to_string()
    );
    let (stdout, _) = run("ca", dir.path(), "ca.toml", &body, true);
    assert!(stdout.starts_with("config OK"), "{stdout}");
    assert!(stdout.contains("example.org"), "{stdout}");
    assert!(
        stdout.contains("spiffe://example.org/ops/admin"),
        "{stdout}"
    );
    assert!(stdout.contains("1h 30m"), "{stdout}");
    assert!(
        stdout.contains("postgres://") && !stdout.contains("s3cret"),
        "{stdout}"
    );
    assert!(!data.exists(), "validate created the data dir");
}

#[test]
fn ca_validate_refuses_bad_configs_naming_the_key() {
    let dir = tempdir();
    let base = format!(
        "trust_domain = \"example.org\"\ndata_dir = {:?}\n",
        dir.path().join("d").display().to_string()
    );
    let chain = dir.path().join("chain.pem");
    std::fs::write(&chain, "garbage").unwrap();
    for (extra, hints) in [
        ("max_x509_ttl = \"90\"\n", &["max_x509_ttl", "\"90s\""][..]),
        (
            "agent_ttl = \"soon\"\n",
            &["agent_ttl", "not a duration"][..],
        ),
        (
            "admin_ids = [\"spiffe://example.org/meshid/agent/x\"]\n",
            &["admin_ids", "reserves"][..],
        ),
        (
            "admin_ids = [\"spiffe://example.org/ops/\"]\n",
            &["admin_ids", "SPIFFE ID"][..],
        ),
        (
            &format!("upstream = {{ cert_chain_file = {chain:?}, key_file = {chain:?} }}\n"),
            &["upstream"][..],
        ),
    ] {
        let (_, stderr) = run(
            "ca",
            dir.path(),
            "ca.toml",
            &format!("{base}{extra}"),
            false,
        );
        for h in hints {
            assert!(stderr.contains(h), "{extra}: {stderr}");
        }
    }
    let (_, stderr) = run(
        "ca",
        dir.path(),
        "ca.toml",
        "trust_domain = \"Example.org\"\n",
        false,
    );
    assert!(stderr.contains("trust_domain"), "{stderr}");
}

#[test]
fn agent_validate_checks_fields_and_the_trust_bundle() {
    let dir = tempdir();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let bundle = dir.path().join("bundle.pem");
    std::fs::write(&bundle, ca_root_pem()).unwrap();
    let base = format!(
        "trust_domain = \"example.org\"\nca_address = \"127.0.0.1:8443\"\n\
         trust_bundle_file = {:?}\ndata_dir = {:?}\nworkload_api_socket = {:?}\n",
        bundle.display().to_string(),
        dir.path().join("data").display().to_string(),
        dir.path().join("agent.sock").display().to_string()
    );
    let good = format!("{base}sync_interval = \"1m 30s\"\nlistener_idle_timeout = \"1h30m\"\n");
    let (stdout, _) = run("agent", dir.path(), "agent.toml", &good, true);
    assert!(stdout.starts_with("config OK"), "{stdout}");
    assert!(
        stdout.contains("spiffe://example.org/meshid/ca") && stdout.contains("1m 30s"),
        "{stdout}"
    );
    assert!(!dir.path().join("data").exists());

    for (extra, key) in [
        ("sync_interval = \"5\"\n", "sync_interval"),
        (
            "listener_handshake_timeout = \"fast\"\n",
            "listener_handshake_timeout",
        ),
        (
            "ca_spiffe_id = \"spiffe://other.org/meshid/ca\"\n",
            "ca_spiffe_id",
        ),
        (
            "ca_spiffe_id = \"https://example.org/ca\"\n",
            "ca_spiffe_id",
        ),
    ] {
        let (_, stderr) = run(
            "agent",
            dir.path(),
            "agent.toml",
            &format!("{base}{extra}"),
            false,
        );
        assert!(stderr.contains(key), "{extra}: {stderr}");
    }
    std::fs::write(&bundle, "not PEM").unwrap();
    let (_, stderr) = run("agent", dir.path(), "agent.toml", &base, false);
    assert!(stderr.contains("trust_bundle_file"), "{stderr}");
}

const PROXY: &str = "identity: { workload_api: { socket: /run/meshid/agent.sock } }\n\
    inbound:\n  - { listen: \"127.0.0.1:15006\", forward_to: \"127.0.0.1:8080\" }\n\
    outbound:\n  - { listen: \"127.0.0.1:15001\", upstream: \"127.0.0.1:15007\", server_id: \"spiffe://example.org/b\" }\n";

#[test]
fn proxy_validate_reads_the_policy_and_accepts_humantime_durations() {
    let dir = tempdir();
    let policy = dir.path().join("policy.yaml");
    std::fs::write(
        &policy,
        "policies: [{ name: allow-all, action: ALLOW, rules: [{}] }]\n",
    )
    .unwrap();
    let good = format!(
        "{PROXY}policy: {:?}\ndrain_timeout: 1m 30s\nconnections: {{ header_read_timeout: 5s, idle_timeout: 1h30m }}\n",
        policy.display().to_string()
    );
    let (stdout, stderr) = run("proxy", dir.path(), "proxy.yaml", &good, true);
    assert!(stdout.starts_with("config OK"), "{stdout}");
    assert!(
        stdout.contains("spiffe://example.org/b") && stdout.contains("1h 30m"),
        "{stdout}"
    );
    assert!(stdout.contains("1 policies"), "{stdout}");
    assert!(!stderr.contains("deprecated"), "{stderr}");

    std::fs::write(&policy, "policies: []\n").unwrap();
    let (_, stderr) = run("proxy", dir.path(), "proxy.yaml", &good, false);
    assert!(stderr.contains("policy"), "{stderr}");
}

#[test]
fn proxy_validate_warns_on_old_keys_and_refuses_bad_values() {
    let dir = tempdir();
    let old = format!("{PROXY}drain_timeout_secs: 3\nconnections: {{ idle_timeout_secs: 60 }}\n");
    let (stdout, stderr) = run("proxy", dir.path(), "proxy.yaml", &old, true);
    assert!(stdout.contains("drain 3s"), "{stdout}");
    assert!(
        stderr.contains("`drain_timeout_secs` is deprecated")
            && stderr.contains("`connections.idle_timeout: 1m`"),
        "{stderr}"
    );
    for (extra, key) in [
        (
            "drain_timeout: 3s\ndrain_timeout_secs: 3\n",
            "drain_timeout",
        ),
        ("drain_timeout: 10\n", "drain_timeout"),
        ("connections: { idle_timeout: later }\n", "idle_timeout"),
    ] {
        let (_, stderr) = run(
            "proxy",
            dir.path(),
            "proxy.yaml",
            &format!("{PROXY}{extra}"),
            false,
        );
        assert!(stderr.contains(key), "{extra}: {stderr}");
    }
    let bad_id = PROXY.replace("spiffe://example.org/b", "spiffe://example.org/b/");
    let (_, stderr) = run("proxy", dir.path(), "proxy.yaml", &bad_id, false);
    assert!(stderr.contains("server_id"), "{stderr}");
    let files = PROXY.replace(
        "workload_api: { socket: /run/meshid/agent.sock }",
        &format!(
            "files: {{ cert: {0:?}, key: {0:?}, bundle: {0:?} }}",
            dir.path().join("missing.pem").display().to_string()
        ),
    );
    let (_, stderr) = run("proxy", dir.path(), "proxy.yaml", &files, false);
    assert!(stderr.contains("identity files"), "{stderr}");
}

#[test]
fn duration_flags_use_the_same_grammar() {
    let dir = tempdir();
    let sock = dir.path().join("no-ca.sock");
    let token = |ttl: &str| {
        let out = std::process::Command::new(meshid_bin())
            .args(["token", "generate", "--ttl", ttl, "--admin-socket"])
            .arg(&sock)
            .output()
            .unwrap();
        (out.status.code(), text(&out).1)
    };
    // Parsed, then refused only because no CA listens on the socket.
    let (code, stderr) = token("1h30m");
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("admin socket"), "{stderr}");
    for bad in ["45", "soon"] {
        let (code, stderr) = token(bad);
        assert_eq!(code, Some(2), "{bad}: {stderr}");
        assert!(stderr.contains("--ttl"), "{bad}: {stderr}");
    }
    let out = std::process::Command::new(meshid_bin())
        .args(["up", "--ready-timeout", "30"])
        .output()
        .unwrap();
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("time unit needed") && stderr.contains("\"90s\""),
        "{stderr}"
    );
}
