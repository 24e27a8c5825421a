-- CleanPlate ledger schema, SQLite flavour. Keep in step with store-postgres/migrations:
-- the same tables, columns and constraints; only the types differ. Times are UTC milliseconds,
-- money is integer fen.

CREATE TABLE canteens (
    id                  INTEGER PRIMARY KEY AUTOINCREMENT,
    name                TEXT    NOT NULL UNIQUE,
    utc_offset_minutes  INTEGER NOT NULL,
    per_txn_cap_fen     INTEGER,
    daily_cap_fen       INTEGER,
    created_at          INTEGER NOT NULL
);

CREATE TABLE meal_windows (
    canteen_id    INTEGER NOT NULL REFERENCES canteens(id),
    meal          TEXT    NOT NULL CHECK (meal IN ('breakfast','lunch','dinner')),
    start_minute  INTEGER NOT NULL CHECK (start_minute >= 0 AND start_minute < 1440),
    end_minute    INTEGER NOT NULL CHECK (end_minute > start_minute AND end_minute <= 1440),
    PRIMARY KEY (canteen_id, meal)
);

CREATE TABLE prices (
    canteen_id  INTEGER NOT NULL REFERENCES canteens(id),
    category    TEXT    NOT NULL,
    meal        TEXT    NOT NULL CHECK (meal IN ('breakfast','lunch','dinner')),
    price_fen   INTEGER NOT NULL CHECK (price_fen > 0),
    PRIMARY KEY (canteen_id, category, meal)
);

CREATE TABLE subsidy_rules (
    category    TEXT    PRIMARY KEY,
    amount_fen  INTEGER NOT NULL CHECK (amount_fen >= 0),
    expires     BOOLEAN NOT NULL
);

CREATE TABLE staff (
    id                INTEGER PRIMARY KEY AUTOINCREMENT,
    employee_no       TEXT    NOT NULL UNIQUE,
    name              TEXT    NOT NULL,
    department        TEXT    NOT NULL,
    category          TEXT    NOT NULL,
    active            BOOLEAN NOT NULL,
    meals_per_period  INTEGER NOT NULL CHECK (meals_per_period >= 0),
    created_at        INTEGER NOT NULL
);

-- Book accounts. Staff accounts (kind 'cash'/'subsidy') carry a cached balance, kept equal to
-- the sum of their postings inside every money transaction (and verified by `backend check`).
-- System accounts have no cached balance, so charges never contend on a hot revenue row.
CREATE TABLE book_accounts (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    kind         TEXT    NOT NULL,
    staff_id     INTEGER REFERENCES staff(id),
    balance_fen  INTEGER NOT NULL DEFAULT 0,
    CHECK ((staff_id IS NULL) = (kind NOT IN ('cash','subsidy'))),
    -- Overdraft is impossible at the lowest level too.
    CHECK (staff_id IS NULL OR balance_fen >= 0)
);
CREATE UNIQUE INDEX book_accounts_staff ON book_accounts(staff_id, kind) WHERE staff_id IS NOT NULL;
CREATE UNIQUE INDEX book_accounts_system ON book_accounts(kind) WHERE staff_id IS NULL;

CREATE TABLE journal_entries (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    kind        TEXT    NOT NULL,
    created_at  INTEGER NOT NULL,
    memo        TEXT    NOT NULL
);

CREATE TABLE postings (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    entry_id    INTEGER NOT NULL REFERENCES journal_entries(id),
    account_id  INTEGER NOT NULL REFERENCES book_accounts(id),
    amount_fen  INTEGER NOT NULL CHECK (amount_fen <> 0)
);
CREATE INDEX postings_entry ON postings(entry_id);
CREATE INDEX postings_account ON postings(account_id, entry_id);

CREATE TABLE kiosks (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    name        TEXT    NOT NULL,
    canteen_id  INTEGER NOT NULL REFERENCES canteens(id),
    token_hash  TEXT    NOT NULL UNIQUE,
    revoked_at  INTEGER,
    created_at  INTEGER NOT NULL
);

