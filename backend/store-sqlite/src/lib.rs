//! The [`store::Store`] trait on SQLite: the default database, a single file in the data
//! directory. WAL mode lets readers proceed while one writer writes; every write transaction
//! starts with `BEGIN IMMEDIATE`, taking the write lock up front, so concurrent charges queue
//! (with `busy_timeout`) instead of failing half-way on a lock upgrade. The SQL itself is shared
//! with PostgreSQL (see `backend/store/sql/common.rs`).

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use std::time::Duration;

type Db = sqlx::Sqlite;
type DbPool = sqlx::SqlitePool;
const SERIALIZE_WRITERS: bool = true;
const IS_POSTGRES: bool = false;
const BACKEND_NAME: &str = "sqlite";

// SQLite serialises writers with its database lock, taken by `BEGIN IMMEDIATE`; row locks do not
// exist, so these clauses are empty.
macro_rules! for_update {
    () => {
        ""
    };
}
macro_rules! lock_wallets {
    () => {
        ""
    };
}

async fn begin_write(pool: &DbPool) -> Result<sqlx::Transaction<'static, Db>, StoreError> {
    pool.begin_with("BEGIN IMMEDIATE").await.map_err(db)
}

/// Only one writer exists at a time, so the sealer needs no lock of its own.
async fn try_sealer_lock(_tx: &mut WriteTx) -> Result<bool, StoreError> {
    Ok(true)
}

include!("../../store/sql/common.rs");

/// SQLite connection settings.
#[derive(Clone, Debug)]
pub struct SqliteSettings {
    pub max_connections: u32,
    /// How long a writer waits for the write lock before giving up with `Busy`.
    pub busy_timeout: Duration,
    /// `FULL` survives power loss; `NORMAL` (with WAL) survives process crashes only.
    pub synchronous_full: bool,
}

impl Default for SqliteSettings {
    fn default() -> Self {
        SqliteSettings {
            max_connections: 8,
            busy_timeout: Duration::from_secs(30),
            synchronous_full: true,
        }
    }
}

pub type SqliteStore = SqlStore;

impl SqlStore {
    /// Opens (creating if missing) the database at `url` (`sqlite://path` or `sqlite::memory:`).
    pub async fn connect(url: &str, s: &SqliteSettings) -> Result<Self, StoreError> {
        let opts = SqliteConnectOptions::from_str(url)
            .map_err(|e| StoreError::Database(format!("bad SQLite URL {url:?}: {e}")))?
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
        Ok(SqlStore::from_pool(pool))
    }
}
