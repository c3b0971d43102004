//! `TestAgent`: `meshid agent run` as a child process, configured against a
//! [`TestCa`] with a TOML file the builder writes.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use meshid_identity::tls::TlsBackend;

use crate::{Child, Cmd, TestCa, eventually_every, free_port};

/// How often [`TestAgent::wait_for_svid`] runs `meshid agent api fetch`.
const FETCH_EVERY: Duration = Duration::from_millis(200);

/// How long an agent may take to attest and serve (debug build, loaded CI).
pub const READY: Duration = Duration::from_secs(60);

/// How to start a [`TestAgent`]; [`TestAgent::builder`] makes one.
#[derive(Clone, Debug)]
pub struct TestAgentBuilder {
    trust_domain: String,
    ca_address: String,
    ca_addresses: Vec<String>,
    bundle_file: PathBuf,
    dir: PathBuf,
    join_token: Option<String>,
    sds_socket: bool,
    ops: bool,
    tls_backend: Option<TlsBackend>,
    extra: String,
}

/// A running `meshid agent run`.
#[derive(Debug)]
pub struct TestAgent {
    /// The process; its log is printed if the test panics.
    pub child: Child,
    /// The Workload API socket (`<dir>/run/agent.sock`).
    pub workload_socket: PathBuf,
    /// The SDS socket (`<dir>/run/sds.sock`) if asked for, else SDS is
    /// served on the Workload API socket.
    pub sds_socket: Option<PathBuf>,
    /// The ops HTTP port on 127.0.0.1 (`/readyz`, `/metrics`) if asked for.
    pub ops_port: Option<u16>,
    /// The agent's data directory (`<dir>/agent`).
    pub data_dir: PathBuf,
    /// The TOML file it runs on (`<dir>/agent.toml`).
    pub config_file: PathBuf,
}

impl TestAgentBuilder {
    /// Attests with this join token (else it must reuse a stored identity).
    pub fn join_token(mut self, secret: &str) -> Self {
        self.join_token = Some(secret.to_owned());
        self
    }

    /// Calls the CA replicas at `addrs` in this order (`ca_addresses`)
    /// instead of the one CA it was made for.
    pub fn ca_addresses(mut self, addrs: &[std::net::SocketAddr]) -> Self {
        self.ca_addresses = addrs.iter().map(ToString::to_string).collect();
        self
    }

    /// Serves SDS on a socket of its own.
    pub fn sds_socket(mut self) -> Self {
        self.sds_socket = true;
        self
    }

    /// Serves `/readyz` and `/metrics` on a free loopback port.
    pub fn ops(mut self) -> Self {
        self.ops = true;
        self
    }

    /// Runs on `backend` (`tls_backend` among the config's top-level keys).
    pub fn tls_backend(mut self, backend: TlsBackend) -> Self {
        self.tls_backend = Some(backend);
        self
    }

    /// Appends `toml` to the config file.
    pub fn extra(mut self, toml: &str) -> Self {
        self.extra.push_str(toml);
        self
    }

