//! `Mesh`: a [`TestCa`] and a [`TestAgent`] in one temp dir, with
//! registration entries, ready when the agent serves this process's SVID.

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;

use meshid_identity::tls::TlsBackend;

use crate::{TestAgent, TestAgentBuilder, TestCa, tempdir};

/// How to start a [`Mesh`]; [`Mesh::builder`] makes one.
#[derive(Debug)]
pub struct MeshBuilder {
    entries: Vec<(String, u32)>,
    shared: bool,
    agent: fn(TestAgentBuilder) -> TestAgentBuilder,
    agent_extra: String,
    ca_config: String,
    tls_backend: Option<TlsBackend>,
}

/// A running CA and agent.
#[derive(Debug)]
pub struct Mesh {
    /// Holds every file; removed on drop.
    pub tmp: tempfile::TempDir,
    /// Where the processes log.
    pub logs: PathBuf,
    /// `meshid ca serve`.
    pub ca: TestCa,
    /// `meshid agent run`.
    pub agent: TestAgent,
    /// The agent's SPIFFE ID (from its join token).
    pub agent_id: String,
    /// The SPIFFE ID of the first entry: the one served to this process.
    pub spiffe_id: String,
}

impl MeshBuilder {
    /// Registers `spiffe://<trust domain><path>` for callers with uid `uid`.
    pub fn entry(mut self, path: &str, uid: u32) -> Self {
        self.entries.push((path.to_owned(), uid));
        self
    }

    /// Makes the temp dir 0755, so processes of other uids reach the
    /// sockets and files in it.
    pub fn shared_dir(mut self) -> Self {
        self.shared = true;
        self
    }

    /// Adjusts the agent (e.g. `TestAgentBuilder::sds_socket`).
    pub fn agent(mut self, f: fn(TestAgentBuilder) -> TestAgentBuilder) -> Self {
        self.agent = f;
        self
    }

    /// Appends `toml` to the agent's config.
    pub fn agent_extra(mut self, toml: &str) -> Self {
        self.agent_extra.push_str(toml);
        self
    }

    /// Runs the CA with `toml` in its config file (e.g. an `[upstream]`
    /// section naming an enterprise intermediate).
    pub fn ca_config(mut self, toml: &str) -> Self {
        self.ca_config.push_str(toml);
        self
    }

    /// Runs the CA and the agent on `backend` (each with `tls_backend` in
    /// its config file).
    pub fn tls_backend(mut self, backend: TlsBackend) -> Self {
        self.tls_backend = Some(backend);
        self
    }

    /// Starts the CA, creates a join token and the entries, starts the agent
    /// and waits until it serves the first entry's SVID to this process.
    pub fn start(self) -> Mesh {
        let tmp = tempdir();
        if self.shared {
            std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o755))
                .unwrap_or_else(|e| panic!("chmod {}: {e}", tmp.path().display()));
        }
        let logs = tmp.path().join("logs");
        std::fs::create_dir_all(&logs).unwrap_or_else(|e| panic!("mkdir logs: {e}"));
        let mut ca = TestCa::builder(tmp.path().join("ca"), &logs).config(&self.ca_config);
        if let Some(backend) = self.tls_backend {
            ca = ca.tls_backend(backend);
        }
        let ca = ca.start();
        let token = ca.join_token();
        let td = ca.trust_domain().to_owned();
        let mut entries = self.entries;
        if entries.is_empty() {
            entries.push(("/workload".to_owned(), current_uid()));
        }
        for (path, uid) in &entries {
            ca.create_entry(
                &format!("spiffe://{td}{path}"),
                &token.agent_id,
                &[&format!("unix:uid:{uid}")],
            );
        }
        let spiffe_id = format!("spiffe://{td}{}", entries[0].0);
        let mut builder = TestAgent::builder(&ca, tmp.path())
            .join_token(&token.secret)
            .extra(&self.agent_extra);
        if let Some(backend) = self.tls_backend {
            builder = builder.tls_backend(backend);
        }
        let mut agent = (self.agent)(builder).start(&logs);
        agent.wait_for_svid(Some(&spiffe_id));
        Mesh {
            tmp,
            logs,
            ca,
            agent,
            agent_id: token.agent_id,
            spiffe_id,
        }
    }
}

impl Mesh {
    /// A mesh whose entries are added with [`MeshBuilder::entry`]; without
    /// any, `spiffe://example.org/workload` for this process's uid. The
    /// first entry must match this process.
    pub fn builder() -> MeshBuilder {
        MeshBuilder {
            entries: Vec::new(),
            shared: false,
            agent: |b| b,
            agent_extra: String::new(),
            ca_config: String::new(),
            tls_backend: None,
        }
    }

    /// A mesh serving `spiffe://example.org<path>` to this process.
    pub fn start(path: &str) -> Mesh {
        Self::builder().entry(path, current_uid()).start()
    }

    /// The agent's Workload API socket.
    pub fn workload_socket(&self) -> &std::path::Path {
        &self.agent.workload_socket
    }
}

/// This process's uid (owner of `/proc/self`).
pub fn current_uid() -> u32 {
    let meta = std::fs::metadata("/proc/self").unwrap_or_else(|e| panic!("stat /proc/self: {e}"));
    std::os::unix::fs::MetadataExt::uid(&meta)
}
