-- The audit chain becomes a proof: HMAC-SHA256 under a key kept outside the database (the
-- server's configuration), and it commits to the journal. Each sealer round records the
-- content hash of every journal entry committed since the last round here, under one
-- `journal.sealed` audit entry whose detail holds a digest of these rows; `backend check`
-- recomputes every entry's hash from the journal and every digest from these rows.
--
-- Entries sealed before this migration were chained with a plain SHA-256 that anyone who can
-- write to the database could recompute. They are unsealed here and sealed again, with the key,
-- by the next sealer round.
UPDATE audit_log SET seq = NULL, prev_hash = NULL, hash = NULL;

CREATE TABLE journal_seals (
    entry_id      BIGINT  PRIMARY KEY,
    content_hash  TEXT    NOT NULL,
    audit_id      BIGINT  NOT NULL
);
CREATE INDEX journal_seals_by_audit ON journal_seals (audit_id);