CREATE TABLE enrolment_codes (
    code_hash   TEXT    PRIMARY KEY,
    canteen_id  INTEGER NOT NULL REFERENCES canteens(id),
    expires_at  INTEGER NOT NULL,
    used_at     INTEGER,
    kiosk_id    INTEGER REFERENCES kiosks(id),
    created_at  INTEGER NOT NULL
);

CREATE TABLE charges (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    kiosk_id         INTEGER NOT NULL REFERENCES kiosks(id),
    idempotency_key  TEXT    NOT NULL,
    staff_id         INTEGER NOT NULL REFERENCES staff(id),
    canteen_id       INTEGER NOT NULL REFERENCES canteens(id),
    meal             TEXT,
    local_date       TEXT    NOT NULL,
    kiosk_time       INTEGER NOT NULL,
    received_at      INTEGER NOT NULL,
    amount_fen       INTEGER NOT NULL,
    subsidy_fen      INTEGER NOT NULL,
    cash_fen         INTEGER NOT NULL,
    status           TEXT    NOT NULL CHECK (status IN ('accepted','exception','refunded','waived')),
    reason           TEXT,
    entry_id         INTEGER REFERENCES journal_entries(id),
    offline          BOOLEAN NOT NULL,
    UNIQUE (kiosk_id, idempotency_key),
    CHECK (subsidy_fen + cash_fen = amount_fen OR status IN ('exception','waived')),
    CHECK ((entry_id IS NULL) = (status IN ('exception','waived')))
);
CREATE INDEX charges_staff_day ON charges(staff_id, local_date);
CREATE UNIQUE INDEX charges_entry ON charges(entry_id);

-- One row per (kiosk, scope, key): the first response, returned verbatim on replays.
CREATE TABLE idempotency (
    kiosk_id      INTEGER NOT NULL,
    scope         TEXT    NOT NULL,
    key           TEXT    NOT NULL,
    request_hash  TEXT    NOT NULL,
    response      TEXT    NOT NULL,
    created_at    INTEGER NOT NULL,
    PRIMARY KEY (kiosk_id, scope, key)
);

CREATE TABLE refunds (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    charge_id     INTEGER NOT NULL REFERENCES charges(id),
    staff_id      INTEGER NOT NULL REFERENCES staff(id),
    kind          TEXT    NOT NULL CHECK (kind IN ('manager_reversal','staff_request')),
    status        TEXT    NOT NULL CHECK (status IN ('requested','approved','rejected')),
    amount_fen    INTEGER NOT NULL,
    reason        TEXT    NOT NULL,
    entry_id      INTEGER REFERENCES journal_entries(id),
    requested_at  INTEGER NOT NULL,
    decided_at    INTEGER,
    CHECK ((entry_id IS NOT NULL) = (status = 'approved'))
);
-- At most one open or approved refund per charge.
CREATE UNIQUE INDEX refunds_one_per_charge ON refunds(charge_id) WHERE status <> 'rejected';

CREATE TABLE subsidy_grants (
    staff_id      INTEGER NOT NULL REFERENCES staff(id),
    period        TEXT    NOT NULL,
    granted_fen   INTEGER NOT NULL,
    expired_fen   INTEGER NOT NULL,
    created_at    INTEGER NOT NULL,
    PRIMARY KEY (staff_id, period)
);

CREATE TABLE offboardings (
    staff_id        INTEGER PRIMARY KEY REFERENCES staff(id),
    cash_fen        INTEGER NOT NULL,
    subsidy_fen     INTEGER NOT NULL,
    created_at      INTEGER NOT NULL
);

CREATE TABLE payment_orders (
    order_no      TEXT    PRIMARY KEY,
    staff_id      INTEGER NOT NULL REFERENCES staff(id),
    amount_fen    INTEGER NOT NULL CHECK (amount_fen > 0),
    provider      TEXT    NOT NULL,
    status        TEXT    NOT NULL CHECK (status IN ('created','credited')),
    provider_txn  TEXT,
    created_at    INTEGER NOT NULL,
    credited_at   INTEGER,
    entry_id      INTEGER UNIQUE REFERENCES journal_entries(id),
    CHECK ((entry_id IS NOT NULL) = (status = 'credited'))
);

