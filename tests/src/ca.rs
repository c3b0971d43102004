//! `TestCa`: `meshid ca serve` as a child process on loopback, with its
//! admin socket, and the operator steps tests need (join token, entry,
//! bundle) run through the real CLI.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitStatus;
use std::time::Duration;

use meshid_identity::tls::TlsBackend;

use crate::{Child, Cmd, eventually, free_port, wait_for_port};

/// The trust domain unless a test picks another.
pub const TRUST_DOMAIN: &str = "example.org";
/// How long a CA (debug build, loaded CI machine) may take to come up.
pub const READY: Duration = Duration::from_secs(60);
/// How long a clean stop may take.
const STOP: Duration = Duration::from_secs(20);

/// How to start a [`TestCa`]; [`TestCa::builder`] makes one.
#[derive(Clone, Debug)]
pub struct TestCaBuilder {
    trust_domain: String,
    data_dir: PathBuf,
    log_dir: PathBuf,
    node_port: Option<u16>,
    tls_backend: Option<TlsBackend>,
    config: String,
}

/// What became of [`TestCaBuilder::try_start`].
#[derive(Debug)]
pub enum Start {
    /// It serves.
    Running(TestCa),
    /// It exited before serving (its output is in [`Child::log`]).
    Exited {
        /// How it exited.
        status: ExitStatus,
        /// The exited process.
        child: Child,
    },
}

/// A running `meshid ca serve`.
#[derive(Debug)]
pub struct TestCa {
    /// The process; its log is printed if the test panics.
    pub child: Child,
    /// The admin API's Unix socket (`<data dir>/admin.sock`).
    pub admin_socket: PathBuf,
    /// The node API's port on 127.0.0.1.
    pub node_port: u16,
    /// The ops endpoint's port on 127.0.0.1 (`/healthz`, `/readyz`, `/metrics`).
    pub ops_port: u16,
    config: TestCaBuilder,
}

/// A join token as `meshid token generate` prints it.
#[derive(Clone, Debug)]
pub struct JoinToken {
    /// The secret the agent presents.
    pub secret: String,
    /// The SPIFFE ID the attested agent gets.
    pub agent_id: String,
}

impl TestCaBuilder {
    /// Uses `trust_domain` instead of [`TRUST_DOMAIN`].
    pub fn trust_domain(mut self, trust_domain: &str) -> Self {
        self.trust_domain = trust_domain.to_owned();
        self
    }

    /// Listens for the node API on `port` (a restart keeps the port).
    pub fn node_port(mut self, port: u16) -> Self {
        self.node_port = Some(port);
        self
    }

    /// Runs on `backend`: `tls_backend = "<backend>"` at the top of its
    /// config file, before anything [`config`](Self::config) adds.
    pub fn tls_backend(mut self, backend: TlsBackend) -> Self {
        self.tls_backend = Some(backend);
        self
    }

    /// Runs with a TOML config file holding `toml` (e.g. an `[upstream]`
    /// section), written to `<data dir>.toml`; the builder's flags still
    /// set the trust domain, data dir and addresses.
    pub fn config(mut self, toml: &str) -> Self {
        self.config.push_str(toml);
        self
    }

    /// Starts the CA and waits until its admin socket and node port accept;
    /// panics with its output if it exits instead.
    pub fn start(self) -> TestCa {
        match self.try_start() {
            Start::Running(ca) => ca,
            Start::Exited { status, child } => {
                panic!("meshid ca serve exited ({status}):\n{}", child.log())
            }
        }
    }

    /// Starts the CA and waits until it serves (admin socket and node port
    /// accept) or exits, whichever comes first; panics after [`READY`].
    pub fn try_start(self) -> Start {
        let node_port = self.node_port.unwrap_or_else(free_port);
        let admin_socket = self.data_dir.join("admin.sock");
        let ops_port = free_port();
        let mut cmd = Cmd::meshid()
            .args(["ca", "serve", "--trust-domain", &self.trust_domain])
            .args(["--data-dir"])
            .args([&self.data_dir])
            .args(["--listen", &format!("127.0.0.1:{node_port}")])
            .args(["--ops-listen", &format!("127.0.0.1:{ops_port}")])
            .args(["--admin-socket"])
            .args([&admin_socket]);
        let config = self.config_text();
        if !config.is_empty() {
            let file = self.config_file();
            std::fs::write(&file, config)
                .unwrap_or_else(|e| panic!("write {}: {e}", file.display()));
            cmd = cmd.args(["--config"]).args([file]);
        }
        let mut child = cmd.spawn(&self.log_dir);
        let exited = eventually("the CA admin socket (or its exit)", READY, || {
            if let Some(status) = child.exit_status() {
                return Some(Some(status));
            }
            std::os::unix::net::UnixStream::connect(&admin_socket)
                .ok()
                .map(|_| None)
        });
        if let Some(status) = exited {
            return Start::Exited { status, child };
        }
        wait_for_port(node_port, READY);
        Start::Running(TestCa {
            child,
            admin_socket,
            node_port,
            ops_port,
            config: Self {
                node_port: Some(node_port),
                ..self
            },
        })
    }

    /// Where [`config`](Self::config) is written.
    fn config_file(&self) -> PathBuf {
        self.data_dir.with_extension("toml")
    }

    /// The config file's text: the backend line (top-level keys come
    /// before any table), then what [`config`](Self::config) added.
    fn config_text(&self) -> String {
        let backend = self
            .tls_backend
            .map(|b| format!("tls_backend = {:?}\n", b.as_str()))
            .unwrap_or_default();
        backend + &self.config
    }
}

