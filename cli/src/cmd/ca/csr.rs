//! `meshid ca csr`: make the intermediate CA's key and the CSR the PKI team
//! signs with the enterprise root.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use clap::builder::{PossibleValuesParser, TypedValueParser};
use meshid_ca::config::CaConfig;
use meshid_ca::csr::{self, IntermediateCsr};
use meshid_identity::{KeyAlgorithm, PrivateKey, TrustDomain};

pub(super) mod hsm;

/// Arguments of `meshid ca csr`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Where to write the CSR (PEM, PKCS#10).
    #[arg(long, value_name = "FILE")]
    out: PathBuf,
    /// Where to write the new private key (PKCS#8 PEM, mode 0600); default:
    /// beside the CSR, `<name>.key.pem`. Keep it out of a directory a
    /// running CA reads until `meshid ca import` moves it in.
    #[arg(long, value_name = "FILE")]
    key_out: Option<PathBuf>,
    /// The key algorithm: ec-p256 (ECDSA, SHA-256), ec-p384 (ECDSA,
    /// SHA-384) or rsa-3072 (PKCS#1 v1.5, SHA-256).
    #[arg(long, default_value = "ec-p256", value_parser = key_type())]
    key_type: KeyAlgorithm,
    /// Trust domain the intermediate signs for (else the config's).
    #[arg(long, env = "MESHID_TRUST_DOMAIN")]
    trust_domain: Option<TrustDomain>,
    /// The CA's TOML config, to read the trust domain from.
    #[arg(long, env = "MESHID_CA_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,
    /// The pathLenConstraint to ask for; 0: the intermediate signs SVIDs
    /// only, no CA below it.
    #[arg(long, default_value_t = 0, value_name = "N")]
    path_len: u8,
    /// The subject common name (default `meshid intermediate <td>`).
    #[arg(long, value_name = "CN")]
    subject_cn: Option<String>,
    /// Replace the key and CSR files if they exist.
    #[arg(long)]
    force: bool,
    /// Make the key pair on the PKCS#11 token of the config's
    /// `[keys.pkcs11]` (or use the one with its `key_label`) and sign the
    /// CSR there; no key file is written. The key type is the config's
    /// `key_type`.
    #[arg(long, requires = "config", conflicts_with = "key_out")]
    hsm: bool,
}

/// Runs `meshid ca csr`.
pub fn run(a: Args) -> anyhow::Result<()> {
    let trust_domain = trust_domain(a.trust_domain, a.config.as_deref())?;
    let request = IntermediateCsr {
        path_len: a.path_len,
        common_name: a.subject_cn,
        ..IntermediateCsr::new(trust_domain)
    };
    if let (true, Some(config)) = (a.hsm, a.config.as_deref()) {
        return hsm::run(&request, config, &a.out, a.force);
    }
    let key_out = a.key_out.unwrap_or_else(|| default_key_path(&a.out));
    let alg = a.key_type;
    let key = PrivateKey::generate(alg)?;
    csr::create(&request, &key, &key_out, &a.out, a.force)?;
    println!("key   {} ({alg}, mode 0600)", key_out.display());
    print_request(&request, &a.out)?;
    println!(
        "next  the PKI team signs the CSR (README: Use your enterprise root); then\n      \
         meshid ca import --cert <signed.pem> --root <root.pem> --key {} --dir <upstream dir>",
        key_out.display()
    );
    Ok(())
}

/// The CSR line: where, and what it asks for.
fn print_request(request: &IntermediateCsr, out: &Path) -> anyhow::Result<()> {
    println!(
        "CSR   {} (CN={}, URI SAN spiffe://{}, basicConstraints CA:TRUE pathlen:{}, keyUsage keyCertSign cRLSign)",
        out.display(),
        request.common_name()?,
        request.trust_domain,
        request.path_len
    );
    Ok(())
}

/// The names of [`KeyAlgorithm::ALL`], parsed.
fn key_type() -> impl TypedValueParser<Value = KeyAlgorithm> {
    PossibleValuesParser::new(KeyAlgorithm::ALL.map(KeyAlgorithm::name))
        .try_map(|name| name.parse::<KeyAlgorithm>())
}

/// The `--trust-domain` flag, else the config file's.
fn trust_domain(flag: Option<TrustDomain>, config: Option<&Path>) -> anyhow::Result<TrustDomain> {
    if let Some(td) = flag {
        return Ok(td);
    }
    let Some(path) = config else {
        anyhow::bail!("no trust domain: pass --trust-domain or --config <ca.toml>");
    };
    CaConfig::from_file(path)?.trust_domain.with_context(|| {
        format!(
            "{} sets no trust_domain; pass --trust-domain",
            path.display()
        )
    })
}

/// `mesh-intermediate.csr` → `mesh-intermediate.key.pem`, beside it.
fn default_key_path(csr: &Path) -> PathBuf {
    csr.with_extension("key.pem")
}
