//! Signing a downstream meshid CA's intermediate: [`Authority::sign_downstream_ca`].
//!
//! The certificate is built from the CA's own template
//! ([`meshid_identity::x509::sign_ca`]): basicConstraints CA with pathLen 0,
//! keyUsage keyCertSign + cRLSign, the URI SAN `spiffe://<td>` of this
//! (the same) trust domain. From the request only the public key and the
//! subject CommonName are taken. On the downstream side,
//! [`Authority::with_jwt_authorities`] adds the upstream's JWT keys to the
//! bundle it publishes.

use std::time::{Duration, SystemTime};

use meshid_identity::JwtAuthority;
use meshid_identity::x509::{CaTemplate, sign_ca};
use rustls_pki_types::CertificateDer;

use super::{Authority, AuthorityError, ttl};

/// The subject CommonName when the request carries none.
pub const DEFAULT_DOWNSTREAM_CN: &str = "meshid downstream CA";

/// A downstream CA's signed intermediate.
#[derive(Debug, Clone)]
pub struct IssuedDownstreamCa {
    /// The new intermediate first, then this CA's chain up to (not
    /// including) the root.
    pub chain: Vec<CertificateDer<'static>>,
    /// The new intermediate's notAfter.
    pub not_after: SystemTime,
    /// The signing key's ID in the key journal, for the issuance record.
    pub ca_key_id: String,
}

// === impl Authority ===

impl Authority {
    /// Signs an intermediate CA certificate (pathLen 0) for the key
    /// `public_key_der` (SubjectPublicKeyInfo DER, from a verified CA CSR)
    /// named `common_name`, valid for `lifetime` but never past this CA's
    /// own notAfter. Refused when a pathLenConstraint in this CA's chain
    /// forbids one more CA below it.
    pub fn sign_downstream_ca(
        &self,
        public_key_der: &[u8],
        common_name: Option<&str>,
        lifetime: Duration,
        now: SystemTime,
    ) -> Result<IssuedDownstreamCa, AuthorityError> {
        self.check_may_issue_ca()?;
        let not_after =
            ttl::clamp_to_ca(now, lifetime, self.ca_not_after).ok_or(AuthorityError::CaExpired)?;
        let template = CaTemplate {
            trust_domain: self.config.trust_domain.clone(),
            common_name: common_name.unwrap_or(DEFAULT_DOWNSTREAM_CN).to_owned(),
            not_before: now,
            not_after,
            path_len: Some(0),
        };
        let cert = self.key_pair.sign_with(|key| {
            sign_ca(&template, public_key_der, &self.material.signing_cert, &key)
        })?;
        let mut chain = Vec::with_capacity(1 + self.chain_after_leaf.len());
        chain.push(cert);
        chain.extend(self.chain_after_leaf.iter().cloned());
        Ok(IssuedDownstreamCa {
            chain,
            not_after,
            ca_key_id: self.x509_key_id.clone(),
        })
    }

    /// Adds `more` JWT keys (an upstream meshid CA's) to the bundle this
    /// authority publishes, after its own, each key ID once: workloads of a
    /// downstream CA then verify the upstream's JWT-SVIDs too.
    pub fn with_jwt_authorities(mut self, more: &[JwtAuthority]) -> Self {
        for key in more {
            let known = self
                .bundle
                .jwt_authorities
                .iter()
                .any(|k| k.key_id == key.key_id);
            if !known {
                self.bundle.jwt_authorities.push(key.clone());
            }
        }
        self
    }

    /// Every CA certificate from the signing certificate up (the root
    /// excluded unless it is the signing certificate) allows at least one
    /// more CA below it: the one at depth `k` (0 = the signing certificate)
    /// then has `k + 1` CAs under it, which its pathLenConstraint must allow.
    fn check_may_issue_ca(&self) -> Result<(), AuthorityError> {
        let mut chain = vec![&self.material.signing_cert];
        if !self.material.signing_cert_is_root() {
            chain.extend(self.material.intermediates.iter());
        }
        for (depth, der) in chain.into_iter().enumerate() {
            let (_, cert) = x509_parser::parse_x509_certificate(der)
                .map_err(|_| AuthorityError::BadCa("a CA certificate is unreadable".into()))?;
            let path_len = cert
                .basic_constraints()
                .ok()
                .flatten()
                .and_then(|bc| bc.value.path_len_constraint);
            if let Some(limit) = path_len
                && usize::try_from(limit).unwrap_or(usize::MAX) <= depth
            {
                let which = if depth == 0 {
                    "this CA's own certificate".to_owned()
                } else {
                    format!("the CA certificate {depth} above this CA's own")
                };
                return Err(AuthorityError::DownstreamForbidden(format!(
                    "{which} ({}) has pathLenConstraint {limit}, so no CA may be issued below \
                     this CA; ask the issuing PKI for an intermediate with a larger pathlen \
                     (e.g. pathlen:1) to run downstream CAs under it",
                    cert.subject()
                )));
            }
        }
        Ok(())
    }
}
