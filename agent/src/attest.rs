//! Node attestation: the agent's own identity.
//!
//! On start the agent reuses the key and SVID stored in its data directory;
//! without them (or when they expired) it attests with a join token or its
//! projected Kubernetes service-account token ([`psat`]). It renews its SVID
//! at a fraction of its lifetime, and attests again when the CA no longer
//! knows it (evicted) and a token is configured. A banned agent stops.
//!
//! A join token is single-use: when the CA refuses it the agent stops. A
//! projected token is re-read from its file at every attempt, so a refused
//! one (replayed, not yet valid, a CA not configured for the cluster yet)
//! is retried with the CA backoff ([`AttestError::is_retryable`]).
//!
//! The attestor is the one writer of the data directory: besides its own
//! key and SVID it stores the own trust domain's bundle each time a sync
//! brings a changed one (the SVID manager hands it over, see
//! [`Attestor::maintain`]), so an agent restarted after a CA rotation
//! trusts the new root even when its `trust_bundle_file` (bootstrap only,
//! never written) predates it. It also renews its own SVID early when the
//! CA rotated out or tainted the key that signed it ([`crate::reissue`]).

pub mod psat;
pub mod store;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use meshid_identity::{BundleSet, PrivateKey, SpiffeId, TrustBundle, TrustDomain};
use meshid_proto::ca::{AttestRequest, RenewAgentRequest};
use meshid_proto::convert::trust_bundle_of;
use rustls_pki_types::CertificateDer;
use tokio::sync::{Notify, watch};

use crate::config::JoinToken;
use crate::manager::SyncedTrust;
use crate::metrics::AgentMetrics;
use crate::node_client::{AgentCredentials, CaClient, CaError, check_x509_svid, csr_der};
use crate::reissue::KeyWatch;
use meshid_runtime::clock::SharedClock;
use psat::{K8S_PSAT_ATTESTATION, K8sPsatConfig, PsatError};

/// The attestation type name for join tokens.
pub const JOIN_TOKEN_ATTESTATION: &str = "join_token";

