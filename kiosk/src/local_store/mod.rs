//! The kiosk's local state in SQLite, one module per table: the [`outbox`] of requests waiting
//! to reach the backend, the [`meals`] already charged here (so a person is not charged twice
//! in one meal period even offline), the cached [`balances`] and the offline [`allowance`]
//! offline decisions use, and the [`waste_log`] of weighings shown at this station.
//! [`follow_up`] is the one place that knows what a final answer teaches these tables, and
//! [`undo`] takes back a charge whose diner says "not me";
//! [`schema`] creates them and migrates databases made by earlier versions.
//!
//! The outbox is the kiosk's promise-keeping device. A charge is committed here, with
//! `synchronous=FULL` in WAL mode so the commit survives a power cut, BEFORE the diner
//! is told "paid"; it is then sent in order (lowest sequence number first), and an item
//! is marked delivered only after the backend answered. A crash between "sent" and
//! "marked" resends the same idempotency key, which the backend answers with the stored
//! result, so each item takes effect exactly once. A transient failure stops the drain
//! (order is kept); a permanent refusal (a 4xx other than 408/429) sets the item aside as
//! `rejected` for a person to look at, so one bad item cannot block the queue forever.
//!
//! Requests and answers are typed ([`Request`], [`Answer`]) everywhere in the kiosk; they
//! become JSON only in the outbox's `body` and `response` columns.

use std::path::Path;

use rusqlite::Connection;

pub mod allowance;
pub mod balances;
pub mod follow_up;
pub mod meals;
pub mod outbox;
mod schema;
pub mod undo;
pub mod waste_log;

#[cfg(test)]
mod tests;

pub use balances::{CachedBalance, SnapshotBalance};
pub use follow_up::{
    refused_follow_up, served_follow_up, served_key, void_key, SERVED_SUFFIX, VOID_REASON,
    VOID_SUFFIX,
};
pub use outbox::{Answer, Delivery, DrainReport, ItemKind, OutboxCounts, OutboxItem, Request};
pub use undo::ChargeState;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("local database: {0}")]
    Sql(#[from] rusqlite::Error),
    #[error("local database: {0}")]
    Json(#[from] serde_json::Error),
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// The kiosk's database (`<data_dir>/kiosk.db`). Each table's operations are in its module.
pub struct LocalStore {
    conn: Connection,
}

impl LocalStore {
    /// Opens (or creates) the database file with WAL and `synchronous=FULL`.
    pub fn open(path: &Path) -> Result<LocalStore> {
        let conn = Connection::open(path)?;
        Self::init(conn)
    }

    /// An in-memory database, for tests.
    pub fn in_memory() -> Result<LocalStore> {
        Self::init(Connection::open_in_memory()?)
    }

    fn init(conn: Connection) -> Result<LocalStore> {
        // WAL: readers never block the writer; FULL: a commit is fsynced before it returns,
        // which is the guarantee "written before the diner is told paid" needs.
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        schema::create_and_migrate(&conn)?;
        Ok(LocalStore { conn })
    }
}
