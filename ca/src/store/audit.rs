//! The audit log (#16): every admin write and every issuance, appended in
//! the transaction of the change and hash-chained, plus the signed
//! checkpoints of the chain's head.
//!
//! Record `seq` (from 1, no gaps) holds the hash of record `seq - 1`
//! ([`GENESIS`] for the first); its own hash is [`record_hash`]. The
//! store keeps the chain's end in a head row so that a deleted tail is
//! detected too. A checkpoint signs [`checkpoint_message`] with the CA key.

mod json;

use std::time::SystemTime;

use meshid_identity::TrustDomain;
use sha2::{Digest, Sha256};

pub(crate) use json::{agent_json, binding_json, bundle_json, entry_json, issuances_json};
pub(crate) use json::{tenant_json, token_json};

/// The `prev_hash` of record 1.
pub const GENESIS: [u8; 32] = [0; 32];
/// Longest `before`/`after` kept, in bytes; a longer one is stored as a
/// JSON string of its start followed by `…(truncated)`.
pub const MAX_AUDIT_FIELD: usize = 64 * 1024;
/// Longest `actor`, `action`, `tenant`, `target` and `result`, in bytes
/// (a longer `result` is cut; the others are refused).
pub const MAX_AUDIT_SHORT: usize = 2048;
/// Most checkpoints [`Store::list_audit_checkpoints`](super::Store::list_audit_checkpoints)
/// returns (the newest ones).
pub const MAX_AUDIT_CHECKPOINTS: usize = 10_000;

/// What happened, as the caller tells it (the store adds `seq`, `at` and
/// the hashes).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditEvent {
    /// Who: `uid:<n>`, a SPIFFE ID, `k8s-user:<name>`, `config` or `ca:<replica>`.
    pub actor: String,
    /// What: `entry.create`, `svid.issue`, … (see the design's list).
    pub action: String,
    /// The tenant of the object; `""` for platform objects.
    pub tenant: String,
    /// Which object (entry ID, SPIFFE ID, tenant name, …).
    pub target: String,
    /// JSON of the object before the change, or `""`.
    pub before: String,
    /// JSON of the object after the change, or `""`.
    pub after: String,
    /// `ok`, `denied: …` or `failed: …`.
    pub result: String,
}

/// One record of the chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditRecord {
    /// Position in the chain, from 1.
    pub seq: i64,
    /// When it was appended (store clock, millisecond precision).
    pub at: SystemTime,
    /// What happened.
    pub event: AuditEvent,
    /// The hash of record `seq - 1` ([`GENESIS`] for seq 1).
    pub prev_hash: [u8; 32],
    /// [`record_hash`] of this record.
    pub hash: [u8; 32],
}

/// A signature over the chain's head at `seq`.
#[derive(Clone, PartialEq, Eq)]
pub struct AuditCheckpoint {
    /// The record signed (unique: one checkpoint per seq).
    pub seq: i64,
    /// That record's hash.
    pub hash: [u8; 32],
    /// When it was signed.
    pub at: SystemTime,
    /// The signing CA key's key ID.
    pub key_id: String,
    /// The signing CA certificate and its chain, PEM.
    pub cert_chain_pem: String,
    /// The signature over [`checkpoint_message`].
    pub signature: Vec<u8>,
}

impl std::fmt::Debug for AuditCheckpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditCheckpoint")
            .field("seq", &self.seq)
            .field("hash", &hex::encode(self.hash))
            .field("at", &self.at)
            .field("key_id", &self.key_id)
            .field("signature_len", &self.signature.len())
            .finish_non_exhaustive()
    }
}

/// Which records [`Store::list_audit`](super::Store::list_audit) returns;
/// every set field must match.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditFilter {
    /// Only records of these tenants (`""` is the platform); at most 1000.
    pub tenants: Option<Vec<String>>,
    /// Only records appended at or after this time.
    pub since: Option<SystemTime>,
    /// Only records about this SPIFFE ID: its target, or the
    /// `"spiffe_id"` of the object before or after.
    pub spiffe_id: Option<String>,
}