CREATE TABLE payment_notifications (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    order_no     TEXT,
    verdict      TEXT    NOT NULL,
    raw          TEXT    NOT NULL,
    received_at  INTEGER NOT NULL
);

-- The sandbox payment gateway's own books (a real provider keeps these on its servers).
CREATE TABLE sandbox_gateway (
    order_no    TEXT    PRIMARY KEY,
    amount_fen  INTEGER NOT NULL,
    txn         TEXT    NOT NULL,
    paid_at     INTEGER NOT NULL
);

CREATE TABLE waste_records (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    kiosk_id      INTEGER NOT NULL REFERENCES kiosks(id),
    staff_id      INTEGER REFERENCES staff(id),
    charge_id     INTEGER REFERENCES charges(id),
    gross_grams   INTEGER NOT NULL,
    tare_grams    INTEGER NOT NULL,
    net_grams     INTEGER NOT NULL CHECK (net_grams >= 0 AND net_grams = gross_grams - tare_grams),
    dish          TEXT,
    category      TEXT,
    measured_at   INTEGER NOT NULL,
    created_at    INTEGER NOT NULL
);

CREATE TABLE consents (
    staff_id    INTEGER PRIMARY KEY REFERENCES staff(id),
    granted     BOOLEAN NOT NULL,
    changed_at  INTEGER NOT NULL
);

-- Versions come from the 'gallery' counter, bumped under a row lock inside the writing
-- transaction, so versions become visible in increasing order and incremental sync never skips.
CREATE TABLE face_templates (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    staff_id    INTEGER NOT NULL REFERENCES staff(id),
    version     INTEGER NOT NULL UNIQUE,
    nonce       BLOB,
    ciphertext  BLOB,
    deleted     BOOLEAN NOT NULL,
    created_at  INTEGER NOT NULL,
    CHECK (deleted = (ciphertext IS NULL))
);
CREATE INDEX face_templates_staff ON face_templates(staff_id);

CREATE TABLE counters (
    name   TEXT    PRIMARY KEY,
    value  INTEGER NOT NULL
);
INSERT INTO counters (name, value) VALUES ('gallery', 0), ('audit_seq', 0);

CREATE TABLE users (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    username       TEXT    NOT NULL UNIQUE,
    password_hash  TEXT    NOT NULL,
    role           TEXT    NOT NULL CHECK (role IN ('manager','staff','auditor')),
    staff_id       INTEGER REFERENCES staff(id),
    active         BOOLEAN NOT NULL,
    created_at     INTEGER NOT NULL,
    CHECK ((role = 'staff') = (staff_id IS NOT NULL))
);

CREATE TABLE sessions (
    token_hash  TEXT    PRIMARY KEY,
    user_id     INTEGER NOT NULL REFERENCES users(id),
    csrf_token  TEXT    NOT NULL,
    created_at  INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL
);

CREATE TABLE rate_limits (
    key           TEXT    PRIMARY KEY,
    window_start  INTEGER NOT NULL,
    hits          INTEGER NOT NULL
);

-- Entries are appended unchained (seq/prev_hash/hash NULL) inside the business transaction and
-- chained later, in one order, by the sealer (see backend/README.md).
CREATE TABLE audit_log (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    at         INTEGER NOT NULL,
    actor      TEXT    NOT NULL,
    action     TEXT    NOT NULL,
    detail     TEXT    NOT NULL,
    seq        INTEGER UNIQUE,
    prev_hash  TEXT,
    hash       TEXT
);
CREATE INDEX audit_unsealed ON audit_log(id) WHERE seq IS NULL;

INSERT INTO book_accounts (kind, staff_id) VALUES ('revenue', NULL), ('subsidy_fund', NULL), ('gateway', NULL), ('cash_out', NULL);
