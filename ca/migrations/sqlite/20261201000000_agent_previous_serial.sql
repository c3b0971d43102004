-- The serial of the SVID an agent renewed from: still accepted as the
-- agent's until it first calls with the renewed SVID (then NULL).
ALTER TABLE agents ADD COLUMN previous_serial TEXT;
