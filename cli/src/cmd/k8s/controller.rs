//! `meshid k8s controller`: `run` the controller, or `validate` its config.

use std::path::PathBuf;

use anyhow::Context as _;
use meshid_k8s::controller::config::{ControllerConfig, Settings};

/// Arguments of `meshid k8s controller`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, clap::Subcommand)]
enum Command {
    /// Registers the cluster's pods with the CA and publishes the trust
    /// bundle and the Istio policies as ConfigMaps, until SIGINT/SIGTERM.
    Run(ConfigArgs),
    /// Checks a config without contacting anything; prints "config OK" and
    /// a summary, or the problem and exits non-zero.
    Validate(ConfigArgs),
}

#[derive(Debug, clap::Args)]
struct ConfigArgs {
    /// The controller's config file (TOML).
    #[arg(long, env = "MESHID_CONTROLLER_CONFIG")]
    config: PathBuf,
}

/// Runs `meshid k8s controller …`.
pub async fn run(args: Args) -> anyhow::Result<()> {
    match args.command {
        Command::Run(a) => {
            let settings = load(&a)?;
            meshid_k8s::controller::run(settings, crate::signal::shutdown())
                .await
                .context("meshid k8s controller")
        }
        Command::Validate(a) => {
            let s = load(&a)?;
            println!("config OK");
            println!(
                "  cluster         {} (entries owned {:?})",
                s.cluster_name, s.owner
            );
            println!("  trust domain    {}", s.trust_domain.as_str());
            println!(
                "  CA admin API    {} (not contacted)",
                s.ca_admin_socket.display()
            );
            println!("  root namespace  {}", s.root_namespace);
            println!(
                "  leader Lease    {}/{} as {:?}",
                s.lease.namespace, s.lease.name, s.lease.identity
            );
            println!("  ops endpoint    {}", s.ops_listen);
            Ok(())
        }
    }
}

fn load(a: &ConfigArgs) -> anyhow::Result<Settings> {
    let cfg = ControllerConfig::from_file(&a.config)?;
    let settings = cfg
        .check(|name| std::env::var(name).ok().or_else(|| hostname(name)))
        .with_context(|| format!("{}", a.config.display()))?;
    Ok(settings)
}

/// The kernel's host name when `HOSTNAME` is not in the environment (it is
/// a shell variable, often not exported).
fn hostname(name: &str) -> Option<String> {
    if name != "HOSTNAME" {
        return None;
    }
    let text =
        meshid_runtime::fs::read_to_string("/proc/sys/kernel/hostname".as_ref(), 256).ok()?;
    Some(text.trim().to_owned()).filter(|s| !s.is_empty())
}
