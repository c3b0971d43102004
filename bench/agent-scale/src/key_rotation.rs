//! `key-rotation`: the time from `rotation activate` to every SVID one agent
//! serves being re-issued under the new CA key.
//!
//! With every SVID cached and served (one `watch` stream per uid the
//! entries select), the CA prepares a new X.509 key through the admin API
//! (PrepareKey), the benchmark waits until every stream's bundle holds the
//! new root, then activates it (ActivateKey with force) and waits until
//! every SVID on every stream is signed by it (the leaf's
//! AuthorityKeyIdentifier equals the new slot's `key_id`). The CA should run
//! with `[rotation] reissue_spread = "0s"`, so the agent re-issues at once
//! once its sync sees the new active key.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use meshid_proto::ca::{
    ActivateKeyRequest, KeyKind, KeySlotState, ListKeySlotsRequest, PrepareKeyRequest,
};

use crate::metrics::scrape;
use crate::report::{Report, ms, secs};
use crate::watch::Watchers;

/// Flags of `key-rotation`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The CA's admin Unix socket.
    #[arg(long)]
    admin_socket: PathBuf,
    /// The agent's Workload API socket.
    #[arg(long)]
    socket: PathBuf,
    /// The agent's ops endpoint (`/metrics`).
    #[arg(long)]
    agent_ops: SocketAddr,
    /// The CA's ops endpoint (`/metrics`).
    #[arg(long)]
    ca_ops: SocketAddr,
    /// Entries (SVIDs) the agent serves.
    #[arg(long, default_value_t = 10_000)]
    count: u32,
    /// Entries per uid, as given to `entries --per-uid`.
    #[arg(long, default_value_t = 500)]
    per_uid: u32,
    /// Give up on any one wait (all served, new root seen, all re-issued)
    /// after this many seconds.
    #[arg(long, default_value_t = 300)]
    timeout: u64,
    /// Also write the table here.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Extra line for the report header (e.g. the agent's settings).
    #[arg(long)]
    label: Vec<String>,
}

/// Poll period of the CA's `/metrics` while the agent re-issues.
const POLL: Duration = Duration::from_millis(100);

async fn ca_signed(ca_ops: SocketAddr) -> anyhow::Result<f64> {
    Ok(crate::metrics::ca_signed(&scrape(ca_ops).await?))
}

/// When the CA signed the first and the `n`th X.509-SVID after `base`
/// (sampled every [`POLL`]; the task ends at the `n`th or when aborted).
fn watch_signatures(
    ca_ops: SocketAddr,
    base: f64,
    n: f64,
) -> tokio::task::JoinHandle<(Option<Instant>, Option<Instant>)> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(POLL);
        let mut first = None;
        loop {
            tick.tick().await;
            let Ok(signed) = ca_signed(ca_ops).await else {
                continue;
            };
            if signed > base {
                first.get_or_insert_with(Instant::now);
            }
            if signed >= base + n {
                return (first, Some(Instant::now()));
            }
        }
    })
}

/// Waits (until `timeout`) for `done` to hold over the watchers; returns
/// when it first did. `seen` is called on every message.
async fn until(
    w: &mut Watchers,
    timeout: Duration,
    what: &str,
    mut seen: impl FnMut(&Watchers, Instant),
    done: impl Fn(&Watchers) -> bool,
) -> anyhow::Result<Instant> {
    let deadline = tokio::time::Instant::now() + timeout;
    if done(w) {
        return Ok(Instant::now());
    }
    loop {
        let Some(at) = w.next(deadline).await? else {
            anyhow::bail!(
                "{what}: not within {}s ({} SVIDs served)",
                timeout.as_secs(),
                w.svids()
            );
        };
        seen(w, at);
        if done(w) {
            return Ok(at);
        }
    }
}

/// An admin RPC's refusal, named.
fn refused(rpc: &str, s: &tonic::Status) -> anyhow::Error {
    anyhow::anyhow!(
        "the CA refused {rpc}: {} ({:?}); does this CA have the rotation engine?",
        s.message(),
        s.code()
    )
}

