//! The SQL text both backends run, written once.
//!
//! SQLite and PostgreSQL both accept `$n` placeholders, `RETURNING` and
//! `ON CONFLICT … DO UPDATE`, so one text serves both. Queries whose shape
//! depends on the input (`IN (…)` lists, optional filters, multi-row
//! inserts) start from a prefix here and are finished with
//! `sqlx::QueryBuilder`. Times are unix milliseconds (the callers stamp
//! them from the store's clock; no SQL here reads the database's clock).

/// Columns of `registration_entries`, in the order the insert binds them.
macro_rules! entry_cols {
    () => {
        "id, spiffe_id, parent_id, x509_ttl_secs, jwt_ttl_secs, dns_names, admin, \
         federates_with, downstream, owner, tenant, revision, created_at_ms, updated_at_ms"
    };
}

/// Columns of `agents`.
macro_rules! agent_cols {
    () => {
        "spiffe_id, attestation_type, serial, previous_serial, expires_at_ms, banned, \
         created_at_ms, updated_at_ms, tenant"
    };
}

/// Columns of `ca_key_slots`, in the order the upsert binds them.
macro_rules! key_slot_cols {
    () => {
        "id, replica, kind, generation, state, key_id, key_slot, key_ref, public_pem, \
         roots_pem, not_before_ms, not_after_ms, prepared_at_ms, activated_at_ms, \
         retired_at_ms, publish_until_ms, tainted, updated_at_ms"
    };
}

/// Columns of `join_tokens`.
macro_rules! token_cols {
    () => {
        "id, hash, spiffe_id, expires_at_ms, used_at_ms, tenant"
    };
}

// === registration entries ===

/// One entry by ID.
pub(crate) const ENTRY_BY_ID: &str = concat!(
    "SELECT ",
    entry_cols!(),
    " FROM registration_entries WHERE id = $1"
);
/// Inserts an entry: `$1`–`$12` as in [`UPDATE_ENTRY`] (`$11` stamps both
/// times), `$13` the ID, `$14` the tenant.
pub(crate) const INSERT_ENTRY: &str = "INSERT INTO registration_entries (spiffe_id, \
     parent_id, x509_ttl_secs, jwt_ttl_secs, dns_names, admin, federates_with, downstream, \
     selector_key, revision, created_at_ms, updated_at_ms, owner, id, tenant) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $11, $12, $13, $14)";
/// Replaces the fields of entry `$13` if its revision is still `$14`.
pub(crate) const UPDATE_ENTRY: &str = "UPDATE registration_entries SET spiffe_id = $1, \
     parent_id = $2, x509_ttl_secs = $3, jwt_ttl_secs = $4, dns_names = $5, admin = $6, \
     federates_with = $7, downstream = $8, selector_key = $9, revision = $10, \
     updated_at_ms = $11, owner = $12 WHERE id = $13 AND revision = $14";
/// Deletes an entry (its selectors go with it: `ON DELETE CASCADE`).
pub(crate) const DELETE_ENTRY: &str = "DELETE FROM registration_entries WHERE id = $1";
/// Deletes an entry's selectors.
pub(crate) const DELETE_ENTRY_SELECTORS: &str = "DELETE FROM entry_selectors WHERE entry_id = $1";
/// Entries with their selectors joined in, one row per selector; finished
/// with the ID list and `)`.
pub(crate) const ENTRIES_WITH_SELECTORS_IN: &str = concat!(
    "SELECT ",
    entry_cols!(),
    ", s.type AS selector_type, s.value AS selector_value \
     FROM registration_entries e \
     LEFT JOIN entry_selectors s ON s.entry_id = e.id WHERE e.id IN ("
);
/// Entries, finished with `AND …` filters.
pub(crate) const ENTRIES_WHERE: &str = concat!(
    "SELECT ",
    entry_cols!(),
    " FROM registration_entries e WHERE 1 = 1"
);
/// Entries of some parents, finished with the parent list and `)`.
pub(crate) const ENTRIES_OF_PARENTS_IN: &str = concat!(
    "SELECT ",
    entry_cols!(),
    " FROM registration_entries WHERE parent_id IN ("
);
/// How many entries exist.
pub(crate) const COUNT_ENTRIES: &str = "SELECT COUNT(*) AS n FROM registration_entries";

// === agents ===

