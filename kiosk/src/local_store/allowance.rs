//! The `offline_spent` table: what this kiosk charged each person on its own decision that
//! the backend has not confirmed yet. It counts against the offline limit until the charge's
//! answer settles it.

use rusqlite::{params, Connection};

use super::{LocalStore, Result};

pub(super) fn add(conn: &Connection, key: &str, staff_id: i64, amount_fen: i64) -> Result<()> {
    conn.execute(
        "INSERT OR IGNORE INTO offline_spent (idempotency_key, staff_id, amount_fen) VALUES (?1, ?2, ?3)",
        params![key, staff_id, amount_fen],
    )?;
    Ok(())
}

pub(super) fn settle(conn: &Connection, key: &str) -> Result<()> {
    conn.execute(
        "UPDATE offline_spent SET settled = 1 WHERE idempotency_key = ?1",
        [key],
    )?;
    Ok(())
}

/// The spending now belongs to the charge `to` (a served meal's follow-up charge).
pub(super) fn move_to(conn: &Connection, from: &str, to: &str) -> Result<()> {
    conn.execute(
        "UPDATE OR IGNORE offline_spent SET idempotency_key = ?2 WHERE idempotency_key = ?1",
        params![from, to],
    )?;
    Ok(())
}

impl LocalStore {
    /// Records an offline charge against the person's offline allowance.
    pub fn add_offline_spend(&mut self, key: &str, staff_id: i64, amount_fen: i64) -> Result<()> {
        add(&self.conn, key, staff_id, amount_fen)
    }

    /// The backend has seen the charge: it no longer counts against the offline limit.
    pub fn settle_offline_spend(&mut self, key: &str) -> Result<()> {
        settle(&self.conn, key)
    }

    /// What this kiosk charged `staff_id` offline that the backend has not confirmed yet.
    pub fn unsettled_offline_fen(&self, staff_id: i64) -> Result<i64> {
        Ok(self.conn.query_row(
            "SELECT COALESCE(SUM(amount_fen), 0) FROM offline_spent WHERE staff_id = ?1 AND settled = 0",
            [staff_id],
            |r| r.get(0),
        )?)
    }
}

/// The charge `key` no longer counts: its diner was not served after all.
pub(super) fn forget(conn: &Connection, key: &str) -> Result<()> {
    conn.execute(
        "DELETE FROM offline_spent WHERE idempotency_key = ?1",
        [key],
    )?;
    Ok(())
}
