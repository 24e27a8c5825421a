//! The [`store::Store`] trait on PostgreSQL, for larger sites and several backend instances
//! behind a load balancer. Money transactions run at READ COMMITTED and lock the person's wallet
//! rows with `SELECT ... FOR UPDATE`: charges for one person queue on that lock, charges for
//! different people run in parallel, and every decision is made on balances nobody else can
//! change until commit. The audit sealer takes a transaction-level advisory lock so only one
//! instance chains entries at a time. The SQL itself is shared with SQLite (see
//! `backend/store/sql/common.rs`).

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use std::time::Duration;

type Db = sqlx::Postgres;
type DbPool = sqlx::PgPool;
const SERIALIZE_WRITERS: bool = false;
const IS_POSTGRES: bool = true;
const BACKEND_NAME: &str = "postgres";

macro_rules! for_update {
    () => {
        " FOR UPDATE"
    };
}
// Locks only the two wallet rows, not the staff row (which managers may edit meanwhile).
macro_rules! lock_wallets {
    () => {
        " FOR UPDATE OF c, sb"
    };
}

async fn begin_write(pool: &DbPool) -> Result<sqlx::Transaction<'static, Db>, StoreError> {
    pool.begin().await.map_err(db)
}

/// An arbitrary constant naming the sealer's advisory lock ("CPAU").
const SEALER_LOCK_KEY: i64 = 0x4350_4155;

async fn try_sealer_lock(tx: &mut WriteTx) -> Result<bool, StoreError> {
    let (got,): (bool,) = sqlx::query_as("SELECT pg_try_advisory_xact_lock($1)")
        .bind(SEALER_LOCK_KEY)
        .fetch_one(&mut **tx)
        .await
        .map_err(db)?;
    Ok(got)
}

include!("../../store/sql/common.rs");

/// PostgreSQL connection settings.
#[derive(Clone, Debug)]
pub struct PostgresSettings {
    pub max_connections: u32,
    pub acquire_timeout: Duration,
}

impl Default for PostgresSettings {
    fn default() -> Self {
        PostgresSettings {
            max_connections: 16,
            acquire_timeout: Duration::from_secs(30),
        }
    }
}

pub type PostgresStore = SqlStore;

impl SqlStore {
    pub async fn connect(url: &str, s: &PostgresSettings) -> Result<Self, StoreError> {
        let opts = PgConnectOptions::from_str(url)
            .map_err(|e| StoreError::Database(format!("bad PostgreSQL URL: {e}")))?;
        let pool = PgPoolOptions::new()
            .max_connections(s.max_connections.max(1))
            .acquire_timeout(s.acquire_timeout)
            .connect_with(opts)
            .await
            .map_err(db)?;
        Ok(SqlStore::from_pool(pool))
    }
}

impl SqlStore {
    /// Connects to database `name` on the server of `url` (used by tests and benchmarks that
    /// work in scratch databases).
    pub async fn connect_database(
        url: &str,
        name: &str,
        s: &PostgresSettings,
    ) -> Result<Self, StoreError> {
        let opts = PgConnectOptions::from_str(url)
            .map_err(|e| StoreError::Database(format!("bad PostgreSQL URL: {e}")))?
            .database(name);
        let pool = PgPoolOptions::new()
            .max_connections(s.max_connections.max(1))
            .acquire_timeout(s.acquire_timeout)
            .connect_with(opts)
            .await
            .map_err(db)?;
        Ok(SqlStore::from_pool(pool))
    }
}

/// Creates an empty database with a unique name starting with `prefix` and returns the name.
pub async fn create_scratch_database(url: &str, prefix: &str) -> Result<String, StoreError> {
    use sqlx::Connection;
    static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let name = format!(
        "{prefix}_{}_{}_{}",
        std::process::id(),
        N.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
        nanos
    );
    let opts = PgConnectOptions::from_str(url)
        .map_err(|e| StoreError::Database(format!("bad PostgreSQL URL: {e}")))?;
    let mut conn = sqlx::PgConnection::connect_with(&opts).await.map_err(db)?;
    // The name is made of our own digits and a caller-chosen constant prefix, so formatting it
    // into the statement is safe (identifiers cannot be bound as parameters).
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE \"{name}\"")))
        .execute(&mut conn)
        .await
        .map_err(db)?;
    conn.close().await.map_err(db)?;
    Ok(name)
}

pub async fn drop_database(url: &str, name: &str) -> Result<(), StoreError> {
    use sqlx::Connection;
    let opts = PgConnectOptions::from_str(url)
        .map_err(|e| StoreError::Database(format!("bad PostgreSQL URL: {e}")))?;
    let mut conn = sqlx::PgConnection::connect_with(&opts).await.map_err(db)?;
    let safe: String = name
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
        .collect();
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "DROP DATABASE IF EXISTS \"{safe}\" WITH (FORCE)"
    )))
    .execute(&mut conn)
    .await
    .map_err(db)?;
    conn.close().await.map_err(db)?;
    Ok(())
}
