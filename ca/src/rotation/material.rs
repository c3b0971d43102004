//! The key material behind this replica's slots: where each generation's
//! keys live, making a new generation (a self-signed root, a JWT key),
//! loading one back after a restart, and the [`KeySlot`] that records it.
//!
//! Generation 1 keeps the names a CA used before the journal existed
//! (key slots `x509-ca` and `jwt`, the root in `ca.crt.pem`), so an
//! existing data directory is adopted as generation 1; later generations
//! are `x509-ca-<n>`, `jwt-<n>` and `ca-<n>.crt.pem`.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use meshid_identity::x509::{pem_certs, self_signed_ca, to_pem};
use meshid_identity::{CaTemplate, PrivateKey, TrustDomain};

use super::RotationError;
use super::journal::spki_to_pem;
use crate::authority::{Authority, JWT_KEY_SLOT, key_id};
use crate::keymanager::KeyManager;
use crate::store::{KeyKind, KeySlot, SlotState};
use crate::upstream::{CA_KEY_SLOT, CaMaterial, cert_facts};
use meshid_runtime::fs::write_atomic;

/// Where this replica's X.509 CA comes from.
#[derive(Debug, Clone)]
pub enum X509Source {
    /// Self-signed roots made here, one per generation, kept in
    /// `data_dir`, each valid for `ttl` (`ca_ttl`).
    SelfSigned {
        /// The data directory.
        data_dir: PathBuf,
        /// Life of a new root.
        ttl: Duration,
    },
    /// An intermediate issued elsewhere: it is prepared when it arrives
    /// (a replaced file, a renewal from the upstream CA), never made here.
    Upstream {
        /// Why `prepare` is refused: what to do instead.
        refusal: String,
    },
}

/// The key manager slot of generation `generation`'s X.509 key.
pub fn x509_key_slot(generation: u32) -> String {
    match generation {
        1 => CA_KEY_SLOT.to_owned(),
        n => format!("{CA_KEY_SLOT}-{n}"),
    }
}

/// What an intermediate from elsewhere records as its key slot: the
/// token's CA key, or `upstream` (the key is in the upstream's key file).
pub fn upstream_key_slot(keys: &dyn KeyManager) -> String {
    if keys.owns_ca_key() {
        CA_KEY_SLOT.to_owned()
    } else {
        "upstream".to_owned()
    }
}

/// The key manager slot of generation `generation`'s JWT key.
pub fn jwt_key_slot(generation: u32) -> String {
    match generation {
        1 => JWT_KEY_SLOT.to_owned(),
        n => format!("{JWT_KEY_SLOT}-{n}"),
    }
}

/// Where generation `generation`'s self-signed root is kept.
fn root_path(data_dir: &Path, generation: u32) -> PathBuf {
    match generation {
        1 => data_dir.join("ca.crt.pem"),
        n => data_dir.join(format!("ca-{n}.crt.pem")),
    }
}

fn material_error(what: impl std::fmt::Display) -> RotationError {
    RotationError::Material(what.to_string())
}

/// Makes generation `generation`'s self-signed root: a new key in the key
/// manager, the certificate (valid `ttl` from `now`) in the data directory.
pub fn mint_root(
    keys: &dyn KeyManager,
    td: &TrustDomain,
    data_dir: &Path,
    generation: u32,
    ttl: Duration,
    now: SystemTime,
) -> Result<CaMaterial, RotationError> {
    if keys.owns_ca_key() {
        return Err(mint_root_refusal(keys));
    }
    let slot = x509_key_slot(generation);
    let key = keys.generate_signer(&slot).map_err(material_error)?;
    let template = CaTemplate {
        trust_domain: td.clone(),
        common_name: format!("meshid root CA {generation}"),
        not_before: now,
        not_after: now + ttl,
        path_len: None,
    };
    let cert = key
        .sign_with(|k| self_signed_ca(&template, &k))
        .map_err(material_error)?;
    let path = root_path(data_dir, generation);
    write_atomic(&path, to_pem(std::slice::from_ref(&cert)).as_bytes(), 0o644)
        .map_err(|e| material_error(format!("{}: {e}", path.display())))?;
    tracing::info!(path = %path.display(), generation, "created a new self-signed root");
    Ok(CaMaterial {
        signing_cert: cert.clone(),
        intermediates: Vec::new(),
        roots: vec![cert],
        key,
        key_ref: keys.key_ref(&slot),
    })
}

/// Why no new root is made with `keys` (the CA key on a token).
pub fn mint_root_refusal(keys: &dyn KeyManager) -> RotationError {
    RotationError::NotSelfManaged(format!(
        "the X.509 CA key is on a PKCS#11 token ({}), which holds one CA key under one \
         label: a new self-signed root cannot be made there; rotate by having an enterprise \
         root sign a new intermediate (`meshid ca csr --hsm`, then `meshid ca import --hsm`)",
        keys.key_ref(CA_KEY_SLOT)
    ))
}