/// Inserts or replaces an agent, keeping `created_at_ms` of an existing one.
pub(crate) const UPSERT_AGENT: &str = concat!(
    "INSERT INTO agents (",
    agent_cols!(),
    ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT (spiffe_id) DO UPDATE SET \
     attestation_type = excluded.attestation_type, serial = excluded.serial, \
     previous_serial = excluded.previous_serial, \
     expires_at_ms = excluded.expires_at_ms, banned = excluded.banned, \
     updated_at_ms = excluded.updated_at_ms, tenant = excluded.tenant"
);
/// Deletes an agent's selectors.
pub(crate) const DELETE_AGENT_SELECTORS: &str = "DELETE FROM agent_selectors WHERE agent_id = $1";
/// One agent by SPIFFE ID.
pub(crate) const AGENT_BY_ID: &str = concat!(
    "SELECT ",
    agent_cols!(),
    " FROM agents WHERE spiffe_id = $1"
);
/// Agents, finished with the cursor, order and limit.
pub(crate) const AGENTS_WHERE: &str = concat!("SELECT ", agent_cols!(), " FROM agents WHERE 1 = 1");
/// Sets the banned flag.
pub(crate) const SET_AGENT_BANNED: &str =
    "UPDATE agents SET banned = $1, updated_at_ms = $2 WHERE spiffe_id = $3";
/// Deletes an agent.
pub(crate) const DELETE_AGENT: &str = "DELETE FROM agents WHERE spiffe_id = $1";
/// Compare-and-swap renewal: only the holder of the current or the previous
/// SVID of an agent that is not banned may move it on.
pub(crate) const RENEW_AGENT_SERIAL: &str = "UPDATE agents SET serial = $1, \
     previous_serial = $2, expires_at_ms = $3, updated_at_ms = $4 \
     WHERE spiffe_id = $5 AND banned = FALSE AND (serial = $2 OR previous_serial = $2)";
/// Whether an agent exists.
pub(crate) const AGENT_EXISTS: &str = "SELECT 1 FROM agents WHERE spiffe_id = $1";
/// Forgets the previous serial once the agent uses the renewed one.
pub(crate) const CONFIRM_AGENT_SERIAL: &str = "UPDATE agents SET previous_serial = NULL \
     WHERE spiffe_id = $1 AND serial = $2 AND previous_serial IS NOT NULL";
/// How many agents exist.
pub(crate) const COUNT_AGENTS: &str = "SELECT COUNT(*) AS n FROM agents";

// === join tokens ===

/// Stores a join token.
pub(crate) const INSERT_TOKEN: &str = concat!(
    "INSERT INTO join_tokens (",
    token_cols!(),
    ") VALUES ($1, $2, $3, $4, $5, $6)"
);
/// Marks an unused, unexpired token used at `$1` and returns it.
pub(crate) const CONSUME_TOKEN: &str = concat!(
    "UPDATE join_tokens SET used_at_ms = $1 \
     WHERE hash = $2 AND used_at_ms IS NULL AND expires_at_ms > $1 RETURNING ",
    token_cols!()
);
/// One token by the hash of its secret.
pub(crate) const TOKEN_BY_HASH: &str = concat!(
    "SELECT ",
    token_cols!(),
    " FROM join_tokens WHERE hash = $1"
);

// === attestation tokens ===

/// Deletes the attestation tokens that expired by `$1`.
pub(crate) const DELETE_EXPIRED_ATTESTATION_TOKENS: &str =
    "DELETE FROM attestation_tokens WHERE expires_at_ms <= $1";
/// Records an attestation token's hash unless it is recorded and not
/// expired at `$4` (then no row is returned). One statement: of racing
/// callers with one hash exactly one gets a row back.
pub(crate) const RECORD_ATTESTATION_TOKEN: &str = "INSERT INTO attestation_tokens \
     (hash, attestation_type, expires_at_ms) VALUES ($1, $2, $3) \
     ON CONFLICT (hash) DO UPDATE SET attestation_type = excluded.attestation_type, \
     expires_at_ms = excluded.expires_at_ms WHERE attestation_tokens.expires_at_ms <= $4 \
     RETURNING hash";
/// When a recorded attestation token expires.
pub(crate) const ATTESTATION_TOKEN_EXPIRY: &str =
    "SELECT expires_at_ms FROM attestation_tokens WHERE hash = $1";

// === issuances ===

/// Multi-row insert of issuance records, finished with `VALUES …`.
pub(crate) const INSERT_ISSUANCES: &str = "INSERT INTO issuances \
     (serial, spiffe_id, agent_id, entry_id, not_after_ms, issued_at_ms, ca_key_id, tenant) ";
