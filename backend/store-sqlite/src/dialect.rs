//! What SQLite does differently from the SQL shared with PostgreSQL (`backend/store/sql`): the
//! driver types, a write transaction that takes the database's write lock up front
//! (`BEGIN IMMEDIATE`, so concurrent writers queue instead of failing half-way on a lock
//! upgrade), no row-lock clauses (SQLite has one writer at a time, so there is nothing to lock
//! row by row), no sealer lock (the single writer serialises sealers).

use crate::sql::error::db;
use store::Result;

pub(crate) type Db = sqlx::Sqlite;
pub(crate) type DbPool = sqlx::SqlitePool;

pub(crate) const BACKEND_NAME: &str = "sqlite";

/// One writer at a time: write transactions and batch writers queue at the store's writer gate
/// (a fair FIFO) instead of in SQLite's busy handler (sleep and retry).
pub(crate) const SERIALIZE_WRITERS: bool = true;

/// SQLite has one writer at a time: a second batch writer would only wait at the gate.
pub(crate) const DEFAULT_CHARGE_WRITERS: usize = 1;

/// Row locks do not exist in SQLite; `BEGIN IMMEDIATE` has locked the database.
macro_rules! for_update {
    () => {
        ""
    };
}
pub(crate) use for_update;

/// The clause that locks a person's two wallet rows in a join (see `for_update`).
macro_rules! lock_wallets {
    () => {
        ""
    };
}
pub(crate) use lock_wallets;

pub(crate) async fn begin_write(pool: &DbPool) -> Result<sqlx::Transaction<'static, Db>> {
    pool.begin_with("BEGIN IMMEDIATE").await.map_err(db)
}

/// Only one writer exists at a time, so the sealer needs no lock of its own.
pub(crate) async fn try_sealer_lock(_conn: &mut sqlx::SqliteConnection) -> Result<bool> {
    Ok(true)
}