/// Why the agent has no usable identity.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AttestError {
    /// No stored identity and no join token.
    #[error(
        "agent has no stored identity and no join token: set join_token in the config or MESHID_JOIN_TOKEN (create one with `meshid token generate`), or [node_attestor.k8s_psat] on Kubernetes"
    )]
    NoToken,
    /// The stored SVID expired and there is no token to attest again.
    #[error(
        "stored agent SVID expired at {0:?} and no join token is configured: provide a new join token"
    )]
    Expired(SystemTime),
    /// The CA no longer knows the agent and there is no token.
    #[error(
        "the CA evicted this agent ({0}) and no join token is configured: provide a new join token"
    )]
    Evicted(String),
    /// The CA refused the join token (unknown, expired or already used).
    #[error(
        "the CA refused the join token ({0}): tokens are single-use and expire; create a new one with `meshid token generate`"
    )]
    TokenRefused(String),
    /// The CA refused the projected service-account token; retried with
    /// the token file's content at the next attempt.
    #[error(
        "the CA refused the agent's projected service-account token ({0}); retrying with the token file's current content"
    )]
    PsatRefused(String),
    /// The projected service-account token could not be read.
    #[error(transparent)]
    Psat(#[from] PsatError),
    /// The CA banned this agent.
    #[error(
        "the CA banned this agent ({0}): an operator must delete it on the CA before it may attest again"
    )]
    Banned(String),
    /// Attestation or renewal failed.
    #[error(transparent)]
    Ca(#[from] CaError),
    /// No trust bundle to authenticate the CA on first attestation.
    #[error(
        "no trust bundle for the CA: set trust_bundle_file to the CA's root certificates (PEM)"
    )]
    NoBundle,
    /// The response lacked the bundle or SVID.
    #[error("CA response is missing {0}")]
    Missing(&'static str),
    /// A bundle the CA sent is malformed.
    #[error("CA sent a malformed bundle: {0}")]
    BadBundle(#[from] meshid_proto::convert::WireBundleError),
    /// A file in the data directory could not be read or written.
    #[error("cannot access {path}: {source}; check the data_dir permissions")]
    Store {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A stored file is not readable as what it should hold.
    #[error(
        "{path} is corrupt ({reason}); delete the data directory and attest again with a join token"
    )]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A key could not be generated.
    #[error("cannot generate a key: {0}")]
    Key(#[from] meshid_identity::KeyError),
}

/// The agent's current identity.
#[derive(Debug, Clone)]
pub struct AgentIdentity {
    /// The agent's SPIFFE ID.
    pub spiffe_id: SpiffeId,
    /// The agent SVID chain, leaf first.
    pub chain: Vec<CertificateDer<'static>>,
    /// The agent key.
    pub key: PrivateKey,
    /// The leaf's notBefore.
    pub not_before: SystemTime,
    /// The leaf's notAfter.
    pub not_after: SystemTime,
    /// The own trust domain's bundle as last received.
    pub bundle: TrustBundle,
}

/// Settings for [`Attestor`].
#[derive(Debug, Clone)]
pub struct AttestConfig {
    /// The agent's trust domain.
    pub trust_domain: TrustDomain,
    /// Where key, SVID and bundle are stored.
    pub data_dir: PathBuf,
    /// Join token, if configured.
    pub join_token: Option<JoinToken>,
    /// Projected service-account token attestation, if configured (then
    /// `join_token` is `None`; the config refuses both).
    pub k8s_psat: Option<K8sPsatConfig>,
    /// CA roots pinned for the first attestation.
    pub bootstrap_bundle: Option<TrustBundle>,
    /// Fraction of the agent SVID's lifetime after which it is renewed.
    pub renew_fraction: f64,
}

/// Obtains and keeps the agent's identity.
#[derive(Debug, Clone)]
pub struct Attestor {
    config: AttestConfig,
    client: Arc<dyn CaClient>,
    clock: SharedClock,
    metrics: AgentMetrics,
}

/// What [`Attestor::maintain`] listens to besides its timer.
#[derive(Debug)]
pub struct MaintainSignals {
    /// Renew at once (e.g. the SVID manager saw the CA refuse the agent).
    pub kick: Arc<Notify>,
    /// The own bundle and the CA's key state after each sync that changed
    /// them ([`crate::manager::SvidManager::on_trust`]).
    pub trust: watch::Receiver<Option<Arc<SyncedTrust>>>,
    /// Stop when this changes (or its sender is dropped).
    pub shutdown: watch::Receiver<bool>,
}

// === impl AttestError ===

impl AttestError {
    /// True when trying again later may succeed: the CA is unreachable, or
    /// a projected token was refused or unreadable (the kubelet writes a
    /// new one). Callers retry these with the CA backoff.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Ca(e) => e.is_transient(),
            Self::PsatRefused(_) | Self::Psat(_) => true,
            _ => false,
        }
    }
}

// === impl AgentIdentity ===

impl AgentIdentity {
    /// When this identity should be renewed, given `fraction` of its life.
    pub fn renew_at(&self, fraction: f64) -> SystemTime {
        let life = self
            .not_after
            .duration_since(self.not_before)
            .unwrap_or_default();
        self.not_before + life.mul_f64(fraction)
    }

    fn credentials(&self) -> AgentCredentials {
        AgentCredentials {
            chain: self.chain.clone(),
            key: self.key.clone(),
        }
    }

    fn bundles(&self) -> Arc<BundleSet> {
        Arc::new(std::iter::once(self.bundle.clone()).collect())
    }
}

// === impl Attestor ===

impl Attestor {
    /// An attestor talking to `client`, deciding expiry with `clock`.
    pub fn new(config: AttestConfig, client: Arc<dyn CaClient>, clock: SharedClock) -> Self {
        Self {
            config,
            client,
            clock,
            metrics: AgentMetrics::default(),
        }
    }

