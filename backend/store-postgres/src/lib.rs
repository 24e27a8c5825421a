//! The [`store::Store`] trait on PostgreSQL, for larger sites and several backend instances
//! behind a load balancer. Money transactions run at READ COMMITTED and lock the person's wallet
//! rows with `SELECT ... FOR UPDATE`: charges for one person queue on that lock, charges for
//! different people run in parallel, and every decision is made on balances nobody else can
//! change until commit. Charges are written in batches of two statements each (`batch_io`). The
//! audit sealer takes a transaction-level advisory lock so only one instance chains entries at a
//! time.
//!
//! The SQL both databases accept is shared with `store-sqlite`: it is this crate's module `sql`,
//! compiled from `backend/store/sql` against this crate's `dialect` (see that module's comment
//! for why it is not a generic crate). What only PostgreSQL does lives here: `dialect` (locks,
//! transactions) and `batch_io` (the batch's one-statement read and write), and its migrations.

mod batch_io;
mod dialect;
#[path = "../../store/sql/mod.rs"]
mod sql;

pub use batch_io::{READ_BATCH_SQL, WRITE_BATCH_SQL};
pub use sql::{BatchSettings, SqlStore};

use sql::error::db;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use std::str::FromStr;
use std::time::Duration;
use store::Result;

/// PostgreSQL connection settings.
#[derive(Clone, Debug)]
pub struct PostgresSettings {
    pub max_connections: u32,
    pub acquire_timeout: Duration,
    /// Group commit of charges.
    pub batch: BatchSettings,
}

impl Default for PostgresSettings {
    fn default() -> Self {
        PostgresSettings {
            max_connections: 16,
            acquire_timeout: Duration::from_secs(30),
            batch: BatchSettings::default(),
        }
    }
}

pub type PostgresStore = SqlStore;

impl SqlStore {
    pub async fn connect(url: &str, s: &PostgresSettings) -> Result<Self> {
        let opts = PgConnectOptions::from_str(url).map_err(db)?;
        Self::connect_with(opts, s).await
    }

    /// Connects to database `name` on the server of `url` (used by tests and benchmarks that
    /// work in scratch databases).
    pub async fn connect_database(url: &str, name: &str, s: &PostgresSettings) -> Result<Self> {
        let opts = PgConnectOptions::from_str(url).map_err(db)?.database(name);
        Self::connect_with(opts, s).await
    }

    /// The main pool, and the batch writers' own pool (one connection per writer). Why the
    /// writers' sessions use `plan_cache_mode = force_generic_plan`: PostgreSQL keeps a custom
    /// plan for a statement whose generic plan it estimates dearer, and for the batch read
    /// (arrays of unknown length, `generate_series` of an unknown count) it always does, so it
    /// planned that statement again on every batch — measured at 0.375 ms of planning against
    /// 0.24 ms of execution, a quarter of PostgreSQL's CPU per charge. The batch statements are
    /// written so their generic plan is index lookups even when made on empty tables (see
    /// `batch_io::read_batch`), so one plan per connection is safe.
    async fn connect_with(opts: PgConnectOptions, s: &PostgresSettings) -> Result<Self> {
        let pool = PgPoolOptions::new()
            .max_connections(s.max_connections.max(1))
            .acquire_timeout(s.acquire_timeout)
            .connect_with(opts.clone())
            .await
            .map_err(db)?;
        let batch_pool = PgPoolOptions::new()
            .max_connections(u32::try_from(s.batch.writers.max(1)).unwrap_or(u32::MAX))
            .acquire_timeout(s.acquire_timeout)
            .connect_lazy_with(opts.options([("plan_cache_mode", "force_generic_plan")]));
        Ok(SqlStore::from_pools(pool, batch_pool, s.batch))
    }
}

/// Creates an empty database with a unique name starting with `prefix` and returns the name.
pub async fn create_scratch_database(url: &str, prefix: &str) -> Result<String> {
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
    let opts = PgConnectOptions::from_str(url).map_err(db)?;
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

pub async fn drop_database(url: &str, name: &str) -> Result<()> {
    use sqlx::Connection;
    let opts = PgConnectOptions::from_str(url).map_err(db)?;
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
