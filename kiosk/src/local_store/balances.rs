//! The `balances` table: each person's balance as last heard from the backend, for offline
//! decisions. Two sources feed it, and the newer news wins: charge answers (no version) and
//! the paged balances snapshot (a version per person, and whether they are active and their
//! staff category, which pick the offline price and refuse the offboarded, and their name and
//! department for the screens).

use rusqlite::{params, Connection, OptionalExtension};
use serde::Serialize;

use super::{LocalStore, Result};

/// A person's balance as last heard from the backend (a charge answer or the balances
/// snapshot).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CachedBalance {
    pub staff_id: i64,
    /// Cash + subsidy, in fen, as the backend last reported it.
    pub available_fen: i64,
    pub as_of_ms: i64,
    /// The snapshot's version of this person's balances; None when the newest news was a
    /// charge answer (which carries none).
    pub version: Option<i64>,
    /// False for people the backend lists as inactive (offboarded): refused offline.
    pub active: bool,
    /// Staff category, to pick the offline price; None until a snapshot told it.
    pub category: Option<String>,
}

/// One person's entry of the backend's balances snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotBalance {
    pub staff_id: i64,
    pub available_fen: i64,
    pub version: i64,
    pub active: bool,
    pub category: String,
    /// Empty when the backend did not say.
    pub name: String,
    pub department: String,
}

/// A balance from a charge answer received at `as_of_ms`; it replaces what is cached unless
/// that is newer news (a snapshot page requested later).
pub(super) fn set_from_charge(
    conn: &Connection,
    staff_id: i64,
    available_fen: i64,
    as_of_ms: i64,
) -> Result<()> {
    conn.execute(
        "INSERT INTO balances (staff_id, available_fen, as_of_ms) VALUES (?1, ?2, ?3)
         ON CONFLICT(staff_id) DO UPDATE SET available_fen = excluded.available_fen,
           as_of_ms = excluded.as_of_ms, version = NULL
         WHERE excluded.as_of_ms >= balances.as_of_ms",
        params![staff_id, available_fen, as_of_ms],
    )?;
    Ok(())
}

impl LocalStore {
    /// A balance from a charge answer received at `as_of_ms`. It replaces what is cached
    /// unless that is newer news (a snapshot page requested later).
    pub fn set_balance(&mut self, staff_id: i64, available_fen: i64, as_of_ms: i64) -> Result<()> {
        set_from_charge(&self.conn, staff_id, available_fen, as_of_ms)
    }

    /// One page of the backend's balances snapshot, requested at `requested_ms`, in one
    /// transaction. Per person the entry replaces the cached one when its version is higher
    /// or, if the cached one came from a charge answer (no version), when the page was
    /// requested after that answer arrived. Returns how many balances changed.
    pub fn apply_balance_snapshot(
        &mut self,
        entries: &[SnapshotBalance],
        requested_ms: i64,
    ) -> Result<usize> {
        let tx = self.conn.transaction()?;
        let mut changed = 0;
        {
            let mut upsert = tx.prepare(
                "INSERT INTO balances (staff_id, available_fen, as_of_ms, version, active, category)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                 ON CONFLICT(staff_id) DO UPDATE SET available_fen = excluded.available_fen,
                   as_of_ms = excluded.as_of_ms, version = excluded.version
                 WHERE (balances.version IS NOT NULL AND excluded.version > balances.version)
                    OR (balances.version IS NULL AND excluded.as_of_ms >= balances.as_of_ms)",
            )?;
            // Whether someone is active and their category are not balance news: always current.
            let mut facts = tx.prepare(
                "UPDATE balances SET active = ?2, category = ?3,
                   name = COALESCE(NULLIF(?4, ''), name), department = COALESCE(NULLIF(?5, ''), department)
                 WHERE staff_id = ?1",
            )?;
            for e in entries {
                changed += upsert.execute(params![
                    e.staff_id,
                    e.available_fen,
                    requested_ms,
                    e.version,
                    e.active,
                    e.category
                ])?;
                facts.execute(params![
                    e.staff_id,
                    e.active,
                    e.category,
                    e.name,
                    e.department
                ])?;
            }
        }
        tx.commit()?;
        Ok(changed)
    }

    pub fn balance(&self, staff_id: i64) -> Result<Option<CachedBalance>> {
        Ok(self
            .conn
            .query_row(
                "SELECT available_fen, as_of_ms, version, active, category FROM balances WHERE staff_id = ?1",
                [staff_id],
                |r| {
                    Ok(CachedBalance {
                        staff_id,
                        available_fen: r.get(0)?,
                        as_of_ms: r.get(1)?,
                        version: r.get(2)?,
                        active: r.get(3)?,
                        category: r.get(4)?,
                    })
                },
            )
            .optional()?)
    }

    /// A person's name and department as the backend's snapshot told them.
    pub fn person(&self, staff_id: i64) -> Result<Option<(String, String)>> {
        Ok(self
            .conn
            .query_row(
                "SELECT name, COALESCE(department, '') FROM balances WHERE staff_id = ?1 AND name IS NOT NULL",
                [staff_id],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?)
    }

    /// How many people have a cached balance.
    pub fn balances_known(&self) -> Result<i64> {
        Ok(self
            .conn
            .query_row("SELECT count(*) FROM balances", [], |r| r.get(0))?)
    }
}
