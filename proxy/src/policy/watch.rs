//! Hot reload: poll the policy file (and the workload's labels file) and
//! swap in valid new versions.

use super::document::build;
use super::error::PolicyError;
use super::load::read_bounded;
use super::set::PolicySet;
use crate::metrics::ReloadMetrics;
use arc_swap::ArcSwap;
use sha2::{Digest, Sha256};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::task::JoinHandle;

/// Watches a policy file and keeps the latest valid [`PolicySet`] published.
///
/// Evaluators call [`PolicyWatcher::current`] (or hold [`PolicyWatcher::shared`])
/// and always see a complete set. An invalid new file (including an empty
/// or comment-only one, see [`PolicySet::from_yaml`]) or an unreadable one
/// is logged, counted in [`PolicyWatcher::reload_metrics`] and ignored;
/// the previous set stays in force. So is a change of the labels file
/// (see [`PolicyWatcher::start_for_workload`]) that cannot be read or
/// parsed while a policy has a selector. Dropping the watcher stops polling.
#[derive(Debug)]
pub struct PolicyWatcher {
    current: Arc<ArcSwap<PolicySet>>,
    polls: Arc<AtomicU64>,
    metrics: ReloadMetrics,
    task: JoinHandle<()>,
}

impl PolicyWatcher {
    /// Loads `path` (it must be valid) and starts polling it every `interval`.
    ///
    /// Must be called inside a tokio runtime.
    /// A policy with a selector makes it fail ([`PolicyError::LabelsRequired`]).
    pub fn start(path: impl Into<PathBuf>, interval: Duration) -> Result<Self, PolicyError> {
        Self::start_for_workload(path, None, interval)
    }

    /// As [`start`](Self::start), for the workload whose labels are in the
    /// downward API file `labels` (polled too): policies whose selector
    /// does not match them are skipped. The labels file is needed only
    /// while a policy has a selector; then it must be valid to start.
    pub fn start_for_workload(
        path: impl Into<PathBuf>,
        labels: Option<PathBuf>,
        interval: Duration,
    ) -> Result<Self, PolicyError> {
        let path = path.into();
        let text = read_bounded(&path)?;
        let labels_text = labels.as_deref().map(read_bounded);
        let (set, warnings) = build(&text, labels.as_deref().zip(labels_text.as_ref()))?;
        for w in &warnings {
            tracing::warn!(path = %path.display(), "policy warning: {w}");
        }
        let current = Arc::new(ArcSwap::from_pointee(set));
        let polls = Arc::new(AtomicU64::new(0));
        let metrics = ReloadMetrics::new();
        let state = Poller {
            seen: hash(&text, labels_text.as_ref()),
            path,
            labels,
            slot: current.clone(),
            polls: polls.clone(),
            metrics: metrics.clone(),
        };
        let task = tokio::spawn(state.run(interval));
        Ok(Self {
            current,
            polls,
            metrics,
            task,
        })
    }

    /// The policy set in force now.
    pub fn current(&self) -> Arc<PolicySet> {
        self.current.load_full()
    }

    /// The shared slot, for evaluators that outlive a borrow of the watcher.
    pub fn shared(&self) -> Arc<ArcSwap<PolicySet>> {
        self.current.clone()
    }

    /// How many polls have completed (for tests and metrics).
    pub fn polls(&self) -> u64 {
        self.polls.load(Ordering::Acquire)
    }

    /// Reload outcomes; register them with
    /// [`ReloadMetrics::register`] to export them.
    pub fn reload_metrics(&self) -> &ReloadMetrics {
        &self.metrics
    }
}

impl Drop for PolicyWatcher {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Hash of the policy text and of the labels file as read (an unreadable
/// labels file hashes as such, so its recovery is a change).
fn hash(text: &str, labels: Option<&Result<String, PolicyError>>) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update((text.len() as u64).to_be_bytes());
    h.update(text.as_bytes());
    match labels {
        None => h.update([0]),
        Some(Ok(l)) => {
            h.update([1]);
            h.update(l.as_bytes());
        }
        Some(Err(_)) => h.update([2]),
    }
    h.finalize().into()
}

/// The polling task's state.
struct Poller {
    path: PathBuf,
    /// The workload's downward API labels file, if configured.
    labels: Option<PathBuf>,
    /// Hash of the last content seen, valid or not (so a bad file is reported once).
    seen: [u8; 32],
    slot: Arc<ArcSwap<PolicySet>>,
    polls: Arc<AtomicU64>,
    metrics: ReloadMetrics,
}

impl Poller {
    async fn run(mut self, interval: Duration) {
        let mut ticker = tokio::time::interval(interval.max(Duration::from_millis(1)));
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut read_failing = false;
        loop {
            ticker.tick().await;
            let (p, l) = (self.path.clone(), self.labels.clone());
            let read = move || (read_bounded(&p), l.as_deref().map(read_bounded));
            match tokio::task::spawn_blocking(read).await {
                Ok((Ok(text), labels)) => {
                    read_failing = false;
                    let h = hash(&text, labels.as_ref());
                    if h != self.seen {
                        self.seen = h;
                        self.reload(&text, labels.as_ref());
                    }
                }
                Ok((Err(e), _)) => {
                    if !read_failing {
                        tracing::warn!(path = %self.path.display(), "keeping previous policy: {e}");
                        self.metrics.rejected();
                        // Whatever appears next is new, even the old content.
                        self.seen = [0; 32];
                    }
                    read_failing = true;
                }
                Err(e) => tracing::warn!("policy reload task failed: {e}"),
            }
            self.polls.fetch_add(1, Ordering::Release);
        }
    }

    /// Swaps in `text` (for the workload's `labels`) if it is a valid
    /// policy file; else keeps the old set.
    fn reload(&self, text: &str, labels: Option<&Result<String, PolicyError>>) {
        let path = self.path.display();
        match build(text, self.labels.as_deref().zip(labels)) {
            Ok((set, warnings)) => {
                for w in &warnings {
                    tracing::warn!(%path, "policy warning: {w}");
                }
                tracing::info!(%path, policies = set.policies().len(), "policy reloaded");
                self.slot.store(Arc::new(set));
                self.metrics.accepted();
            }
            Err(e) => {
                tracing::error!(%path, "policy file rejected, the previous policy stays in force: {e}");
                self.metrics.rejected();
            }
        }
    }
}
