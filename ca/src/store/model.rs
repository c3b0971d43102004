//! What the CA keeps: registration entries, agents, join tokens, issuance
//! records, trust bundles, and the CA key journal with the leases that
//! fence its writers.

use std::fmt;
use std::time::{Duration, SystemTime};

use meshid_identity::{Selector, SpiffeId, TrustDomain};

/// Most selectors one entry or agent may carry.
pub const MAX_SELECTORS: usize = 64;
/// Most DNS names one entry may carry.
pub const MAX_DNS_NAMES: usize = 64;
/// Most trust domains one entry may federate with.
pub const MAX_FEDERATES_WITH: usize = 64;
/// Most parent IDs one sync query may ask about.
pub const MAX_SYNC_PARENTS: usize = 1000;
/// Most entry IDs one [`Store::get_entries`](super::Store::get_entries) call may name.
pub const MAX_GET_ENTRIES: usize = 1000;
/// Largest page a list call returns.
pub const MAX_PAGE_LIMIT: u32 = 1000;
/// Longest entry owner ([`RegistrationEntry::owner`]), in bytes.
pub const MAX_OWNER_LEN: usize = 128;

/// Why `owner` is not a valid [`RegistrationEntry::owner`]: at most
/// [`MAX_OWNER_LEN`] bytes of `a-z`, `0-9`, `.`, `_`, `-` and `/`; empty
/// (an operator's entry) is valid. `None` when it is valid.
pub fn owner_problem(owner: &str) -> Option<&'static str> {
    if owner.len() > MAX_OWNER_LEN {
        return Some("is longer than 128 bytes");
    }
    let allowed = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-/".contains(&b);
    if !owner.bytes().all(allowed) {
        return Some("may hold only a-z, 0-9, '.', '_', '-' and '/' (e.g. k8s/prod)");
    }
    None
}

/// A registration entry: "a workload (or node) whose parent is
/// `parent_id` and that shows all of `selectors` gets `spiffe_id`".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistrationEntry {
    /// Store-assigned opaque ID (32 lowercase hex chars).
    pub id: String,
    /// The identity issued to matching workloads.
    pub spiffe_id: SpiffeId,
    /// The agent (or node alias) allowed to serve this entry.
    pub parent_id: SpiffeId,
    /// Sorted, de-duplicated selectors; all must match.
    pub selectors: Vec<Selector>,
    /// X.509-SVID lifetime (whole seconds; zero means the CA default).
    pub x509_ttl: Duration,
    /// JWT-SVID lifetime (whole seconds; zero means the CA default).
    pub jwt_ttl: Duration,
    /// Extra DNS SANs for the X.509-SVID.
    pub dns_names: Vec<String>,
    /// The identity may call the admin API.
    pub admin: bool,
    /// Foreign trust domains whose bundles are served with this SVID.
    pub federates_with: Vec<TrustDomain>,
    /// The identity may mint SVIDs for a downstream CA.
    pub downstream: bool,
    /// Who manages the entry: empty for an operator's, `k8s/<cluster>` for
    /// a Kubernetes controller (see [`owner_problem`] for the syntax).
    pub owner: String,
    /// The tenant the entry belongs to; `""` for a platform entry. Set at
    /// creation, never changed by an update.
    pub tenant: String,
    /// Starts at 1; bumped by every update (optimistic concurrency).
    pub revision: i64,
    /// When the entry was created.
    pub created_at: SystemTime,
    /// When the entry was last changed.
    pub updated_at: SystemTime,
}

/// The caller-chosen fields of a new registration entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewEntry {
    /// See [`RegistrationEntry::spiffe_id`].
    pub spiffe_id: SpiffeId,
    /// See [`RegistrationEntry::parent_id`].
    pub parent_id: SpiffeId,
    /// At least one, at most [`MAX_SELECTORS`]; order and duplicates do not matter.
    pub selectors: Vec<Selector>,
    /// See [`RegistrationEntry::x509_ttl`].
    pub x509_ttl: Duration,
    /// See [`RegistrationEntry::jwt_ttl`].
    pub jwt_ttl: Duration,
    /// See [`RegistrationEntry::dns_names`].
    pub dns_names: Vec<String>,
    /// See [`RegistrationEntry::admin`].
    pub admin: bool,
    /// See [`RegistrationEntry::federates_with`].
    pub federates_with: Vec<TrustDomain>,
    /// See [`RegistrationEntry::downstream`].
    pub downstream: bool,
    /// See [`RegistrationEntry::owner`].
    pub owner: String,
    /// See [`RegistrationEntry::tenant`]: `""` or a tenant name.
    pub tenant: String,
}