/// Runs the rotation and prints the table.
pub async fn run(a: Args) -> anyhow::Result<()> {
    anyhow::ensure!(a.per_uid > 0, "--per-uid must be at least 1");
    let count = a.count as usize;
    let streams = a.count.div_ceil(a.per_uid);
    let timeout = Duration::from_secs(a.timeout);
    let mut report = Report::default();
    report.note(format!(
        "meshid CA key rotation benchmark: {count} SVIDs on one agent, {streams} Workload API streams"
    ));
    report.note(format!("machine: {}", crate::procfs::machine()));
    for l in &a.label {
        report.note(l.clone());
    }
    let mut admin = crate::entries::connect(&a.admin_socket).await?;

    let start = Instant::now();
    let first = crate::entries::UID_BASE;
    let mut w = Watchers::spawn(&a.socket, first..first + streams)?;
    let served = until(
        &mut w,
        timeout,
        "every SVID served",
        |_, _| {},
        |w| w.svids() == count,
    )
    .await?;
    report.row(
        &format!("all {count} SVIDs served on {streams} streams"),
        secs(served.duration_since(start)),
    );
    eprintln!("key-rotation: all {count} SVIDs served; preparing a new X.509 key");

    let slots = admin
        .list_key_slots(ListKeySlotsRequest {})
        .await
        .map_err(|s| refused("ListKeySlots", &s))?
        .into_inner()
        .slots;
    let old: Vec<String> = slots
        .iter()
        .filter(|s| s.kind == KeyKind::X509 as i32 && s.state == KeySlotState::Active as i32)
        .map(|s| s.key_id.clone())
        .collect();
    report.row("active X.509 keys before", old.join(", "));

    let t_prepare = Instant::now();
    let prepared = admin
        .prepare_key(PrepareKeyRequest {
            kind: KeyKind::X509 as i32,
        })
        .await
        .map_err(|s| refused("PrepareKey", &s))?
        .into_inner();
    let new = prepared.key_id.clone();
    anyhow::ensure!(!new.is_empty(), "PrepareKey returned a slot without key_id");
    report.row("prepared X.509 key", format!("{} ({})", new, prepared.id));
    let trusted = until(
        &mut w,
        timeout,
        "new root on every stream",
        |_, _| {},
        |w| w.all(|s| s.roots.contains(&new)),
    )
    .await?;
    report.row(
        "PrepareKey -> new root in every stream's bundle",
        ms(trusted.duration_since(t_prepare)),
    );

    eprintln!("key-rotation: every stream trusts {new}; activating it");
    let before = crate::metrics::read(a.agent_ops, a.ca_ops).await?;
    let mut signing = watch_signatures(a.ca_ops, before.ca_signed, count as f64);
    let t_activate = Instant::now();
    admin
        .activate_key(ActivateKeyRequest {
            kind: KeyKind::X509 as i32,
            force: true,
        })
        .await
        .map_err(|s| refused("ActivateKey", &s))?;
    let answered = t_activate.elapsed();
    let mut first_new = None;
    let done = until(
        &mut w,
        timeout,
        "every SVID re-issued under the new key",
        |w, at| {
            if first_new.is_none() && w.signed_by(&new) > 0 {
                first_new = Some(at);
            }
        },
        |w| w.signed_by(&new) == count && w.svids() == count,
    )
    .await?;
    let after = crate::metrics::read(a.agent_ops, a.ca_ops).await?;
    let (sign_first, sign_all) = tokio::time::timeout(Duration::from_secs(5), &mut signing)
        .await
        .ok()
        .and_then(Result::ok)
        .unwrap_or_default();
    signing.abort();
    let since = |t: Option<Instant>| {
        t.map_or("-".into(), |t| {
            secs(t.saturating_duration_since(t_activate))
        })
    };
    report.row("ActivateKey answered after", ms(answered));
    report.row(
        &format!("ActivateKey -> the CA's first / {count}th re-issue signature (0.1 s polls)"),
        format!("{} / {}", since(sign_first), since(sign_all)),
    );
    if let Some(f) = first_new {
        report.row(
            "ActivateKey -> first SVID under the new key on a stream",
            secs(f.duration_since(t_activate)),
        );
    }
    report.row(
        &format!("ActivateKey -> all {count} SVIDs under the new key"),
        secs(done.duration_since(t_activate)),
    );
    report.row(
        "  agent SVIDs issued meanwhile",
        format!("{}", after.issued - before.issued),
    );
    report.row(
        "  agent re-issues for rotation meanwhile (incl. its own SVID)",
        format!("{}", after.reissued - before.reissued),
    );
    report.row(
        "  agent issuance failures meanwhile",
        format!("{}", after.failures - before.failures),
    );
    report.row(
        "  CA X.509 signatures meanwhile",
        format!("{}", after.ca_signed - before.ca_signed),
    );
    print!("{}", report.render());
    if let Some(path) = &a.out {
        report.write(path)?;
        println!("written to {}", path.display());
    }
    Ok(())
}
