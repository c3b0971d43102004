//! `meshid audit verify --store URL --trust-domain TD`: the chain checked
//! straight from the database, without a running CA (the CA may be down,
//! or not trusted to vouch for its own log).

use anyhow::Context as _;
use meshid_ca::store::StoreUrl;
use meshid_identity::TrustDomain;
use meshid_proto::ca as pb;

/// Opens the store at `url` and verifies its audit chain, checkpoints
/// against the trust bundle of `td` stored there; the report in the
/// admin API's form.
pub async fn verify(url: &str, td: &str) -> anyhow::Result<pb::VerifyAuditResponse> {
    let td = TrustDomain::new(td.strip_prefix("spiffe://").unwrap_or(td))
        .with_context(|| format!("--trust-domain {td:?} is not a trust domain name"))?;
    let url = StoreUrl::parse(url).context("--store")?;
    // Opening a SQLite file that is not there would create an empty
    // database, which verifies as an empty log.
    if let Some(path) = url.to_string().strip_prefix("sqlite://")
        && !std::path::Path::new(path).exists()
    {
        anyhow::bail!("--store: {path} does not exist (the CA's is <data_dir>/ca.db)");
    }
    let store = meshid_ca::store::open(&url)
        .await
        .with_context(|| format!("cannot open the store {url}"))?;
    let bundle = meshid_ca::audit::stored_bundle(store.as_ref(), &td)
        .await
        .with_context(|| format!("cannot read the trust bundle of {td} from {url}"))?;
    if bundle.x509_authorities.is_empty() {
        tracing::warn!(
            trust_domain = %td,
            "the store holds no trust bundle for this trust domain: checkpoints cannot be checked"
        );
    }
    let report = meshid_ca::audit::verify(store.as_ref(), &td, &bundle)
        .await
        .with_context(|| format!("cannot read the audit log from {url}"))?;
    let (first_bad_seq, problem) = match &report.problem {
        Some(p) => (p.seq, p.reason.clone()),
        None => (
            0,
            report
                .untrusted_note
                .as_ref()
                .map_or_else(String::new, |n| {
                    format!(
                        "{} checkpoint(s) signed by a key the bundle no longer trusts ({n})",
                        report.untrusted_checkpoints
                    )
                }),
        ),
    };
    Ok(pb::VerifyAuditResponse {
        ok: report.ok(),
        records: report.records,
        last_seq: report.last_seq,
        checkpoints: report.checkpoints,
        first_bad_seq,
        problem,
    })
}
