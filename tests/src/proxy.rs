//! `meshid proxy run` as a child process on a YAML config the test writes,
//! taking its identity from an agent's Workload API.

use std::fmt::Write as _;
use std::path::Path;

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
    /// `workload_socket`, the given listeners, HTTP) and starts the proxy,
    /// logging under `log_dir`. It does not wait: send a first request.
    pub fn start(
        dir: &Path,
        log_dir: &Path,
        name: &str,
        workload_socket: &Path,
        listeners: &[Listener],
    ) -> Self {
        let ops_port = free_port();
        let mut yaml = format!(
            "identity:\n  workload_api: {{ socket: {:?} }}\nops_listen: \"127.0.0.1:{ops_port}\"\n",
            workload_socket.display().to_string()
        );
        let (inbound, outbound): (Vec<_>, Vec<_>) = listeners
            .iter()
            .partition(|l| matches!(l, Listener::Inbound { .. }));
        for (section, list) in [("inbound", inbound), ("outbound", outbound)] {
            if list.is_empty() {
                continue;
            }
            let _ = writeln!(yaml, "{section}:");
            for l in list {
                let _ = match l {
                    Listener::Inbound { port, forward_to } => writeln!(
                        yaml,
                        "  - {{ listen: \"127.0.0.1:{port}\", forward_to: \"127.0.0.1:{forward_to}\", protocol: http }}"
                    ),
                    Listener::Outbound {
                        port,
                        upstream,
                        server_id,
                        pool,
                    } => writeln!(
                        yaml,
                        "  - {{ listen: \"127.0.0.1:{port}\", upstream: \"127.0.0.1:{upstream}\", \
                         server_id: {server_id:?}, protocol: http, pool: {pool} }}"
                    ),
                };
            }
        }
        let file = dir.join(format!("{name}-proxy.yaml"));
        std::fs::write(&file, yaml).unwrap_or_else(|e| panic!("write {}: {e}", file.display()));
        let child = Cmd::meshid()
            .args(["proxy", "run", "--config"])
            .args([&file])
            .spawn(log_dir);
        Self { child, ops_port }
    }
}