/// One issuance record by serial.
pub(crate) const ISSUANCE_BY_SERIAL: &str = "SELECT serial, spiffe_id, agent_id, entry_id, \
     not_after_ms, issued_at_ms, ca_key_id, tenant FROM issuances WHERE serial = $1";
/// How many issuance records exist.
pub(crate) const COUNT_ISSUANCES: &str = "SELECT COUNT(*) AS n FROM issuances";

// === bundles ===

/// One bundle by trust domain.
pub(crate) const BUNDLE_BY_TRUST_DOMAIN: &str = "SELECT trust_domain, spiffe_json, sequence, \
     updated_at_ms FROM bundles WHERE trust_domain = $1";
/// Writes a bundle unconditionally.
pub(crate) const UPSERT_BUNDLE: &str = "INSERT INTO bundles \
     (trust_domain, spiffe_json, sequence, updated_at_ms) VALUES ($1, $2, $3, $4) \
     ON CONFLICT (trust_domain) DO UPDATE SET spiffe_json = excluded.spiffe_json, \
     sequence = excluded.sequence, updated_at_ms = excluded.updated_at_ms";
/// Writes a bundle only if none is stored.
pub(crate) const CREATE_BUNDLE: &str = "INSERT INTO bundles \
     (trust_domain, spiffe_json, sequence, updated_at_ms) VALUES ($1, $2, $3, $4) \
     ON CONFLICT (trust_domain) DO NOTHING";
/// Replaces a bundle whose stored sequence is `$5`.
pub(crate) const REPLACE_BUNDLE: &str = "UPDATE bundles SET spiffe_json = $1, sequence = $2, \
     updated_at_ms = $3 WHERE trust_domain = $4 AND sequence = $5";
/// All bundles.
pub(crate) const LIST_BUNDLES: &str = "SELECT trust_domain, spiffe_json, sequence, \
     updated_at_ms FROM bundles ORDER BY trust_domain";
// === the CA key journal and leases ===

/// `lease $1 is held by $2 with token $3 at time $4`, as a condition, with
/// the driver's row lock on the lease (`$lock`) so that the lease cannot
/// change hands before the fenced write commits.
macro_rules! lease_held {
    ($lock:literal) => {
        concat!(
            "EXISTS (SELECT 1 FROM ca_leases WHERE name = $1 AND holder = $2 AND token = $3 \
             AND expires_at_ms > $4",
            $lock,
            ")"
        )
    };
}

/// Inserts or replaces a key slot (`$5`–`$22`, in `key_slot_cols` order)
/// only while the lease holds: the check and the write are one statement.
macro_rules! fenced_upsert_key_slot {
    ($lock:literal) => {
        concat!(
            "INSERT INTO ca_key_slots (",
            key_slot_cols!(),
            ") SELECT $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, \
             $20, $21, $22 WHERE ",
            lease_held!($lock),
            " ON CONFLICT (id) DO UPDATE SET replica = excluded.replica, kind = excluded.kind, \
             generation = excluded.generation, state = excluded.state, \
             key_id = excluded.key_id, key_slot = excluded.key_slot, \
             key_ref = excluded.key_ref, public_pem = excluded.public_pem, \
             roots_pem = excluded.roots_pem, not_before_ms = excluded.not_before_ms, \
             not_after_ms = excluded.not_after_ms, prepared_at_ms = excluded.prepared_at_ms, \
             activated_at_ms = excluded.activated_at_ms, retired_at_ms = excluded.retired_at_ms, \
             publish_until_ms = excluded.publish_until_ms, tainted = excluded.tainted, \
             updated_at_ms = excluded.updated_at_ms"
        )
    };
}

/// Deletes key slot `$5` only while the lease holds.
macro_rules! fenced_delete_key_slot {
    ($lock:literal) => {
        concat!(
            "DELETE FROM ca_key_slots WHERE id = $5 AND ",
            lease_held!($lock)
        )
    };
}

/// The writes fenced by a lease (`$1` name, `$2` holder, `$3` token, `$4`
/// now). The lease check differs per driver only in its row lock.
pub(crate) struct Fenced {
    /// Inserts or replaces a key slot.
    pub(crate) upsert_key_slot: &'static str,
    /// Deletes key slot `$5`.
    pub(crate) delete_key_slot: &'static str,
}

