-- #16: tenants, role bindings and the hash-chained audit log. Entries,
-- agents, join tokens and issuances gain the tenant they belong to
-- ('' = the platform).
ALTER TABLE registration_entries ADD COLUMN tenant TEXT NOT NULL DEFAULT '';
CREATE INDEX registration_entries_tenant ON registration_entries (tenant, id);
ALTER TABLE agents ADD COLUMN tenant TEXT NOT NULL DEFAULT '';
CREATE INDEX agents_tenant ON agents (tenant);
ALTER TABLE join_tokens ADD COLUMN tenant TEXT NOT NULL DEFAULT '';
CREATE INDEX join_tokens_tenant ON join_tokens (tenant);
ALTER TABLE issuances ADD COLUMN tenant TEXT NOT NULL DEFAULT '';

CREATE TABLE tenants (
    name               TEXT    NOT NULL PRIMARY KEY,
    spiffe_id_prefixes TEXT    NOT NULL, -- JSON array of strings
    k8s_namespaces     TEXT    NOT NULL, -- JSON array of strings
    allowed_parents    TEXT    NOT NULL, -- JSON array of strings
    federates_with     TEXT    NOT NULL, -- JSON array of trust domains
    created_at_ms      BIGINT  NOT NULL
);

-- tenant is '' exactly for cluster-admin.
CREATE TABLE role_bindings (
    subject       TEXT    NOT NULL,
    role          TEXT    NOT NULL
                  CHECK (role IN ('viewer', 'operator', 'admin', 'cluster-admin')),
    tenant        TEXT    NOT NULL,
    created_at_ms BIGINT  NOT NULL,
    PRIMARY KEY (subject, role, tenant)
);
CREATE INDEX role_bindings_order ON role_bindings (tenant, subject, role);

-- Record seq holds the hash of record seq - 1 (zeros for seq 1) and its
-- own: SHA-256 over all its fields (see store::record_hash).
CREATE TABLE audit_log (
    seq         BIGINT  NOT NULL PRIMARY KEY,
    at_ms       BIGINT  NOT NULL,
    actor       TEXT    NOT NULL,
    action      TEXT    NOT NULL,
    tenant      TEXT    NOT NULL,
    target      TEXT    NOT NULL,
    before_json TEXT    NOT NULL,
    after_json  TEXT    NOT NULL,
    result      TEXT    NOT NULL,
    prev_hash   BYTEA   NOT NULL,
    hash        BYTEA   NOT NULL
);
CREATE INDEX audit_log_tenant ON audit_log (tenant, seq);
CREATE INDEX audit_log_target ON audit_log (target, seq);

-- The end of the chain (seq 0: empty), read and moved by every append in
-- the append's transaction: a deleted tail no longer matches it.
CREATE TABLE audit_head (
    id   SMALLINT NOT NULL PRIMARY KEY CHECK (id = 1),
    seq  BIGINT  NOT NULL,
    hash BYTEA   NOT NULL
);
INSERT INTO audit_head (id, seq, hash) VALUES (1, 0, decode(repeat('00', 32), 'hex'));

-- Signatures of the head by the CA key, one per seq.
CREATE TABLE audit_checkpoints (
    seq            BIGINT  NOT NULL PRIMARY KEY,
    hash           BYTEA   NOT NULL,
    at_ms          BIGINT  NOT NULL,
    key_id         TEXT    NOT NULL,
    cert_chain_pem TEXT    NOT NULL,
    signature      BYTEA   NOT NULL
);
