//! `measure`: watches a running agent from start to 10k SVIDs cached,
//! opens the Workload API streams, then waits for every SVID to rotate.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::metrics::Scrape;
use crate::procfs::{self, Rss};
use crate::report::{self, Report, mb, ms, secs};

/// Poll period of `/metrics` and `/proc`.
const POLL: Duration = Duration::from_millis(100);

/// Flags of `measure`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The agent's ops endpoint (`/metrics`).
    #[arg(long)]
    agent_ops: SocketAddr,
    /// The CA's ops endpoint (`/metrics`).
    #[arg(long)]
    ca_ops: SocketAddr,
    /// The agent's pid (for `/proc/<pid>/status`).
    #[arg(long)]
    agent_pid: u32,
    /// When the agent process was started, Unix milliseconds.
    #[arg(long)]
    agent_started_ms: u64,
    /// The agent's Workload API socket.
    #[arg(long)]
    socket: PathBuf,
    /// Entries (SVIDs) the agent must cache.
    #[arg(long, default_value_t = 10_000)]
    count: u64,
    /// Concurrent Workload API streams.
    #[arg(long, default_value_t = 1000)]
    streams: usize,
    /// The entries' X.509-SVID lifetime, seconds (bounds the rotation wait).
    #[arg(long, default_value_t = 300)]
    ttl: u64,
    /// Give up waiting for issuance after this many seconds.
    #[arg(long, default_value_t = 180)]
    issue_timeout: u64,
    /// Rounds of opening and closing the streams, to see whether the
    /// agent's memory returns after each (the last round's streams stay
    /// open for the rotation phase).
    #[arg(long, default_value_t = 1)]
    rounds: usize,
    /// Seconds to wait after closing a round's streams before reading RSS.
    #[arg(long, default_value_t = 3)]
    settle: u64,
    /// Skip the rotation phase.
    #[arg(long)]
    no_rotation: bool,
    /// Also write the table here.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Extra line for the report header (e.g. the agent's settings).
    #[arg(long)]
    label: Vec<String>,
}

async fn read(a: &Args) -> anyhow::Result<Scrape> {
    crate::metrics::read(a.agent_ops, a.ca_ops).await
}

fn rss(pid: u32) -> anyhow::Result<Rss> {
    procfs::rss(pid).ok_or_else(|| {
        anyhow::anyhow!("the agent (pid {pid}) exited; see its log in the run directory")
    })
}

fn cpu(pid: u32) -> anyhow::Result<Duration> {
    procfs::cpu_time(pid).ok_or_else(|| anyhow::anyhow!("process {pid} exited"))
}