/// SQLite runs one writer at a time and a write statement takes the write
/// lock before it reads, so the check needs no row lock.
pub(crate) const FENCED_SQLITE: Fenced = Fenced {
    upsert_key_slot: fenced_upsert_key_slot!(""),
    delete_key_slot: fenced_delete_key_slot!(""),
};
/// PostgreSQL: `FOR SHARE` on the lease row makes a concurrent take-over
/// (an `UPDATE` of that row) wait until the fenced write has committed,
/// and re-checks the lease if it changed first.
pub(crate) const FENCED_POSTGRES: Fenced = Fenced {
    upsert_key_slot: fenced_upsert_key_slot!(" FOR SHARE"),
    delete_key_slot: fenced_delete_key_slot!(" FOR SHARE"),
};
/// All key slots.
pub(crate) const LIST_KEY_SLOTS: &str = concat!(
    "SELECT ",
    key_slot_cols!(),
    " FROM ca_key_slots ORDER BY id"
);
/// Takes lease `$1` for holder `$2` until `$3` if it is free, expired at
/// `$4`, or already `$2`'s (renewed, same token); the token grows when the
/// lease changes hands or is re-taken after expiry. One atomic upsert: a
/// row comes back only to the one caller that holds the lease.
pub(crate) const ACQUIRE_LEASE: &str = "INSERT INTO ca_leases \
     (name, holder, token, expires_at_ms) VALUES ($1, $2, 1, $3) \
     ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, \
     token = CASE WHEN ca_leases.holder = excluded.holder AND ca_leases.expires_at_ms > $4 \
     THEN ca_leases.token ELSE ca_leases.token + 1 END, \
     expires_at_ms = excluded.expires_at_ms \
     WHERE ca_leases.holder = excluded.holder OR ca_leases.expires_at_ms <= $4 \
     RETURNING name, holder, token, expires_at_ms";
/// Lets lease `$1` lapse if `$2` holds it with token `$3` (the row stays,
/// expired, so the next holder's token is higher).
pub(crate) const RELEASE_LEASE: &str = "UPDATE ca_leases SET expires_at_ms = 0 \
     WHERE name = $1 AND holder = $2 AND token = $3";
/// Lease `$1` as recorded.
pub(crate) const GET_LEASE: &str =
    "SELECT name, holder, token, expires_at_ms FROM ca_leases WHERE name = $1";
/// Whether lease `$1` is held by `$2` with token `$3` at time `$4`.
pub(crate) const LEASE_HELD: &str = concat!("SELECT 1 WHERE ", lease_held!(""));
/// Unexpired issuance records (`not_after` after `$1`) per signing key.
pub(crate) const LIVE_ISSUANCES_BY_KEY: &str = "SELECT ca_key_id, COUNT(*) AS n \
     FROM issuances WHERE ca_key_id IS NOT NULL AND not_after_ms > $1 \
     GROUP BY ca_key_id ORDER BY ca_key_id";

/// The database answers.
pub(crate) const PING: &str = "SELECT 1";

// === tenants and role bindings ===

/// Columns of `tenants`.
macro_rules! tenant_cols {
    () => {
        "name, spiffe_id_prefixes, k8s_namespaces, allowed_parents, federates_with, \
         created_at_ms"
    };
}

/// Stores a tenant.
pub(crate) const INSERT_TENANT: &str = concat!(
    "INSERT INTO tenants (",
    tenant_cols!(),
    ") VALUES ($1, $2, $3, $4, $5, $6)"
);
/// One tenant by name.
pub(crate) const TENANT_BY_NAME: &str =
    concat!("SELECT ", tenant_cols!(), " FROM tenants WHERE name = $1");
/// Tenants in name order, at most `$1`.
pub(crate) const LIST_TENANTS: &str = concat!(
    "SELECT ",
    tenant_cols!(),
    " FROM tenants ORDER BY name LIMIT $1"
);
/// How many tenants exist.
pub(crate) const COUNT_TENANTS: &str = "SELECT COUNT(*) AS n FROM tenants";
/// Deletes a tenant.
pub(crate) const DELETE_TENANT: &str = "DELETE FROM tenants WHERE name = $1";
/// What still belongs to tenant `$1` at time `$2`: entries, agents and
/// unused unexpired join tokens.
pub(crate) const TENANT_IN_USE: &str = "SELECT \
     (SELECT COUNT(*) FROM registration_entries WHERE tenant = $1) AS entries, \
     (SELECT COUNT(*) FROM agents WHERE tenant = $1) AS agents, \
     (SELECT COUNT(*) FROM join_tokens WHERE tenant = $1 AND used_at_ms IS NULL \
      AND expires_at_ms > $2) AS tokens";