impl NewEntry {
    /// An entry with the given IDs and selectors and defaults elsewhere.
    pub fn new(spiffe_id: SpiffeId, parent_id: SpiffeId, selectors: Vec<Selector>) -> Self {
        Self {
            spiffe_id,
            parent_id,
            selectors,
            x509_ttl: Duration::ZERO,
            jwt_ttl: Duration::ZERO,
            dns_names: Vec::new(),
            admin: false,
            federates_with: Vec::new(),
            downstream: false,
            owner: String::new(),
            tenant: String::new(),
        }
    }
}

/// A partial change to an entry: `None` leaves a field as it is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EntryUpdate {
    /// New SPIFFE ID.
    pub spiffe_id: Option<SpiffeId>,
    /// New parent ID.
    pub parent_id: Option<SpiffeId>,
    /// New selector set (replaces the old one).
    pub selectors: Option<Vec<Selector>>,
    /// New X.509-SVID lifetime.
    pub x509_ttl: Option<Duration>,
    /// New JWT-SVID lifetime.
    pub jwt_ttl: Option<Duration>,
    /// New DNS names.
    pub dns_names: Option<Vec<String>>,
    /// New admin flag.
    pub admin: Option<bool>,
    /// New federated trust domains.
    pub federates_with: Option<Vec<TrustDomain>>,
    /// New downstream flag.
    pub downstream: Option<bool>,
    /// New owner (`Some("")` makes it an operator's entry).
    pub owner: Option<String>,
}

/// Which entries [`Store::list_entries`](super::Store::list_entries) returns;
/// every set field must match.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EntryFilter {
    /// Only entries with this parent.
    pub parent_id: Option<SpiffeId>,
    /// Only entries with this SPIFFE ID.
    pub spiffe_id: Option<SpiffeId>,
    /// Only entries that carry this selector (among others).
    pub selector: Option<Selector>,
    /// Only entries with exactly this owner (`Some("")`: only operators').
    pub owner: Option<String>,
    /// Only entries whose tenant is one of these (`""` is the platform);
    /// at most [`MAX_FILTER_TENANTS`]. `None`: every tenant.
    pub tenants: Option<Vec<String>>,
}

/// Most tenants one [`EntryFilter::tenants`] (or audit filter) may name.
pub const MAX_FILTER_TENANTS: usize = 1000;

/// Keyset paging: items come in key order, `after` is the last key of the
/// previous page (the `next` cursor it returned).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page {
    /// Return only items whose key sorts after this cursor.
    pub after: Option<String>,
    /// Page size; clamped to `1..=1000`.
    pub limit: u32,
}

impl Page {
    /// The first page of `limit` items.
    pub fn first(limit: u32) -> Self {
        Self { after: None, limit }
    }

    /// The page after cursor `after`.
    pub fn after(after: impl Into<String>, limit: u32) -> Self {
        Self {
            after: Some(after.into()),
            limit,
        }
    }

    /// The page size actually used.
    pub fn clamped_limit(&self) -> u32 {
        self.limit.clamp(1, MAX_PAGE_LIMIT)
    }
}

impl Default for Page {
    fn default() -> Self {
        Self::first(100)
    }
}

