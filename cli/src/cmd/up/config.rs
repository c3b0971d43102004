//! What `meshid up` starts: directory layout, ports, identities, and the
//! configuration files of the children.

use std::net::{SocketAddr, TcpListener};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use meshid_identity::TrustDomain;
use meshid_identity::tls::TlsBackend;

use super::Isolation;

/// Uids the proxies run as in [`Isolation::Uid`] mode.
const DEMO_UIDS: [u32; 2] = [10001, 10002];

/// Files and sockets under the data directory.
#[derive(Debug)]
pub struct Layout {
    /// The data directory.
    pub root: PathBuf,
    /// Child logs.
    pub logs: PathBuf,
    /// CA state.
    pub ca_dir: PathBuf,
    /// Agent state.
    pub agent_dir: PathBuf,
    /// The CA's admin socket.
    pub admin_socket: PathBuf,
    /// The agent's Workload API socket.
    pub workload_socket: PathBuf,
    /// The trust bundle (PEM) the agent trusts on first contact.
    pub bundle_pem: PathBuf,
    /// Config files.
    pub ca_toml: PathBuf,
    /// Agent config.
    pub agent_toml: PathBuf,
    /// Authorization policy of service B's proxy.
    pub policy_yaml: PathBuf,
}

/// Ports picked for this run (all on 127.0.0.1).
#[derive(Debug)]
pub struct Ports {
    /// CA node API (agents).
    pub ca_node: u16,
    /// CA ops (`/healthz`, `/metrics`).
    pub ca_ops: u16,
    /// Agent ops.
    pub agent_ops: u16,
    /// Service A's outbound listener: plaintext in, mTLS to B.
    pub a_outbound: u16,
}

/// One demo service and its proxy.
#[derive(Debug)]
pub struct Service {
    /// `service-a` / `service-b`.
    pub name: &'static str,
    /// Its SPIFFE ID.
    pub spiffe_id: String,
    /// The demo HTTP server (plaintext, loopback).
    pub app: SocketAddr,
    /// The proxy's inbound (mTLS) port.
    pub inbound_port: u16,
    /// The proxy's ops port.
    pub ops_port: u16,
    /// Uid the proxy runs as ([`Isolation::Uid`]).
    pub uid: Option<u32>,
    /// Its own copy of the binary ([`Isolation::Path`]).
    pub exe: Option<PathBuf>,
    /// Selectors of its registration entry (`unix:uid:…`).
    pub selectors: Vec<(String, String)>,
    /// The proxy's config file.
    pub config: PathBuf,
}

/// Everything decided before anything starts.
#[derive(Debug)]
pub struct Plan {
    /// The trust domain.
    pub trust_domain: TrustDomain,
    /// How the proxies are told apart.
    pub isolation: Isolation,
    /// Ports.
    pub ports: Ports,
    /// Service A (caller) and service B (callee).
    pub services: [Service; 2],
    /// The TLS backend every child runs on (`--tls-backend`); `None`
    /// leaves each component's default.
    pub tls_backend: Option<TlsBackend>,
}

/// Turns `auto` into `uid` or `path`; refuses `uid` when it cannot work.
pub fn resolve_isolation(asked: Isolation) -> anyhow::Result<Isolation> {
    let root = nix::unistd::geteuid().is_root();
    let setpriv = which("setpriv").is_some();
    match asked {
        Isolation::Auto if root && setpriv => Ok(Isolation::Uid),
        Isolation::Auto => Ok(Isolation::Path),
        Isolation::Uid if !root => {
            anyhow::bail!(
                "--isolation uid needs root (to run proxies as other uids); use --isolation path"
            )
        }
        Isolation::Uid if !setpriv => {
            anyhow::bail!(
                "--isolation uid needs `setpriv` (util-linux) on PATH; install it or use --isolation path"
            )
        }
        other => Ok(other),
    }
}

fn which(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(program))
        .find(|p| p.is_file())
}

