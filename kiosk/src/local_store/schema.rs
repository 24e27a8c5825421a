//! The local database's tables, and the columns later versions added to databases made by
//! earlier ones (`PRAGMA user_version`: 1 added `outbox.served`, `outbox.derived_from` and
//! the balances' version, activity and category; 2 added `outbox.refused`; 3 added the
//! balances' name and department, shown on the paid screen).

use rusqlite::Connection;

use super::Result;

pub(super) fn create_and_migrate(conn: &Connection) -> Result<()> {
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS outbox (
            seq INTEGER PRIMARY KEY AUTOINCREMENT,
            kind TEXT NOT NULL,
            idempotency_key TEXT NOT NULL UNIQUE,
            body TEXT NOT NULL,
            created_ms INTEGER NOT NULL,
            state TEXT NOT NULL DEFAULT 'pending',
            attempts INTEGER NOT NULL DEFAULT 0,
            -- 1 once an attempt may have reached the backend: the body is then frozen.
            maybe_sent INTEGER NOT NULL DEFAULT 0,
            last_error TEXT,
            response TEXT,
            done_ms INTEGER
        );
        CREATE INDEX IF NOT EXISTS outbox_pending ON outbox(state, seq);
        CREATE TABLE IF NOT EXISTS meals_charged (
            staff_id INTEGER NOT NULL,
            local_date TEXT NOT NULL,
            meal TEXT NOT NULL,
            idempotency_key TEXT NOT NULL,
            at_ms INTEGER NOT NULL,
            charge_id INTEGER,
            PRIMARY KEY (staff_id, local_date, meal)
        );
        CREATE TABLE IF NOT EXISTS waste_log (
            staff_id INTEGER,
            net_g INTEGER NOT NULL,
            at_ms INTEGER NOT NULL
        );
        CREATE TABLE IF NOT EXISTS balances (
            staff_id INTEGER PRIMARY KEY,
            available_fen INTEGER NOT NULL,
            as_of_ms INTEGER NOT NULL
        );
        CREATE TABLE IF NOT EXISTS offline_spent (
            idempotency_key TEXT PRIMARY KEY,
            staff_id INTEGER NOT NULL,
            amount_fen INTEGER NOT NULL,
            settled INTEGER NOT NULL DEFAULT 0
        );",
    )?;
    let v: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if v < 1 {
        conn.execute_batch(
            "BEGIN;
             ALTER TABLE outbox ADD COLUMN served INTEGER NOT NULL DEFAULT 0;
             ALTER TABLE outbox ADD COLUMN derived_from TEXT;
             ALTER TABLE balances ADD COLUMN version INTEGER;
             ALTER TABLE balances ADD COLUMN active INTEGER NOT NULL DEFAULT 1;
             ALTER TABLE balances ADD COLUMN category TEXT;
             PRAGMA user_version = 1;
             COMMIT;",
        )?;
    }
    if v < 2 {
        conn.execute_batch(
            "BEGIN;
             ALTER TABLE outbox ADD COLUMN refused INTEGER NOT NULL DEFAULT 0;
             PRAGMA user_version = 2;
             COMMIT;",
        )?;
    }
    if v < 3 {
        conn.execute_batch(
            "BEGIN;
             ALTER TABLE balances ADD COLUMN name TEXT;
             ALTER TABLE balances ADD COLUMN department TEXT;
             PRAGMA user_version = 3;
             COMMIT;",
        )?;
    }
    Ok(())
}