/// An attested node agent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Agent {
    /// The agent's SPIFFE ID (primary key).
    pub spiffe_id: SpiffeId,
    /// Which node attestor vouched for it (`join_token`, `k8s_psat`, …).
    pub attestation_type: String,
    /// Serial (hex) of the agent's current SVID: the one issued last (at
    /// attestation or renewal).
    pub serial: String,
    /// Serial of the SVID the agent renewed from, still accepted until the
    /// agent first calls with `serial` (then cleared); `None` otherwise.
    pub previous_serial: Option<String>,
    /// When that SVID expires.
    pub expires_at: SystemTime,
    /// A banned agent may not renew or re-attest.
    pub banned: bool,
    /// Node selectors from attestation.
    pub selectors: Vec<Selector>,
    /// The tenant of the join token it attested with; `""` for a
    /// platform agent (every `k8s_psat` agent).
    pub tenant: String,
    /// First attestation (kept across upserts).
    pub created_at: SystemTime,
    /// Last change.
    pub updated_at: SystemTime,
}

/// A one-time join token. Only the SHA-256 of its secret is stored.
#[derive(Clone, PartialEq, Eq)]
pub struct JoinToken {
    /// Public token ID; becomes part of the agent ID.
    pub id: String,
    /// SHA-256 of the secret (32 bytes).
    pub hash: Vec<u8>,
    /// Optional node alias the agent also gets.
    pub spiffe_id: Option<SpiffeId>,
    /// After this the token is refused.
    pub expires_at: SystemTime,
    /// When it was consumed; `None` while unused.
    pub used_at: Option<SystemTime>,
    /// The tenant the agent will belong to; `""` for a platform agent.
    pub tenant: String,
}

impl fmt::Debug for JoinToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JoinToken")
            .field("id", &self.id)
            .field("hash", &"...")
            .field("spiffe_id", &self.spiffe_id)
            .field("expires_at", &self.expires_at)
            .field("used_at", &self.used_at)
            .field("tenant", &self.tenant)
            .finish()
    }
}

/// One issued certificate, for audit and revocation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuanceRecord {
    /// Certificate serial (hex); unique.
    pub serial: String,
    /// The identity in the certificate.
    pub spiffe_id: SpiffeId,
    /// The agent that asked for it, if any.
    pub agent_id: Option<SpiffeId>,
    /// The entry it was issued for, if any.
    pub entry_id: Option<String>,
    /// Certificate expiry.
    pub not_after: SystemTime,
    /// When it was signed.
    pub issued_at: SystemTime,
    /// The [`KeySlot::key_id`] of the key that signed it; `None` if not
    /// known (records written before the key journal).
    pub ca_key_id: Option<String>,
    /// The tenant of the entry it was issued for; `""` for the platform.
    pub tenant: String,
}

/// A trust bundle in SPIFFE bundle JSON form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredBundle {
    /// Whose bundle this is.
    pub trust_domain: TrustDomain,
    /// The SPIFFE bundle document.
    pub spiffe_json: Vec<u8>,
    /// Bundle sequence number, used for optimistic concurrency.
    pub sequence: i64,
    /// Last change.
    pub updated_at: SystemTime,
}

/// The life of a CA key slot: a key is `Prepared` (published in the bundle,
/// not signing yet), then `Active` (signing), then `Old` (no longer
/// signing; kept until what it signed has expired).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SlotState {
    /// Made and published, not signing yet.
    Prepared,
    /// Signing.
    Active,
    /// Retired from signing.
    Old,
}

impl SlotState {
    /// The name stored in the database and shown to operators.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Prepared => "prepared",
            Self::Active => "active",
            Self::Old => "old",
        }
    }

    /// The state named `s`; `None` for anything else.
    pub fn parse(s: &str) -> Option<Self> {
        [Self::Prepared, Self::Active, Self::Old]
            .into_iter()
            .find(|state| state.as_str() == s)
    }
}

impl std::fmt::Display for SlotState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which signing key a [`KeySlot`] holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum KeyKind {
    /// An X.509 CA: signs X.509-SVIDs.
    X509,
    /// A JWT-SVID signing key.
    Jwt,
}

impl KeyKind {
    /// The name stored in the database and shown to operators.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::X509 => "x509",
            Self::Jwt => "jwt",
        }
    }

    /// The kind named `s`; `None` for anything else.
    pub fn parse(s: &str) -> Option<Self> {
        [Self::X509, Self::Jwt]
            .into_iter()
            .find(|k| k.as_str() == s)
    }
}

