//! `meshid ca validate`: check a CA config without starting anything.

use std::time::SystemTime;

use meshid_ca::config::CaConfig;
use meshid_runtime::duration::format as format_duration;

/// Runs every check `serve` makes before binding and prints a summary.
pub fn run(cfg: CaConfig) -> anyhow::Result<()> {
    let v = cfg.preflight(SystemTime::now())?;
    let raw = &v.raw;
    println!("config OK");
    println!("  trust domain  {}", v.trust_domain);
    println!("  data dir      {}", v.data_dir.display());
    // StoreUrl's Display masks a password.
    println!("  store         {} (not connected)", v.store);
    println!("  node API      {} (TLS)", raw.listen);
    println!(
        "  tls backend   {}",
        crate::cmd::backend::describe(raw.tls_backend, raw.fips)
    );
    println!("  admin API     {} (Unix socket)", v.admin_socket.display());
    if !raw.admin_ids.is_empty() {
        let ids: Vec<String> = raw.admin_ids.iter().map(ToString::to_string).collect();
        println!("  admin mTLS    {}", ids.join(", "));
    }
    println!("  ops           http://{}", raw.ops_listen);
    // [[trust_domains]]: each an isolated CA in the same process.
    for td in &raw.trust_domains {
        println!(
            "  also serves   {} (node API {} TLS, ops http://{}, self-signed root)",
            td.trust_domain, td.listen, td.ops_listen
        );
    }
    match &raw.upstream {
        Some(up) => println!("  authority     {}", up.describe()),
        None => println!(
            "  authority     self-signed root (a new one lives {} days)",
            raw.ca_ttl.as_secs() / 86400
        ),
    }
    println!(
        "  lifetimes     X.509-SVID {} (max {}), JWT-SVID {} (max {}), agent {}",
        format_duration(raw.default_x509_ttl),
        format_duration(raw.max_x509_ttl),
        format_duration(raw.default_jwt_ttl),
        format_duration(raw.max_jwt_ttl),
        format_duration(raw.agent_ttl)
    );
    Ok(())
}
