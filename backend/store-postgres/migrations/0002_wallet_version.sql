-- A change counter on book accounts, bumped by every write of a wallet's balance. The charge
-- path uses it to tell whether facts read in the same statement as the row lock may be stale
-- (see store/sql/common.rs, charge_once).
ALTER TABLE book_accounts ADD COLUMN version BIGINT NOT NULL DEFAULT 0;