/// A port on 127.0.0.1 that was free a moment ago.
/// Picks free loopback ports that are distinct within one plan: each
/// probe listener stays bound until the plan is made, so the kernel cannot
/// hand the same ephemeral port out twice (it did: the CA's ops port and a
/// proxy's inbound port once came out equal).
#[derive(Default)]
struct PortPicker {
    held: Vec<TcpListener>,
}

impl PortPicker {
    fn pick(&mut self) -> anyhow::Result<u16> {
        let l = TcpListener::bind("127.0.0.1:0").context("cannot bind a loopback port")?;
        let port = l.local_addr()?.port();
        self.held.push(l);
        Ok(port)
    }
}

fn loopback(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

fn write(path: &Path, text: &str) -> anyhow::Result<()> {
    std::fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o644))
        .with_context(|| format!("cannot chmod {}", path.display()))
}

// === impl Layout ===

impl Layout {
    /// Creates the directories under `root` (world-readable, so proxies
    /// running as other uids can read their configs).
    pub fn new(root: &Path, isolation: Isolation) -> anyhow::Result<Self> {
        let l = Self {
            root: root.to_owned(),
            logs: root.join("logs"),
            ca_dir: root.join("ca"),
            agent_dir: root.join("agent"),
            admin_socket: root.join("ca").join("admin.sock"),
            workload_socket: root.join("agent").join("workload.sock"),
            bundle_pem: root.join("bundle.pem"),
            ca_toml: root.join("ca.toml"),
            agent_toml: root.join("agent.toml"),
            policy_yaml: root.join("policy.yaml"),
        };
        for d in [&l.root, &l.logs, &l.ca_dir, &l.agent_dir] {
            std::fs::create_dir_all(d).with_context(|| format!("cannot create {}", d.display()))?;
        }
        let open = if isolation == Isolation::Uid {
            0o755
        } else {
            0o700
        };
        std::fs::set_permissions(&l.root, std::fs::Permissions::from_mode(open))
            .with_context(|| format!("cannot chmod {}", l.root.display()))?;
        std::fs::set_permissions(&l.agent_dir, std::fs::Permissions::from_mode(0o755))
            .with_context(|| format!("cannot chmod {}", l.agent_dir.display()))?;
        std::fs::set_permissions(&l.ca_dir, std::fs::Permissions::from_mode(0o700))
            .with_context(|| format!("cannot chmod {}", l.ca_dir.display()))?;
        Ok(l)
    }
}

// === impl Plan ===

impl Plan {
    /// Picks ports and identities.
    pub fn new(
        layout: &Layout,
        trust_domain: TrustDomain,
        isolation: Isolation,
        apps: [SocketAddr; 2],
    ) -> anyhow::Result<Self> {
        let mut picker = PortPicker::default();
        let ports = Ports {
            ca_node: picker.pick()?,
            ca_ops: picker.pick()?,
            agent_ops: picker.pick()?,
            a_outbound: picker.pick()?,
        };
        let our_uid = nix::unistd::getuid().as_raw();
        let names = ["service-a", "service-b"];
        let mut services = Vec::with_capacity(2);
        for i in 0..2 {
            let name = names[i];
            let (uid, exe, selectors) = match isolation {
                Isolation::Uid => {
                    let uid = DEMO_UIDS[i];
                    (Some(uid), None, vec![("unix".into(), format!("uid:{uid}"))])
                }
                _ => {
                    let exe = layout.root.join("bin").join(name).join("meshid");
                    let selectors = vec![
                        ("unix".into(), format!("uid:{our_uid}")),
                        ("unix".into(), format!("path:{}", exe.display())),
                    ];
                    (None, Some(exe), selectors)
                }
            };
            services.push(Service {
                name,
                spiffe_id: format!("spiffe://{trust_domain}/demo/{name}"),
                app: apps[i],
                inbound_port: picker.pick()?,
                ops_port: picker.pick()?,
                uid,
                exe,
                selectors,
                config: layout.root.join(format!("proxy-{name}.yaml")),
            });
        }
        let services: [Service; 2] = services
            .try_into()
            .map_err(|_| anyhow::anyhow!("internal: expected two services"))?;
        Ok(Self {
            trust_domain,
            isolation,
            ports,
            services,
            tls_backend: None,
        })
    }

