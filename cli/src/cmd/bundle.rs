//! `meshid bundle`: trust bundles, own and federated (admin API).

use std::path::PathBuf;

use anyhow::Context as _;
use meshid_identity::TrustBundle;
use meshid_identity::bundle::MAX_BUNDLE_LEN;
use meshid_proto::ca as pb;
use serde_json::json;

use crate::admin_client::{self, Conn, Output};

/// Arguments of `meshid bundle`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, clap::Subcommand)]
enum Command {
    /// Prints a trust bundle: the CA's own (default) or a federated one.
    ///
    /// Example: openssl verify -CAfile <(meshid bundle show) svid.pem
    Show(ShowArgs),
    /// Stores a foreign trust domain's bundle (SPIFFE bundle JSON) so
    /// workloads that federate with it can verify its peers.
    Set(SetArgs),
}

/// Bundle formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Format {
    /// X.509 authorities as PEM CERTIFICATE blocks (for openssl, curl).
    Pem,
    /// The SPIFFE bundle JSON document (JWK Set with X.509 and JWT keys).
    Spiffe,
}

/// `meshid bundle show`.
#[derive(Debug, clap::Args)]
struct ShowArgs {
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Pem)]
    format: Format,
    /// A federated trust domain (default: the CA's own).
    #[arg(long, value_name = "TRUST_DOMAIN")]
    trust_domain: Option<String>,
    #[command(flatten)]
    conn: Conn,
}

/// `meshid bundle set`.
#[derive(Debug, clap::Args)]
struct SetArgs {
    /// The foreign trust domain the bundle belongs to.
    #[arg(long, value_name = "TRUST_DOMAIN")]
    trust_domain: String,
    /// SPIFFE bundle JSON file (as served by the trust domain's bundle
    /// endpoint); `-` reads stdin.
    #[arg(long, value_name = "PATH")]
    file: PathBuf,
    #[command(flatten)]
    conn: Conn,
}

/// Runs `meshid bundle`.
pub async fn run(args: Args) -> anyhow::Result<()> {
    match args.command {
        Command::Show(a) => show(a).await,
        Command::Set(a) => set(a).await,
    }
}

async fn show(a: ShowArgs) -> anyhow::Result<()> {
    let mut client = a.conn.connect().await?;
    let resp = client
        .get_bundle(pb::GetBundleRequest {
            trust_domain: a.trust_domain.unwrap_or_default(),
        })
        .await
        .map_err(|s| admin_client::refused("reading the bundle failed", s))?
        .into_inner();
    let bundle = resp
        .bundle
        .context("the CA returned no bundle; check its logs")?;
    match (a.format, a.conn.output) {
        (Format::Spiffe, _) => {
            let text = String::from_utf8(resp.spiffe_json)
                .context("the CA returned a bundle document that is not UTF-8")?;
            println!("{}", text.trim_end());
        }
        (Format::Pem, Output::Json) => admin_client::print_json(&json!({
            "trust_domain": bundle.trust_domain,
            "sequence": bundle.sequence,
            "x509_authorities_pem": pem(&bundle),
            "jwt_key_ids": bundle.jwt_authorities.iter().map(|k| &k.key_id).collect::<Vec<_>>(),
        }))?,
        (Format::Pem, Output::Text) => print!("{}", pem(&bundle)),
    }
    Ok(())
}

fn pem(b: &pb::Bundle) -> String {
    let certs: Vec<rustls_pki_types::CertificateDer<'_>> = b
        .x509_authorities
        .iter()
        .map(|d| rustls_pki_types::CertificateDer::from(d.as_slice()))
        .collect();
    meshid_identity::x509::to_pem(&certs)
}

async fn set(a: SetArgs) -> anyhow::Result<()> {
    let json = read_limited(&a.file)?;
    let td = meshid_identity::TrustDomain::new(
        a.trust_domain
            .strip_prefix("spiffe://")
            .unwrap_or(&a.trust_domain),
    )
    .with_context(|| {
        format!(
            "--trust-domain {:?} is not a trust domain name",
            a.trust_domain
        )
    })?;
    // Check locally first so the error names the file.
    TrustBundle::from_spiffe_json(td.clone(), &json)
        .with_context(|| format!("{} is not a usable SPIFFE bundle", a.file.display()))?;
    let mut client = a.conn.connect().await?;
    let b = client
        .set_federated_bundle(pb::SetFederatedBundleRequest {
            trust_domain: td.to_string(),
            spiffe_json: json,
        })
        .await
        .map_err(|s| admin_client::refused("setting the bundle failed", s))?
        .into_inner();
    match a.conn.output {
        Output::Json => admin_client::print_json(&json!({
            "trust_domain": b.trust_domain,
            "sequence": b.sequence,
            "x509_authorities": b.x509_authorities.len(),
            "jwt_authorities": b.jwt_authorities.len(),
        })),
        Output::Text => {
            println!(
                "Stored the bundle of {} (sequence {}): {} X.509 and {} JWT authorities",
                b.trust_domain,
                b.sequence,
                b.x509_authorities.len(),
                b.jwt_authorities.len()
            );
            Ok(())
        }
    }
}

fn read_limited(path: &std::path::Path) -> anyhow::Result<Vec<u8>> {
    use std::io::Read as _;
    let mut buf = Vec::new();
    let limit = u64::try_from(MAX_BUNDLE_LEN).unwrap_or(u64::MAX) + 1;
    if path.as_os_str() == "-" {
        std::io::stdin().take(limit).read_to_end(&mut buf)?;
    } else {
        std::fs::File::open(path)
            .with_context(|| format!("cannot open {}", path.display()))?
            .take(limit)
            .read_to_end(&mut buf)
            .with_context(|| format!("cannot read {}", path.display()))?;
    }
    if buf.len() > MAX_BUNDLE_LEN {
        anyhow::bail!(
            "{} is larger than {MAX_BUNDLE_LEN} bytes; is it really a SPIFFE bundle?",
            path.display()
        );
    }
    Ok(buf)
}
