//! The admin API's key rotation calls (`ListKeySlots`, `PrepareKey`,
//! `ActivateKey`, `TaintKey`, `RevokeKey`), handed to the rotation
//! [`Engine`], and their wire forms.

use meshid_proto::ca as pb;
use tonic::Status;

use super::convert::unix_seconds;
use crate::rotation::{Engine, LeaseError, RotationError, SlotView};
use crate::store::{KeyKind, KeySlot, SlotState};

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
