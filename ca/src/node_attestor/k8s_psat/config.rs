//! One configured cluster at run time: its settings, its Kubernetes client
//! (built on first use, so a cluster that is unreachable or whose
//! kubeconfig is missing does not stop the CA from starting; a failed build
//! is tried again at the next attestation) and, with `validation = "oidc"`,
//! its issuer's key cache.

use std::path::Path;
use std::time::Duration;

use kube::Client;
use tokio::sync::OnceCell;

use super::oidc::OidcVerifier;
use crate::config::{K8sPsatCluster, PsatValidation};
use crate::node_attestor::AttestError;

/// The bound on every call to a cluster's API or issuer.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(5);

/// A configured cluster.
pub struct Cluster {
    /// Its name (the payload's `cluster`, a segment of agent IDs).
    pub name: String,
    /// Its settings.
    pub settings: K8sPsatCluster,
    client: OnceCell<Client>,
    /// The issuer's keys, with `validation = "oidc"`.
    pub oidc: Option<OidcVerifier>,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster")
            .field("name", &self.name)
            .field("settings", &self.settings)
            .field("client_built", &self.client.initialized())
            .field("oidc", &self.oidc)
            .finish()
    }
}

impl Cluster {
    /// The cluster `name` with `settings` (already checked).
    pub fn new(name: &str, settings: &K8sPsatCluster) -> Self {
        let oidc = match (settings.validation, &settings.oidc_issuer) {
            (PsatValidation::Oidc, Some(issuer)) => Some(OidcVerifier::new(
                name,
                issuer,
                settings.oidc_ca_file.clone(),
                settings.jwks_refresh(),
            )),
            _ => None,
        };
        Self {
            name: name.to_owned(),
            settings: settings.clone(),
            client: OnceCell::new(),
            oidc,
        }
    }

    /// Whether the CA reads pods and nodes of this cluster: always with
    /// TokenReview, with OIDC only when a kubeconfig is configured.
    pub fn reads_api(&self) -> bool {
        self.settings.validation == PsatValidation::TokenReview
            || self.settings.kubeconfig.is_some()
    }

    /// The Kubernetes client, built on first use from the kubeconfig or the
    /// in-cluster config.
    pub async fn client(&self) -> Result<&Client, AttestError> {
        self.client
            .get_or_try_init(|| async {
                kube_client(self.settings.kubeconfig.as_deref())
                    .await
                    .map_err(|e| AttestError::Unavailable(format!("cluster {}: {e}", self.name)))
            })
            .await
    }
}

/// The one way the CA builds a client of a Kubernetes API server (node
/// attestation and the admin API's bearer tokens): from `kubeconfig`, or
/// the in-cluster config when `None`; connecting, reading and writing
/// bounded by [`CALL_TIMEOUT`], no retries. The error says what to fix.
pub async fn kube_client(kubeconfig: Option<&Path>) -> Result<Client, String> {
    let mut config = match kubeconfig {
        Some(path) => {
            let kc = kube::config::Kubeconfig::read_from(path)
                .map_err(|e| format!("cannot read kubeconfig {}: {e}", path.display()))?;
            kube::Config::from_custom_kubeconfig(kc, &kube::config::KubeConfigOptions::default())
                .await
                .map_err(|e| format!("kubeconfig {} is not usable: {e}", path.display()))?
        }
        None => kube::Config::incluster().map_err(|e| {
            format!("no kubeconfig is configured and the in-cluster config is not usable: {e}")
        })?,
    };
    config.connect_timeout = Some(CALL_TIMEOUT);
    config.read_timeout = Some(CALL_TIMEOUT);
    config.write_timeout = Some(CALL_TIMEOUT);
    config.reset_reader_on_write = true;
    config.default_retry = false;
    Client::try_from(config).map_err(|e| format!("cannot build the Kubernetes client: {e}"))
}

/// Runs one call to a cluster with [`CALL_TIMEOUT`], naming `what` failed.
pub async fn bounded<T>(
    cluster: &str,
    what: &str,
    call: impl Future<Output = Result<T, kube::Error>>,
) -> Result<T, AttestError> {
    match tokio::time::timeout(CALL_TIMEOUT, call).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(AttestError::Unavailable(format!(
            "cluster {cluster}: {what} failed: {e}"
        ))),
        Err(_) => Err(AttestError::Unavailable(format!(
            "cluster {cluster}: {what} did not answer within {}s",
            CALL_TIMEOUT.as_secs()
        ))),
    }
}