    /// Counts early re-issues of the agent's own SVID in `metrics`.
    pub fn set_metrics(&mut self, metrics: AgentMetrics) {
        self.metrics = metrics;
    }

    /// The stored identity if still valid, else a fresh attestation.
    ///
    /// Installs the credentials in the CA client.
    pub async fn start(&self) -> Result<AgentIdentity, AttestError> {
        let now = self.clock.now();
        let td = &self.config.trust_domain;
        let mut pinned = self.config.bootstrap_bundle.clone();
        if let Some(stored) = store::load(&self.config.data_dir, td)? {
            // The stored bundle is newer than the bootstrap file.
            pinned = Some(stored.bundle.clone());
            let bundles: BundleSet = std::iter::once(stored.bundle.clone()).collect();
            let leaf = meshid_proto::ca::X509Svid {
                cert_chain: stored.chain.iter().map(|c| c.to_vec()).collect(),
                ..Default::default()
            };
            match check_x509_svid(&leaf, &bundles, &stored.key, None, now) {
                Ok(svid) if svid.spiffe_id.is_member_of(td) => {
                    tracing::info!(spiffe_id = %svid.spiffe_id, "reusing stored agent SVID");
                    let id = AgentIdentity {
                        spiffe_id: svid.spiffe_id,
                        chain: svid.chain,
                        key: stored.key,
                        not_before: svid.not_before,
                        not_after: svid.not_after,
                        bundle: stored.bundle,
                    };
                    self.install(&id);
                    return Ok(id);
                }
                Ok(svid) => {
                    tracing::warn!(spiffe_id = %svid.spiffe_id, "stored agent SVID is for another trust domain; ignoring it");
                }
                Err(e) => {
                    tracing::warn!(error = %e, "stored agent SVID is not usable");
                    if !self.can_attest() {
                        let expiry = meshid_identity::x509::not_after(
                            stored.chain.first().map(|c| c.as_ref()).unwrap_or_default(),
                        )
                        .unwrap_or(now);
                        return Err(AttestError::Expired(expiry));
                    }
                }
            }
        }
        self.attest(pinned).await
    }

    /// True if a join token or projected token is configured.
    fn can_attest(&self) -> bool {
        self.config.join_token.is_some() || self.config.k8s_psat.is_some()
    }

    /// Attests with the projected token or the join token, pinning
    /// `pinned` (or the stored bundle).
    async fn attest(&self, pinned: Option<TrustBundle>) -> Result<AgentIdentity, AttestError> {
        let (attestation_type, payload, how) =
            match (&self.config.k8s_psat, &self.config.join_token) {
                (Some(psat), _) => (
                    K8S_PSAT_ATTESTATION,
                    psat.payload()?,
                    "projected service-account token",
                ),
                (None, Some(token)) => (
                    JOIN_TOKEN_ATTESTATION,
                    token.expose().as_bytes().to_vec(),
                    "join token",
                ),
                (None, None) => return Err(AttestError::NoToken),
            };
        let psat = self.config.k8s_psat.is_some();
        let pinned = pinned.ok_or(AttestError::NoBundle)?;
        self.client.set_credentials(None);
        self.client
            .set_bundles(Arc::new(std::iter::once(pinned).collect()));
        let key = PrivateKey::generate_p256()?;
        let resp = self
            .client
            .attest(AttestRequest {
                attestation_type: attestation_type.into(),
                payload,
                csr: csr_der(&key)?,
            })
            .await
            .map_err(|e| match e {
                CaError::Banned(m) => AttestError::Banned(m),
                CaError::AgentUnknown(m) if psat => AttestError::PsatRefused(m),
                CaError::Rejected { code, message } if psat => {
                    AttestError::PsatRefused(format!("{code:?}: {message}"))
                }
                CaError::AgentUnknown(m) => AttestError::TokenRefused(m),
                e => AttestError::Ca(e),
            })?;
        let bundle = resp.bundle.ok_or(AttestError::Missing("bundle"))?;
        let bundle = trust_bundle_of(&self.config.trust_domain, &bundle)?;
        let svid = resp.svid.ok_or(AttestError::Missing("svid"))?;
        let id = self.accept(&svid, key, bundle)?;
        tracing::info!(spiffe_id = %id.spiffe_id, "attested with {how}");
        Ok(id)
    }