/// Runs the phases and prints the table.
pub async fn run(a: Args) -> anyhow::Result<()> {
    let mut report = Report::default();
    report.note(format!(
        "meshid agent scale benchmark: {} entries, {} Workload API streams, SVID TTL {}s",
        a.count, a.streams, a.ttl
    ));
    report.note(format!("machine: {}", procfs::machine()));
    for l in &a.label {
        report.note(l.clone());
    }
    let started = UNIX_EPOCH + Duration::from_millis(a.agent_started_ms);
    let since_start = || {
        SystemTime::now()
            .duration_since(started)
            .unwrap_or_default()
    };

    // --- phase 1: agent start -> every SVID cached.
    let mut tick = tokio::time::interval(POLL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let (mut ops_up, mut first_signed, mut ca_done) = (None, None, None);
    let mut peak_issue_rss = 0;
    let issued = loop {
        tick.tick().await;
        let mem = rss(a.agent_pid)?;
        peak_issue_rss = peak_issue_rss.max(mem.now_kib);
        let Ok(s) = read(&a).await else {
            anyhow::ensure!(
                since_start() < Duration::from_secs(a.issue_timeout),
                "the agent's /metrics never answered"
            );
            continue;
        };
        ops_up.get_or_insert_with(since_start);
        if s.ca_signed > 0.0 {
            first_signed.get_or_insert_with(since_start);
        }
        if s.ca_signed >= a.count as f64 {
            ca_done.get_or_insert_with(since_start);
        }
        if s.cached >= a.count as f64 {
            break (s, since_start());
        }
        anyhow::ensure!(
            since_start() < Duration::from_secs(a.issue_timeout),
            "only {} of {} SVIDs cached after {}s ({} issued, {} failures)",
            s.cached,
            a.count,
            a.issue_timeout,
            s.issued,
            s.failures
        );
    };
    let (at_cached, t_cached) = issued;
    let mem_10k = rss(a.agent_pid)?;
    let opt = |d: Option<Duration>| d.map_or("-".into(), secs);
    report.row("agent ops endpoint up after start", opt(ops_up));
    report.row("first SVID signed by the CA after start", opt(first_signed));
    report.row("all SVIDs signed by the CA after start", opt(ca_done));
    report.goal(
        &format!("all {} SVIDs cached after agent start", a.count),
        secs(t_cached),
        "goal < 10 s",
        t_cached < Duration::from_secs(10),
    );
    if at_cached.ca_signed > 0.0 {
        report.row(
            "CA verify+sign time per SVID (histogram mean)",
            format!(
                "{:.0} us",
                at_cached.ca_sign_secs / at_cached.ca_signed * 1e6
            ),
        );
    }
    report.row("issuance failures", format!("{}", at_cached.failures));
    report.goal(
        &format!("agent VmRSS at {} SVIDs", a.count),
        mb(mem_10k.now_kib),
        "goal <= 50 MB",
        mem_10k.now_kib * 1024 <= 50_000_000,
    );
    report.row("agent VmHWM (peak) at that point", mb(mem_10k.peak_kib));
    report.row("  before any stream", report::rss(&mem_10k));
    report.row(
        "agent RSS per cached SVID",
        format!(
            "{:.1} KB",
            mem_10k.now_kib as f64 * 1.024 / a.count.max(1) as f64
        ),
    );
    print!("{}", report.render());

    // --- phase 2: N concurrent FetchX509SVID streams, `rounds` times.
    let settle = Duration::from_secs(a.settle);
    let rounds = a.rounds.max(1);
    let mut kept = None;
    for round in 1..=rounds {
        let me = std::process::id();
        let (agent_before, client_before) = (cpu(a.agent_pid)?, cpu(me)?);
        let streams = crate::streams::open(&a.socket, a.streams, Duration::from_secs(60)).await;
        let used = crate::rounds::Cpu {
            agent: cpu(a.agent_pid)?.saturating_sub(agent_before),
            client: cpu(me)?.saturating_sub(client_before),
        };
        let mem = rss(a.agent_pid)?;
        let ok = crate::rounds::summarize(&mut report, round, rounds, &streams, mem, used);
        if round < rounds {
            streams.close();
            tokio::time::sleep(settle).await;
            report.row(
                &format!("  round {round}: agent VmRSS {}s after closing", a.settle),
                report::rss(&rss(a.agent_pid)?),
            );
        } else {
            kept = Some((streams, ok));
        }
    }
    let Some((mut streams, ok)) = kept else {
        anyhow::bail!("no stream round ran");
    };

    // --- phase 3: every SVID rotates; every stream gets its new SVID.
    if !a.no_rotation {
        let base = read(&a).await?;
        let target = base.issued + a.count as f64;
        let deadline = Instant::now() + Duration::from_secs(a.ttl + 120);
        let mut peak_rot_rss = 0;
        let mut rot_first_signed = None;
        let done = loop {
            tick.tick().await;
            peak_rot_rss = peak_rot_rss.max(rss(a.agent_pid)?.now_kib);
            let Ok(s) = read(&a).await else { continue };
            if s.ca_signed > base.ca_signed {
                rot_first_signed.get_or_insert_with(Instant::now);
            }
            if s.issued >= target {
                break Some((s, Instant::now()));
            }
            if Instant::now() > deadline {
                break None;
            }
        };
        match (done, rot_first_signed) {
            (Some((s, t_done)), Some(t_first)) => {
                let planned = UNIX_EPOCH + Duration::from_secs_f64(base.next_rotation.max(0.0));
                let late = SystemTime::now()
                    .duration_since(planned)
                    .unwrap_or_default()
                    .saturating_sub(t_done.elapsed());
                report.row(
                    &format!(
                        "rotation of all {}: first CA signature -> all cached (incl. jitter spread)",
                        a.count
                    ),
                    secs(t_done.duration_since(t_first)),
                );
                report.row(
                    "  planned rotation time -> all cached",
                    format!("{} (1 s resolution)", secs(late)),
                );
                report.row(
                    "  rotation failures",
                    format!("{}", s.failures - base.failures),
                );
                let got = streams.rotations(ok, Duration::from_secs(30)).await;
                if let (Some(f), Some(l)) = (got.first(), got.last()) {
                    report.row(
                        "  streams given the rotated SVID",
                        format!("{} / {ok}", got.len()),
                    );
                    report.row(
                        "  rotated SVID: first -> last stream update",
                        ms(l.duration_since(*f)),
                    );
                    let rel = |t: &Instant| match t.checked_duration_since(t_done) {
                        Some(d) => format!("+{}", ms(d)),
                        None => format!("-{}", ms(t_done.duration_since(*t))),
                    };
                    report.row(
                        "  first / last stream update vs all cached (~100 ms)",
                        format!("{} / {}", rel(f), rel(l)),
                    );
                } else {
                    report.row("  streams given the rotated SVID", format!("0 / {ok}"));
                }
            }
            _ => report.row("rotation", format!("not complete within {}s", a.ttl + 120)),
        }
        report.row(
            "agent VmRSS peak during rotation (sampled)",
            mb(peak_rot_rss),
        );
    }
    streams.close();
    tokio::time::sleep(settle).await;
    let end = rss(a.agent_pid)?;
    report.row(
        &format!("agent VmRSS {}s after the last streams closed", a.settle),
        report::rss(&end),
    );
    report.row("agent VmHWM (peak) at end of run", mb(end.peak_kib));
    report.row(
        "agent VmRSS peak while issuing (sampled)",
        mb(peak_issue_rss),
    );

    println!("----");
    print!("{}", report.render());
    if let Some(path) = &a.out {
        report.write(path)?;
        println!("written to {}", path.display());
    }
    Ok(())
}
