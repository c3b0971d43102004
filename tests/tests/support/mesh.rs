//! A CA and an agent as real `meshid` processes in one temp dir, with a
//! registration entry for this test process's uid, ready when the agent
//! serves that SVID. Include with `#[path = "support/mesh.rs"] mod mesh;`.
#![allow(clippy::unwrap_used)]
#![allow(dead_code)]

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use meshid_tests::{Child, Cmd, eventually, free_port, tempdir, wait_for_port};

/// The trust domain of every mesh started here.
pub const TD: &str = "example.org";
/// How long the processes may take to come up (debug build, loaded CI).
pub const READY: Duration = Duration::from_secs(60);

/// The running processes and where to reach them.
pub struct Mesh {
    /// Holds every file; removed on drop.
    pub tmp: tempfile::TempDir,
    /// `meshid ca serve`.
    pub ca: Child,
    /// `meshid agent run`.
    pub agent: Child,
    /// The CA's admin socket.
    pub admin_socket: PathBuf,
    /// The agent's Workload API socket.
    pub workload_socket: PathBuf,
    /// The SPIFFE ID served to this process.
    pub spiffe_id: String,
}

impl Mesh {
    /// Starts a CA, registers `spiffe://example.org<path>` for this
    /// process's uid, starts an agent with a join token and waits until the
    /// agent serves the SVID.
    pub fn start(path: &str) -> Self {
        let tmp = tempdir();
        let logs = tmp.path().join("logs");
        std::fs::create_dir_all(&logs).unwrap();
        let node_port = free_port();
        let admin_socket = tmp.path().join("ca/admin.sock");
        let mut ca = Cmd::meshid()
            .args(["ca", "serve", "--trust-domain", TD, "--data-dir"])
            .args([tmp.path().join("ca")])
            .args(["--listen", &format!("127.0.0.1:{node_port}")])
            .args(["--ops-listen", &format!("127.0.0.1:{}", free_port())])
            .args(["--admin-socket"])
            .args([&admin_socket])
            .spawn(&logs);
        eventually("the CA admin socket", READY, || {
            assert!(ca.is_running(), "meshid ca serve exited:\n{}", ca.log());
            std::os::unix::net::UnixStream::connect(&admin_socket)
                .ok()
                .map(|_| ())
        });
        wait_for_port(node_port, READY);

        let token: serde_json::Value = serde_json::from_str(&admin(
            &admin_socket,
            &["token", "generate", "--output", "json"],
        ))
        .unwrap();
        let agent_id = token["spiffe_id"].as_str().unwrap().to_owned();
        let uid = std::fs::metadata(tmp.path()).unwrap().uid();
        let spiffe_id = format!("spiffe://{TD}{path}");
        let selector = format!("unix:uid:{uid}");
        admin(
            &admin_socket,
            &[
                "entry",
                "create",
                "--spiffe-id",
                &spiffe_id,
                "--parent-id",
                &agent_id,
                "--selector",
                &selector,
            ],
        );
        let bundle = tmp.path().join("ca-bundle.pem");
        let pem = admin(&admin_socket, &["bundle", "show", "--format", "pem"]);
        std::fs::write(&bundle, pem).unwrap();

        let workload_socket = tmp.path().join("run/agent.sock");
        let config = tmp.path().join("agent.toml");
        std::fs::write(
            &config,
            format!(
                "trust_domain = \"{TD}\"\nca_address = \"127.0.0.1:{node_port}\"\n\
                 trust_bundle_file = {bundle:?}\ndata_dir = {data:?}\n\
                 workload_api_socket = {wl:?}\nsync_interval = \"1s\"\n\
                 join_token = {secret:?}\n",
                bundle = bundle.display().to_string(),
                data = tmp.path().join("agent").display().to_string(),
                wl = workload_socket.display().to_string(),
                secret = token["token"].as_str().unwrap(),
            ),
        )
        .unwrap();
        let agent = Cmd::meshid()
            .args(["agent", "run", "--config"])
            .args([&config])
            .env("MESHID_JOIN_TOKEN", "")
            .spawn(&logs);
        let mut mesh = Self {
            tmp,
            ca,
            agent,
            admin_socket,
            workload_socket,
            spiffe_id,
        };
        mesh.wait_for_svid();
        mesh
    }

    /// Waits until `meshid agent api fetch` gets this uid's SVID.
    fn wait_for_svid(&mut self) {
        let deadline = Instant::now() + READY;
        loop {
            assert!(
                self.agent.is_running(),
                "agent exited:\n{}",
                self.agent.log()
            );
            let out = Cmd::meshid()
                .args(["agent", "api", "fetch", "--socket"])
                .args([&self.workload_socket])
                .output();
            if out.status.success()
                && String::from_utf8_lossy(&out.stdout).contains(&self.spiffe_id)
            {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "no SVID from the agent:\n{}",
                self.agent.log()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

/// Runs `meshid <args> --admin-socket <socket>`; its stdout.
pub fn admin(socket: &Path, args: &[&str]) -> String {
    Cmd::meshid()
        .args(args)
        .args(["--admin-socket"])
        .args([socket])
        .run_ok()
}