    /// Runs every child on `backend` (if any): a `tls_backend` line in each
    /// generated config and `--tls-backend` on each command line.
    pub fn with_tls_backend(mut self, backend: Option<TlsBackend>) -> Self {
        self.tls_backend = backend;
        self
    }

    /// `tls_backend = "<name>"` for a TOML config, or nothing.
    fn toml_backend(&self) -> String {
        self.tls_backend
            .map(|b| format!("tls_backend = {:?}\n", b.as_str()))
            .unwrap_or_default()
    }

    /// `meshid <args…>` of a child, with `--tls-backend` when one is set.
    fn command(&self, args: &[&str], config: &Path) -> Vec<String> {
        let mut cmd: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
        cmd.extend(["--config".to_owned(), config.display().to_string()]);
        if let Some(b) = self.tls_backend {
            cmd.extend(["--tls-backend".to_owned(), b.as_str().to_owned()]);
        }
        cmd
    }

    /// `ca.toml`.
    pub fn write_ca_config(&self, layout: &Layout) -> anyhow::Result<()> {
        let text = format!(
            "# written by `meshid up`\n\
             {backend}\
             trust_domain = {td:?}\n\
             data_dir = {dir:?}\n\
             admin_socket = {sock:?}\n\
             listen = \"{listen}\"\n\
             ops_listen = \"{ops}\"\n\
             default_x509_ttl = \"1h\"\n\
             max_x509_ttl = \"1h\"\n",
            backend = self.toml_backend(),
            td = self.trust_domain.to_string(),
            dir = layout.ca_dir.display().to_string(),
            sock = layout.admin_socket.display().to_string(),
            listen = loopback(self.ports.ca_node),
            ops = loopback(self.ports.ca_ops),
        );
        write(&layout.ca_toml, &text)
    }

    /// `agent.toml` (holds the one-time join token: owner-only).
    pub fn write_agent_config(&self, layout: &Layout, join_token: &str) -> anyhow::Result<()> {
        let text = format!(
            "# written by `meshid up`\n\
             {backend}\
             trust_domain = {td:?}\n\
             ca_address = \"{ca}\"\n\
             trust_bundle_file = {bundle:?}\n\
             join_token = {token:?}\n\
             data_dir = {dir:?}\n\
             workload_api_socket = {sock:?}\n\
             ops_listen = \"{ops}\"\n\
             sync_interval = \"1s\"\n",
            backend = self.toml_backend(),
            td = self.trust_domain.to_string(),
            ca = loopback(self.ports.ca_node),
            bundle = layout.bundle_pem.display().to_string(),
            token = join_token,
            dir = layout.agent_dir.display().to_string(),
            sock = layout.workload_socket.display().to_string(),
            ops = loopback(self.ports.agent_ops),
        );
        write(&layout.agent_toml, &text)?;
        std::fs::set_permissions(&layout.agent_toml, std::fs::Permissions::from_mode(0o600))
            .with_context(|| format!("cannot chmod {}", layout.agent_toml.display()))
    }

