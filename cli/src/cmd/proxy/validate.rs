//! `meshid proxy validate`: check a proxy config without starting anything.

use std::time::SystemTime;

use anyhow::Context as _;
use meshid_proxy::config::{IdentityConfig, ProxyConfig};
use meshid_proxy::identity::FileSource;
use meshid_proxy::policy::PolicySet;
use meshid_runtime::duration::format as format_duration;

/// Runs every check `run` makes before binding (the config is already
/// validated by [`super::load`]): reads the identity files and the policy
/// file; prints a summary. Deprecated keys were logged by the load.
pub fn run(cfg: ProxyConfig) -> anyhow::Result<()> {
    let identity = match &cfg.identity {
        IdentityConfig::WorkloadApi { socket } => {
            format!("Workload API at {} (not contacted)", socket.display())
        }
        IdentityConfig::Files {
            cert, key, bundle, ..
        } => {
            let interval = cfg.identity.poll_interval().unwrap_or_default();
            let id = FileSource::new(cert.clone(), key.clone(), bundle.clone(), interval)
                .load(SystemTime::now())
                .context("identity files")?;
            format!(
                "files, {} (checked every {})",
                id.spiffe_id,
                format_duration(interval)
            )
        }
        _ => "unknown source".into(),
    };
    let policy = match &cfg.policy {
        Some(path) => {
            let labels = cfg.pod_labels_file.as_deref();
            let (set, warnings) = PolicySet::for_workload(path, labels)
                .with_context(|| format!("policy file {}", path.display()))?;
            for w in &warnings {
                println!("warning: {w}");
            }
            format!("{} ({} policies)", path.display(), set.policies().len())
        }
        None => "none: every authenticated peer is allowed".into(),
    };
    println!("config OK");
    println!("  identity      {identity}");
    for l in &cfg.inbound {
        println!(
            "  inbound       {} -> {} ({})",
            l.listen,
            l.forward_to,
            format!("{:?}", l.protocol).to_lowercase()
        );
    }
    for l in &cfg.outbound {
        println!(
            "  outbound      {} -> {} as {} ({})",
            l.listen,
            l.upstream,
            l.destination(),
            format!("{:?}", l.protocol).to_lowercase()
        );
    }
    println!(
        "  tls backend   {}; algorithms {}",
        crate::cmd::backend::describe(cfg.tls_backend, cfg.fips),
        cfg.tls_options().algorithms
    );
    let mode = format!("{:?}", cfg.mode).to_lowercase();
    println!("  policy        {policy} ({mode} mode)");
    if let Some(ops) = cfg.ops_listen {
        println!("  ops           http://{ops}");
    }
    println!(
        "  connections   at most {} per listener; header read {}, idle {}, drain {}",
        cfg.connections.max_per_listener,
        format_duration(cfg.connections.header_read_timeout()),
        format_duration(cfg.connections.idle_timeout()),
        format_duration(cfg.drain_timeout())
    );
    Ok(())
}
