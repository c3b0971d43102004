//! `GetBundle`, `SetFederatedBundle`, `GetAuthority`: the trust bundles
//! (read by any caller holding a role; federation set by a cluster-admin)
//! and the CA's signing certificate.

use meshid_identity::TrustBundle;
use meshid_proto::ca as pb;
use tonic::Status;

use super::access::Target;
use super::convert::{bundle_to_proto, unix_seconds};
use super::validate::{self, InvalidInput};
use super::{AdminService, status};
use crate::rbac::{Grants, Role};
use crate::store::{Change, KeyKind, SlotState, StoredBundle};

impl AdminService {
    fn bundle_response(&self, stored: &StoredBundle) -> Result<pb::GetBundleResponse, Status> {
        let bundle = TrustBundle::from_spiffe_json(stored.trust_domain.clone(), &stored.spiffe_json)
            .map_err(|e| {
                tracing::error!(trust_domain = %stored.trust_domain, error = %e, "stored bundle unreadable");
                Status::data_loss(format!(
                    "the stored bundle of {} is unreadable ({e}); set it again",
                    stored.trust_domain
                ))
            })?;
        Ok(pb::GetBundleResponse {
            bundle: Some(bundle_to_proto(&bundle, stored.sequence)),
            spiffe_json: stored.spiffe_json.clone(),
        })
    }

    pub(super) async fn get_bundle(
        &self,
        req: pb::GetBundleRequest,
    ) -> Result<pb::GetBundleResponse, Status> {
        let raw = req.trust_domain;
        let td = if raw.is_empty() {
            self.trust_domain.clone()
        } else {
            validate::trust_domain("trust_domain", &raw).map_err(|e| status::invalid(&e))?
        };
        match self.store.get_bundle(&td).await {
            Ok(Some(b)) => self.bundle_response(&b),
            Ok(None) if td == self.trust_domain => Err(Status::unavailable(format!(
                "the CA has not published the bundle of {td} yet; wait for it to finish starting"
            ))),
            Ok(None) => Err(Status::not_found(format!(
                "no bundle for trust domain {td}; set one with `meshid bundle set --trust-domain {td} --file bundle.json`"
            ))),
            Err(e) => Err(status::store(&e)),
        }
    }

    pub(super) async fn set_federated_bundle(
        &self,
        grants: &Grants,
        req: pb::SetFederatedBundleRequest,
    ) -> Result<pb::Bundle, Status> {
        let td = validate::trust_domain("trust_domain", &req.trust_domain)
            .map_err(|e| status::invalid(&e))?;
        let td_name = td.to_string();
        let target = Target {
            action: "bundle.set",
            tenant: "",
            target: &td_name,
        };
        self.require_write(grants, Role::ClusterAdmin, target)
            .await?;
        if td == self.trust_domain {
            return Err(status::invalid(&InvalidInput::OwnTrustDomain {
                field: "trust_domain",
                value: td,
            }));
        }
        let bundle = TrustBundle::from_spiffe_json(td.clone(), &req.spiffe_json).map_err(|e| {
            Status::invalid_argument(format!(
                "spiffe_json: {e}; pass the bundle endpoint's document as-is"
            ))
        })?;
        if bundle.x509_authorities.is_empty() && bundle.jwt_authorities.is_empty() {
            return Err(Status::invalid_argument(
                "spiffe_json holds no x509-svid or jwt-svid keys; a bundle needs at least one authority",
            ));
        }
        let existing = self
            .store
            .get_bundle(&td)
            .await
            .map_err(|e| status::store(&e))?;
        let previous = existing.as_ref().map_or(0, |b| b.sequence);
        let stored = StoredBundle {
            trust_domain: td.clone(),
            spiffe_json: bundle.to_spiffe_json().into_bytes(),
            sequence: previous + 1,
            updated_at: self.now(),
        };
        let sequence = stored.sequence;
        let change = Change::PutBundle {
            bundle: stored,
            expected_sequence: Some(previous),
        };
        self.write(grants, change, target).await?;
        if let Some(cache) = &self.federated {
            cache.invalidate();
        }
        tracing::info!(trust_domain = %td, sequence, "federated bundle set");
        Ok(bundle_to_proto(&bundle, sequence))
    }

    pub(super) async fn get_authority(&self) -> Result<pb::Authority, Status> {
        let slots = self
            .store
            .list_key_slots()
            .await
            .map_err(|e| status::store(&e))?;
        // This replica's active CA (any replica's on a bare store).
        let me = self.engine.as_ref().map(|e| e.replica().as_str());
        let active = |k: &&crate::store::KeySlot| {
            k.kind == KeyKind::X509
                && k.state == SlotState::Active
                && !k.public_pem.trim().is_empty()
        };
        let mine = slots
            .iter()
            .filter(active)
            .find(|k| me.is_none_or(|me| k.replica == me));
        let Some(active) = mine.or_else(|| slots.iter().find(active)) else {
            // Activation retires the old slot, then writes the new one: in
            // between the journal shows no active key, but this replica
            // signs with the authority it holds.
            if let Some(engine) = &self.engine {
                let current = engine.current().load();
                return Ok(pb::Authority {
                    trust_domain: self.trust_domain.to_string(),
                    cert_chain: current.cert_chain().iter().map(|c| c.to_vec()).collect(),
                    expires_at: unix_seconds(current.not_after()),
                    kind: self.authority_kind.clone(),
                });
            }
            return Err(Status::unavailable(
                "the CA has no active signing key yet; wait for it to finish starting",
            ));
        };
        let chain = meshid_identity::x509::pem_certs(&active.public_pem).map_err(|e| {
            Status::data_loss(format!(
                "the certificate chain of CA key slot {} is unreadable: {e}",
                active.id
            ))
        })?;
        Ok(pb::Authority {
            trust_domain: self.trust_domain.to_string(),
            cert_chain: chain.iter().map(|c| c.to_vec()).collect(),
            expires_at: unix_seconds(active.not_after),
            kind: self.authority_kind.clone(),
        })
    }
}
