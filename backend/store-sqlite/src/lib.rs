//! The [`store::Store`] trait on SQLite: the default database, a single file in the data
//! directory. WAL mode lets readers proceed while one writer writes; every write transaction
//! starts with `BEGIN IMMEDIATE`, taking the write lock up front, so concurrent writers queue
//! (at an in-process FIFO gate, then `busy_timeout` for other processes) instead of failing
//! half-way on a lock upgrade. Charges are written in batches, one commit (one fsync) each.
//!
//! The SQL both databases accept is shared with `store-postgres`: it is this crate's module
//! `sql`, compiled from `backend/store/sql` against this crate's `dialect` (see that module's
//! comment for why it is not a generic crate). What only SQLite does lives here: `dialect`
//! (`BEGIN IMMEDIATE`, no row locks), `batch_io` (the batch's `json_each` reads) and its
//! migrations.

mod batch_io;
mod dialect;
#[path = "../../store/sql/mod.rs"]
mod sql;

pub use sql::{BatchSettings, SqlStore};

use sql::error::db;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use std::str::FromStr;
use std::time::Duration;
use store::Result;

/// SQLite connection settings.
#[derive(Clone, Debug)]
pub struct SqliteSettings {
    pub max_connections: u32,
    /// How long a writer waits for the write lock before giving up with `Busy`.
    pub busy_timeout: Duration,
    /// `FULL` survives power loss; `NORMAL` (with WAL) survives process crashes only.
    pub synchronous_full: bool,
    /// Group commit of charges (one fsync per batch instead of one per charge).
    pub batch: BatchSettings,
}

impl Default for SqliteSettings {
    fn default() -> Self {
        SqliteSettings {
            max_connections: 8,
            busy_timeout: Duration::from_secs(30),
            synchronous_full: true,
            batch: BatchSettings::default(),
        }
    }
}

pub type SqliteStore = SqlStore;

impl SqlStore {
    /// Opens (creating if missing) the database at `url` (`sqlite://path` or `sqlite::memory:`).
    pub async fn connect(url: &str, s: &SqliteSettings) -> Result<Self> {
        let opts = SqliteConnectOptions::from_str(url)
            .map_err(db)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(if s.synchronous_full {
                SqliteSynchronous::Full
            } else {
                SqliteSynchronous::Normal
            })
            .busy_timeout(s.busy_timeout)
            .foreign_keys(true);
        let pool = SqlitePoolOptions::new()
            .max_connections(s.max_connections.max(1))
            .acquire_timeout(s.busy_timeout)
            .connect_with(opts)
            .await
            .map_err(db)?;
        Ok(SqlStore::from_pool_with(pool, s.batch))
    }
}