/// The chain's hash of one record: SHA-256 over `meshid-audit-v1\0`,
/// `prev`, `seq` and `at_ms` (i64 big-endian), then actor, action,
/// tenant, target, before, after and result, each as a u32 big-endian
/// length and its UTF-8 bytes.
pub fn record_hash(prev: &[u8; 32], seq: i64, at_ms: i64, e: &AuditEvent) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(b"meshid-audit-v1\0");
    h.update(prev);
    h.update(seq.to_be_bytes());
    h.update(at_ms.to_be_bytes());
    for field in [
        &e.actor, &e.action, &e.tenant, &e.target, &e.before, &e.after, &e.result,
    ] {
        put_str(&mut h, field);
    }
    h.finalize().into()
}

/// The bytes a checkpoint signs: `meshid-audit-checkpoint-v1\0`, the trust
/// domain (u32 big-endian length and bytes), `seq` (i64 big-endian),
/// `hash`, and `at_ms` (i64 big-endian).
pub fn checkpoint_message(td: &TrustDomain, seq: i64, hash: &[u8; 32], at_ms: i64) -> Vec<u8> {
    let td = td.as_str().as_bytes();
    let mut m = Vec::with_capacity(27 + 4 + td.len() + 8 + 32 + 8);
    m.extend_from_slice(b"meshid-audit-checkpoint-v1\0");
    m.extend_from_slice(&len_be(td));
    m.extend_from_slice(td);
    m.extend_from_slice(&seq.to_be_bytes());
    m.extend_from_slice(hash);
    m.extend_from_slice(&at_ms.to_be_bytes());
    m
}

fn put_str(h: &mut Sha256, s: &str) {
    h.update(len_be(s.as_bytes()));
    h.update(s.as_bytes());
}

/// A length as u32 big-endian (fields are bounded far below 4 GiB; a
/// longer one saturates, which no stored value reaches).
fn len_be(b: &[u8]) -> [u8; 4] {
    u32::try_from(b.len()).unwrap_or(u32::MAX).to_be_bytes()
}

/// What is stored for a `before`/`after` value: itself when it fits
/// [`MAX_AUDIT_FIELD`], else a JSON string of its start and `…(truncated)`.
pub(crate) fn bounded_json(s: String) -> String {
    if s.len() <= MAX_AUDIT_FIELD {
        return s;
    }
    let mut keep = MAX_AUDIT_FIELD - 64;
    loop {
        let head = cut(&s, keep);
        let encoded = serde_json::Value::String(format!("{head}…(truncated)")).to_string();
        if encoded.len() <= MAX_AUDIT_FIELD || keep == 0 {
            return encoded;
        }
        keep = keep.saturating_sub(encoded.len() - MAX_AUDIT_FIELD + 64);
    }
}

/// The longest start of `s` of at most `max` bytes that ends on a character boundary.
pub(crate) fn cut(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn hashes_cover_every_field_and_field_boundaries() {
        let e = AuditEvent {
            actor: "uid:0".into(),
            action: "entry.create".into(),
            ..AuditEvent::default()
        };
        let base = record_hash(&GENESIS, 1, 5, &e);
        assert_ne!(base, record_hash(&GENESIS, 2, 5, &e));
        assert_ne!(base, record_hash(&GENESIS, 1, 6, &e));
        assert_ne!(base, record_hash(&[1; 32], 1, 5, &e));
        let shifted = AuditEvent {
            actor: "uid:0entry.create".into(),
            action: String::new(),
            ..e.clone()
        };
        assert_ne!(base, record_hash(&GENESIS, 1, 5, &shifted));
    }

    #[test]
    fn long_values_are_cut_to_a_json_string() {
        let long = format!("\"{}\"", "\u{1}é".repeat(MAX_AUDIT_FIELD));
        let stored = bounded_json(long);
        assert!(stored.len() <= MAX_AUDIT_FIELD);
        let v: String = serde_json::from_str(&stored).unwrap();
        assert!(v.ends_with("…(truncated)"));
        assert_eq!(bounded_json("{}".into()), "{}");
    }

    #[test]
    fn checkpoint_message_is_framed() {
        let td = TrustDomain::new("example.org").unwrap();
        let m = checkpoint_message(&td, 7, &[9; 32], 11);
        assert!(m.starts_with(b"meshid-audit-checkpoint-v1\0\0\0\0\x0bexample.org"));
        assert_eq!(m.len(), 27 + 4 + 11 + 8 + 32 + 8);
    }
}
