-- #13: who manages an entry: '' for an operator's, `k8s/<cluster>` for the
-- Kubernetes controller of that cluster, which lists (by owner, in ID
-- order) and deletes only its own.
ALTER TABLE registration_entries ADD COLUMN owner TEXT NOT NULL DEFAULT '';
CREATE INDEX registration_entries_owner ON registration_entries (owner, id);
