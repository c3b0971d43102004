//! `meshid audit`: the CA's hash-chained log of every admin change and
//! issued SVID — list it, export it as JSON lines, verify the chain.

mod offline;

use std::time::{Duration, SystemTime};

use anyhow::Context as _;
use meshid_proto::ca as pb;
use serde_json::json;

use crate::admin_client::{self, Conn, Output};

/// Records asked for per call (the CA's page limit).
const PAGE: u32 = 1000;

/// Arguments of `meshid audit`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, clap::Subcommand)]
enum Command {
    /// Lists records, oldest first, of the tenants you administer
    /// (cluster-admin: all, platform records included).
    ///
    /// Example: meshid audit list --tenant payments --since 1h
    List(ListArgs),
    /// Checks the whole chain (every hash, no gap, the head, the signed
    /// checkpoints) and names the first bad record; exits 1 when broken.
    /// With --store it reads the database itself, without a running CA.
    Verify(VerifyArgs),
    /// Prints every matching record as one JSON object per line (all
    /// pages), for a SIEM.
    Export(ExportArgs),
}

/// The filters `list` and `export` share.
#[derive(Debug, Clone, clap::Args)]
struct Filter {
    /// Only records of this tenant.
    #[arg(long, value_name = "TENANT")]
    tenant: Option<String>,
    /// Only records since then: a duration back from now (`1h`, `30m`)
    /// or an RFC 3339 time (`2026-12-01T08:00:00Z`).
    #[arg(long, value_name = "DURATION|TIME", value_parser = since)]
    since: Option<SystemTime>,
    /// Only records about this SPIFFE ID (target, or the issued SVID).
    #[arg(long, value_name = "ID")]
    spiffe_id: Option<String>,
    /// Start after this sequence number (the last one you saw).
    #[arg(long, value_name = "SEQ", default_value_t = 0)]
    after_seq: i64,
}

/// `meshid audit list`.
#[derive(Debug, clap::Args)]
struct ListArgs {
    #[command(flatten)]
    filter: Filter,
    /// At most this many records.
    #[arg(long, value_name = "N", default_value_t = 100)]
    limit: usize,
    #[command(flatten)]
    conn: Conn,
}

/// `meshid audit export`.
#[derive(Debug, clap::Args)]
struct ExportArgs {
    #[command(flatten)]
    filter: Filter,
    #[command(flatten)]
    conn: Conn,
}

/// `meshid audit verify`.
#[derive(Debug, clap::Args)]
struct VerifyArgs {
    /// Verify the store at this URL directly (`sqlite:///var/lib/meshid/
    /// ca/ca.db`, `postgres://…`), read-only, instead of asking the CA.
    #[arg(long, value_name = "URL", requires = "trust_domain")]
    store: Option<String>,
    /// The trust domain whose chain it is (with --store).
    #[arg(long, value_name = "TRUST_DOMAIN", requires = "store")]
    trust_domain: Option<String>,
    #[command(flatten)]
    conn: Conn,
}

/// Runs `meshid audit`.
pub async fn run(args: Args) -> anyhow::Result<()> {
    match args.command {
        Command::List(a) => list(a).await,
        Command::Verify(a) => verify(a).await,
        Command::Export(a) => export(a).await,
    }
}

/// Parses `--since`: a duration back from now, or an RFC 3339 time.
fn since(s: &str) -> Result<SystemTime, String> {
    let s = s.trim();
    if let Ok(t) = time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339) {
        let ms = t.unix_timestamp_nanos() / 1_000_000;
        let ms = u64::try_from(ms).map_err(|_| format!("{s:?} is before 1970"))?;
        return Ok(SystemTime::UNIX_EPOCH + Duration::from_millis(ms));
    }
    let back = meshid_runtime::duration::parse(s)
        .map_err(|_| format!("{s:?} is neither a duration (1h, 30m) nor an RFC 3339 time"))?;
    SystemTime::now()
        .checked_sub(back)
        .ok_or_else(|| format!("{s:?} reaches back before 1970"))
}

/// Unix milliseconds of `t` (0 for none or before 1970).
fn unix_ms(t: Option<SystemTime>) -> i64 {
    t.and_then(|t| t.duration_since(SystemTime::UNIX_EPOCH).ok())
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// Unix milliseconds as an RFC 3339 UTC time with milliseconds.
fn format_ms(ms: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| ms.to_string())
}

/// Calls `ListAudit` page after page from `filter.after_seq`, handing each
/// record to `each` until it returns false or the log ends.
async fn pages(
    conn: &Conn,
    filter: &Filter,
    mut each: impl FnMut(pb::AuditRecord) -> anyhow::Result<bool>,
) -> anyhow::Result<()> {
    let mut client = conn.connect().await?;
    let mut after_seq = filter.after_seq;
    loop {
        let resp = client
            .list_audit(pb::ListAuditRequest {
                after_seq,
                page_size: PAGE,
                tenant: filter.tenant.clone().unwrap_or_default(),
                since_ms: unix_ms(filter.since),
                spiffe_id: filter.spiffe_id.clone().unwrap_or_default(),
            })
            .await
            .map_err(|s| admin_client::refused("reading the audit log failed", s))?
            .into_inner();
        for r in resp.records {
            if !each(r)? {
                return Ok(());
            }
        }
        // A CA that answers with a page that does not move forward would
        // loop for ever: stop instead.
        if resp.next_after_seq == 0 || resp.next_after_seq <= after_seq {
            return Ok(());
        }
        after_seq = resp.next_after_seq;
    }
}

