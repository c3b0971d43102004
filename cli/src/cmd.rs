//! Subcommands, one module each.

mod agent;
mod audit;
mod backend;
mod bundle;
mod ca;
mod entry;
mod healthcheck;
mod k8s;
mod policy;
mod proxy;
mod rbac;
mod tenant;
mod token;
mod up;
mod version;

/// Every `meshid` subcommand.
#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// The certificate authority: `serve`, `show`.
    Ca(ca::Args),
    /// The node agent (`run`, `api fetch`) and agent administration
    /// (`list`, `show`, `evict`, `ban`).
    Agent(agent::Args),
    /// The mTLS sidecar proxy: `run`.
    Proxy(proxy::Args),
    /// Registration entries: create, update, show, list, delete.
    Entry(entry::Args),
    /// Join tokens for node attestation: generate.
    Token(token::Args),
    /// Trust bundles: show, set (federation).
    Bundle(bundle::Args),
    /// Tenants, the scopes entries, tokens and agents belong to: create,
    /// list, show, delete.
    Tenant(tenant::Args),
    /// Role bindings: bind, unbind, list, whoami.
    Rbac(rbac::Args),
    /// The audit log of admin changes and issued SVIDs: list, verify,
    /// export.
    Audit(audit::Args),
    /// Authorization policies: check, explain.
    Policy(policy::Args),
    /// Everything on one machine: CA, agent, two demo services behind proxies.
    Up(up::Args),
    /// Exits 0 when an ops endpoint is ready (--url) or an agent's Workload
    /// API answers (--socket); for container probes.
    Healthcheck(healthcheck::Args),
    /// Kubernetes: the controller that registers pods, the sidecar
    /// injector, the CRDs.
    K8s(k8s::Args),
    /// Prints this build's version, the TLS backends compiled in (with
    /// OpenSSL's version) and whether OpenSSL's FIPS provider is available.
    Version(version::Args),
}

/// Runs one subcommand to completion.
pub async fn run(cmd: Command) -> anyhow::Result<()> {
    match cmd {
        Command::Ca(a) => ca::run(a).await,
        Command::Agent(a) => agent::run(a).await,
        Command::Proxy(a) => proxy::run(a).await,
        Command::Entry(a) => entry::run(a).await,
        Command::Token(a) => token::run(a).await,
        Command::Bundle(a) => bundle::run(a).await,
        Command::Tenant(a) => tenant::run(a).await,
        Command::Rbac(a) => rbac::run(a).await,
        Command::Audit(a) => audit::run(a).await,
        Command::Policy(a) => policy::run(a).await,
        Command::Up(a) => up::run(a).await,
        Command::Healthcheck(a) => healthcheck::run(a).await,
        Command::K8s(a) => k8s::run(a).await,
        Command::Version(a) => version::run(a),
    }
}
