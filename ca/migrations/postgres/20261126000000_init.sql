-- meshid CA store, PostgreSQL schema v1. Times are unix milliseconds.

CREATE TABLE registration_entries (
    id              TEXT COLLATE "C" NOT NULL PRIMARY KEY,
    spiffe_id       TEXT    NOT NULL,
    parent_id       TEXT    NOT NULL,
    -- sha256 (hex) of the sorted, de-duplicated selector set; makes
    -- (spiffe_id, parent_id, selectors) unique.
    selector_key    TEXT    NOT NULL,
    x509_ttl_secs   BIGINT  NOT NULL,
    jwt_ttl_secs    BIGINT  NOT NULL,
    dns_names       TEXT    NOT NULL, -- JSON array of strings
    admin           BOOLEAN NOT NULL,
    federates_with  TEXT    NOT NULL, -- JSON array of trust domains
    downstream      BOOLEAN NOT NULL,
    revision        BIGINT  NOT NULL,
    created_at_ms   BIGINT  NOT NULL,
    updated_at_ms   BIGINT  NOT NULL
);
CREATE UNIQUE INDEX registration_entries_identity
    ON registration_entries (spiffe_id, parent_id, selector_key);
CREATE INDEX registration_entries_parent ON registration_entries (parent_id, id);

CREATE TABLE entry_selectors (
    entry_id TEXT NOT NULL REFERENCES registration_entries (id) ON DELETE CASCADE,
    type     TEXT NOT NULL,
    value    TEXT NOT NULL,
    PRIMARY KEY (entry_id, type, value)
);
CREATE INDEX entry_selectors_lookup ON entry_selectors (type, value);

CREATE TABLE agents (
    spiffe_id        TEXT COLLATE "C" NOT NULL PRIMARY KEY,
    attestation_type TEXT    NOT NULL,
    serial           TEXT    NOT NULL,
    expires_at_ms    BIGINT  NOT NULL,
    banned           BOOLEAN NOT NULL,
    created_at_ms    BIGINT  NOT NULL,
    updated_at_ms    BIGINT  NOT NULL
);

CREATE TABLE agent_selectors (
    agent_id TEXT NOT NULL REFERENCES agents (spiffe_id) ON DELETE CASCADE,
    type     TEXT NOT NULL,
    value    TEXT NOT NULL,
    PRIMARY KEY (agent_id, type, value)
);

CREATE TABLE join_tokens (
    id            TEXT    NOT NULL PRIMARY KEY,
    hash          BYTEA   NOT NULL UNIQUE, -- sha256 of the secret, never the secret
    spiffe_id     TEXT,
    expires_at_ms BIGINT  NOT NULL,
    used_at_ms    BIGINT
);

CREATE TABLE issuances (
    serial        TEXT    NOT NULL PRIMARY KEY,
    spiffe_id     TEXT    NOT NULL,
    agent_id      TEXT,
    entry_id      TEXT,
    not_after_ms  BIGINT  NOT NULL,
    issued_at_ms  BIGINT  NOT NULL
);
CREATE INDEX issuances_not_after ON issuances (not_after_ms);

CREATE TABLE bundles (
    trust_domain  TEXT    NOT NULL PRIMARY KEY,
    spiffe_json   BYTEA   NOT NULL,
    sequence      BIGINT  NOT NULL,
    updated_at_ms BIGINT  NOT NULL
);

CREATE TABLE ca_keys (
    slot           TEXT    NOT NULL PRIMARY KEY,
    cert_chain_pem TEXT    NOT NULL,
    key_ref        TEXT    NOT NULL, -- file path or HSM label, never key bytes
    not_after_ms   BIGINT  NOT NULL,
    state          TEXT    NOT NULL CHECK (state IN ('prepared', 'active', 'old'))
);
