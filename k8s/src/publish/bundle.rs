//! The trust bundle as the `meshid-ca-root-cert` ConfigMap's data: Istio's
//! `root-cert.pem` key (the X.509 authorities, PEM) and the SPIFFE bundle
//! JSON, with the bundle's sequence in an annotation.

use std::collections::BTreeMap;

use meshid_identity::{BundleError, TrustBundle, TrustDomain};

/// The PEM key (Istio's name, so Istio-shaped workloads find it).
pub const ROOT_CERT_KEY: &str = "root-cert.pem";
/// The SPIFFE bundle JSON key.
pub const SPIFFE_KEY: &str = "bundle.spiffe";
/// The annotation holding the bundle's sequence number.
pub const SEQUENCE_ANNOTATION: &str = "meshid.io/bundle-sequence";

/// The bundle as published: what every namespace's ConfigMap holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Published {
    /// The SPIFFE bundle sequence number.
    pub sequence: i64,
    /// The X.509 authorities, PEM.
    pub root_pem: String,
    /// The SPIFFE bundle JSON, as the CA returned it.
    pub spiffe_json: String,
}

/// Why the CA's bundle cannot be published.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PublishError {
    /// The JSON is not a SPIFFE bundle of the trust domain.
    #[error("the CA's bundle is not a valid SPIFFE bundle: {0}")]
    Bundle(#[from] BundleError),
    /// The JSON is not UTF-8.
    #[error("the CA's bundle JSON is not UTF-8")]
    NotUtf8,
    /// No X.509 authority: nothing could be verified with it.
    #[error("the CA's bundle has no X.509 authority")]
    Empty,
}

// === impl Published ===

impl Published {
    /// Reads `GetBundle`'s answer (`sequence` from its `bundle`).
    pub fn new(td: &TrustDomain, sequence: i64, spiffe_json: &[u8]) -> Result<Self, PublishError> {
        let bundle = TrustBundle::from_spiffe_json(td.clone(), spiffe_json)?;
        let root_pem = bundle.to_pem();
        if root_pem.is_empty() {
            return Err(PublishError::Empty);
        }
        let spiffe_json =
            String::from_utf8(spiffe_json.to_vec()).map_err(|_| PublishError::NotUtf8)?;
        Ok(Self {
            sequence,
            root_pem,
            spiffe_json,
        })
    }

    /// The ConfigMap's `data`.
    pub fn data(&self) -> BTreeMap<String, String> {
        BTreeMap::from([
            (ROOT_CERT_KEY.to_owned(), self.root_pem.clone()),
            (SPIFFE_KEY.to_owned(), self.spiffe_json.clone()),
        ])
    }
}
