-- #14: node attestation evidence that must not be used twice (a k8s_psat
-- projected service-account token): the SHA-256 of the token, kept until the
-- token expires. Expired rows are deleted by the next record.
CREATE TABLE attestation_tokens (
    hash             BLOB    NOT NULL PRIMARY KEY,
    attestation_type TEXT    NOT NULL,
    expires_at_ms    INTEGER NOT NULL
);
CREATE INDEX attestation_tokens_expiry ON attestation_tokens (expires_at_ms);
