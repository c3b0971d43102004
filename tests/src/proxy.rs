//! `meshid proxy run` as a child process on a YAML config the test writes,
//! taking its identity from an agent's Workload API.

use std::fmt::Write as _;
use std::path::Path;

use meshid_identity::tls::TlsBackend;

use crate::{Child, Cmd, free_port};

/// One listener of a [`TestProxy`].
#[derive(Clone, Debug)]
pub enum Listener {
    /// mTLS in on `127.0.0.1:port`, plain HTTP to `127.0.0.1:forward_to`.
    Inbound {
        /// Where it listens.
        port: u16,
        /// The application behind it.
        forward_to: u16,
    },
    /// Plain HTTP in on `127.0.0.1:port`, mTLS to `127.0.0.1:upstream`
    /// (accepting only `server_id`). `pool: false` makes one mTLS
    /// connection (a full handshake) per request.
    Outbound {
        /// Where it listens.
        port: u16,
        /// The peer proxy's inbound port.
        upstream: u16,
        /// The SPIFFE ID the peer must present.
        server_id: String,
        /// Reuse upstream connections.
        pool: bool,
    },
    /// As [`Inbound`](Self::Inbound), carrying opaque TCP (`protocol: tcp`).
    InboundTcp {
        /// Where it listens.
        port: u16,
        /// The application behind it.
        forward_to: u16,
    },
    /// As [`Outbound`](Self::Outbound), carrying opaque TCP (`protocol: tcp`).
    OutboundTcp {
        /// Where it listens.
        port: u16,
        /// The peer proxy's inbound port.
        upstream: u16,
        /// The SPIFFE ID the peer must present.
        server_id: String,
    },
}

/// The proxy config line (YAML, top level) that runs it on `backend`, for
/// [`TestProxy::start_with`]'s `extra`.
pub fn tls_backend(backend: TlsBackend) -> String {
    format!("tls_backend: {}\n", backend.as_str())
}

/// A running `meshid proxy run`.
#[derive(Debug)]
pub struct TestProxy {
    /// The process; its log is printed if the test panics.
    pub child: Child,
    /// Its ops port on 127.0.0.1 (`/readyz`, `/metrics`).
    pub ops_port: u16,
}

impl TestProxy {
    /// The sum of the samples of `metric` (a name with or without labels,
    /// e.g. `meshid_proxy_tls_handshakes_total{direction="inbound"}`) on
    /// its `/metrics`; 0 when it has none or does not answer.
    pub fn metric(&self, metric: &str) -> f64 {
        let (_, body) = crate::http::http(self.ops_port, "GET", "/metrics");
        body.lines()
            .filter_map(|l| l.strip_prefix(metric))
            .filter(|rest| rest.starts_with(' ') || rest.starts_with('{'))
            .filter_map(|rest| rest.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    }

    /// Writes `<dir>/<name>-proxy.yaml` (identity from the Workload API at
    /// `workload_socket`, the given listeners) and starts the proxy,
    /// logging under `log_dir`. It does not wait: send a first request.
    pub fn start(
        dir: &Path,
        log_dir: &Path,
        name: &str,
        workload_socket: &Path,
        listeners: &[Listener],
    ) -> Self {
        Self::start_with(dir, log_dir, name, workload_socket, listeners, "")
    }

    /// As [`start`](Self::start), with `extra` (top-level YAML, e.g.
    /// [`tls_backend`] or `"tls: { algorithms: fips }\n"`) appended to the
    /// config.
    pub fn start_with(
        dir: &Path,
        log_dir: &Path,
        name: &str,
        workload_socket: &Path,
        listeners: &[Listener],
        extra: &str,
    ) -> Self {
        let ops_port = free_port();
        let mut yaml = format!(
            "identity:\n  workload_api: {{ socket: {:?} }}\nops_listen: \"127.0.0.1:{ops_port}\"\n",
            workload_socket.display().to_string()
        );
        let (inbound, outbound): (Vec<_>, Vec<_>) = listeners
            .iter()
            .partition(|l| matches!(l, Listener::Inbound { .. } | Listener::InboundTcp { .. }));
        for (section, list) in [("inbound", inbound), ("outbound", outbound)] {
            if list.is_empty() {
                continue;
            }
            let _ = writeln!(yaml, "{section}:");
            for l in list {
                let _ = writeln!(yaml, "  - {}", listener_yaml(l));
            }
        }
        yaml.push_str(extra);
        let file = dir.join(format!("{name}-proxy.yaml"));
        std::fs::write(&file, yaml).unwrap_or_else(|e| panic!("write {}: {e}", file.display()));
        let child = Cmd::meshid()
            .args(["proxy", "run", "--config"])
            .args([&file])
            .spawn(log_dir);
        Self { child, ops_port }
    }
}

/// One listener as a YAML flow mapping.
fn listener_yaml(l: &Listener) -> String {
    let inbound = |port, forward_to, protocol| {
        format!(
            "{{ listen: \"127.0.0.1:{port}\", forward_to: \"127.0.0.1:{forward_to}\", protocol: {protocol} }}"
        )
    };
    let outbound = |port, upstream, server_id: &str, protocol, pool: Option<bool>| {
        let pool = pool.map(|p| format!(", pool: {p}")).unwrap_or_default();
        format!(
            "{{ listen: \"127.0.0.1:{port}\", upstream: \"127.0.0.1:{upstream}\", \
             server_id: {server_id:?}, protocol: {protocol}{pool} }}"
        )
    };
    match l {
        Listener::Inbound { port, forward_to } => inbound(*port, *forward_to, "http"),
        Listener::InboundTcp { port, forward_to } => inbound(*port, *forward_to, "tcp"),
        Listener::Outbound {
            port,
            upstream,
            server_id,
            pool,
        } => outbound(*port, *upstream, server_id, "http", Some(*pool)),
        Listener::OutboundTcp {
            port,
            upstream,
            server_id,
        } => outbound(*port, *upstream, server_id, "tcp", None),
    }
}
