//! `meshid k8s webhook`: the sidecar-injection webhook, a mutating
//! admission webhook (`admission.k8s.io/v1`) served over TLS with the
//! webhook's own SVID, and the offline `meshid k8s inject`.
//!
//! ```text
//!  API server ──POST /inject (AdmissionReview)──▶ server ─▶ review ─▶ inject
//!                  TLS: cert::SvidResolver ◀── identity source     │
//!                       (the SVID, hot-swapped)          sidecar + proxy_config
//! ```
//!
//! A pod is injected with the `meshid-proxy` native sidecar, the agent's
//! socket directory, its proxy config (an annotation read back through the
//! downward API) and the namespace's policy ConfigMap. Pods carrying
//! `meshid.io/status`, a `meshid-proxy` init container, `meshid.io/inject:
//! "false"` (label or annotation) or `hostNetwork: true` are left alone.

pub mod cert;
pub mod config;
pub mod inject;
pub mod manifest;
pub mod proxy_config;
pub mod review;
pub mod run;
pub mod server;
pub mod sidecar;

pub use config::{InjectConfig, WebhookConfig};
pub use inject::{Outcome, inject, patch};
pub use manifest::inject_manifests;
pub use run::{Running, start};

/// Why a pod cannot be injected (the webhook refuses it with this message).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum InjectError {
    /// The object is not a pod (template) the webhook can read.
    #[error("cannot read the pod: {0}")]
    Pod(String),
    /// A `meshid.io/…` annotation is malformed.
    #[error("{0}")]
    Annotation(String),
    /// The listeners' ports collide.
    #[error("{0}")]
    Ports(String),
    /// The pod already uses a name the sidecar needs.
    #[error("{0}")]
    Conflict(String),
    /// The proxy would refuse the generated config.
    #[error("the generated proxy config is refused by the proxy: {0}")]
    ProxyConfig(String),
    /// An error in one document of a manifest.
    #[error("document {index}: {source}")]
    InDocument {
        /// The document, from 1.
        index: usize,
        /// What went wrong.
        source: Box<InjectError>,
    },
}

impl InjectError {
    fn in_document(self, index: usize) -> Self {
        Self::InDocument {
            index,
            source: Box::new(self),
        }
    }
}
