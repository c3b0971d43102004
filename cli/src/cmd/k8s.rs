//! `meshid k8s`: the Kubernetes parts: the controller that registers pods,
//! the sidecar-injection webhook, and the CRDs they read.

mod controller;
mod webhook;

/// Arguments of `meshid k8s`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, clap::Subcommand)]
enum Command {
    /// Prints the `meshid.io` CustomResourceDefinitions (the YAML committed
    /// in deploy/base/crds/).
    Crds,
    /// The controller that registers pods and publishes bundles and
    /// policies.
    Controller(controller::Args),
    /// The sidecar-injection webhook (a mutating admission webhook).
    Webhook(webhook::Args),
    /// Adds the meshid sidecar to the pods of a manifest, offline (as the
    /// webhook would), and prints the result.
    Inject(webhook::InjectArgs),
}

/// Runs `meshid k8s …`.
pub async fn run(args: Args) -> anyhow::Result<()> {
    match args.command {
        Command::Crds => {
            print!("{}", meshid_k8s::crd::crds_yaml()?);
            Ok(())
        }
        Command::Controller(a) => controller::run(a).await,
        Command::Webhook(a) => webhook::run(a).await,
        Command::Inject(a) => webhook::inject(a),
    }
}
