//! The admin API's key rotation calls (`ListKeySlots`, `PrepareKey`,
//! `ActivateKey`, `TaintKey`, `RevokeKey`), handed to the rotation
//! [`Engine`], and their wire forms. The steps are a cluster-admin's; each
//! is recorded in the audit log after it ran (`key.prepare`, …).

use std::future::Future;

use meshid_proto::ca as pb;
use tonic::Status;

use super::AdminService;
use super::access::Target;
use super::convert::unix_seconds;
use crate::rbac::{Grants, Role};
use crate::rotation::{Engine, LeaseError, RotationError, SlotView};
use crate::store::{KeyKind, KeySlot, SlotState};

impl AdminService {
    pub(super) async fn list_key_slots(&self) -> Result<pb::ListKeySlotsResponse, Status> {
        let engine = engine(self.engine.as_ref())?;
        let views = engine.slots().await.map_err(|e| status(&e))?;
        Ok(pb::ListKeySlotsResponse {
            slots: views.iter().map(slot).collect(),
        })
    }

    /// Runs one step as a cluster-admin and records it (`target`: the key
    /// ID named, else the slot written).
    async fn step<F>(
        &self,
        grants: &Grants,
        action: &str,
        named: &str,
        run: impl FnOnce(Engine) -> F,
    ) -> Result<KeySlot, Status>
    where
        F: Future<Output = Result<KeySlot, RotationError>>,
    {
        let t = Target {
            action,
            tenant: "",
            target: named,
        };
        self.require_write(grants, Role::ClusterAdmin, t).await?;
        let engine = engine(self.engine.as_ref())?.clone();
        match run(engine).await {
            Ok(slot) => {
                let target = if named.is_empty() {
                    slot.id.as_str()
                } else {
                    named
                };
                let t = Target { target, ..t };
                self.record(grants, t, "ok".to_owned()).await;
                Ok(slot)
            }
            Err(e) => {
                let s = status(&e);
                self.record(grants, t, format!("failed: {}", s.message()))
                    .await;
                Err(s)
            }
        }
    }

    pub(super) async fn prepare_key(
        &self,
        grants: &Grants,
        req: pb::PrepareKeyRequest,
    ) -> Result<pb::KeySlot, Status> {
        let kind = kind(req.kind)?;
        let written = self
            .step(grants, "key.prepare", "", |e| async move {
                e.prepare(kind).await
            })
            .await?;
        Ok(with_live(engine(self.engine.as_ref())?, written).await)
    }

    pub(super) async fn activate_key(
        &self,
        grants: &Grants,
        req: pb::ActivateKeyRequest,
    ) -> Result<pb::KeySlot, Status> {
        let kind = kind(req.kind)?;
        let force = req.force;
        let written = self
            .step(grants, "key.activate", "", |e| async move {
                e.activate(kind, force).await
            })
            .await?;
        Ok(with_live(engine(self.engine.as_ref())?, written).await)
    }

    pub(super) async fn taint_key(
        &self,
        grants: &Grants,
        req: pb::TaintKeyRequest,
    ) -> Result<pb::KeySlot, Status> {
        let key_id = key_id(&req.key_id)?.to_owned();
        let id = key_id.clone();
        let written = self
            .step(grants, "key.taint", &key_id, |e| async move {
                e.taint(&id).await
            })
            .await?;
        Ok(with_live(engine(self.engine.as_ref())?, written).await)
    }

    pub(super) async fn revoke_key(
        &self,
        grants: &Grants,
        req: pb::RevokeKeyRequest,
    ) -> Result<pb::KeySlot, Status> {
        let key_id = key_id(&req.key_id)?.to_owned();
        let (id, force) = (key_id.clone(), req.force);
        let written = self
            .step(grants, "key.revoke", &key_id, |e| async move {
                e.revoke(&id, force).await
            })
            .await?;
        Ok(slot(&SlotView {
            slot: written,
            live_svids: 0,
        }))
    }
}

/// Longest key ID accepted in a request.
const MAX_KEY_ID_LEN: usize = 256;

