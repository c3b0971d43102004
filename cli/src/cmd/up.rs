//! `meshid up`: the whole system on one machine, for a first look.
//!
//! Starts, as children of this process (the same `meshid` binary), a CA with
//! a self-signed root and SQLite, one agent (join token), and two meshid
//! proxies in front of two demo HTTP services served by this process. A
//! policy lets service A call service B's `GET /hello` but not `POST /admin`.
//! Both calls are made, the results printed, and everything runs until
//! SIGINT/SIGTERM, then stops in reverse order.
//!
//! The two proxies run on the same machine and, unless we are root, as the
//! same user; they still get one identity each because their registration
//! entries select something that differs between them (see [`Isolation`]).

mod admin;
mod calls;
mod children;
mod config;
mod demo;
mod probe;
mod report;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use meshid_identity::tls::TlsBackend;

use children::Children;
use config::{Layout, Plan};

/// Arguments of `meshid up`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Keep configuration, keys, database and logs here (kept on exit).
    /// Default: a fresh temporary directory, removed on exit.
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Trust domain of the demo mesh.
    #[arg(long, default_value = "example.org")]
    trust_domain: String,
    /// How the two proxies get distinct identities: `uid` runs them as uids
    /// 10001/10002 (needs root and `setpriv`), `path` runs each from its own
    /// copy of this binary and selects by `unix:path`; `auto` picks `uid`
    /// when running as root.
    #[arg(long, value_enum, default_value_t = Isolation::Auto)]
    isolation: Isolation,
    /// How long to wait for everything to become ready, e.g. 30s or 2m.
    #[arg(long, default_value = "30s", value_parser = meshid_runtime::duration::parse, value_name = "DURATION")]
    ready_timeout: Duration,
    /// TLS library of every child (CA, agent, both proxies): `rustls`
    /// (ring, the default) or `openssl` (needs a meshid built with
    /// `--features openssl`). Written into the configs `up` generates and
    /// passed to each child as `--tls-backend`.
    #[arg(long, value_enum, value_name = "BACKEND")]
    tls_backend: Option<super::backend::BackendArg>,
}

/// How the two demo proxies are told apart by workload attestation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Isolation {
    /// `uid` when running as root and `setpriv` exists, else `path`.
    Auto,
    /// Each proxy runs as its own uid (10001, 10002) via `setpriv`.
    Uid,
    /// Each proxy runs from its own copy of the binary; entries select
    /// `unix:uid:<our uid>` and `unix:path:<that copy>`.
    Path,
}

/// Runs `meshid up`.
pub async fn run(args: Args) -> anyhow::Result<()> {
    // Watch signals before any child exists, so Ctrl-C during start-up still
    // stops the children instead of orphaning them.
    let mut signals = Signals::new()?;
    let tls_backend = args.tls_backend.map(TlsBackend::from);
    if let Some(backend) = tls_backend {
        // Refuse before starting anything: e.g. `openssl` on a build
        // without the OpenSSL backend.
        backend.check(false)?;
    }
    let started = Instant::now();
    let deadline = started + args.ready_timeout;
    let (_temp, root, keep) = match &args.data_dir {
        Some(dir) => {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create --data-dir {}", dir.display()))?;
            (None, std::path::absolute(dir)?, true)
        }
        None => {
            let t = tempfile::Builder::new()
                .prefix("meshid-up-")
                .tempdir()
                .context("cannot create a temporary directory; pass --data-dir")?;
            let p = t.path().to_owned();
            (Some(t), p, false)
        }
    };
    let isolation = config::resolve_isolation(args.isolation)?;
    let layout = Layout::new(&root, isolation)?;
    let trust_domain: meshid_identity::TrustDomain =
        args.trust_domain.parse().with_context(|| {
            format!(
                "--trust-domain {:?} is not a trust domain",
                args.trust_domain
            )
        })?;

    let demo = demo::DemoServices::start().await?;
    let plan = Plan::new(&layout, trust_domain, isolation, [demo.a, demo.b])?
        .with_tls_backend(tls_backend);
    let mut children = Children::new(layout.logs.clone());

    let outcome = tokio::select! {
        r = bring_up(&plan, &layout, &mut children, deadline) => Some(r),
        name = signals.recv() => {
            println!("meshid up: {name} during start-up, shutting down");
            None
        }
    };
    let outcome = match outcome {
        Some(Ok(up)) => {
            report::print(&plan, &layout, &up, &children, keep, started.elapsed());
            wait_for_stop(&mut children, &mut signals).await
        }
        Some(Err(e)) => Err(e),
        None => Ok(()),
    };
    children.shutdown().await;
    demo.stop().await;
    if outcome.is_err() {
        eprintln!("{}", children.log_tails(20));
        if !keep {
            eprintln!("(rerun with --data-dir DIR to keep the configuration and logs)");
        }
    } else {
        println!("meshid up: stopped everything cleanly");
    }
    outcome
}

