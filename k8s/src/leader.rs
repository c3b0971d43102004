//! Leader election on a `coordination.k8s.io/v1` Lease, client-go's
//! algorithm: the holder renews every `retry_period`; it stops acting as
//! leader `renew_deadline` after the start of its last successful renewal,
//! and a candidate takes the Lease only when its record has not changed for
//! `lease_duration` as measured on the candidate's own monotonic clock (no
//! trust in other nodes' wall clocks). Every write is an `update` with the
//! read `resourceVersion`, so two candidates never both win: the API
//! server's optimistic concurrency decides.
//!
//! Written here rather than taken from a crate: `kube-leader-election`
//! needs kube 4, and `kube-lease-manager` (kube 5) takes the Lease through
//! server-side-apply field-ownership conflicts and renews with patches that
//! carry no `resourceVersion`, so its safety rests on the server's managed
//! fields rather than on the precondition every API server enforces; it
//! has no renew deadline after which the holder stops writing either.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use kube::api::{Api, ObjectMeta, PostParams};
use tokio::sync::watch;
use tokio::time::Instant;

use crate::controller::config::LeaseSettings;

/// Whether this process may write now. Cheap to clone and to ask.
#[derive(Clone, Debug)]
pub struct Leadership {
    /// The instant leadership ends; `None` inside: not leader. No channel:
    /// always leader.
    rx: Option<watch::Receiver<Option<Instant>>>,
}

/// Runs the election until the process ends.
pub struct Elector {
    api: Api<Lease>,
    settings: LeaseSettings,
    state: State,
    tx: watch::Sender<Option<Instant>>,
    on_change: Arc<dyn Fn(bool) + Send + Sync>,
}

/// What the elector remembers between attempts (pure, for tests).
#[derive(Debug, Clone, Default)]
pub struct State {
    /// The last record seen (holder, renew time, resourceVersion) and when
    /// it was first seen.
    observed: Option<(Observed, Instant)>,
}

/// The parts of a Lease that show it is alive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observed {
    /// `spec.holderIdentity` (empty: free).
    pub holder: String,
    /// `metadata.resourceVersion`.
    pub resource_version: String,
}

/// What to do with a Lease that was read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Ours: renew it.
    Renew,
    /// Free or expired: take it.
    Acquire,
    /// Someone else holds it and renews it.
    Follow,
}

impl std::fmt::Debug for Elector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Elector")
            .field("lease", &self.settings.name)
            .field("identity", &self.settings.identity)
            .finish_non_exhaustive()
    }
}

// === impl Leadership ===

impl Leadership {
    /// True while this process holds the Lease and its deadline has not
    /// passed: checked before every write.
    pub fn is_leader(&self) -> bool {
        match &self.rx {
            None => true,
            Some(rx) => rx.borrow().is_some_and(|until| Instant::now() < until),
        }
    }

    /// Waits until [`is_leader`](Self::is_leader) changes (renewals that
    /// keep it do not wake the caller).
    pub async fn changed(&mut self) {
        let was = self.is_leader();
        loop {
            self.next().await;
            if self.is_leader() != was {
                return;
            }
        }
    }

    /// Waits for the next renewal, loss, or the deadline passing.
    async fn next(&mut self) {
        let Some(rx) = &mut self.rx else {
            return std::future::pending().await;
        };
        let until = *rx.borrow_and_update();
        match until {
            Some(until) if Instant::now() < until => {
                tokio::select! {
                    _ = rx.changed() => {}
                    _ = tokio::time::sleep_until(until) => {}
                }
            }
            _ => {
                if rx.changed().await.is_err() {
                    std::future::pending::<()>().await;
                }
            }
        }
    }

    /// A leadership that is always held (a single controller, no Lease).
    pub fn always() -> Self {
        Self { rx: None }
    }
}

// === impl State ===

impl State {
    /// Decides about `seen` at `now` for `identity`.
    pub fn decide(
        &mut self,
        identity: &str,
        seen: Observed,
        now: Instant,
        lease_duration: Duration,
    ) -> Decision {
        let first_seen = match &self.observed {
            Some((o, at)) if *o == seen => *at,
            _ => now,
        };
        let holder_empty = seen.holder.is_empty();
        let ours = seen.holder == identity;
        self.observed = Some((seen, first_seen));
        if ours {
            Decision::Renew
        } else if holder_empty || now.duration_since(first_seen) >= lease_duration {
            Decision::Acquire
        } else {
            Decision::Follow
        }
    }
}

// === impl Elector ===

impl Elector {
    /// An elector for the Lease in `settings`; `on_change` hears every
    /// gain and loss (metrics, logs).
    pub fn new(
        client: kube::Client,
        settings: LeaseSettings,
        on_change: Arc<dyn Fn(bool) + Send + Sync>,
    ) -> (Self, Leadership) {
        let (tx, rx) = watch::channel(None);
        let api = Api::namespaced(client, &settings.namespace);
        let elector = Self {
            api,
            settings,
            state: State::default(),
            tx,
            on_change,
        };
        (elector, Leadership { rx: Some(rx) })
    }

