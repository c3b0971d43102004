//! [`Change`]: one admin write that [`Store::audited`](super::Store::audited)
//! applies together with its audit record, and [`Changed`], what it
//! returns.

use meshid_identity::SpiffeId;

use super::model::{Agent, EntryUpdate, JoinToken, NewEntry, RegistrationEntry, StoredBundle};
use super::tenancy::{RoleBinding, Tenant};

/// An admin write, as the matching plain [`Store`](super::Store) method
/// would do it.
#[derive(Debug, Clone)]
pub enum Change {
    /// [`Store::create_entry`](super::Store::create_entry).
    CreateEntry(NewEntry),
    /// [`Store::update_entry`](super::Store::update_entry).
    UpdateEntry {
        /// The entry.
        id: String,
        /// What changes.
        update: EntryUpdate,
        /// The revision it must still have.
        expected_revision: Option<i64>,
    },
    /// [`Store::delete_entry`](super::Store::delete_entry).
    DeleteEntry(String),
    /// [`Store::create_join_token`](super::Store::create_join_token).
    CreateJoinToken(JoinToken),
    /// [`Store::set_agent_banned`](super::Store::set_agent_banned) to `true`.
    BanAgent(SpiffeId),
    /// [`Store::delete_agent`](super::Store::delete_agent) (evict).
    DeleteAgent(SpiffeId),
    /// [`Store::put_bundle`](super::Store::put_bundle).
    PutBundle {
        /// The bundle.
        bundle: StoredBundle,
        /// The sequence check.
        expected_sequence: Option<i64>,
    },
    /// Creates a tenant (`created_at` stamped by the store; the name must
    /// be free and fewer than [`MAX_TENANTS`](super::MAX_TENANTS) exist).
    CreateTenant(Tenant),
    /// Deletes a tenant and its role bindings; refused with
    /// [`StoreError::Conflict`](super::StoreError::Conflict) while entries,
    /// agents or unused unexpired join tokens of it exist.
    DeleteTenant(String),
    /// Stores a role binding (`created_at` stamped by the store); its
    /// tenant must exist, the same binding twice →
    /// [`StoreError::AlreadyExists`](super::StoreError::AlreadyExists).
    Bind(RoleBinding),
    /// Deletes the binding with this subject, role and tenant
    /// (`created_at` is ignored); unknown → `NotFound`.
    Unbind(RoleBinding),
}

impl Change {
    /// The audit action of this change (`entry.create`, …).
    pub fn action(&self) -> &'static str {
        match self {
            Self::CreateEntry(_) => "entry.create",
            Self::UpdateEntry { .. } => "entry.update",
            Self::DeleteEntry(_) => "entry.delete",
            Self::CreateJoinToken(_) => "token.create",
            Self::BanAgent(_) => "agent.ban",
            Self::DeleteAgent(_) => "agent.evict",
            Self::PutBundle { .. } => "bundle.set",
            Self::CreateTenant(_) => "tenant.create",
            Self::DeleteTenant(_) => "tenant.delete",
            Self::Bind(_) => "rbac.bind",
            Self::Unbind(_) => "rbac.unbind",
        }
    }
}

/// What an audited [`Change`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Changed {
    /// The entry as stored (created or updated), or as it was (deleted).
    Entry(RegistrationEntry),
    /// The join token was stored.
    JoinToken,
    /// The agent before the change (banned or evicted).
    Agent(Agent),
    /// The bundle was written.
    Bundle,
    /// The tenant as stored (created) or as it was (deleted).
    Tenant(Tenant),
    /// The binding as stored (bound) or as it was (unbound).
    Binding(RoleBinding),
}