/// The material of this replica's X.509 `slot`, from the key manager and
/// the chain in the journal (a self-signed root or an intermediate whose
/// key the key manager holds).
pub fn load_x509(keys: &dyn KeyManager, slot: &KeySlot) -> Result<CaMaterial, RotationError> {
    let missing = || {
        material_error(format!(
            "the key of slot {} ({}) is gone; restore the data directory, or revoke the \
             slot's key {} and let the CA make a new one",
            slot.id, slot.key_ref, slot.key_id
        ))
    };
    let key = keys
        .load_signer(&slot.key_slot)
        .map_err(material_error)?
        .ok_or_else(missing)?;
    let chain = pem_certs(&slot.public_pem).map_err(material_error)?;
    let roots = pem_certs(&slot.roots_pem).map_err(material_error)?;
    let Some((signing_cert, rest)) = chain.split_first() else {
        return Err(material_error(format!(
            "slot {} has no certificate",
            slot.id
        )));
    };
    let matches = cert_facts(signing_cert).is_some_and(|(spki, _, _)| spki == key.public_key_der());
    if !matches {
        return Err(material_error(format!(
            "the certificate of slot {} does not match its key {}",
            slot.id, slot.key_ref
        )));
    }
    let intermediates = rest
        .iter()
        .filter(|c| !roots.contains(c))
        .cloned()
        .collect();
    Ok(CaMaterial {
        signing_cert: signing_cert.clone(),
        intermediates,
        roots,
        key,
        key_ref: slot.key_ref.clone(),
    })
}

/// Makes generation `generation`'s JWT key.
pub fn mint_jwt(keys: &dyn KeyManager, generation: u32) -> Result<PrivateKey, RotationError> {
    keys.generate(&jwt_key_slot(generation))
        .map_err(material_error)
}

/// The key of this replica's JWT `slot`.
pub fn load_jwt(keys: &dyn KeyManager, slot: &KeySlot) -> Result<PrivateKey, RotationError> {
    let key = keys
        .load(&slot.key_slot)
        .map_err(material_error)?
        .ok_or_else(|| {
            material_error(format!(
                "the JWT key of slot {} ({}) is gone; restore the data directory, or revoke the \
             slot's key {} and let the CA make a new one",
                slot.id, slot.key_ref, slot.key_id
            ))
        })?;
    if key_id(&key.public_key_der()) != slot.key_id {
        return Err(material_error(format!(
            "the JWT key {} does not match slot {}",
            slot.key_ref, slot.id
        )));
    }
    Ok(key)
}

/// The journal slot of X.509 generation `generation` signed by `authority`
/// (whose material it records), in `state` since `now`.
pub fn x509_slot(
    replica: &str,
    generation: u32,
    state: SlotState,
    authority: &Authority,
    key_slot: String,
    now: SystemTime,
) -> KeySlot {
    let material = authority.material();
    let roots = to_pem(&material.roots);
    let not_before = not_before(&material.signing_cert).unwrap_or(now);
    new_slot(
        replica,
        KeyKind::X509,
        generation,
        state,
        authority.x509_key_id().to_owned(),
        key_slot,
        material.key_ref.clone(),
        to_pem(&authority.cert_chain()),
        roots,
        (not_before, authority.not_after()),
        now,
    )
}

/// The journal slot of this replica's JWT generation `generation`, the
/// key `key` (in the key manager's slot of that generation), valid for
/// `validity`.
pub fn jwt_slot(
    keys: &dyn KeyManager,
    replica: &str,
    (generation, state): (u32, SlotState),
    key: &PrivateKey,
    validity: (SystemTime, SystemTime),
    now: SystemTime,
) -> KeySlot {
    let key_slot = jwt_key_slot(generation);
    new_slot(
        replica,
        KeyKind::Jwt,
        generation,
        state,
        key_id(&key.public_key_der()),
        key_slot.clone(),
        keys.key_ref(&key_slot),
        spki_to_pem(&key.public_key_der()),
        String::new(),
        validity,
        now,
    )
}

/// A certificate's notBefore.
fn not_before(der: &[u8]) -> Option<SystemTime> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    let secs = u64::try_from(cert.validity().not_before.timestamp()).ok()?;
    Some(SystemTime::UNIX_EPOCH + Duration::from_secs(secs))
}

#[allow(clippy::too_many_arguments)]
fn new_slot(
    replica: &str,
    kind: KeyKind,
    generation: u32,
    state: SlotState,
    key_id: String,
    key_slot: String,
    key_ref: String,
    public_pem: String,
    roots_pem: String,
    (not_before, not_after): (SystemTime, SystemTime),
    now: SystemTime,
) -> KeySlot {
    KeySlot {
        id: KeySlot::slot_id(replica, kind, generation),
        replica: replica.to_owned(),
        kind,
        generation,
        state,
        key_id,
        key_slot,
        key_ref,
        public_pem,
        roots_pem,
        not_before,
        not_after,
        prepared_at: now,
        activated_at: (state == SlotState::Active).then_some(now),
        retired_at: None,
        publish_until: None,
        tainted: false,
        updated_at: now,
    }
}