    /// Tries every `retry_period` until `shutdown` completes, then gives
    /// the Lease up if it holds it.
    pub async fn run(mut self, shutdown: impl std::future::Future<Output = ()>) {
        tokio::pin!(shutdown);
        let mut was_leader = false;
        loop {
            let start = Instant::now();
            match self.attempt(start).await {
                Ok(true) => {
                    self.tx
                        .send_replace(Some(start + self.settings.renew_deadline));
                }
                // Someone else holds it: stop writing at once.
                Ok(false) => {
                    self.tx.send_replace(None);
                }
                // Unknown: keep leading until the renew deadline passes.
                Err(e) => {
                    tracing::warn!(lease = %self.settings.name, error = %e, "leader election: cannot read or write the Lease");
                }
            }
            let leader_now = self.tx.borrow().is_some_and(|u| Instant::now() < u);
            if leader_now != was_leader {
                was_leader = leader_now;
                tracing::info!(identity = %self.settings.identity, leader = leader_now, "leadership changed");
                (self.on_change)(leader_now);
            }
            tokio::select! {
                _ = &mut shutdown => break,
                _ = tokio::time::sleep(self.settings.retry_period) => {}
            }
        }
        if was_leader {
            self.tx.send_replace(None);
            (self.on_change)(false);
            if let Err(e) = self.release().await {
                tracing::warn!(error = %e, "could not release the Lease; the next leader waits for it to expire");
            }
        }
    }

    /// One read and, when due, one write. True when this process holds
    /// the Lease after it.
    async fn attempt(&mut self, now: Instant) -> Result<bool, kube::Error> {
        let me = self.settings.identity.clone();
        let Some(mut lease) = self.api.get_opt(&self.settings.name).await? else {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(self.settings.name.clone()),
                    ..Default::default()
                },
                spec: Some(self.spec(None, true)),
            };
            return match self.api.create(&PostParams::default(), &lease).await {
                Ok(_) => Ok(true),
                Err(kube::Error::Api(e)) if e.code == 409 => Ok(false),
                Err(e) => Err(e),
            };
        };
        let spec = lease.spec.clone().unwrap_or_default();
        let seen = Observed {
            holder: spec.holder_identity.clone().unwrap_or_default(),
            resource_version: lease.metadata.resource_version.clone().unwrap_or_default(),
        };
        let decision = self
            .state
            .decide(&me, seen, now, self.settings.lease_duration);
        let new_spec = match decision {
            Decision::Follow => return Ok(false),
            Decision::Renew => LeaseSpec {
                renew_time: Some(now_micro()),
                lease_duration_seconds: Some(self.duration_secs()),
                ..spec
            },
            Decision::Acquire => self.spec(Some(&spec), true),
        };
        lease.spec = Some(new_spec);
        match self
            .api
            .replace(&self.settings.name, &PostParams::default(), &lease)
            .await
        {
            Ok(_) => Ok(true),
            Err(kube::Error::Api(e)) if e.code == 409 => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Gives the Lease up: an empty holder lets the next candidate take it
    /// at once.
    async fn release(&mut self) -> Result<(), kube::Error> {
        let Some(mut lease) = self.api.get_opt(&self.settings.name).await? else {
            return Ok(());
        };
        let mut spec = lease.spec.clone().unwrap_or_default();
        if spec.holder_identity.as_deref() != Some(self.settings.identity.as_str()) {
            return Ok(());
        }
        spec.holder_identity = None;
        spec.lease_duration_seconds = Some(1);
        spec.renew_time = Some(now_micro());
        lease.spec = Some(spec);
        self.api
            .replace(&self.settings.name, &PostParams::default(), &lease)
            .await
            .map(|_| ())
    }

    fn spec(&self, old: Option<&LeaseSpec>, acquire: bool) -> LeaseSpec {
        let now = now_micro();
        let transitions = old.and_then(|s| s.lease_transitions).unwrap_or(0);
        let had_holder = old
            .and_then(|s| s.holder_identity.as_deref())
            .is_some_and(|h| !h.is_empty());
        LeaseSpec {
            holder_identity: Some(self.settings.identity.clone()),
            lease_duration_seconds: Some(self.duration_secs()),
            acquire_time: acquire.then(|| now.clone()),
            renew_time: Some(now),
            lease_transitions: Some(if had_holder {
                transitions.saturating_add(1)
            } else {
                transitions
            }),
            ..Default::default()
        }
    }

    fn duration_secs(&self) -> i32 {
        i32::try_from(self.settings.lease_duration.as_secs()).unwrap_or(i32::MAX)
    }
}

fn now_micro() -> MicroTime {
    MicroTime(k8s_openapi::jiff::Timestamp::now())
}
