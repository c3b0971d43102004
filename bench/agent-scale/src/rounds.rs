//! One round of concurrent streams, summarized as report rows.

use std::time::Duration;

use crate::procfs::Rss;
use crate::report::{Report, ms, quantile, rss};
use crate::streams::Streams;

/// Adds the first-message latency, failures, agent CPU time (`cpu`) and RSS
/// of round `round` (of `rounds`) to `report`; returns how many streams got
/// a first message.
pub fn summarize(
    report: &mut Report,
    round: usize,
    rounds: usize,
    streams: &Streams,
    open: Rss,
    cpu: Duration,
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
    report.row(
        "  agent CPU time until all first messages (10 ms resolution)",
        format!(
            "{} ({:.0} us per stream)",
            ms(cpu),
            cpu.as_secs_f64() * 1e6 / n.max(1) as f64
        ),
    );
    report.row(&format!("  agent VmRSS with {n} streams open"), rss(&open));
    lat.len()
}