impl TestCa {
    /// A CA keeping its state in `data_dir`, logging under `log_dir`.
    pub fn builder(data_dir: impl Into<PathBuf>, log_dir: impl Into<PathBuf>) -> TestCaBuilder {
        TestCaBuilder {
            trust_domain: TRUST_DOMAIN.to_owned(),
            data_dir: data_dir.into(),
            log_dir: log_dir.into(),
            node_port: None,
            tls_backend: None,
            config: String::new(),
        }
    }

    /// Its trust domain.
    pub fn trust_domain(&self) -> &str {
        &self.config.trust_domain
    }

    /// Its data directory.
    pub fn data_dir(&self) -> &Path {
        &self.config.data_dir
    }

    /// The node API's address, as an agent's `ca_address`.
    pub fn node_addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.node_port))
    }

    /// `meshid <args> --admin-socket <socket>`, which must succeed; its
    /// stdout.
    pub fn admin(&self, args: &[&str]) -> String {
        Cmd::meshid()
            .args(args)
            .args(["--admin-socket"])
            .args([&self.admin_socket])
            .run_ok()
    }

    /// `meshid <args> --admin-socket <socket>`, which must fail; its stderr
    /// (the CA's refusal).
    pub fn admin_refused(&self, args: &[&str]) -> String {
        let out = Cmd::meshid()
            .args(args)
            .args(["--admin-socket"])
            .args([&self.admin_socket])
            .output();
        assert!(
            !out.status.success(),
            "meshid {args:?} succeeded:\n{}",
            String::from_utf8_lossy(&out.stdout)
        );
        String::from_utf8_lossy(&out.stderr).into_owned()
    }

    /// [`admin`](Self::admin) with `--output json`, parsed.
    pub fn admin_json(&self, args: &[&str]) -> serde_json::Value {
        let mut all = args.to_vec();
        all.extend(["--output", "json"]);
        let out = self.admin(&all);
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("not JSON ({e}):\n{out}"))
    }

    /// A new join token (`meshid token generate`).
    pub fn join_token(&self) -> JoinToken {
        let v = self.admin_json(&["token", "generate"]);
        let field = |k: &str| {
            v[k].as_str()
                .unwrap_or_else(|| panic!("no {k} in the token:\n{v}"))
                .to_owned()
        };
        JoinToken {
            secret: field("token"),
            agent_id: field("spiffe_id"),
        }
    }

    /// Registers `spiffe_id` under `parent_id` for callers with all of
    /// `selectors`; the created entry.
    pub fn create_entry(
        &self,
        spiffe_id: &str,
        parent_id: &str,
        selectors: &[&str],
    ) -> serde_json::Value {
        let mut args = vec![
            "entry",
            "create",
            "--spiffe-id",
            spiffe_id,
            "--parent-id",
            parent_id,
        ];
        for s in selectors {
            args.extend(["--selector", s]);
        }
        self.admin_json(&args)
    }

    /// The trust bundle as PEM (`meshid bundle show --format pem`).
    pub fn bundle_pem(&self) -> String {
        self.admin(&["bundle", "show", "--format", "pem"])
    }

    /// The trust bundle's X.509 authorities (DER), in the CA's order.
    pub fn bundle_certs(&self) -> Vec<Vec<u8>> {
        let pem = self.bundle_pem();
        meshid_identity::x509::pem_certs(&pem)
            .unwrap_or_else(|e| panic!("the bundle is not PEM certificates ({e}):\n{pem}"))
            .into_iter()
            .map(|c| c.to_vec())
            .collect()
    }

    /// Every key slot of every replica, as `meshid ca rotation show
    /// --output json` prints them.
    pub fn key_slots(&self) -> Vec<serde_json::Value> {
        let v = self.admin_json(&["ca", "rotation", "show"]);
        v["slots"]
            .as_array()
            .unwrap_or_else(|| panic!("no slots in:\n{v}"))
            .clone()
    }

    /// The key IDs of the slots of `kind` (`x509`, `jwt`) in `state`
    /// (`prepared`, `active`, `old`), all replicas.
    pub fn key_ids(&self, kind: &str, state: &str) -> Vec<String> {
        self.key_slots()
            .iter()
            .filter(|s| s["kind"] == kind && s["state"] == state)
            .filter_map(|s| s["key_id"].as_str().map(str::to_owned))
            .collect()
    }

    /// SVIDs this CA process signed so far (`meshid_ca_signatures_total`
    /// on its ops endpoint, every kind and result); 0 if it does not answer.
    pub fn signatures(&self) -> u64 {
        let (_, body) = crate::http::http(self.ops_port, "GET", "/metrics");
        body.lines()
            .filter(|l| l.starts_with("meshid_ca_signatures_total"))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum::<f64>() as u64
    }

    /// The issuance records the CA's default SQLite store
    /// (`<data dir>/ca.db`) holds for the certificate with serial `serial`
    /// (lowercase hex): the signing key (`ca_key_id`, empty if none was
    /// recorded) of each, read with the `sqlite3` CLI.
    pub fn issuance_records(&self, serial: &str) -> Vec<String> {
        let db = self.data_dir().join("ca.db");
        let out = Cmd::new("sqlite3")
            .args(["-readonly"])
            .args([&db])
            .args([crate::certs::issuance_query(serial)])
            .run_ok();
        out.lines().map(str::to_owned).collect()
    }

    /// Stops it with SIGTERM; its exit status.
    pub fn stop(&mut self) -> ExitStatus {
        self.child.terminate(STOP)
    }

    /// Starts it again on the same data dir and node port (after
    /// [`stop`](Self::stop), or as a second process).
    pub fn start_again(&self) -> TestCa {
        self.config.clone().start()
    }
}