impl std::fmt::Display for KeyKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One slot of the CA key journal, shared by every replica: a signing key
/// of one replica, its public half, and where it is in its life
/// ([`SlotState`]). The store never holds private key bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeySlot {
    /// `<replica>/<kind>/<generation>` (unique; [`KeySlot::slot_id`]).
    pub id: String,
    /// The CA replica that holds the private key.
    pub replica: String,
    /// X.509 CA or JWT key.
    pub kind: KeyKind,
    /// Counts up from 1 per replica and kind.
    pub generation: u32,
    /// Where the slot is in its life.
    pub state: SlotState,
    /// X.509: hex of the keyIdentifier written in the AuthorityKeyIdentifier
    /// of leaves this key signs; JWT: the `kid`. Not unique: replicas that
    /// share one intermediate (from the same files) have slots with the
    /// same key ID.
    pub key_id: String,
    /// The key manager slot name of the private key (`x509-ca`, `jwt-2`, …).
    pub key_slot: String,
    /// Where the key lives (path or token label; never key bytes).
    pub key_ref: String,
    /// X.509: the CA chain, signing certificate first, up to and including
    /// the root, PEM. JWT: the public key as a SubjectPublicKeyInfo PEM.
    pub public_pem: String,
    /// X.509: the trust anchors this slot puts in the bundle, PEM; empty
    /// for JWT.
    pub roots_pem: String,
    /// Start of the key's (certificate's) validity.
    pub not_before: SystemTime,
    /// End of the key's validity: the chain's earliest notAfter (X.509) or
    /// the JWT key's planned end of life.
    pub not_after: SystemTime,
    /// When it was made and published.
    pub prepared_at: SystemTime,
    /// When it started signing; `None` while prepared.
    pub activated_at: Option<SystemTime>,
    /// When it stopped signing; `None` unless old.
    pub retired_at: Option<SystemTime>,
    /// Old slots: the bundle keeps the key until this time (the last
    /// SVID it signed has expired by then).
    pub publish_until: Option<SystemTime>,
    /// Suspected compromised: agents re-issue everything it signed at once.
    pub tainted: bool,
    /// Last change.
    pub updated_at: SystemTime,
}

impl KeySlot {
    /// The slot ID of `replica`'s `generation`th key of `kind`.
    pub fn slot_id(replica: &str, kind: KeyKind, generation: u32) -> String {
        format!("{replica}/{kind}/{generation}")
    }
}

/// A named lease held by one replica until `expires_at`. Every write made
/// under it ([`Store::put_key_slot`](super::Store::put_key_slot)) is fenced
/// by `token`: it fails once another holder has taken the lease, even if
/// this holder has not noticed yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    /// The lease's name (`rotation`).
    pub name: String,
    /// Who holds it (a replica ID).
    pub holder: String,
    /// Grows by one every time the lease changes hands or is re-taken
    /// after expiry; the fencing token.
    pub token: i64,
    /// When it lapses unless renewed.
    pub expires_at: SystemTime,
}

#[cfg(test)]
mod tests {
    use super::{MAX_OWNER_LEN, SlotState, owner_problem};

    #[test]
    fn owners_are_short_lowercase_paths() {
        for good in [
            "",
            "k8s/demo",
            "k8s/prod-eu.1_a",
            &"a".repeat(MAX_OWNER_LEN),
        ] {
            assert_eq!(owner_problem(good), None, "{good:?}");
        }
        for bad in [
            "K8s/demo",
            "k8s demo",
            "k8s:demo",
            "é",
            "a\n",
            &"a".repeat(MAX_OWNER_LEN + 1),
        ] {
            assert!(owner_problem(bad).is_some(), "{bad:?}");
        }
    }

    #[test]
    fn slot_states_round_trip_by_name_and_nothing_else_parses() {
        for s in [SlotState::Prepared, SlotState::Active, SlotState::Old] {
            assert_eq!(SlotState::parse(s.as_str()), Some(s));
            assert_eq!(s.to_string(), s.as_str());
        }
        for bad in ["", "ACTIVE", "bogus", "active "] {
            assert_eq!(SlotState::parse(bad), None, "{bad:?}");
        }
    }
}
