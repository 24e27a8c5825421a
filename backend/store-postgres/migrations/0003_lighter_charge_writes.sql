-- Lighter writes on the charge path: postings are keyed by (entry, account) (an account
-- appears once per entry), which drops a surrogate key and an index; the unique index on
-- charges.entry_id and the partial index on unsealed audit rows go (`backend check` verifies
-- one charge per entry; the sealer finds unsealed rows through the seq index).
ALTER TABLE postings DROP COLUMN id;
ALTER TABLE postings ADD PRIMARY KEY (entry_id, account_id);
DROP INDEX postings_entry;
DROP INDEX charges_entry;
DROP INDEX audit_unsealed;