    /// Renews `current`; attests again if the CA evicted the agent and a
    /// token is configured.
    pub async fn renew(&self, current: &AgentIdentity) -> Result<AgentIdentity, AttestError> {
        self.renew_or_attest(current, &mut false).await
    }

    /// Renews `current`, or attests when `*evicted` (set here when the CA
    /// says it does not know the agent, cleared once attested), so a retry
    /// after a failed re-attestation attests again instead of renewing
    /// without credentials.
    async fn renew_or_attest(
        &self,
        current: &AgentIdentity,
        evicted: &mut bool,
    ) -> Result<AgentIdentity, AttestError> {
        if !*evicted {
            let key = PrivateKey::generate_p256()?;
            let req = RenewAgentRequest {
                csr: csr_der(&key)?,
            };
            match self.client.renew_agent(req).await {
                Ok(resp) => {
                    let svid = resp.svid.ok_or(AttestError::Missing("svid"))?;
                    let id = self.accept(&svid, key, current.bundle.clone())?;
                    tracing::info!(spiffe_id = %id.spiffe_id, not_after = ?id.not_after, "renewed agent SVID");
                    return Ok(id);
                }
                Err(CaError::Banned(m)) => return Err(AttestError::Banned(m)),
                Err(CaError::AgentUnknown(m)) => {
                    if !self.can_attest() {
                        return Err(AttestError::Evicted(m));
                    }
                    tracing::warn!(reason = %m, "CA does not know this agent; attesting again");
                    *evicted = true;
                }
                Err(e) => return Err(e.into()),
            }
        }
        let id = self.attest(Some(current.bundle.clone())).await?;
        *evicted = false;
        Ok(id)
    }

