//! The SQL implementation of [`store::Store`], shared by `store-sqlite` and `store-postgres`.
//!
//! These files belong to no crate of their own: each database crate declares them as its module
//! `sql` (`#[path = "../../store/sql/mod.rs"] mod sql;`) beside its own `dialect` module, so the
//! same source compiles twice, once against each concrete sqlx driver (`crate::dialect::Db`),
//! with no generic sqlx bounds: a function generic over `sqlx::Database` needs bounds for every
//! type it binds or reads and for the executor, and Rust does not carry a trait's where-clauses
//! to its users, so they would be repeated on every function here. Both databases accept the
//! same SQL for everything in these modules (numbered `$N` parameters, `RETURNING`,
//! `ON CONFLICT`, `UPDATE ... FROM`).
//!
//! Layers, each using only those before it (so hooks run one way):
//! 1. `crate::dialect` (the database crate): the driver types and what differs in a statement
//!    or a transaction — how a write transaction begins, row-lock clauses, the sealer's lock.
//! 2. `error`, `rows`, `tx`, `journal`: driver errors to [`store::StoreError`] (constraints by
//!    name), rows to types, write transactions, and the book's row writers (entries and
//!    postings, charge rows, idempotency records, audit entries).
//! 3. `plan`: a batch of charges decided in Rust (pure) and its decisions as rows.
//! 4. `crate::batch_io` (the database crate): a batch's reads and writes in that database's
//!    best form (SQLite: `json_each` and row by row; PostgreSQL: one statement each way).
//! 5. `batch` (the queue and the writers), then the areas — `canteens`, `people`, `kiosks`,
//!    `charges`, `refunds`, `topups`, `pay_codes`, `waste`, `faces`, `audit`, `check` — and
//!    `dispatch`, the trait impl, which only forwards each method to its area.
//!
//! Concurrency model: every money operation runs in one write transaction that first locks the
//! person's two wallet rows (PostgreSQL: `SELECT ... FOR UPDATE`; SQLite: `BEGIN IMMEDIATE`, one
//! writer at a time), then reads the facts, asks `ledger` for the decision and writes the entry,
//! the postings, the cached balances, the business row, the idempotency record and the audit
//! entry before committing. Nothing about money is decided on data read outside that lock (the
//! canteen's rules — windows, caps, prices — come from a one-second cache). Charges are the one
//! exception to "one transaction per call": they are written in batches (see `batch`).

mod audit;
pub(crate) mod batch;
mod canteens;
mod charges;
mod check;
mod dashboard;
mod dispatch;
pub(crate) mod error;
mod export;
mod faces;
pub(crate) mod journal;
mod kiosks;
mod pay_codes;
mod people;
pub(crate) mod plan;
mod refunds;
pub(crate) mod rows;
mod topups;
pub(crate) mod tx;
mod waste;

pub(crate) use batch::BatchCtx;
pub use batch::BatchSettings;

use crate::dialect::{Db, DbPool};
use error::{corrupt, db};
use journal::SystemIds;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Instant;
use store::Result;
use tx::{begin_gated, Tx, WriterGate};

pub struct SqlStore {
    pool: DbPool,
    /// The connections charge batch writers use (see `BatchCtx`). On SQLite the same pool; on
    /// PostgreSQL a small pool of its own whose sessions keep one generic plan per statement
    /// (the batch statements are written so that plan is index lookups whatever the tables'
    /// sizes), so a batch is not re-planned on every call.
    batch_pool: DbPool,
    system: OnceLock<SystemIds>,
    /// SQLite has one writer at a time anyway; queueing writers here (a fair FIFO) instead of in
    /// SQLite's busy handler (sleep-and-retry) keeps tail latency low. `None` on PostgreSQL.
    write_gate: Option<WriterGate>,
    /// Canteen rules (windows, caps, prices) for at most `canteens::RULES_TTL`: they change
    /// rarely and are read by every charge. Changes made through this instance clear it at once;
    /// other instances see them within the TTL. Money facts are never cached.
    rules: Mutex<HashMap<i64, (Instant, Arc<canteens::CanteenRules>)>>,
    /// The key of the audit chain (see `audit`): given by the server's configuration, never
    /// stored in the database.
    audit_key: store::AuditKey,
    /// Charges waiting for a batch writer (group commit, see `batch::ChargeQueue`).
    queue: Arc<batch::ChargeQueue>,
}

impl SqlStore {
    /// A store on `pool` with this database's default charge batching.
    pub fn from_pool(pool: DbPool) -> Self {
        Self::from_pool_with(pool, BatchSettings::default())
    }

    pub fn from_pool_with(pool: DbPool, batch: BatchSettings) -> Self {
        Self::from_pools(pool.clone(), pool, batch)
    }

    /// A store whose charge batch writers use `batch_pool` and everything else `pool`.
    pub fn from_pools(pool: DbPool, batch_pool: DbPool, batch: BatchSettings) -> Self {
        let write_gate = crate::dialect::SERIALIZE_WRITERS.then(WriterGate::default);
        SqlStore {
            pool,
            batch_pool,
            system: OnceLock::new(),
            write_gate,
            rules: Default::default(),
            audit_key: store::AuditKey::default(),
            queue: Arc::new(batch::ChargeQueue::new(batch)),
        }
    }

    /// The key the audit chain is sealed and checked with (the development key otherwise).
    pub fn with_audit_key(mut self, key: store::AuditKey) -> Self {
        self.audit_key = key;
        self
    }

    /// How charges are grouped into transactions.
    pub fn batch_settings(&self) -> BatchSettings {
        self.queue.settings
    }

    pub fn pool(&self) -> &DbPool {
        &self.pool
    }

    /// Begins a write transaction (behind the writer gate where there is one).
    async fn begin(&self) -> Result<Tx> {
        begin_gated(&self.pool, self.write_gate.as_ref()).await
    }

    async fn system_ids(&self) -> Result<SystemIds> {
        if let Some(s) = self.system.get() {
            return Ok(*s);
        }
        let rows: Vec<(String, i64)> =
            sqlx::query_as("SELECT kind, id FROM book_accounts WHERE staff_id IS NULL")
                .fetch_all(&self.pool)
                .await
                .map_err(db)?;
        let find = |k: &str| {
            rows.iter()
                .find(|(kind, _)| kind == k)
                .map(|(_, id)| *id)
                .ok_or_else(|| {
                    corrupt(format!("system account {k} missing; run `backend migrate`"))
                })
        };
        let ids = SystemIds {
            revenue: find("revenue")?,
            subsidy_fund: find("subsidy_fund")?,
            gateway: find("gateway")?,
            cash_out: find("cash_out")?,
        };
        let _ = self.system.set(ids);
        Ok(ids)
    }

    /// What a charge batch needs from the store: the batch writers' pool, or for a charge settled
    /// alone (`Locking::Wait`) the main pool, like every other transaction.
    async fn batch_ctx(&self, alone: bool) -> Result<BatchCtx> {
        Ok(BatchCtx {
            pool: if alone {
                self.pool.clone()
            } else {
                self.batch_pool.clone()
            },
            gate: self.write_gate.clone(),
            sys: self.system_ids().await?,
        })
    }
}

/// Applies this database's migrations: `sqlx::migrate!` reads the `migrations` folder of the crate
/// being compiled, so each database crate embeds its own (the two folders are kept in step).
async fn migrate(pool: &DbPool) -> Result<()> {
    sqlx::migrate!("./migrations")
        .run(pool)
        .await
        .map_err(store::StoreError::database)
}

/// A row of this database's driver (for the row mappers in `rows`).
type DbRow = <Db as sqlx::Database>::Row;
