//! [`Store::audited`](crate::store::Store::audited): one admin write and
//! its audit record in one transaction. The write runs the same code as
//! its plain store method (the `*_in` functions of each table's module);
//! the record is appended after it, so a write that fails appends
//! nothing.
//!
//! The chain's head is locked first: audited writes of every replica run
//! one at a time, which also makes the tenant and binding limits exact.

use super::{BEGIN, Conn, This};
use super::{agents, audit, bindings, bundles, entries, tenants, tokens};
use crate::store::audit::{
    AuditEvent, agent_json, binding_json, bundle_json, entry_json, tenant_json, token_json,
};
use crate::store::{Change, Changed, StoreError, codec};

/// What a change did and the JSON of its object before and after (`""`
/// where there is none).
struct Applied {
    changed: Changed,
    before: String,
    after: String,
}

pub(super) async fn audited(
    s: &This,
    change: Change,
    event: AuditEvent,
) -> Result<Changed, StoreError> {
    // Checked before the transaction: a bad event must not cost a write.
    let mut event = audit::normalize(event)?;
    let mut tx = s.pool.begin_with(BEGIN).await?;
    let head = audit::lock_head(&mut tx).await?;
    let Applied {
        changed,
        before,
        after,
    } = apply(s, &mut tx, change).await?;
    if event.before.is_empty() {
        event.before = before;
    }
    if event.after.is_empty() {
        event.after = after;
    }
    let event = audit::normalize(event)?;
    let at_ms = codec::to_ms(s.clock.now())?;
    audit::append_after(&mut tx, head, at_ms, vec![event]).await?;
    tx.commit().await?;
    Ok(changed)
}

/// Runs `change` on `conn`.
async fn apply(s: &This, conn: &mut Conn, change: Change) -> Result<Applied, StoreError> {
    let none = String::new;
    Ok(match change {
        Change::CreateEntry(new) => {
            let e = entries::create_in(s, conn, new).await?;
            Applied {
                after: entry_json(&e),
                before: none(),
                changed: Changed::Entry(e),
            }
        }
        Change::UpdateEntry {
            id,
            update,
            expected_revision,
        } => {
            let (old, e) = entries::update_in(s, conn, &id, update, expected_revision).await?;
            Applied {
                before: entry_json(&old),
                after: entry_json(&e),
                changed: Changed::Entry(e),
            }
        }
        Change::DeleteEntry(id) => {
            let old = entries::delete_in(conn, &id).await?;
            Applied {
                before: entry_json(&old),
                after: none(),
                changed: Changed::Entry(old),
            }
        }
        Change::CreateJoinToken(token) => {
            tokens::create_in(conn, &token).await?;
            Applied {
                before: none(),
                after: token_json(&token),
                changed: Changed::JoinToken,
            }
        }
        Change::BanAgent(id) => {
            let old = agents::get_in(conn, &id)
                .await?
                .ok_or_else(|| agent_not_found(&id))?;
            agents::set_banned_in(s, conn, &id, true).await?;
            let mut now = old.clone();
            now.banned = true;
            Applied {
                before: agent_json(&old),
                after: agent_json(&now),
                changed: Changed::Agent(old),
            }
        }
        Change::DeleteAgent(id) => {
            let old = agents::get_in(conn, &id)
                .await?
                .ok_or_else(|| agent_not_found(&id))?;
            agents::delete_in(conn, &id).await?;
            Applied {
                before: agent_json(&old),
                after: none(),
                changed: Changed::Agent(old),
            }
        }
        Change::PutBundle {
            bundle,
            expected_sequence,
        } => {
            let old = bundles::get_in(conn, &bundle.trust_domain).await?;
            bundles::put_in(conn, &bundle, expected_sequence).await?;
            Applied {
                before: old.as_ref().map(bundle_json).unwrap_or_default(),
                after: bundle_json(&bundle),
                changed: Changed::Bundle,
            }
        }
        Change::CreateTenant(tenant) => {
            let t = tenants::create_in(s, conn, tenant).await?;
            Applied {
                before: none(),
                after: tenant_json(&t),
                changed: Changed::Tenant(t),
            }
        }
        Change::DeleteTenant(name) => {
            let old = tenants::delete_in(s, conn, &name).await?;
            Applied {
                before: tenant_json(&old),
                after: none(),
                changed: Changed::Tenant(old),
            }
        }
        Change::Bind(binding) => {
            let b = bindings::bind_in(s, conn, binding).await?;
            Applied {
                before: none(),
                after: binding_json(&b),
                changed: Changed::Binding(b),
            }
        }
        Change::Unbind(binding) => {
            let old = bindings::unbind_in(conn, &binding).await?;
            Applied {
                before: binding_json(&old),
                after: none(),
                changed: Changed::Binding(old),
            }
        }
    })
}

fn agent_not_found(id: &meshid_identity::SpiffeId) -> StoreError {
    StoreError::NotFound {
        kind: "agent",
        key: id.as_str().to_owned(),
    }
}
