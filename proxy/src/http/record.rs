//! The record stage: count the finished request, note what audit mode let
//! through, and write the access log line.

use super::headers::{path, version_label};
use super::outcome::RequestOutcome;
use super::serve::Downstream;
use crate::access_log::{self, AccessLog, Entry};
use crate::authz::Verdict;
use std::time::SystemTime;

/// Records `outcome`, a request that came in on `conn`, in the
/// connection's metrics and in `log`.
pub fn record(log: &AccessLog, conn: &Downstream, outcome: RequestOutcome) {
    let elapsed = outcome.elapsed();
    let decision = outcome.decision();
    let peer = &conn.peer;
    conn.metrics
        .record(decision, outcome.status.as_u16(), elapsed);
    if outcome.verdict == Verdict::DenyAudit {
        tracing::info!(source = %peer.label, rule = ?outcome.rule, "audit: request would be denied");
    }
    let Some(line) = outcome.line else {
        return;
    };
    log.log(&Entry {
        time: access_log::timestamp(SystemTime::now()),
        direction: conn.direction,
        protocol: "http",
        source: &peer.label,
        destination: &conn.destination,
        http_version: Some(version_label(line.version)),
        method: Some(line.method.as_str()),
        path: Some(path(&line.uri)),
        status: Some(outcome.status.as_u16()),
        decision,
        error: outcome.error,
        rule: outcome.rule,
        bytes_in: outcome.bytes_in,
        bytes_out: outcome.bytes_out,
        duration_ms: access_log::millis(elapsed),
        trace_id: outcome.trace.map(|t| t.trace_id_hex()),
    });
}
