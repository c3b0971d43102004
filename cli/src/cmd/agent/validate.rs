//! `meshid agent validate`: check an agent config without starting anything.

use meshid_agent::config::AgentConfig;
use meshid_agent::workload_api::check_socket_reachable;
use meshid_runtime::duration::format as format_duration;

/// Runs every check `run` makes before attesting or binding (the config
/// is already validated by [`super::run::load`]) and prints a summary.
pub fn run(config: AgentConfig) -> anyhow::Result<()> {
    let bundle = config.trust_bundle()?;
    check_socket_reachable(&config.workload_api_socket, &config.data_dir)?;
    check_socket_reachable(config.sds_socket(), &config.data_dir)?;
    config.check_attestor_files()?;
    println!("config OK");
    println!("  trust domain  {}", config.trust_domain);
    println!(
        "  CA            {} as {}",
        config.ca_targets().join(", "),
        config.ca_spiffe_id()?
    );
    println!(
        "  tls backend   {}",
        crate::cmd::backend::describe(config.tls_backend, config.fips)
    );
    match (&bundle, &config.trust_bundle_file) {
        (Some(b), Some(path)) => println!(
            "  trust bundle  {} ({} root certificate(s))",
            path.display(),
            b.x509_authorities.len()
        ),
        _ => println!("  trust bundle  none (the data dir must hold an earlier bundle)"),
    }
    match (&config.node_attestor.k8s_psat, &config.join_token) {
        (Some(psat), _) => println!(
            "  attestation   k8s_psat, cluster {}, token {}",
            psat.cluster,
            psat.token_path.display()
        ),
        (None, Some(_)) => println!("  attestation   join token (set)"),
        (None, None) => println!(
            "  attestation   join token not set (the data dir must hold an earlier agent SVID)"
        ),
    }
    let workload = if config.workload_attestor.k8s.is_some() {
        "unix, k8s"
    } else {
        "unix"
    };
    println!("  attestors     {workload}");
    println!("  data dir      {}", config.data_dir.display());
    println!("  Workload API  {}", config.workload_api_socket.display());
    println!("  SDS           {}", config.sds_socket().display());
    if let Some(ops) = config.ops_listen {
        println!("  ops           http://{ops}");
    }
    println!(
        "  sync          every {}; rotation at {:.0}% ± {:.0}% of lifetime",
        format_duration(config.sync_interval),
        config.rotation_fraction * 100.0,
        config.rotation_jitter * 100.0
    );
    Ok(())
}