/// Deletes the role bindings of tenant `$1` (they go with the tenant).
pub(crate) const DELETE_TENANT_BINDINGS: &str = "DELETE FROM role_bindings WHERE tenant = $1";

/// Stores a role binding.
pub(crate) const INSERT_BINDING: &str = "INSERT INTO role_bindings \
     (subject, role, tenant, created_at_ms) VALUES ($1, $2, $3, $4)";
/// Deletes a role binding and returns it.
pub(crate) const DELETE_BINDING: &str = "DELETE FROM role_bindings \
     WHERE subject = $1 AND role = $2 AND tenant = $3 \
     RETURNING subject, role, tenant, created_at_ms";
/// Role bindings in (tenant, subject, role) order, at most `$1`.
pub(crate) const LIST_BINDINGS: &str = "SELECT subject, role, tenant, created_at_ms \
     FROM role_bindings ORDER BY tenant, subject, role LIMIT $1";
/// How many role bindings exist.
pub(crate) const COUNT_BINDINGS: &str = "SELECT COUNT(*) AS n FROM role_bindings";

// === the audit log ===

/// Columns of `audit_log`, in the order the insert binds them.
macro_rules! audit_cols {
    () => {
        "seq, at_ms, actor, action, tenant, target, before_json, after_json, result, \
         prev_hash, hash"
    };
}

/// Multi-row insert of audit records, finished with `VALUES …`.
pub(crate) const INSERT_AUDIT: &str = concat!("INSERT INTO audit_log (", audit_cols!(), ") ");
/// Audit records, finished with `AND …` filters, order and limit.
pub(crate) const AUDIT_WHERE: &str =
    concat!("SELECT ", audit_cols!(), " FROM audit_log WHERE seq > ");
/// The end of the chain as recorded.
pub(crate) const AUDIT_HEAD: &str = "SELECT seq, hash FROM audit_head WHERE id = 1";
/// Moves the end of the chain.
pub(crate) const SET_AUDIT_HEAD: &str = "UPDATE audit_head SET seq = $1, hash = $2 WHERE id = 1";
/// Stores a checkpoint.
pub(crate) const INSERT_AUDIT_CHECKPOINT: &str = "INSERT INTO audit_checkpoints \
     (seq, hash, at_ms, key_id, cert_chain_pem, signature) VALUES ($1, $2, $3, $4, $5, $6)";
/// The newest `$1` checkpoints, in seq order.
pub(crate) const LIST_AUDIT_CHECKPOINTS: &str = "SELECT seq, hash, at_ms, key_id, \
     cert_chain_pem, signature FROM (SELECT * FROM audit_checkpoints ORDER BY seq DESC \
     LIMIT $1) AS newest ORDER BY seq";

/// Reads that lock the rows they read until the transaction ends, per
/// driver: SQLite's write transaction already holds the database lock
/// (`BEGIN IMMEDIATE`), PostgreSQL locks the rows.
pub(crate) struct Locked {
    /// The chain's end, locked against other appenders.
    pub(crate) audit_head: &'static str,
    /// A tenant, locked against its deletion while something is added to it.
    pub(crate) tenant_share: &'static str,
    /// A tenant, locked against additions while it is deleted.
    pub(crate) tenant_update: &'static str,
    /// The SQL function `f(haystack, needle)` that is > 0 when the haystack
    /// contains the needle (case-sensitive).
    pub(crate) contains: &'static str,
}

/// SQLite: no row locks.
pub(crate) const LOCKED_SQLITE: Locked = Locked {
    audit_head: AUDIT_HEAD,
    tenant_share: "SELECT name FROM tenants WHERE name = $1",
    tenant_update: "SELECT name FROM tenants WHERE name = $1",
    contains: "instr",
};
/// PostgreSQL: `FOR UPDATE` on the head serializes appends of every
/// replica into one chain; `FOR SHARE`/`FOR UPDATE` on a tenant make an
/// addition and the tenant's deletion wait for each other.
pub(crate) const LOCKED_POSTGRES: Locked = Locked {
    audit_head: "SELECT seq, hash FROM audit_head WHERE id = 1 FOR UPDATE",
    tenant_share: "SELECT name FROM tenants WHERE name = $1 FOR SHARE",
    tenant_update: "SELECT name FROM tenants WHERE name = $1 FOR UPDATE",
    contains: "strpos",
};
