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
        Ok(SqlStore::from_pool_with(pool, s.batch))
    }
}

// ---- group commit: the pieces of a charge batch (see backend/store/sql/batch.rs) ----------

/// SQLite has one writer at a time: a second batch writer would only wait at the gate.
const DEFAULT_CHARGE_WRITERS: usize = 1;

/// (staff id, active, meals per period, category, cash account, cash, subsidy account, subsidy).
type LockedPersonRow = (i64, bool, i64, String, i64, i64, i64, i64);

/// Reads the wallets of every person of a batch (`BEGIN IMMEDIATE` already holds the database's
/// write lock, so nothing can change them until commit). Ids travel as a JSON array.
async fn batch_lock(
    tx: &mut WriteTx,
    staff_ids: &[i64],
) -> Result<Vec<(i64, BatchPerson)>, StoreError> {
    let ids = serde_json::to_string(staff_ids).map_err(corrupt)?;
    let rows: Vec<LockedPersonRow> = sqlx::query_as(
        "SELECT s.id, s.active, s.meals_per_period, s.category, c.id, c.balance_fen, sb.id, sb.balance_fen \
         FROM staff s \
         JOIN book_accounts c ON c.staff_id = s.id AND c.kind = 'cash' \
         JOIN book_accounts sb ON sb.staff_id = s.id AND sb.kind = 'subsidy' \
         WHERE s.id IN (SELECT value FROM json_each($1))",
    )
    .bind(ids)
    .fetch_all(&mut **tx)
    .await
    .map_err(db)?;
    rows.into_iter()
        .map(|r| {
            Ok((
                r.0,
                BatchPerson {
                    active: r.1,
                    meals_per_period: to_u32(r.2)?,
                    category: r.3,
                    wallets: Wallets {
                        staff_id: r.0,
                        cash_id: r.4,
                        cash: Fen(r.5),
                        subsidy_id: r.6,
                        subsidy: Fen(r.7),
                    },
                },
            ))
        })
        .collect()
}

/// Accepted charges per (person, local day, meal): sum and count.
async fn batch_totals(
    tx: &mut WriteTx,
    days: &[(i64, String)],
) -> Result<Vec<(i64, String, Option<String>, i64, i64)>, StoreError> {
    let days = serde_json::to_string(days).map_err(corrupt)?;
    sqlx::query_as(
        "SELECT c.staff_id, c.local_date, c.meal, CAST(SUM(c.amount_fen) AS INTEGER), COUNT(*) \
         FROM json_each($1) d JOIN charges c \
           ON c.staff_id = json_extract(d.value, '$[0]') AND c.local_date = json_extract(d.value, '$[1]') \
         WHERE c.status = 'accepted' GROUP BY c.staff_id, c.local_date, c.meal",
    )
    .bind(days)
    .fetch_all(&mut **tx)
    .await
    .map_err(db)
}

/// Stored charge responses for the batch's (kiosk, key) pairs.
async fn batch_seen(
    tx: &mut WriteTx,
    keys: &[(i64, String)],
) -> Result<Vec<(i64, String, String, String)>, StoreError> {
    let keys = serde_json::to_string(keys).map_err(corrupt)?;
    sqlx::query_as(
        "SELECT i.kiosk_id, i.key, i.request_hash, i.response \
         FROM json_each($1) k JOIN idempotency i \
           ON i.kiosk_id = json_extract(k.value, '$[0]') AND i.scope = 'charge' AND i.key = json_extract(k.value, '$[1]')",
    )
    .bind(keys)
    .fetch_all(&mut **tx)
    .await
    .map_err(db)
}

/// The database side of a charge batch: `BEGIN IMMEDIATE` (behind the writer gate), read,
/// decide, write row by row, one commit (one fsync) for the whole batch.
async fn apply_batch(
    ctx: &BatchCtx,
    items: &[PreparedCharge],
) -> Result<Option<Vec<Plan>>, StoreError> {
    let mut tx = begin_gated(&ctx.pool, &ctx.gate).await?;
    let k = BatchKeys::of(items);
    let facts = BatchFacts {
        people: batch_lock(&mut tx, &k.staff_ids).await?,
        totals: batch_totals(&mut tx, &k.days).await?,
        seen: batch_seen(&mut tx, &k.keys).await?,
    };
    let mut plans = plan_from_facts(&ctx.sys, items, facts)?;
    write_batch_rows(&mut tx, &ctx.sys, items, &mut plans).await?;
    tx.commit().await.map_err(db)?;
    Ok(Some(plans))
}

/// Writes a batch's plans one charge at a time with the one-charge helpers (SQLite, where a
/// statement costs microseconds and the saving is the shared commit).
async fn write_batch_rows(
    tx: &mut Tx,
    sys: &SystemIds,
    items: &[PreparedCharge],
    plans: &mut [Plan],
) -> SResult<()> {
    let insert_charge = "INSERT INTO charges (kiosk_id, idempotency_key, staff_id, canteen_id, meal, local_date, \
         kiosk_time, received_at, amount_fen, subsidy_fen, cash_fen, status, reason, entry_id, offline) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15) RETURNING id";
    for plan in plans.iter_mut() {
        let Plan::Write(w) = plan else { continue };
        let cmd = &items[w.item].cmd;
        let entry_id = match &w.entry {
            Some(entry) => {
                let mut wallets = Wallets {
                    staff_id: cmd.staff_id,
                    cash_id: w.cash_id,
                    cash: Fen::ZERO,
                    subsidy_id: w.subsidy_id,
                    subsidy: Fen::ZERO,
                };
                Some(
                    SqlStore::post_entry(tx, sys, &mut wallets, entry, &w.memo, cmd.received_ms)
                        .await?,
                )
            }
            None => None,
        };
        if let Some(status) = w.status {
            let r = &w.result;
            let (id,): (i64,) = sqlx::query_as(insert_charge)
                .bind(cmd.kiosk_id)
                .bind(&cmd.idempotency_key)
                .bind(cmd.staff_id)
                .bind(cmd.canteen_id)
                .bind(r.meal.map(|m| m.as_str()))
                .bind(r.local_date.as_deref().unwrap_or_default())
                .bind(cmd.kiosk_time_ms)
                .bind(cmd.received_ms)
                .bind(r.amount.0)
                .bind(r.subsidy.0)
                .bind(r.cash.0)
                .bind(status)
                .bind(r.reason.as_deref())
                .bind(entry_id)
                .bind(cmd.offline)
                .fetch_one(&mut **tx)
                .await
                .map_err(db)?;
            w.result.charge_id = Some(id);
        }
        let response = serde_json::to_string(&w.result).map_err(corrupt)?;
        SqlStore::save_idempotency(
            tx,
            cmd.kiosk_id,
            "charge",
            &cmd.idempotency_key,
            &cmd.request_hash,
            &response,
            cmd.received_ms,
        )
        .await?;
        if let Some(action) = w.audit_action() {
            SqlStore::audit(
                tx,
                &Actor::Kiosk { id: cmd.kiosk_id },
                action,
                w.audit_detail(cmd),
                cmd.received_ms,
            )
            .await?;
        }
    }
    Ok(())
}
