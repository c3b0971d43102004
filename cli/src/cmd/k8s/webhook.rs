//! `meshid k8s webhook run|validate` (the sidecar-injection webhook) and
//! `meshid k8s inject` (the same injection, offline, on manifests).

use anyhow::Context as _;
use meshid_k8s::webhook::{self, InjectConfig, Outcome, WebhookConfig};
use meshid_proxy::config::IdentityConfig;
use std::io::Read as _;
use std::path::PathBuf;

/// Arguments of `meshid k8s webhook`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, clap::Subcommand)]
enum Command {
    /// Serves AdmissionReviews on `listen` (HTTPS, POST /inject) until
    /// SIGINT/SIGTERM.
    Run(ConfigArgs),
    /// Checks a webhook config without starting anything; prints
    /// "config OK" and a summary, or the problem and exits non-zero.
    Validate(ConfigArgs),
}

#[derive(Debug, clap::Args)]
struct ConfigArgs {
    /// Webhook configuration file (TOML).
    #[arg(long, env = "MESHID_WEBHOOK_CONFIG")]
    config: PathBuf,
}

/// Arguments of `meshid k8s inject`.
#[derive(Debug, clap::Args)]
pub struct InjectArgs {
    /// The manifest (YAML; `-` for standard input): Pods, or Deployments,
    /// StatefulSets, DaemonSets, ReplicaSets, Jobs, CronJobs.
    #[arg(short = 'f', long = "filename")]
    file: PathBuf,
    /// Webhook configuration whose `[inject]` settings to use; absent:
    /// the defaults.
    #[arg(long)]
    config: Option<PathBuf>,
}

/// Runs `meshid k8s webhook …`.
pub async fn run(args: Args) -> anyhow::Result<()> {
    match args.command {
        Command::Run(a) => {
            let cfg = WebhookConfig::from_file(&a.config)?;
            let running = webhook::start(cfg)
                .await
                .context("webhook failed to start")?;
            crate::signal::shutdown().await;
            tracing::info!("shutdown requested; finishing open requests");
            running.stop().await;
            Ok(())
        }
        Command::Validate(a) => {
            let cfg = WebhookConfig::from_file(&a.config)?;
            let identity = match &cfg.identity {
                IdentityConfig::WorkloadApi { socket } => {
                    format!("Workload API at {} (not contacted)", socket.display())
                }
                IdentityConfig::Files { cert, .. } => format!("files ({})", cert.display()),
                _ => "unknown source".into(),
            };
            println!("config OK");
            println!(
                "  listen:     https://{}{}",
                cfg.listen,
                webhook::server::PATH
            );
            match cfg.ops_listen {
                Some(a) => println!("  ops:        http://{a}"),
                None => println!("  ops:        off"),
            }
            println!("  identity:   {identity}");
            println!(
                "  sidecar:    {} (uid {}), agent sockets {}, policy ConfigMap {}",
                cfg.inject.image,
                cfg.inject.proxy_uid,
                cfg.inject.agent_socket_dir.display(),
                cfg.inject.policy_configmap
            );
            Ok(())
        }
    }
}

/// Runs `meshid k8s inject`: prints the injected manifest on standard
/// output and what was done to each object on standard error.
pub fn inject(args: InjectArgs) -> anyhow::Result<()> {
    let cfg = match &args.config {
        Some(path) => WebhookConfig::from_file(path)?.inject,
        None => InjectConfig::default(),
    };
    let limit = webhook::manifest::MAX_MANIFEST as u64;
    let text = if args.file.as_os_str() == "-" {
        let mut text = String::new();
        std::io::stdin()
            .take(limit + 1)
            .read_to_string(&mut text)
            .context("reading standard input")?;
        text
    } else {
        meshid_runtime::fs::read_to_string(&args.file, limit)
            .with_context(|| format!("reading {}", args.file.display()))?
    };
    let (out, outcomes) = webhook::inject_manifests(&text, &cfg)?;
    for (i, o) in outcomes.iter().enumerate() {
        match o {
            Outcome::Injected => eprintln!("document {}: injected", i + 1),
            Outcome::Skipped(why) => eprintln!("document {}: not injected: {why}", i + 1),
            _ => {}
        }
    }
    print!("{out}");
    Ok(())
}