async fn list(a: ListArgs) -> anyhow::Result<()> {
    let mut records = Vec::new();
    let mut more = false;
    pages(&a.conn, &a.filter, |r| {
        if records.len() == a.limit {
            more = true;
            return Ok(false);
        }
        records.push(r);
        Ok(true)
    })
    .await?;
    match a.conn.output {
        Output::Json => admin_client::print_json(&json!({
            "records": records.iter().map(record_json).collect::<anyhow::Result<Vec<_>>>()?,
            "more": more,
        })),
        Output::Text => {
            print!("{}", table(&records));
            if let (true, Some(last)) = (more, records.last()) {
                println!(
                    "(more records: --after-seq {} for the next ones, or `meshid audit export`)",
                    last.seq
                );
            }
            Ok(())
        }
    }
}

async fn export(a: ExportArgs) -> anyhow::Result<()> {
    use std::io::Write as _;
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    pages(&a.conn, &a.filter, |r| {
        writeln!(out, "{}", meshid_ca::audit::export_line_wire(&r))?;
        Ok(true)
    })
    .await?;
    out.flush().context("writing the export to stdout")?;
    Ok(())
}

async fn verify(a: VerifyArgs) -> anyhow::Result<()> {
    let report = match (&a.store, &a.trust_domain) {
        (Some(url), Some(td)) => offline::verify(url, td).await?,
        _ => {
            let mut client = a.conn.connect().await?;
            client
                .verify_audit(pb::VerifyAuditRequest {})
                .await
                .map_err(|s| admin_client::refused("verifying the audit log failed", s))?
                .into_inner()
        }
    };
    match a.conn.output {
        Output::Json => admin_client::print_json(&json!({
            "ok": report.ok,
            "records": report.records,
            "last_seq": report.last_seq,
            "checkpoints": report.checkpoints,
            "first_bad_seq": report.first_bad_seq,
            "problem": report.problem,
        }))?,
        Output::Text if report.ok => {
            println!(
                "Audit log OK: {} records (last seq {}), {} signed checkpoints",
                report.records, report.last_seq, report.checkpoints
            );
            if !report.problem.is_empty() {
                println!("Note: {}", report.problem);
            }
        }
        Output::Text => {}
    }
    if !report.ok {
        anyhow::bail!(
            "the audit log is broken at seq {}: {} ({} records checked before it)",
            report.first_bad_seq,
            report.problem,
            report.records
        );
    }
    Ok(())
}

/// A record as one JSON object: the line `meshid audit export` prints
/// (stable field names for scripts and SIEMs; `before`/`after` inline).
fn record_json(r: &pb::AuditRecord) -> anyhow::Result<serde_json::Value> {
    let line = meshid_ca::audit::export_line_wire(r);
    serde_json::from_str(&line).context("the CA's record did not make a JSON object")
}

/// Records as a text table.
fn table(records: &[pb::AuditRecord]) -> String {
    let rows: Vec<[String; 7]> = records
        .iter()
        .map(|r| {
            [
                r.seq.to_string(),
                format_ms(r.at_ms),
                r.actor.clone(),
                r.action.clone(),
                crate::cmd::entry::tenant_text(&r.tenant).to_owned(),
                r.target.clone(),
                r.result.clone(),
            ]
        })
        .collect();
    admin_client::table(
        [
            "SEQ", "TIME", "ACTOR", "ACTION", "TENANT", "TARGET", "RESULT",
        ],
        &rows,
        "(no records)",
    )
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn since_takes_a_duration_back_or_an_rfc3339_time() {
        let t = since("2026-12-01T08:00:00.250Z").unwrap();
        assert_eq!(unix_ms(Some(t)), 1_796_112_000_250);
        let t = since("1h").unwrap();
        let back = SystemTime::now().duration_since(t).unwrap();
        assert!(back >= Duration::from_secs(3600) && back < Duration::from_secs(3700));
        assert!(since("yesterday").unwrap_err().contains("RFC 3339"));
        assert!(since("90").is_err());
        assert_eq!(unix_ms(None), 0);
        assert_eq!(format_ms(1_796_112_000_250), "2026-12-01T08:00:00.25Z");
    }

    #[test]
    fn records_export_with_their_states_as_json() {
        let r = pb::AuditRecord {
            seq: 7,
            at_ms: 0,
            actor: "uid:1001".into(),
            action: "entry.create".into(),
            tenant: "payments".into(),
            target: "e1".into(),
            before: String::new(),
            after: r#"{"spiffe_id":"spiffe://example.org/ns/payments/api"}"#.into(),
            result: "ok".into(),
            prev_hash: "00".into(),
            hash: "ab".into(),
        };
        let v = record_json(&r).unwrap();
        assert_eq!(v["before"], serde_json::Value::Null);
        assert_eq!(
            v["after"]["spiffe_id"],
            "spiffe://example.org/ns/payments/api"
        );
        assert_eq!(v["seq"], 7);
        let line = table(&[r]);
        assert!(
            line.lines()
                .nth(1)
                .unwrap()
                .starts_with("7    1970-01-01T00:00:00Z  uid:1001"),
            "{line}"
        );
    }
}
