//! `meshid agent`: run the node agent, check its config, query it, or
//! administer agents on the CA.

mod admin;
pub(super) mod api;
mod run;
mod validate;

/// Arguments of `meshid agent`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, clap::Subcommand)]
enum Command {
    /// Runs the node agent (Workload API + SDS on Unix sockets).
    Run(run::Args),
    /// Checks a config (file, flags and environment, as `run` would read
    /// them) without starting anything: fields, typed IDs, value ranges,
    /// the trust bundle file and the socket layout. Prints "config OK" and
    /// a summary, or the problem and exits non-zero.
    Validate(run::Args),
    /// Talks to a running agent's Workload API (debugging).
    Api(api::Args),
    /// Lists attested agents (admin API of the CA).
    List(admin::ListArgs),
    /// Shows one agent.
    Show(admin::IdArgs),
    /// Evicts an agent: it must re-attest.
    Evict(admin::IdArgs),
    /// Bans an agent: it is refused until unbanned by deleting it.
    Ban(admin::IdArgs),
}

/// Runs `meshid agent …`.
pub async fn run(args: Args) -> anyhow::Result<()> {
    match args.command {
        Command::Run(a) => run::run(a).await,
        Command::Validate(a) => validate::run(run::load(a)?),
        Command::Api(a) => api::run(a).await,
        Command::List(a) => admin::list(a).await,
        Command::Show(a) => admin::show(a).await,
        Command::Evict(a) => admin::evict(a).await,
        Command::Ban(a) => admin::ban(a).await,
    }
}