    /// Writes the config and starts the agent (it does not wait: see
    /// [`TestAgent::wait_for_svid`]). `MESHID_JOIN_TOKEN` is cleared so only
    /// the config speaks.
    pub fn start(self, log_dir: &Path) -> TestAgent {
        let run = self.dir.join("run");
        let workload_socket = run.join("agent.sock");
        let sds_socket = self.sds_socket.then(|| run.join("sds.sock"));
        let ops_port = self.ops.then(free_port);
        let data_dir = self.dir.join("agent");
        let config_file = self.dir.join("agent.toml");
        let ca = if self.ca_addresses.is_empty() {
            format!("ca_address = {:?}", self.ca_address)
        } else {
            format!("ca_addresses = {:?}", self.ca_addresses)
        };
        let mut toml = format!(
            "trust_domain = {td:?}\n{ca}\ntrust_bundle_file = {bundle:?}\n\
             data_dir = {data:?}\nworkload_api_socket = {wl:?}\nsync_interval = \"1s\"\n",
            td = self.trust_domain,
            bundle = self.bundle_file.display().to_string(),
            data = data_dir.display().to_string(),
            wl = workload_socket.display().to_string(),
        );
        if let Some(sds) = &sds_socket {
            let _ = writeln!(toml, "sds_socket = {:?}", sds.display().to_string());
        }
        if let Some(port) = ops_port {
            let _ = writeln!(toml, "ops_listen = \"127.0.0.1:{port}\"");
        }
        if let Some(secret) = &self.join_token {
            let _ = writeln!(toml, "join_token = {secret:?}");
        }
        if let Some(backend) = self.tls_backend {
            let _ = writeln!(toml, "tls_backend = {:?}", backend.as_str());
        }
        toml.push_str(&self.extra);
        std::fs::write(&config_file, toml)
            .unwrap_or_else(|e| panic!("write {}: {e}", config_file.display()));
        let child = Cmd::meshid()
            .args(["agent", "run", "--config"])
            .args([&config_file])
            .env("MESHID_JOIN_TOKEN", "")
            .spawn(log_dir);
        TestAgent {
            child,
            workload_socket,
            sds_socket,
            ops_port,
            data_dir,
            config_file,
        }
    }
}

impl TestAgent {
    /// An agent of `ca` keeping its files (config, data, sockets under
    /// `run/`) in `dir`; it pins the CA by a copy of its bundle written to
    /// `<dir>/bundle.pem` now.
    pub fn builder(ca: &TestCa, dir: &Path) -> TestAgentBuilder {
        let bundle_file = dir.join("bundle.pem");
        std::fs::write(&bundle_file, ca.bundle_pem())
            .unwrap_or_else(|e| panic!("write {}: {e}", bundle_file.display()));
        TestAgentBuilder {
            trust_domain: ca.trust_domain().to_owned(),
            ca_address: ca.node_addr().to_string(),
            ca_addresses: Vec::new(),
            bundle_file,
            dir: dir.to_owned(),
            join_token: None,
            sds_socket: false,
            ops: false,
            tls_backend: None,
            extra: String::new(),
        }
    }

    /// The leaf of every X.509-SVID the agent serves this process now
    /// (`meshid agent api fetch --write` into `dir`, which is replaced);
    /// empty if the fetch fails.
    pub fn served_leaves(&self, dir: &Path) -> Vec<Vec<u8>> {
        if !self.write_svids(dir) {
            return Vec::new();
        }
        (0..)
            .map(|i| dir.join(format!("svid.{i}.pem")))
            .take_while(|f| f.exists())
            .filter_map(|f| crate::certs::read_pem(&f).into_iter().next())
            .collect()
    }

    /// Writes the X.509-SVIDs the agent serves this process now into
    /// `dir`, which is replaced (`meshid agent api fetch --write`:
    /// `svid.<n>.pem`, `svid.<n>.key`, `bundle.<n>.pem`, the files curl and
    /// `openssl s_client` take); false if the fetch fails.
    pub fn write_svids(&self, dir: &Path) -> bool {
        let _ = std::fs::remove_dir_all(dir);
        Cmd::meshid()
            .args(["agent", "api", "fetch", "--socket"])
            .args([&self.workload_socket])
            .args(["--write"])
            .args([dir])
            .output()
            .status
            .success()
    }

    /// Waits until `meshid agent api fetch` on the Workload API socket
    /// succeeds and, with `spiffe_id`, prints that ID; panics if the agent
    /// exits or after [`READY`].
    pub fn wait_for_svid(&mut self, spiffe_id: Option<&str>) {
        let what = format!(
            "an SVID ({}) from the agent at {}",
            spiffe_id.unwrap_or("any"),
            self.workload_socket.display()
        );
        eventually_every(&what, READY, FETCH_EVERY, || {
            assert!(
                self.child.is_running(),
                "meshid agent exited:\n{}",
                self.child.log()
            );
            let out = Cmd::meshid()
                .args(["agent", "api", "fetch", "--socket"])
                .args([&self.workload_socket])
                .output();
            let served = out.status.success()
                && spiffe_id.is_none_or(|id| String::from_utf8_lossy(&out.stdout).contains(id));
            served.then_some(())
        });
    }
}