/// What `bring_up` learned, for the report.
#[derive(Debug)]
pub struct Up {
    /// The agent's SPIFFE ID.
    agent_id: String,
    /// Proxy certificates seen on the wire, per service.
    certs: Vec<probe::Seen>,
    /// The allowed call.
    allowed: calls::Outcome,
    /// The denied call.
    denied: calls::Outcome,
    /// CA validity end (Unix seconds) from the admin API.
    ca_expires_at: i64,
}

async fn bring_up(
    plan: &Plan,
    layout: &Layout,
    children: &mut Children,
    deadline: Instant,
) -> anyhow::Result<Up> {
    // 1. The CA.
    plan.write_ca_config(layout)?;
    children.spawn_meshid("ca", &plan.ca_command(layout), None)?;
    children
        .wait_for_socket("ca", &layout.admin_socket, deadline)
        .await?;
    children
        .wait_for_port("ca", plan.ports.ca_node, deadline)
        .await?;
    let mut admin = admin::Admin::connect(&layout.admin_socket, deadline).await?;

    // 2. A join token, the two workload entries, the bundle for the agent.
    let token = admin.join_token().await?;
    admin.create_entries(plan, &token.agent_spiffe_id).await?;
    let bundle = admin.bundle_pem(&plan.trust_domain).await?;
    let ca_expires_at = admin.ca_expires_at().await.unwrap_or(0);
    std::fs::write(&layout.bundle_pem, bundle)
        .with_context(|| format!("cannot write {}", layout.bundle_pem.display()))?;

    // 3. The agent.
    plan.write_agent_config(layout, &token.token)?;
    children.spawn_meshid("agent", &plan.agent_command(layout), None)?;
    children
        .wait_for_socket("agent", &layout.workload_socket, deadline)
        .await?;

    // 4. The proxies.
    plan.write_proxy_configs(layout)?;
    for svc in &plan.services {
        let program = plan.prepare_program(layout, svc)?;
        children.spawn_meshid(
            &svc.proxy_name(),
            &plan.proxy_command(layout, svc),
            Some(program),
        )?;
    }
    for svc in &plan.services {
        children
            .wait_for_port(&svc.proxy_name(), svc.inbound_port, deadline)
            .await?;
    }
    children
        .wait_for_port("proxy-a", plan.ports.a_outbound, deadline)
        .await?;

    // 5. The calls. The first may race the proxies' first SVID: retry the
    // allowed call until it succeeds or the deadline passes.
    let allowed = calls::until_ok(plan.ports.a_outbound, children, deadline).await?;
    let denied = calls::admin(plan.ports.a_outbound).await?;

    let mut certs = Vec::new();
    for svc in &plan.services {
        certs.push(probe::inbound_cert(svc, &layout.bundle_pem, &plan.trust_domain).await);
    }
    Ok(Up {
        agent_id: token.agent_spiffe_id,
        certs,
        allowed,
        denied,
        ca_expires_at,
    })
}

/// SIGINT and SIGTERM.
struct Signals {
    int: tokio::signal::unix::Signal,
    term: tokio::signal::unix::Signal,
}

impl Signals {
    fn new() -> anyhow::Result<Self> {
        use tokio::signal::unix::{SignalKind, signal};
        Ok(Self {
            int: signal(SignalKind::interrupt()).context("cannot watch SIGINT")?,
            term: signal(SignalKind::terminate()).context("cannot watch SIGTERM")?,
        })
    }

    /// Waits for either; returns its name.
    async fn recv(&mut self) -> &'static str {
        tokio::select! {
            _ = self.int.recv() => "SIGINT",
            _ = self.term.recv() => "SIGTERM",
        }
    }
}

/// Runs until SIGINT/SIGTERM (Ok) or until a child dies (Err).
async fn wait_for_stop(children: &mut Children, signals: &mut Signals) -> anyhow::Result<()> {
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    loop {
        tokio::select! {
            name = signals.recv() => {
                println!("meshid up: {name}, shutting down");
                return Ok(());
            }
            _ = tick.tick() => {
                if let Some((name, status)) = children.first_exited() {
                    anyhow::bail!("{name} exited unexpectedly ({status}); see its log above");
                }
            }
        }
    }
}
