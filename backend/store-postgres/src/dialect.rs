//! What PostgreSQL does differently from the SQL shared with SQLite (`backend/store/sql`): the
//! driver types, write transactions at READ COMMITTED that lock the rows they decide on
//! (`SELECT ... FOR UPDATE`; a person's two wallet rows only, never the staff row managers may
//! edit meanwhile), the sealer's transaction-level advisory lock (one instance seals at a time).

use crate::sql::error::db;
use store::Result;

pub(crate) type Db = sqlx::Postgres;
pub(crate) type DbPool = sqlx::PgPool;

pub(crate) const BACKEND_NAME: &str = "postgres";

/// Row locks let writers of different people run in parallel: no writer gate.
pub(crate) const SERIALIZE_WRITERS: bool = false;

/// Batches in flight at once: while one batch waits for its round trips and commit, the other
/// is being read, decided and written on its own connection. Two, measured (`backend-bench`,
/// 2 cores): more writers make smaller batches, and each batch has a fixed cost in PostgreSQL
/// (two statements and a commit); with 16 clients two writers gave 0.68 x pgbench against 0.63
/// with four, with 32 clients both gave 0.93.
pub(crate) const DEFAULT_CHARGE_WRITERS: usize = 2;

/// Locks the rows a `SELECT` reads until commit.
macro_rules! for_update {
    () => {
        " FOR UPDATE"
    };
}
pub(crate) use for_update;

/// Locks only the two wallet rows (`c`, `sb`) of a join with the staff row.
macro_rules! lock_wallets {
    () => {
        " FOR UPDATE OF c, sb"
    };
}
pub(crate) use lock_wallets;

pub(crate) async fn begin_write(pool: &DbPool) -> Result<sqlx::Transaction<'static, Db>> {
    pool.begin().await.map_err(db)
}

/// An arbitrary constant naming the sealer's advisory lock ("CPAU").
const SEALER_LOCK_KEY: i64 = 0x4350_4155;

/// Whether this transaction may seal: another instance's sealer may hold the lock (then this
/// one seals nothing this round).
pub(crate) async fn try_sealer_lock(conn: &mut sqlx::PgConnection) -> Result<bool> {
    let (got,): (bool,) = sqlx::query_as("SELECT pg_try_advisory_xact_lock($1)")
        .bind(SEALER_LOCK_KEY)
        .fetch_one(conn)
        .await
        .map_err(db)?;
    Ok(got)
}
