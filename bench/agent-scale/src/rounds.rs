//! One round of concurrent streams, summarized as report rows.

use std::time::Duration;

use crate::procfs::Rss;
use crate::report::{Report, ms, quantile, rss};
use crate::streams::Streams;

/// CPU time used during a round, by the agent and by this benchmark's
/// clients (both share the machine's cores).
#[derive(Debug, Clone, Copy)]
pub struct Cpu {
    /// The agent process.
    pub agent: Duration,
    /// This process (all the streams' clients).
    pub client: Duration,
}

/// Adds the first-message latency, failures, CPU time (`cpu`) and RSS
/// of round `round` (of `rounds`) to `report`; returns how many streams got
/// a first message.
pub fn summarize(
    report: &mut Report,
    round: usize,
    rounds: usize,
    streams: &Streams,
    open: Rss,
    cpu: Cpu,
) -> usize {
    let n = streams.first.len();
    let mut lat: Vec<Duration> = streams
        .first
        .iter()
        .filter_map(|r| r.as_ref().ok().map(|f| f.latency))
        .collect();
    lat.sort();
    let errors: Vec<&String> = streams
        .first
        .iter()
        .filter_map(|r| r.as_ref().err())
        .collect();
    let wrong = streams
        .first
        .iter()
        .filter(|r| r.as_ref().is_ok_and(|f| f.svids != 1))
        .count();
    let prefix = if rounds > 1 {
        format!("round {round}: ")
    } else {
        String::new()
    };
    report.row(
        &format!("{prefix}FetchX509SVID first message, {n} streams: p50"),
        ms(quantile(&lat, 0.50)),
    );
    report.row("  p99", ms(quantile(&lat, 0.99)));
    report.row("  max", ms(quantile(&lat, 1.0)));
    report.row("  all first messages within", ms(streams.wall));
    report.row(
        "  streams ok / failed / not exactly 1 SVID",
        format!("{} / {} / {wrong}", lat.len(), errors.len()),
    );
    if let Some(e) = errors.first() {
        report.row("  first failure", (*e).clone());
    }
    let per = |d: Duration| d.as_secs_f64() * 1e6 / n.max(1) as f64;
    report.row(
        "  CPU until then, agent / clients (10 ms resolution)",
        format!(
            "{} / {} ({:.0} / {:.0} us per stream)",
            ms(cpu.agent),
            ms(cpu.client),
            per(cpu.agent),
            per(cpu.client)
        ),
    );
    report.row(&format!("  agent VmRSS with {n} streams open"), rss(&open));
    lat.len()
}