    /// Renews the identity at its renewal point, or earlier when the CA's
    /// keys call for it or `signals.kick` is notified, until shutdown or a
    /// fatal error (banned, evicted without token). Stores each changed
    /// bundle from `signals.trust` and publishes each new identity on `tx`.
    pub async fn maintain(
        &self,
        mut current: AgentIdentity,
        tx: watch::Sender<AgentIdentity>,
        signals: MaintainSignals,
    ) -> Result<(), AttestError> {
        let MaintainSignals {
            kick,
            trust,
            mut shutdown,
        } = signals;
        let mut trust = Some(trust);
        let mut keys = KeyWatch::new(leaf_of(&current), None);
        let mut backoff = crate::backoff::ca_retry();
        // After a failed attempt the next one follows the backoff delay
        // (not the renewal point), attesting again if the CA evicted us.
        let (mut retry_now, mut evicted) = (false, false);
        loop {
            let now = self.clock.now();
            let renew_at = current.renew_at(self.config.renew_fraction);
            let due = keys.plan().map_or(renew_at, |p| p.at.min(renew_at));
            let wait = due.duration_since(now).unwrap_or(Duration::ZERO);
            if !std::mem::take(&mut retry_now) {
                tokio::select! {
                    _ = tokio::time::sleep(wait) => {}
                    _ = kick.notified() => tracing::info!("renewing agent SVID early: the CA refused it"),
                    update = next_trust(&mut trust) => {
                        if let Some(update) = update {
                            if self.take_trust(&mut current, &update) {
                                tx.send_replace(current.clone());
                            }
                            keys.update(update.ca_keys.as_ref(), self.clock.now());
                        }
                        continue;
                    }
                    _ = shutdown.changed() => return Ok(()),
                }
            }
            let now = self.clock.now();
            let early = keys
                .plan()
                .filter(|p| p.at <= now && now < renew_at)
                .map(|p| p.reason);
            match self.renew_or_attest(&current, &mut evicted).await {
                Ok(id) => {
                    backoff.reset();
                    if let Some(reason) = early {
                        self.metrics.reissued(reason);
                        tracing::info!(
                            reason = reason.as_str(),
                            "agent SVID re-issued under the CA's current key"
                        );
                    }
                    current = id;
                    let latest = trust
                        .as_ref()
                        .and_then(|t| t.borrow().as_ref().and_then(|u| u.ca_keys.clone()));
                    keys = KeyWatch::new(leaf_of(&current), latest);
                    tx.send_replace(current.clone());
                }
                Err(e) if e.is_retryable() => {
                    let d = backoff.next_delay();
                    let what = if evicted { "re-attestation" } else { "renewal" };
                    tracing::warn!(error = %e, retry_in = ?d, "agent SVID {what} failed");
                    tokio::select! {
                        _ = tokio::time::sleep(d) => {}
                        _ = shutdown.changed() => return Ok(()),
                    }
                    retry_now = true;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Takes the bundle of a sync: stores it if it changed and verifies
    /// renewals against it from now on. True if it changed.
    fn take_trust(&self, current: &mut AgentIdentity, update: &SyncedTrust) -> bool {
        if update.bundle == current.bundle {
            return false;
        }
        match store::save_bundle(&self.config.data_dir, &update.bundle) {
            Ok(()) => tracing::info!(
                authorities = update.bundle.x509_authorities.len(),
                "stored the CA's changed trust bundle"
            ),
            // The bundle is still used; only a restart would miss it.
            Err(e) => tracing::warn!(error = %e, "cannot store the CA's changed trust bundle"),
        }
        current.bundle = update.bundle.clone();
        true
    }

    /// Verifies an issued agent SVID, persists it and installs it.
    fn accept(
        &self,
        svid: &meshid_proto::ca::X509Svid,
        key: PrivateKey,
        bundle: TrustBundle,
    ) -> Result<AgentIdentity, AttestError> {
        let td = &self.config.trust_domain;
        let bundles: BundleSet = std::iter::once(bundle.clone()).collect();
        let issued = check_x509_svid(svid, &bundles, &key, None, self.clock.now())?;
        if !issued.spiffe_id.is_member_of(td) {
            return Err(CaError::BadResponse(format!(
                "agent SVID {} is not in trust domain {td}",
                issued.spiffe_id
            ))
            .into());
        }
        let id = AgentIdentity {
            spiffe_id: issued.spiffe_id,
            chain: issued.chain,
            key,
            not_before: issued.not_before,
            not_after: issued.not_after,
            bundle,
        };
        store::save(
            &self.config.data_dir,
            &store::Stored {
                key: id.key.clone(),
                chain: id.chain.clone(),
                bundle: id.bundle.clone(),
            },
        )?;
        self.install(&id);
        Ok(id)
    }

    fn install(&self, id: &AgentIdentity) {
        self.client.set_bundles(id.bundles());
        self.client.set_credentials(Some(id.credentials()));
    }
}

/// The next trust update; pends forever once the sender is gone (the SVID
/// manager stopped), so the renewal loop does not spin on a closed channel.
async fn next_trust(
    rx: &mut Option<watch::Receiver<Option<Arc<SyncedTrust>>>>,
) -> Option<Arc<SyncedTrust>> {
    let Some(r) = rx else {
        return std::future::pending().await;
    };
    if r.changed().await.is_err() {
        *rx = None;
        return None;
    }
    r.borrow_and_update().clone()
}

fn leaf_of(id: &AgentIdentity) -> &[u8] {
    id.chain.first().map(|c| c.as_ref()).unwrap_or_default()
}
