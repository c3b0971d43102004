//! Expiry alarms: the expiry metrics of the keys in the journal and a log
//! warning, at most once an hour per key, when an active key (this
//! replica's or another's, so one in the bundle) expires within
//! `[rotation] warn_before` with no successor prepared.

use std::time::{Duration, SystemTime};

use super::Journal;
use super::engine::Engine;
use crate::store::{KeyKind, SlotState};

/// How often one key's warning is repeated.
const WARN_EVERY: Duration = Duration::from_secs(3600);

/// Sets the expiry gauges from `journal` and logs due warnings.
pub(super) fn record(engine: &Engine, journal: &Journal, now: SystemTime) {
    let inner = &engine.inner;
    let me = inner.replica.as_str();
    let metrics = &inner.metrics;
    let published: Vec<(String, SystemTime)> = journal
        .published(now)
        .into_iter()
        .filter(|s| s.kind == KeyKind::X509)
        .map(|s| (s.key_id.clone(), s.not_after))
        .collect();
    metrics.set_bundle_authority_expiry(&published);
    let own: Vec<(&'static str, &'static str, SystemTime)> = journal
        .slots()
        .iter()
        .filter(|s| s.replica == me && s.state != SlotState::Old)
        .map(|s| (s.kind.as_str(), s.state.as_str(), s.not_after))
        .collect();
    metrics.set_key_expiry(&own);
    for slot in journal
        .slots()
        .iter()
        .filter(|s| s.state == SlotState::Active)
    {
        let warn_before = inner.schedule.warn_before(slot);
        let successor = journal
            .own(&slot.replica, slot.kind, SlotState::Prepared)
            .is_some();
        if successor || slot.not_after > now + warn_before {
            continue;
        }
        let mut held = engine.held();
        let recent = held
            .warned
            .get(&slot.key_id)
            .is_some_and(|at| now < *at + WARN_EVERY);
        if recent {
            continue;
        }
        held.warned.insert(slot.key_id.clone(), now);
        tracing::warn!(
            slot = %slot.id,
            key_id = %slot.key_id,
            expires = %humantime::format_rfc3339_seconds(slot.not_after),
            "an active CA key expires soon and no successor is prepared; check that its CA \
             replica runs (it prepares one on schedule), or replace the upstream intermediate"
        );
    }
}