    /// The policy and both proxies' configs.
    pub fn write_proxy_configs(&self, layout: &Layout) -> anyhow::Result<()> {
        let [a, b] = &self.services;
        let policy = format!(
            "# written by `meshid up`: service A may read B's /hello, nothing else.\n\
             policies:\n\
             \x20 - name: a-reads-hello\n\
             \x20   action: ALLOW\n\
             \x20   rules:\n\
             \x20     - from: [{{ source: {{ principals: [\"{a_id}\"] }} }}]\n\
             \x20       to: [{{ operation: {{ methods: [\"GET\"], paths: [\"/hello\"] }} }}]\n",
            a_id = a.spiffe_id,
        );
        write(&layout.policy_yaml, &policy)?;
        for svc in &self.services {
            let mut text = format!(
                "# written by `meshid up`: the proxy of {name}\n\
                 identity:\n\
                 \x20 workload_api: {{ socket: {sock:?} }}\n\
                 inbound:\n\
                 \x20 - {{ listen: \"{inb}\", forward_to: \"{app}\", protocol: http }}\n\
                 ops_listen: \"{ops}\"\n\
                 access_log: stdout\n",
                name = svc.name,
                sock = layout.workload_socket.display().to_string(),
                inb = loopback(svc.inbound_port),
                app = svc.app,
                ops = loopback(svc.ops_port),
            );
            if let Some(b) = self.tls_backend {
                text.push_str(&format!("tls_backend: {}\n", b.as_str()));
            }
            if svc.name == a.name {
                text.push_str(&format!(
                    "outbound:\n\
                     \x20 - {{ listen: \"{out}\", upstream: \"{up}\", server_id: \"{b_id}\", protocol: http }}\n",
                    out = loopback(self.ports.a_outbound),
                    up = loopback(b.inbound_port),
                    b_id = b.spiffe_id,
                ));
            } else {
                text.push_str(&format!(
                    "policy: {:?}\nmode: enforce\n",
                    layout.policy_yaml.display().to_string()
                ));
            }
            write(&svc.config, &text)?;
        }
        Ok(())
    }

    /// Arguments of the CA child.
    pub fn ca_command(&self, layout: &Layout) -> Vec<String> {
        self.command(&["ca", "serve"], &layout.ca_toml)
    }

    /// Arguments of the agent child.
    pub fn agent_command(&self, layout: &Layout) -> Vec<String> {
        self.command(&["agent", "run"], &layout.agent_toml)
    }

    /// Arguments of a proxy child.
    pub fn proxy_command(&self, _layout: &Layout, svc: &Service) -> Vec<String> {
        self.command(&["proxy", "run"], &svc.config)
    }

    /// How to start `svc`'s proxy: its own copy of the binary, or this
    /// binary under `setpriv` as its own uid.
    pub fn prepare_program(&self, _layout: &Layout, svc: &Service) -> anyhow::Result<Program> {
        let me = std::env::current_exe().context("cannot find this program's path")?;
        if let Some(exe) = &svc.exe {
            if let Some(dir) = exe.parent() {
                std::fs::create_dir_all(dir)
                    .with_context(|| format!("cannot create {}", dir.display()))?;
            }
            // A hard link keeps a distinct path at no cost; copy across
            // file systems.
            let _ = std::fs::remove_file(exe);
            if std::fs::hard_link(&me, exe).is_err() {
                std::fs::copy(&me, exe).with_context(|| {
                    format!("cannot copy {} to {}", me.display(), exe.display())
                })?;
            }
            return Ok(Program {
                program: exe.clone(),
                prefix: Vec::new(),
            });
        }
        let uid = svc.uid.unwrap_or(DEMO_UIDS[0]);
        Ok(Program {
            program: PathBuf::from("setpriv"),
            prefix: vec![
                format!("--reuid={uid}"),
                format!("--regid={uid}"),
                "--clear-groups".into(),
                "--".into(),
                me.display().to_string(),
            ],
        })
    }
}

/// The program (and leading arguments) a child runs.
#[derive(Debug, Clone)]
pub struct Program {
    /// The executable.
    pub program: PathBuf,
    /// Arguments before the subcommand (the `setpriv` wrapper).
    pub prefix: Vec<String>,
}

// === impl Service ===

impl Service {
    /// Name of its proxy child.
    pub fn proxy_name(&self) -> String {
        format!("proxy-{}", self.name.trim_start_matches("service-"))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests;
