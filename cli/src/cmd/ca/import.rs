//! `meshid ca import`: check a signed intermediate exactly as the CA does
//! at start-up, then activate it in the upstream directory.

use std::path::PathBuf;
use std::time::SystemTime;

use anyhow::Context as _;
use meshid_ca::config::{CaConfig, DEFAULT_MIN_REMAINING};
use meshid_ca::upstream::Import;
use meshid_identity::TrustDomain;

use crate::admin_client;

/// Arguments of `meshid ca import`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The intermediate the PKI team signed (PEM).
    #[arg(long, value_name = "FILE")]
    cert: PathBuf,
    /// The CAs between the intermediate and the root, if any (PEM, any order).
    #[arg(long, value_name = "FILE")]
    chain: Option<PathBuf>,
    /// The enterprise root(s) (PEM); one must anchor the chain.
    #[arg(long, value_name = "FILE")]
    root: PathBuf,
    /// The intermediate's key (as `meshid ca csr` wrote it); default: the
    /// directory's ca-key.pem.
    #[arg(long, value_name = "FILE")]
    key: Option<PathBuf>,
    /// The upstream directory to write in Istio's plug-in layout (else the
    /// config's `[upstream] dir`); created if missing.
    #[arg(long, value_name = "DIR")]
    dir: Option<PathBuf>,
    /// Trust domain (else the config's).
    #[arg(long, env = "MESHID_TRUST_DOMAIN")]
    trust_domain: Option<TrustDomain>,
    /// The CA's TOML config: trust domain, `[upstream] dir`, `min_remaining`
    /// and, with `--hsm`, `[keys.pkcs11]`.
    #[arg(long, env = "MESHID_CA_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,
    /// The intermediate's key is on the token of the config's
    /// `[keys.pkcs11]` (made by `meshid ca csr --hsm`): check against it and
    /// write only root-cert.pem and cert-chain.pem (no key file).
    #[arg(long, requires = "config", conflicts_with = "key")]
    hsm: bool,
}

/// Runs `meshid ca import`.
pub fn run(a: Args) -> anyhow::Result<()> {
    let config = a.config.as_deref().map(CaConfig::from_file).transpose()?;
    let upstream = config.as_ref().and_then(|c| c.upstream.as_ref());
    let trust_domain = match (a.trust_domain, &config) {
        (Some(td), _) => td,
        (None, Some(c)) => c
            .trust_domain
            .clone()
            .context("the config sets no trust_domain; pass --trust-domain")?,
        (None, None) => {
            anyhow::bail!("no trust domain: pass --trust-domain or --config <ca.toml>")
        }
    };
    let dir = match (a.dir, upstream) {
        (Some(d), _) => d,
        (None, Some(up)) => up
            .dir
            .clone()
            .context("the config's [upstream] sets no dir; pass --dir or set [upstream] dir")?,
        (None, None) => anyhow::bail!(
            "no upstream directory: pass --dir or --config <ca.toml> with [upstream] dir"
        ),
    };
    let import = Import {
        cert: a.cert,
        chain: a.chain,
        roots: a.root,
        key: a.key,
        dir,
        min_remaining: upstream.map_or(DEFAULT_MIN_REMAINING, |u| u.min_remaining),
    };
    let token = match (a.hsm, &config, &a.config) {
        (true, Some(cfg), Some(path)) => Some(super::csr::hsm::open_token(cfg, path)?),
        _ => None,
    };
    let done = match &token {
        Some(keys) => import.run_with_keys(&trust_domain, keys, SystemTime::now())?,
        None => import.run(&trust_domain, SystemTime::now())?,
    };
    println!("imported into {}", import.dir.display());
    println!("  intermediate  {}", done.subject);
    println!("  issuer        {}", done.issuer);
    println!(
        "  not after     {}",
        admin_client::format_time(super::unix(done.not_after))
    );
    println!("  trust domain  {trust_domain}");
    for f in &done.files {
        println!("  wrote         {}", f.display());
    }
    if token.is_some() {
        let (chain, roots) = import.token_files();
        println!(
            "A CA with [keys] manager = \"pkcs11\" and [upstream] cert_chain_file = \"{}\", \
             root_file = \"{}\" takes it on its next reload (or restart).",
            chain.display(),
            roots.display()
        );
    } else {
        println!(
            "A CA with [upstream] dir = \"{}\" takes it on its next reload (or restart).",
            import.dir.display()
        );
    }
    Ok(())
}
