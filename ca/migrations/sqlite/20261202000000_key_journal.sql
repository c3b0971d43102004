-- #12: the CA key journal shared by every replica (one row per signing
-- key: prepared → active → old), the named leases that fence its writers,
-- and which key signed each issued certificate. The single-replica
-- `ca_keys` table is dropped; the CA re-creates its slots at start.

DROP TABLE ca_keys;

CREATE TABLE ca_key_slots (
    id               TEXT    NOT NULL PRIMARY KEY, -- <replica>/<kind>/<generation>
    replica          TEXT    NOT NULL,
    kind             TEXT    NOT NULL CHECK (kind IN ('x509', 'jwt')),
    generation       INTEGER NOT NULL CHECK (generation >= 1),
    state            TEXT    NOT NULL CHECK (state IN ('prepared', 'active', 'old')),
    -- X.509: hex of the keyIdentifier in the AKI of signed leaves; JWT: kid.
    -- Not unique: replicas sharing one intermediate have the same key_id.
    key_id           TEXT    NOT NULL,
    key_slot         TEXT    NOT NULL, -- key manager slot name
    key_ref          TEXT    NOT NULL, -- file path or HSM label, never key bytes
    public_pem       TEXT    NOT NULL,
    roots_pem        TEXT    NOT NULL,
    not_before_ms    INTEGER NOT NULL,
    not_after_ms     INTEGER NOT NULL,
    prepared_at_ms   INTEGER NOT NULL,
    activated_at_ms  INTEGER,
    retired_at_ms    INTEGER,
    publish_until_ms INTEGER,
    tainted          BOOLEAN NOT NULL,
    updated_at_ms    INTEGER NOT NULL,
    UNIQUE (replica, kind, generation)
);
CREATE INDEX ca_key_slots_key_id ON ca_key_slots (key_id);

-- A named lease (`rotation`): one holder at a time until expires_at_ms;
-- token grows whenever it changes hands and fences the holder's writes.
-- Released leases stay as expired rows so the token never goes back.
CREATE TABLE ca_leases (
    name          TEXT    NOT NULL PRIMARY KEY,
    holder        TEXT    NOT NULL,
    token         INTEGER NOT NULL CHECK (token >= 1),
    expires_at_ms INTEGER NOT NULL
);

-- The key_id of the slot that signed the certificate (NULL: unknown).
ALTER TABLE issuances ADD COLUMN ca_key_id TEXT;
CREATE INDEX issuances_ca_key ON issuances (ca_key_id, not_after_ms);
