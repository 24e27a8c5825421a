-- Lighter writes on the charge path: postings are keyed by (entry, account) (an account
-- appears once per entry), which drops a surrogate key and an index; the unique index on
-- charges.entry_id and the partial index on unsealed audit rows go (`backend check` verifies
-- one charge per entry; the sealer finds unsealed rows through the seq index).
CREATE TABLE postings_new (
    entry_id    INTEGER NOT NULL REFERENCES journal_entries(id),
    account_id  INTEGER NOT NULL REFERENCES book_accounts(id),
    amount_fen  INTEGER NOT NULL CHECK (amount_fen <> 0),
    PRIMARY KEY (entry_id, account_id)
) WITHOUT ROWID;
INSERT INTO postings_new (entry_id, account_id, amount_fen) SELECT entry_id, account_id, amount_fen FROM postings;
DROP TABLE postings;
ALTER TABLE postings_new RENAME TO postings;
CREATE INDEX postings_account ON postings(account_id, entry_id);
DROP INDEX charges_entry;
DROP INDEX audit_unsealed;