/// The engine, or `Unavailable` when this service has none (tests that
/// run the admin API on a bare store).
pub(super) fn engine(engine: Option<&Engine>) -> Result<&Engine, Status> {
    engine.ok_or_else(|| {
        Status::unavailable("this admin service runs without the CA's rotation engine")
    })
}

/// The key kind of a request; unspecified or unknown is refused.
pub(super) fn kind(raw: i32) -> Result<KeyKind, Status> {
    match pb::KeyKind::try_from(raw) {
        Ok(pb::KeyKind::X509) => Ok(KeyKind::X509),
        Ok(pb::KeyKind::Jwt) => Ok(KeyKind::Jwt),
        _ => Err(Status::invalid_argument(
            "kind: name the key kind, x509 or jwt",
        )),
    }
}

/// A key ID of a request: 1..=256 printable characters.
pub(super) fn key_id(raw: &str) -> Result<&str, Status> {
    if raw.is_empty() || raw.len() > MAX_KEY_ID_LEN || raw.chars().any(char::is_control) {
        return Err(Status::invalid_argument(
            "key_id: give a key ID as `meshid ca rotation show` lists it",
        ));
    }
    Ok(raw)
}

/// The status of a refused or failed step.
pub(super) fn status(e: &RotationError) -> Status {
    let message = e.to_string();
    match e {
        RotationError::AlreadyPrepared { .. }
        | RotationError::NothingPrepared(_)
        | RotationError::NotPropagated { .. }
        | RotationError::NotSelfManaged(_)
        | RotationError::InUse { .. }
        | RotationError::LiveSvids { .. } => Status::failed_precondition(message),
        RotationError::UnknownKey(_) => Status::not_found(message),
        RotationError::Lease(LeaseError::Busy { .. } | LeaseError::Lost { .. }) => {
            Status::aborted(message)
        }
        RotationError::Store(s) => super::status::store(s),
        _ => {
            tracing::error!(error = %message, "rotation step failed");
            Status::internal(message)
        }
    }
}

/// The wire form of a slot.
pub(super) fn slot(view: &SlotView) -> pb::KeySlot {
    let s = &view.slot;
    let secs = |t: Option<std::time::SystemTime>| t.map_or(0, unix_seconds);
    pb::KeySlot {
        id: s.id.clone(),
        replica: s.replica.clone(),
        kind: match s.kind {
            KeyKind::X509 => pb::KeyKind::X509,
            KeyKind::Jwt => pb::KeyKind::Jwt,
        }
        .into(),
        state: match s.state {
            SlotState::Prepared => pb::KeySlotState::Prepared,
            SlotState::Active => pb::KeySlotState::Active,
            SlotState::Old => pb::KeySlotState::Old,
        }
        .into(),
        key_id: s.key_id.clone(),
        not_before: unix_seconds(s.not_before),
        not_after: unix_seconds(s.not_after),
        prepared_at: unix_seconds(s.prepared_at),
        activated_at: secs(s.activated_at),
        retired_at: secs(s.retired_at),
        published_until: secs(s.publish_until),
        tainted: s.tainted,
        live_svids: view.live_svids,
        subject: subject(s),
        key_ref: s.key_ref.clone(),
    }
}

/// A slot just written, with its live count.
pub(super) async fn with_live(engine: &Engine, written: KeySlot) -> pb::KeySlot {
    let live_svids = match engine.slots().await {
        Ok(views) => views
            .into_iter()
            .find(|v| v.slot.id == written.id)
            .map_or(0, |v| v.live_svids),
        Err(_) => 0,
    };
    slot(&SlotView {
        slot: written,
        live_svids,
    })
}

/// The X.509 signing certificate's subject; empty for JWT slots.
fn subject(s: &KeySlot) -> String {
    if s.kind != KeyKind::X509 {
        return String::new();
    }
    let Ok(chain) = meshid_identity::x509::pem_certs(&s.public_pem) else {
        return String::new();
    };
    chain
        .first()
        .and_then(|der| {
            x509_parser::parse_x509_certificate(der)
                .ok()
                .map(|(_, c)| c.subject().to_string())
        })
        .unwrap_or_default()
}
