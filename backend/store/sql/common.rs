// The SQL implementation of `store::Store`, shared by `store-sqlite` and `store-postgres`.
//
// This file is not a module of the `store` crate: each driver crate `include!`s it after
// defining `Db`, `DbPool`, `BACKEND_NAME`, `SERIALIZE_WRITERS`, `IS_POSTGRES`, `begin_write`,
// `try_sealer_lock` and the `for_update!` / `lock_wallets!` macros. Both databases accept the
// same SQL here (numbered `$N` parameters, `RETURNING`, `ON CONFLICT`, `UPDATE ... FROM`), so
// writing it once and compiling it twice against concrete driver types keeps the two
// implementations identical in behaviour without generic sqlx bounds. Where the databases must
// differ (row locks, how a write transaction begins, the sealer's lock, the one-statement write
// of an accepted charge on PostgreSQL) the driver crate supplies the piece or `IS_POSTGRES`
// selects it.
//
// Concurrency model: every money operation runs in one write transaction that first locks the
// person's two wallet rows (PostgreSQL: `SELECT ... FOR UPDATE`; SQLite: `BEGIN IMMEDIATE`, one
// writer at a time), then reads the facts, asks `ledger` for the decision and writes the entry,
// the postings, the cached balances, the business row, the idempotency record and the audit
// entry before committing. Nothing about money is decided on data read outside that lock (the
// canteen's rules — windows, caps, prices — come from a one-second cache).

use ledger::charge::{decide_charge, ChargeFacts, ChargeSplit};
use ledger::meal::{MealPeriod, Schedule};
use ledger::posting::{BookAccount, EntryKind, Posting, ProposedEntry};
use ledger::refund::{self, ChargeStatus};
use ledger::{Fen, MealKind};
use sqlx::Row;
use std::str::FromStr;
use store::{
    audit_hash, Actor, AuditEntry, Balances, Canteen, CanteenConfig, CanteenUpdate, ChargeCommand,
    BalanceRow, ChargeFilter, ChargeOutcome, ChargeRecord, ChargeResult, CheckReport, Consent, CreditOutcome,
    GalleryChange, GalleryPage, GrantSummary, Kiosk, MealWindow, NewCanteen, NewPaymentOrder,
    NewSession, NewStaff, NewUser, Offboarding, OrderStatus, PaymentOrder, Price, Refund,
    PayCodeRedemption, RefundStatus, Role, SandboxPayment, SealedTemplate, Session, Staff, StaffUpdate, StatementLine, StoreError,
    SubsidyRule, TemplateMeta, User, VoidOutcome, WasteCommand, WasteRecord, WasteStats, GENESIS_HASH,
};

/// A write transaction. On SQLite it also holds the process-wide writer gate (see `SqlStore::begin`);
/// it derefs to the connection so queries run on it as on a plain transaction.
pub struct WriteTx {
    tx: sqlx::Transaction<'static, Db>,
    _gate: Option<tokio::sync::OwnedMutexGuard<()>>,
}

impl std::ops::Deref for WriteTx {
    type Target = <Db as sqlx::Database>::Connection;
    fn deref(&self) -> &Self::Target {
        &self.tx
    }
}

impl std::ops::DerefMut for WriteTx {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.tx
    }
}

impl WriteTx {
    async fn commit(self) -> Result<(), sqlx::Error> {
        self.tx.commit().await
    }
}

type Tx = WriteTx;

/// A charge's answer before its decision: declined, nothing taken, the balances as read. Both
/// the one-charge path and the batch start from it, so their answers cannot drift apart.
fn undecided_result(meal: Option<MealKind>, local_date: &str, price: Option<Fen>, w: &Wallets) -> ChargeResult {
    ChargeResult {
        outcome: ChargeOutcome::Declined,
        charge_id: None,
        reason: None,
        meal,
        local_date: Some(local_date.to_string()),
        amount: price.unwrap_or(Fen::ZERO),
        subsidy: Fen::ZERO,
        cash: Fen::ZERO,
        cash_balance: w.cash,
        subsidy_balance: w.subsidy,
        replayed: false,
    }
}

/// Marks `result` accepted as `split` says, with the person's balances after the charge.
fn accept_result(result: &mut ChargeResult, split: &ChargeSplit, cash_after: Fen, subsidy_after: Fen) {
    result.outcome = ChargeOutcome::Accepted;
    result.amount = split.total;
    result.subsidy = split.subsidy;
    result.cash = split.cash;
    result.cash_balance = cash_after;
    result.subsidy_balance = subsidy_after;
}

// Group commit of charges (the queue, the batch decision and the row-by-row batch writer).
include!("batch.rs");

/// Begins a write transaction, first queueing at the writer gate where there is one (SQLite).
async fn begin_gated(pool: &DbPool, gate: &Option<std::sync::Arc<tokio::sync::Mutex<()>>>) -> SResult<Tx> {
    let gate = match gate {
        Some(g) => Some(g.clone().lock_owned().await),
        None => None,
    };
    Ok(WriteTx { tx: begin_write(pool).await?, _gate: gate })
}

macro_rules! refund_cols {
    () => {
        "id, charge_id, staff_id, kind, status, amount_fen, reason, entry_id, requested_at, decided_at"
    };
}
type SResult<T> = std::result::Result<T, StoreError>;

/// Turns driver errors into storage errors. Constraint violations are the client's doing
/// (duplicate names, impossible references), so they become `Conflict`/`Invalid`, which the HTTP
/// layer reports as 4xx; lock timeouts and serialisation failures become `Busy` (retryable).
fn db(e: sqlx::Error) -> StoreError {
    match &e {
        sqlx::Error::RowNotFound => return StoreError::NotFound("row"),
        sqlx::Error::PoolTimedOut => return StoreError::Busy("connection pool exhausted".into()),
        sqlx::Error::Database(d) => {
            use sqlx::error::ErrorKind;
            match d.kind() {
                ErrorKind::UniqueViolation => {
                    return StoreError::conflict("duplicate", format!("already exists: {}", d.message()))
                }
                ErrorKind::ForeignKeyViolation => {
                    return StoreError::invalid("unknown_reference", "refers to something that does not exist")
                }
                ErrorKind::CheckViolation | ErrorKind::NotNullViolation => {
                    return StoreError::invalid("constraint_violation", d.message().to_string())
                }
                _ => {}
            }
            let code = d.code().map(|c| c.to_string()).unwrap_or_default();
            // SQLite BUSY/LOCKED, PostgreSQL serialization failure / deadlock / lock timeout.
            if matches!(code.as_str(), "5" | "6" | "517" | "261" | "40001" | "40P01" | "55P03") {
                return StoreError::Busy(d.message().to_string());
            }
        }
        _ => {}
    }
    StoreError::Database(e.to_string())
}

fn is_unique_violation(e: &StoreError) -> bool {
    matches!(e, StoreError::Conflict { code: "duplicate", .. })
}

fn corrupt(what: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(what.to_string())
}

fn parse_meal(s: &str) -> SResult<MealKind> {
    MealKind::from_str(s).map_err(corrupt)
}

fn parse_meal_opt(s: Option<String>) -> SResult<Option<MealKind>> {
    s.map(|m| parse_meal(&m)).transpose()
}

fn parse_status(s: &str) -> SResult<ChargeStatus> {
    ChargeStatus::parse(s).ok_or_else(|| corrupt(format!("charge status {s:?}")))
}

fn to_u16(v: i64) -> SResult<u16> {
    u16::try_from(v).map_err(|_| corrupt(format!("minute {v}")))
}

fn to_i32(v: i64) -> SResult<i32> {
    i32::try_from(v).map_err(|_| corrupt(format!("offset {v}")))
}

fn to_u32(v: i64) -> SResult<u32> {
    u32::try_from(v).map_err(|_| corrupt(format!("count {v}")))
}

/// Ids of the four system book accounts, created by the first migration.
#[derive(Clone, Copy, Debug)]
struct SystemIds {
    revenue: i64,
    subsidy_fund: i64,
    gateway: i64,
    cash_out: i64,
}

/// A person's wallets as read (and locked) inside a money transaction.
#[derive(Clone, Copy, Debug)]
struct Wallets {
    staff_id: i64,
    cash_id: i64,
    cash: Fen,
    subsidy_id: i64,
    subsidy: Fen,
}

pub struct SqlStore {
    pool: DbPool,
    /// The connections charge batch writers use (see `BatchCtx`). On SQLite the same pool; on
    /// PostgreSQL a small pool of its own whose sessions keep one generic plan per statement
    /// (the batch statements are written so that plan is index lookups whatever the tables'
    /// sizes), so a batch is not re-planned on every call.
    batch_pool: DbPool,
    system: std::sync::OnceLock<SystemIds>,
    /// SQLite has one writer at a time anyway; queueing writers here (a fair FIFO) instead of in
    /// SQLite's busy handler (sleep-and-retry) keeps tail latency low. `None` on PostgreSQL.
    write_gate: Option<std::sync::Arc<tokio::sync::Mutex<()>>>,
    /// Canteen rules (windows, caps, prices) for at most `RULES_TTL`: they change rarely and are
    /// read by every charge. Changes made through this instance clear it at once; other
    /// instances see them within the TTL. Money facts are never cached.
    rules: std::sync::Mutex<std::collections::HashMap<i64, (std::time::Instant, std::sync::Arc<CanteenRules>)>>,
    /// Charges waiting for a batch writer (group commit, see `ChargeQueue`).
    queue: std::sync::Arc<ChargeQueue>,
}

const RULES_TTL: std::time::Duration = std::time::Duration::from_secs(1);

/// A canteen's charging rules as the charge path needs them.
struct CanteenRules {
    schedule: Schedule,
    txn_cap: Option<Fen>,
    daily_cap: Option<Fen>,
    prices: Vec<(String, MealKind, Fen)>,
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
        let write_gate = if SERIALIZE_WRITERS { Some(std::sync::Arc::new(tokio::sync::Mutex::new(()))) } else { None };
        SqlStore {
            pool,
            batch_pool,
            system: std::sync::OnceLock::new(),
            write_gate,
            rules: Default::default(),
            queue: std::sync::Arc::new(ChargeQueue::new(batch)),
        }
    }

    /// How charges are grouped into transactions.
    pub fn batch_settings(&self) -> BatchSettings {
        self.queue.settings
    }

    fn forget_rules(&self) {
        if let Ok(mut m) = self.rules.lock() {
            m.clear();
        }
    }

    async fn canteen_rules(&self, canteen_id: i64) -> SResult<std::sync::Arc<CanteenRules>> {
        if let Ok(m) = self.rules.lock() {
            if let Some((at, r)) = m.get(&canteen_id) {
                if at.elapsed() < RULES_TTL {
                    return Ok(r.clone());
                }
            }
        }
        let cfg = store::Store::canteen_config(self, canteen_id).await?;
        let periods = cfg
            .windows
            .iter()
            .map(|w| MealPeriod::new(w.meal, w.start_minute, w.end_minute).map_err(corrupt))
            .collect::<SResult<Vec<_>>>()?;
        let r = std::sync::Arc::new(CanteenRules {
            schedule: Schedule::new(cfg.canteen.utc_offset_minutes, periods).map_err(corrupt)?,
            txn_cap: cfg.canteen.per_transaction_cap,
            daily_cap: cfg.canteen.daily_cap,
            prices: cfg.prices.into_iter().map(|p| (p.category, p.meal, p.price)).collect(),
        });
        if let Ok(mut m) = self.rules.lock() {
            m.insert(canteen_id, (std::time::Instant::now(), r.clone()));
        }
        Ok(r)
    }

    async fn begin(&self) -> SResult<Tx> {
        begin_gated(&self.pool, &self.write_gate).await
    }

    pub fn pool(&self) -> &DbPool {
        &self.pool
    }

    async fn system_ids(&self) -> SResult<SystemIds> {
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
                .ok_or_else(|| corrupt(format!("system account {k} missing; run `backend migrate`")))
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

    /// Locks and reads a person's wallets. Every money operation calls this first, so two
    /// operations on one person never interleave.
    async fn lock_wallets(tx: &mut Tx, staff_id: i64) -> SResult<Option<(Wallets, StaffFacts)>> {
        let row = sqlx::query(concat!(
            "SELECT s.active, s.meals_per_period, c.id, c.balance_fen, sb.id, sb.balance_fen \
             FROM staff s \
             JOIN book_accounts c ON c.staff_id = s.id AND c.kind = 'cash' \
             JOIN book_accounts sb ON sb.staff_id = s.id AND sb.kind = 'subsidy' \
             WHERE s.id = $1",
            lock_wallets!()
        ))
        .bind(staff_id)
        .fetch_optional(&mut **tx)
        .await
        .map_err(db)?;
        let Some(r) = row else { return Ok(None) };
        let w = Wallets {
            staff_id,
            cash_id: r.try_get(2).map_err(db)?,
            cash: Fen(r.try_get(3).map_err(db)?),
            subsidy_id: r.try_get(4).map_err(db)?,
            subsidy: Fen(r.try_get(5).map_err(db)?),
        };
        let f = StaffFacts { active: r.try_get(0).map_err(db)?, meals_per_period: to_u32(r.try_get(1).map_err(db)?)? };
        Ok(Some((w, f)))
    }

    async fn must_lock_wallets(tx: &mut Tx, staff_id: i64) -> SResult<(Wallets, StaffFacts)> {
        Self::lock_wallets(tx, staff_id).await?.ok_or(StoreError::NotFound("staff"))
    }

    fn account_id(sys: &SystemIds, w: &Wallets, a: BookAccount) -> SResult<i64> {
        Ok(match a {
            BookAccount::StaffCash(s) if s == w.staff_id => w.cash_id,
            BookAccount::StaffSubsidy(s) if s == w.staff_id => w.subsidy_id,
            BookAccount::Revenue => sys.revenue,
            BookAccount::SubsidyFund => sys.subsidy_fund,
            BookAccount::Gateway => sys.gateway,
            BookAccount::CashOut => sys.cash_out,
            other => return Err(corrupt(format!("posting to {other:?} of another person"))),
        })
    }

    /// Writes a balanced entry: the entry row, its postings in one statement, and the cached
    /// wallet balances in one statement. The wallet rows must already be locked by the caller.
    async fn post_entry(
        tx: &mut Tx,
        sys: &SystemIds,
        w: &mut Wallets,
        entry: &ProposedEntry,
        memo: &str,
        now_ms: i64,
    ) -> SResult<i64> {
        let (entry_id,): (i64,) = sqlx::query_as(
            "INSERT INTO journal_entries (kind, created_at, memo) VALUES ($1, $2, $3) RETURNING id",
        )
        .bind(entry.kind().as_str())
        .bind(now_ms)
        .bind(memo)
        .fetch_one(&mut **tx)
        .await
        .map_err(db)?;
        let ps = entry.postings();
        let sql: &'static str = match ps.len() {
            2 => "INSERT INTO postings (entry_id, account_id, amount_fen) VALUES ($1, $2, $3), ($1, $4, $5)",
            3 => "INSERT INTO postings (entry_id, account_id, amount_fen) VALUES ($1, $2, $3), ($1, $4, $5), ($1, $6, $7)",
            4 => "INSERT INTO postings (entry_id, account_id, amount_fen) VALUES ($1, $2, $3), ($1, $4, $5), ($1, $6, $7), ($1, $8, $9)",
            n => return Err(corrupt(format!("entry with {n} postings"))),
        };
        let mut q = sqlx::query(sql).bind(entry_id);
        for p in ps {
            q = q.bind(Self::account_id(sys, w, p.account)?).bind(p.amount.0);
        }
        q.execute(&mut **tx).await.map_err(db)?;
        let dc = entry.delta(BookAccount::StaffCash(w.staff_id));
        let ds = entry.delta(BookAccount::StaffSubsidy(w.staff_id));
        if dc.0 != 0 || ds.0 != 0 {
            // One statement for both wallets; the table's CHECK refuses a negative balance, a
            // last line of defence under the rules in `ledger`.
            sqlx::query(
                "UPDATE book_accounts SET balance_fen = balance_fen + \
                 CASE WHEN id = $1 THEN $2 ELSE $4 END, version = version + 1 WHERE id IN ($1, $3)",
            )
            .bind(w.cash_id)
            .bind(dc.0)
            .bind(w.subsidy_id)
            .bind(ds.0)
            .execute(&mut **tx)
            .await
            .map_err(db)?;
            w.cash = Fen(w.cash.0 + dc.0);
            w.subsidy = Fen(w.subsidy.0 + ds.0);
        }
        Ok(entry_id)
    }

    /// Reads an entry's postings back as `ledger` postings (to build a reversal).
    async fn entry_postings(tx: &mut Tx, entry_id: i64) -> SResult<Vec<Posting>> {
        let rows: Vec<(String, Option<i64>, i64)> = sqlx::query_as(
            "SELECT a.kind, a.staff_id, p.amount_fen FROM postings p \
             JOIN book_accounts a ON a.id = p.account_id WHERE p.entry_id = $1 ORDER BY p.account_id",
        )
        .bind(entry_id)
        .fetch_all(&mut **tx)
        .await
        .map_err(db)?;
        rows.into_iter()
            .map(|(kind, staff, amount)| {
                let account = match (kind.as_str(), staff) {
                    ("cash", Some(s)) => BookAccount::StaffCash(s),
                    ("subsidy", Some(s)) => BookAccount::StaffSubsidy(s),
                    ("revenue", None) => BookAccount::Revenue,
                    ("subsidy_fund", None) => BookAccount::SubsidyFund,
                    ("gateway", None) => BookAccount::Gateway,
                    ("cash_out", None) => BookAccount::CashOut,
                    (k, s) => return Err(corrupt(format!("book account {k} / {s:?}"))),
                };
                Ok(Posting { account, amount: Fen(amount) })
            })
            .collect()
    }

    async fn audit(tx: &mut Tx, actor: &Actor, action: &str, detail: serde_json::Value, now_ms: i64) -> SResult<()> {
        sqlx::query("INSERT INTO audit_log (at, actor, action, detail) VALUES ($1, $2, $3, $4)")
            .bind(now_ms)
            .bind(actor.label())
            .bind(action)
            .bind(detail.to_string())
            .execute(&mut **tx)
            .await
            .map_err(db)?;
        Ok(())
    }

    /// Bumps the gallery counter. The counter row stays locked until commit, so template
    /// versions become visible in increasing order and a kiosk syncing "since N" never skips one.
    async fn next_gallery_version(tx: &mut Tx) -> SResult<i64> {
        let (v,): (i64,) =
            sqlx::query_as("UPDATE counters SET value = value + 1 WHERE name = 'gallery' RETURNING value")
                .fetch_one(&mut **tx)
                .await
                .map_err(db)?;
        Ok(v)
    }

    async fn tombstone_templates(tx: &mut Tx, staff_id: i64) -> SResult<i64> {
        let ids: Vec<(i64,)> =
            sqlx::query_as("SELECT id FROM face_templates WHERE staff_id = $1 AND deleted = FALSE ORDER BY id")
                .bind(staff_id)
                .fetch_all(&mut **tx)
                .await
                .map_err(db)?;
        for (id,) in &ids {
            let v = Self::next_gallery_version(tx).await?;
            sqlx::query(
                "UPDATE face_templates SET deleted = TRUE, ciphertext = NULL, nonce = NULL, version = $1 WHERE id = $2",
            )
            .bind(v)
            .bind(id)
            .execute(&mut **tx)
            .await
            .map_err(db)?;
        }
        Ok(ids.len() as i64)
    }

    async fn lookup_idempotency(
        tx: &mut Tx,
        kiosk_id: i64,
        scope: &str,
        key: &str,
    ) -> SResult<Option<(String, String)>> {
        sqlx::query_as(
            "SELECT request_hash, response FROM idempotency WHERE kiosk_id = $1 AND scope = $2 AND key = $3",
        )
        .bind(kiosk_id)
        .bind(scope)
        .bind(key)
        .fetch_optional(&mut **tx)
        .await
        .map_err(db)
    }

    async fn save_idempotency(
        tx: &mut Tx,
        kiosk_id: i64,
        scope: &str,
        key: &str,
        hash: &str,
        response: &str,
        now_ms: i64,
    ) -> SResult<()> {
        sqlx::query(
            "INSERT INTO idempotency (kiosk_id, scope, key, request_hash, response, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(kiosk_id)
        .bind(scope)
        .bind(key)
        .bind(hash)
        .bind(response)
        .bind(now_ms)
        .execute(&mut **tx)
        .await
        .map_err(db)?;
        Ok(())
    }

    fn replay<T: serde::de::DeserializeOwned>(stored_hash: &str, response: &str, hash: &str) -> SResult<T> {
        if stored_hash != hash {
            return Err(StoreError::conflict(
                "idempotency_key_reused",
                "this idempotency key was already used for a different request",
            ));
        }
        serde_json::from_str(response).map_err(corrupt)
    }

    /// One attempt at a charge. `Ok(None)` means "lost a race on the idempotency key; read the
    /// winner's result": two requests with one key can both pass the replay check (it is read on
    /// a snapshot taken before the lock), and the unique constraints on `charges` and
    /// `idempotency` let exactly one of them commit.
    async fn charge_once(&self, cmd: &ChargeCommand) -> SResult<Option<ChargeResult>> {
        let sys = self.system_ids().await?;
        let (rules, local_date, meal) = self.charge_slot(cmd).await?;
        let meal_str = meal.map(|m| m.as_str()).unwrap_or("");

        let mut tx = self.begin().await?;
        // One round trip: lock the wallets and read everything the decision needs. The scalar
        // subqueries run on the statement's snapshot, which PostgreSQL takes *before* waiting for
        // the lock; if another transaction changed this person's wallet meanwhile, the locked
        // row's version differs from the snapshot's and the day's totals are read again below.
        let row = sqlx::query(concat!(
            "SELECT s.active, s.meals_per_period, s.category, c.id, c.balance_fen, sb.id, sb.balance_fen, c.version, \
                    (SELECT v.version FROM book_accounts v WHERE v.id = c.id), \
                    t.spent, t.taken, \
                    (SELECT request_hash FROM idempotency WHERE kiosk_id = $4 AND scope = 'charge' AND key = $5), \
                    (SELECT response FROM idempotency WHERE kiosk_id = $4 AND scope = 'charge' AND key = $5) \
             FROM staff s \
             JOIN book_accounts c ON c.staff_id = s.id AND c.kind = 'cash' \
             JOIN book_accounts sb ON sb.staff_id = s.id AND sb.kind = 'subsidy' \
             CROSS JOIN (SELECT CAST(COALESCE(SUM(amount_fen), 0) AS BIGINT) AS spent, \
                                CAST(COALESCE(SUM(CASE WHEN meal = $3 THEN 1 ELSE 0 END), 0) AS BIGINT) AS taken \
                         FROM charges WHERE staff_id = $1 AND local_date = $2 AND status = 'accepted') t \
             WHERE s.id = $1",
            lock_wallets!()
        ))
        .bind(cmd.staff_id)
        .bind(&local_date)
        .bind(meal_str)
        .bind(cmd.kiosk_id)
        .bind(&cmd.idempotency_key)
        .fetch_optional(&mut *tx)
        .await
        .map_err(db)?;
        let Some(row) = row else { return Err(StoreError::NotFound("staff")) };
        let seen_hash: Option<String> = row.try_get(11).map_err(db)?;
        let seen_resp: Option<String> = row.try_get(12).map_err(db)?;
        if let (Some(h), Some(resp)) = (seen_hash, seen_resp) {
            let mut r: ChargeResult = Self::replay(&h, &resp, &cmd.request_hash)?;
            r.replayed = true;
            return Ok(Some(r));
        }
        let staff = StaffFacts { active: row.try_get(0).map_err(db)?, meals_per_period: to_u32(row.try_get(1).map_err(db)?)? };
        let category: String = row.try_get(2).map_err(db)?;
        let mut w = Wallets {
            staff_id: cmd.staff_id,
            cash_id: row.try_get(3).map_err(db)?,
            cash: Fen(row.try_get(4).map_err(db)?),
            subsidy_id: row.try_get(5).map_err(db)?,
            subsidy: Fen(row.try_get(6).map_err(db)?),
        };
        let locked_version: i64 = row.try_get(7).map_err(db)?;
        let snapshot_version: Option<i64> = row.try_get(8).map_err(db)?;
        let (mut spent, mut taken): (i64, i64) = (row.try_get(9).map_err(db)?, row.try_get(10).map_err(db)?);
        if snapshot_version != Some(locked_version) {
            // We waited for the lock behind a change to this wallet: read again, now that the
            // change is committed and visible to a new statement.
            (spent, taken) = sqlx::query_as(
                "SELECT CAST(COALESCE(SUM(amount_fen), 0) AS BIGINT), \
                        CAST(COALESCE(SUM(CASE WHEN meal = $3 THEN 1 ELSE 0 END), 0) AS BIGINT) \
                 FROM charges WHERE staff_id = $1 AND local_date = $2 AND status = 'accepted'",
            )
            .bind(cmd.staff_id)
            .bind(&local_date)
            .bind(meal_str)
            .fetch_one(&mut *tx)
            .await
            .map_err(db)?;
        }
        let price = match cmd.amount {
            Some(a) => Some(a),
            None => meal.and_then(|m| rules.prices.iter().find(|(c, pm, _)| *pm == m && *c == category).map(|(_, _, p)| *p)),
        };
        let txn_cap = rules.txn_cap.map(|f| f.0);
        let daily_cap = rules.daily_cap.map(|f| f.0);

        let facts = ChargeFacts {
            staff_active: staff.active,
            meal,
            price,
            cash_balance: w.cash,
            subsidy_balance: w.subsidy,
            spent_today: Fen(spent),
            meals_taken: to_u32(taken)?,
            meals_allowed: staff.meals_per_period,
            per_transaction_cap: txn_cap.map(Fen),
            daily_cap: daily_cap.map(Fen),
        };
        let decision = decide_charge(&facts);
        let mut result = undecided_result(meal, &local_date, price, &w);
        let insert_charge = "INSERT INTO charges (kiosk_id, idempotency_key, staff_id, canteen_id, meal, local_date, \
             kiosk_time, received_at, amount_fen, subsidy_fen, cash_fen, status, reason, entry_id, offline) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15) RETURNING id";
        let kiosk_actor = Actor::Kiosk { id: cmd.kiosk_id }.label();
        match decision {
            Ok(split) if IS_POSTGRES => {
                // The hot path on PostgreSQL: every write of an accepted charge in ONE statement
                // (data-modifying CTEs), so the wallet lock is held for as few round trips as
                // possible. The charge id is filled into the stored response and audit detail
                // by the statement itself (a text replace of the one `"charge_id":null` that
                // serde_json writes; cheaper than parsing JSON in the database). Every outcome,
                // accepted or not, leaves a row in `idempotency`: its primary key is what makes
                // two concurrent requests with one key collide, whatever each of them decided.
                let entry = ProposedEntry::charge(cmd.staff_id, split.subsidy, split.cash).map_err(corrupt)?;
                let memo = format!("{} {} at kiosk {}", split.meal, local_date, cmd.kiosk_id);
                accept_result(&mut result, &split, Fen(w.cash.0 - split.cash.0), Fen(w.subsidy.0 - split.subsidy.0));
                let response = serde_json::to_string(&result).map_err(corrupt)?;
                let detail = serde_json::json!({
                    "charge_id": null, "staff_id": cmd.staff_id, "amount_fen": split.total.0,
                    "subsidy_fen": split.subsidy.0, "cash_fen": split.cash.0, "reason": null,
                    "key": cmd.idempotency_key, "offline": cmd.offline, "kiosk_time": cmd.kiosk_time_ms,
                })
                .to_string();
                // Legs from the ledger's entry, in three slots (unused ones are zero and skipped).
                let mut legs = [(sys.revenue, 0i64); 3];
                for (slot, p) in legs.iter_mut().zip(entry.postings()) {
                    *slot = (Self::account_id(&sys, &w, p.account)?, p.amount.0);
                }
                let r: std::result::Result<(i64,), StoreError> = sqlx::query_as(
                    "WITH e AS ( \
                       INSERT INTO journal_entries (kind, created_at, memo) VALUES ('charge', $1, $2) RETURNING id \
                     ), p AS ( \
                       INSERT INTO postings (entry_id, account_id, amount_fen) \
                       SELECT e.id, v.acct, v.amt FROM e, \
                         (VALUES ($3::BIGINT, $4::BIGINT), ($5::BIGINT, $6::BIGINT), ($7::BIGINT, $8::BIGINT)) AS v(acct, amt) \
                       WHERE v.amt <> 0 \
                     ), b AS ( \
                       UPDATE book_accounts SET balance_fen = balance_fen + CASE WHEN id = $24 THEN $25 ELSE $27 END, \
                         version = version + 1 \
                       WHERE id IN ($24, $26) \
                     ), c AS ( \
                       INSERT INTO charges (kiosk_id, idempotency_key, staff_id, canteen_id, meal, local_date, kiosk_time, \
                         received_at, amount_fen, subsidy_fen, cash_fen, status, reason, entry_id, offline) \
                       SELECT $9, $10, $11, $12, $13, $14, $15, $1, $16, $17, $18, 'accepted', NULL, e.id, $19 FROM e \
                       RETURNING id \
                     ), i AS ( \
                       INSERT INTO idempotency (kiosk_id, scope, key, request_hash, response, created_at) \
                       SELECT $9, 'charge', $10, $20, replace($21, '\"charge_id\":null', '\"charge_id\":' || c.id), $1 FROM c \
                     ), a AS ( \
                       INSERT INTO audit_log (at, actor, action, detail) \
                       SELECT $1, $22, 'charge.accepted', replace($23, '\"charge_id\":null', '\"charge_id\":' || c.id) FROM c \
                     ) \
                     SELECT id FROM c",
                )
                .bind(cmd.received_ms)
                .bind(&memo)
                .bind(legs[0].0)
                .bind(legs[0].1)
                .bind(legs[1].0)
                .bind(legs[1].1)
                .bind(legs[2].0)
                .bind(legs[2].1)
                .bind(cmd.kiosk_id)
                .bind(&cmd.idempotency_key)
                .bind(cmd.staff_id)
                .bind(cmd.canteen_id)
                .bind(split.meal.as_str())
                .bind(&local_date)
                .bind(cmd.kiosk_time_ms)
                .bind(split.total.0)
                .bind(split.subsidy.0)
                .bind(split.cash.0)
                .bind(cmd.offline)
                .bind(&cmd.request_hash)
                .bind(&response)
                .bind(&kiosk_actor)
                .bind(&detail)
                .bind(w.cash_id)
                .bind(entry.delta(BookAccount::StaffCash(cmd.staff_id)).0)
                .bind(w.subsidy_id)
                .bind(entry.delta(BookAccount::StaffSubsidy(cmd.staff_id)).0)
                .fetch_one(&mut *tx)
                .await
                .map_err(db);
                let (id,) = match r {
                    Err(e) if is_unique_violation(&e) => return Ok(None),
                    other => other?,
                };
                match tx.commit().await.map_err(db) {
                    Err(e) if is_unique_violation(&e) => return Ok(None),
                    other => other?,
                }
                result.charge_id = Some(id);
                return Ok(Some(result));
            }
            Ok(split) => {
                let entry = ProposedEntry::charge(cmd.staff_id, split.subsidy, split.cash).map_err(corrupt)?;
                let memo = format!("{} {} at kiosk {}", split.meal, local_date, cmd.kiosk_id);
                let entry_id = Self::post_entry(&mut tx, &sys, &mut w, &entry, &memo, cmd.received_ms).await?;
                accept_result(&mut result, &split, w.cash, w.subsidy);
                let r = sqlx::query_as::<_, (i64,)>(insert_charge)
                    .bind(cmd.kiosk_id)
                    .bind(&cmd.idempotency_key)
                    .bind(cmd.staff_id)
                    .bind(cmd.canteen_id)
                    .bind(split.meal.as_str())
                    .bind(&local_date)
                    .bind(cmd.kiosk_time_ms)
                    .bind(cmd.received_ms)
                    .bind(split.total.0)
                    .bind(split.subsidy.0)
                    .bind(split.cash.0)
                    .bind("accepted")
                    .bind(None::<String>)
                    .bind(Some(entry_id))
                    .bind(cmd.offline)
                    .fetch_one(&mut *tx)
                    .await
                    .map_err(db);
                let (id,) = match r {
                    Err(e) if is_unique_violation(&e) => return Ok(None),
                    other => other?,
                };
                result.charge_id = Some(id);
            }
            Err(rejection) => {
                result.reason = Some(rejection.code().to_string());
                if cmd.offline {
                    // The meal was served while the kiosk was offline: never drop it, park it
                    // for a manager.
                    result.outcome = ChargeOutcome::Exception;
                    let r = sqlx::query_as::<_, (i64,)>(insert_charge)
                        .bind(cmd.kiosk_id)
                        .bind(&cmd.idempotency_key)
                        .bind(cmd.staff_id)
                        .bind(cmd.canteen_id)
                        .bind(meal.map(|m| m.as_str()))
                        .bind(&local_date)
                        .bind(cmd.kiosk_time_ms)
                        .bind(cmd.received_ms)
                        .bind(price.map(|p| p.0).unwrap_or(0))
                        .bind(0i64)
                        .bind(0i64)
                        .bind("exception")
                        .bind(Some(rejection.code()))
                        .bind(None::<i64>)
                        .bind(true)
                        .fetch_one(&mut *tx)
                        .await
                        .map_err(db);
                    let (id,) = match r {
                        Err(e) if is_unique_violation(&e) => return Ok(None),
                        other => other?,
                    };
                    result.charge_id = Some(id);
                }
            }
        }
        let response = serde_json::to_string(&result).map_err(corrupt)?;
        match Self::save_idempotency(&mut tx, cmd.kiosk_id, "charge", &cmd.idempotency_key, &cmd.request_hash, &response, cmd.received_ms).await {
            Err(e) if is_unique_violation(&e) => return Ok(None),
            other => other?,
        }
        let audit_action = match result.outcome {
            ChargeOutcome::Accepted => Some("charge.accepted"),
            ChargeOutcome::Exception => Some("charge.exception"),
            ChargeOutcome::Declined => None,
        };
        if let Some(action) = audit_action {
            let detail = serde_json::json!({
                "charge_id": result.charge_id, "staff_id": cmd.staff_id, "amount_fen": result.amount.0,
                "subsidy_fen": result.subsidy.0, "cash_fen": result.cash.0, "reason": result.reason,
                "key": cmd.idempotency_key, "offline": cmd.offline, "kiosk_time": cmd.kiosk_time_ms,
            });
            Self::audit(&mut tx, &Actor::Kiosk { id: cmd.kiosk_id }, action, detail, cmd.received_ms).await?;
        }
        match tx.commit().await.map_err(db) {
            Err(e) if is_unique_violation(&e) => return Ok(None),
            other => other?,
        }
        Ok(Some(result))
    }

    async fn load_charge(tx: &mut Tx, id: i64) -> SResult<ChargeRecord> {
        let row = sqlx::query(concat!(
            "SELECT id, kiosk_id, idempotency_key, staff_id, canteen_id, meal, local_date, kiosk_time, received_at, \
             amount_fen, subsidy_fen, cash_fen, status, reason, entry_id, offline FROM charges WHERE id = $1",
            for_update!()
        ))
        .bind(id)
        .fetch_optional(&mut **tx)
        .await
        .map_err(db)?
        .ok_or(StoreError::NotFound("charge"))?;
        charge_from_row(&row)
    }

    async fn load_refund(tx: &mut Tx, id: i64, lock: bool) -> SResult<Refund> {
        // On SQLite `for_update!()` is empty and both arms are the same query.
        #[allow(clippy::if_same_then_else)]
        let q = if lock {
            sqlx::query(concat!("SELECT ", refund_cols!(), " FROM refunds WHERE id = $1", for_update!()))
        } else {
            sqlx::query(concat!("SELECT ", refund_cols!(), " FROM refunds WHERE id = $1"))
        };
        let row = q.bind(id).fetch_optional(&mut **tx).await.map_err(db)?.ok_or(StoreError::NotFound("refund"))?;
        refund_from_row(&row)
    }

    /// Posts the reversal of a standing charge and marks it refunded.
    async fn reverse_in_tx(
        &self,
        tx: &mut Tx,
        charge: &ChargeRecord,
        kind: EntryKind,
        now_ms: i64,
    ) -> SResult<i64> {
        let sys = self.system_ids().await?;
        let entry_id = charge.entry_id.ok_or_else(|| corrupt(format!("charge {} has no entry", charge.id)))?;
        let (mut w, _) = Self::must_lock_wallets(tx, charge.staff_id).await?;
        let original = Self::entry_postings(tx, entry_id).await?;
        let rev = ProposedEntry::reversing(kind, &original).map_err(corrupt)?;
        let memo = format!("{} of charge {}", kind.as_str(), charge.id);
        let rev_id = Self::post_entry(tx, &sys, &mut w, &rev, &memo, now_ms).await?;
        sqlx::query("UPDATE charges SET status = 'refunded' WHERE id = $1")
            .bind(charge.id)
            .execute(&mut **tx)
            .await
            .map_err(db)?;
        Ok(rev_id)
    }

    /// The whole of a manager-style reversal of a locked, standing charge: supersedes a pending
    /// staff request, posts the reversing entry, records the approved refund and audits it, so a
    /// manager's reversal and a kiosk's void cannot drift apart. `extra` adds audit detail.
    #[allow(clippy::too_many_arguments)]
    async fn reverse_standing(
        &self,
        tx: &mut Tx,
        c: &ChargeRecord,
        reason: &str,
        action: &str,
        extra: serde_json::Value,
        now_ms: i64,
        actor: &Actor,
    ) -> SResult<Refund> {
        sqlx::query("UPDATE refunds SET status = 'rejected', decided_at = $1 WHERE charge_id = $2 AND status = 'requested'")
            .bind(now_ms)
            .bind(c.id)
            .execute(&mut **tx)
            .await
            .map_err(db)?;
        let entry_id = self.reverse_in_tx(tx, c, EntryKind::Reversal, now_ms).await?;
        let row = sqlx::query(concat!(
            "INSERT INTO refunds (charge_id, staff_id, kind, status, amount_fen, reason, entry_id, requested_at, decided_at) \
             VALUES ($1, $2, 'manager_reversal', 'approved', $3, $4, $5, $6, $6) RETURNING ",
            refund_cols!()
        ))
        .bind(c.id)
        .bind(c.staff_id)
        .bind(c.amount.0)
        .bind(reason)
        .bind(entry_id)
        .bind(now_ms)
        .fetch_one(&mut **tx)
        .await
        .map_err(db)?;
        let r = refund_from_row(&row)?;
        let mut detail = serde_json::json!({"charge_id": c.id, "refund_id": r.id, "amount_fen": c.amount.0, "reason": reason});
        if let (Some(d), serde_json::Value::Object(more)) = (detail.as_object_mut(), extra) {
            d.extend(more);
        }
        Self::audit(tx, actor, action, detail, now_ms).await?;
        Ok(r)
    }

    async fn load_order(tx: &mut Tx, order_no: &str) -> SResult<Option<PaymentOrder>> {
        let row = sqlx::query(concat!(
            "SELECT order_no, staff_id, amount_fen, provider, status, provider_txn, created_at, credited_at, entry_id \
             FROM payment_orders WHERE order_no = $1",
            for_update!()
        ))
        .bind(order_no)
        .fetch_optional(&mut **tx)
        .await
        .map_err(db)?;
        row.map(|r| order_from_row(&r)).transpose()
    }

    async fn log_notification(tx: &mut Tx, order_no: Option<&str>, raw: &str, verdict: &str, now_ms: i64) -> SResult<()> {
        sqlx::query("INSERT INTO payment_notifications (order_no, verdict, raw, received_at) VALUES ($1, $2, $3, $4)")
            .bind(order_no)
            .bind(verdict)
            .bind(raw)
            .bind(now_ms)
            .execute(&mut **tx)
            .await
            .map_err(db)?;
        Ok(())
    }

    async fn grant_one(
        &self,
        sys: &SystemIds,
        staff_id: i64,
        period: &str,
        rule: &SubsidyRule,
        now_ms: i64,
        actor: &Actor,
    ) -> SResult<Option<(Fen, Fen)>> {
        let mut tx = self.begin().await?;
        let inserted = sqlx::query(
            "INSERT INTO subsidy_grants (staff_id, period, granted_fen, expired_fen, created_at) \
             VALUES ($1, $2, 0, 0, $3) ON CONFLICT (staff_id, period) DO NOTHING",
        )
        .bind(staff_id)
        .bind(period)
        .bind(now_ms)
        .execute(&mut *tx)
        .await
        .map_err(db)?
        .rows_affected();
        if inserted == 0 {
            return Ok(None);
        }
        let (mut w, _) = Self::must_lock_wallets(&mut tx, staff_id).await?;
        let leftover = w.subsidy;
        let entries =
            ledger::subsidy::period_entries(staff_id, leftover, rule.amount, rule.expires).map_err(corrupt)?;
        let mut expired = Fen::ZERO;
        let mut granted = Fen::ZERO;
        for e in &entries {
            match e.kind() {
                EntryKind::SubsidyExpiry => expired = Fen(-e.delta(BookAccount::StaffSubsidy(staff_id)).0),
                _ => granted = e.delta(BookAccount::StaffSubsidy(staff_id)),
            }
            let memo = format!("subsidy period {period}");
            Self::post_entry(&mut tx, sys, &mut w, e, &memo, now_ms).await?;
        }
        sqlx::query("UPDATE subsidy_grants SET granted_fen = $1, expired_fen = $2 WHERE staff_id = $3 AND period = $4")
            .bind(granted.0)
            .bind(expired.0)
            .bind(staff_id)
            .bind(period)
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        Self::audit(
            &mut tx,
            actor,
            "subsidy.period",
            serde_json::json!({"staff_id": staff_id, "period": period, "granted_fen": granted.0, "expired_fen": expired.0}),
            now_ms,
        )
        .await?;
        tx.commit().await.map_err(db)?;
        Ok(Some((granted, expired)))
    }
}

struct StaffFacts {
    active: bool,
    meals_per_period: u32,
}

fn charge_from_row(r: &<Db as sqlx::Database>::Row) -> SResult<ChargeRecord> {
    Ok(ChargeRecord {
        id: r.try_get(0).map_err(db)?,
        kiosk_id: r.try_get(1).map_err(db)?,
        idempotency_key: r.try_get(2).map_err(db)?,
        staff_id: r.try_get(3).map_err(db)?,
        canteen_id: r.try_get(4).map_err(db)?,
        meal: parse_meal_opt(r.try_get(5).map_err(db)?)?,
        local_date: r.try_get(6).map_err(db)?,
        kiosk_time_ms: r.try_get(7).map_err(db)?,
        received_ms: r.try_get(8).map_err(db)?,
        amount: Fen(r.try_get(9).map_err(db)?),
        subsidy: Fen(r.try_get(10).map_err(db)?),
        cash: Fen(r.try_get(11).map_err(db)?),
        status: parse_status(&r.try_get::<String, _>(12).map_err(db)?)?,
        reason: r.try_get(13).map_err(db)?,
        entry_id: r.try_get(14).map_err(db)?,
        offline: r.try_get(15).map_err(db)?,
    })
}

fn refund_from_row(r: &<Db as sqlx::Database>::Row) -> SResult<Refund> {
    let status: String = r.try_get(4).map_err(db)?;
    Ok(Refund {
        id: r.try_get(0).map_err(db)?,
        charge_id: r.try_get(1).map_err(db)?,
        staff_id: r.try_get(2).map_err(db)?,
        kind: r.try_get(3).map_err(db)?,
        status: RefundStatus::parse(&status).ok_or_else(|| corrupt(format!("refund status {status}")))?,
        amount: Fen(r.try_get(5).map_err(db)?),
        reason: r.try_get(6).map_err(db)?,
        entry_id: r.try_get(7).map_err(db)?,
        requested_at_ms: r.try_get(8).map_err(db)?,
        decided_at_ms: r.try_get(9).map_err(db)?,
    })
}

fn order_from_row(r: &<Db as sqlx::Database>::Row) -> SResult<PaymentOrder> {
    let status: String = r.try_get(4).map_err(db)?;
    Ok(PaymentOrder {
        order_no: r.try_get(0).map_err(db)?,
        staff_id: r.try_get(1).map_err(db)?,
        amount: Fen(r.try_get(2).map_err(db)?),
        provider: r.try_get(3).map_err(db)?,
        status: OrderStatus::parse(&status).ok_or_else(|| corrupt(format!("order status {status}")))?,
        provider_txn: r.try_get(5).map_err(db)?,
        created_at_ms: r.try_get(6).map_err(db)?,
        credited_at_ms: r.try_get(7).map_err(db)?,
        entry_id: r.try_get(8).map_err(db)?,
    })
}

type StaffRow = (i64, String, String, String, String, bool, i64, i64);

fn staff_from(r: StaffRow) -> SResult<Staff> {
    Ok(Staff {
        id: r.0,
        employee_no: r.1,
        name: r.2,
        department: r.3,
        category: r.4,
        active: r.5,
        meals_per_period: to_u32(r.6)?,
        created_at_ms: r.7,
    })
}

type CanteenRow = (i64, String, i64, Option<i64>, Option<i64>, i64);

fn canteen_from(r: CanteenRow) -> SResult<Canteen> {
    Ok(Canteen {
        id: r.0,
        name: r.1,
        utc_offset_minutes: to_i32(r.2)?,
        per_transaction_cap: r.3.map(Fen),
        daily_cap: r.4.map(Fen),
        created_at_ms: r.5,
    })
}

type UserRow = (i64, String, String, Option<i64>, bool, String);

fn user_from(r: UserRow) -> SResult<User> {
    Ok(User {
        id: r.0,
        username: r.1,
        role: Role::parse(&r.2).ok_or_else(|| corrupt(format!("role {}", r.2)))?,
        staff_id: r.3,
        active: r.4,
        password_hash: r.5,
    })
}

type KioskRow = (i64, String, i64, Option<i64>, i64);

fn kiosk_from(r: KioskRow) -> Kiosk {
    Kiosk { id: r.0, name: r.1, canteen_id: r.2, revoked: r.3.is_some(), created_at_ms: r.4 }
}

type WasteRow = (i64, i64, Option<i64>, Option<i64>, i64, i64, i64, Option<String>, Option<String>, i64);

fn waste_from(r: WasteRow) -> WasteRecord {
    WasteRecord {
        id: r.0,
        kiosk_id: r.1,
        staff_id: r.2,
        charge_id: r.3,
        gross_grams: r.4,
        tare_grams: r.5,
        net_grams: r.6,
        dish: r.7,
        category: r.8,
        measured_at_ms: r.9,
        replayed: false,
    }
}

#[async_trait::async_trait]
impl store::Store for SqlStore {
    fn backend_name(&self) -> &'static str {
        BACKEND_NAME
    }

    async fn migrate(&self) -> SResult<()> {
        sqlx::migrate!("./migrations")
            .run(&self.pool)
            .await
            .map_err(|e| StoreError::Database(format!("migration failed: {e}")))?;
        self.system_ids().await?;
        Ok(())
    }

    // ---- canteens -------------------------------------------------------------------------

    async fn create_canteen(&self, new: NewCanteen, actor: &Actor) -> SResult<Canteen> {
        Schedule::new(new.utc_offset_minutes, vec![]).map_err(|e| StoreError::invalid("bad_offset", e.to_string()))?;
        let now = now_ms();
        let mut tx = self.begin().await?;
        let r: CanteenRow = sqlx::query_as(
            "INSERT INTO canteens (name, utc_offset_minutes, per_txn_cap_fen, daily_cap_fen, created_at) \
             VALUES ($1, $2, $3, $4, $5) \
             RETURNING id, name, utc_offset_minutes, per_txn_cap_fen, daily_cap_fen, created_at",
        )
        .bind(&new.name)
        .bind(i64::from(new.utc_offset_minutes))
        .bind(new.per_transaction_cap.map(|f| f.0))
        .bind(new.daily_cap.map(|f| f.0))
        .bind(now)
        .fetch_one(&mut *tx)
        .await
        .map_err(db)?;
        let c = canteen_from(r)?;
        Self::audit(&mut tx, actor, "canteen.create", serde_json::json!({"canteen": &c}), now).await?;
        tx.commit().await.map_err(db)?;
        self.forget_rules();
        Ok(c)
    }

    async fn update_canteen(&self, id: i64, upd: CanteenUpdate, actor: &Actor) -> SResult<Canteen> {
        let now = now_ms();
        let mut tx = self.begin().await?;
        let cur: CanteenRow = sqlx::query_as(concat!(
            "SELECT id, name, utc_offset_minutes, per_txn_cap_fen, daily_cap_fen, created_at FROM canteens WHERE id = $1",
            for_update!()
        ))
        .bind(id)
        .fetch_optional(&mut *tx)
        .await
        .map_err(db)?
        .ok_or(StoreError::NotFound("canteen"))?;
        let mut c = canteen_from(cur)?;
        if let Some(n) = upd.name {
            c.name = n;
        }
        if let Some(o) = upd.utc_offset_minutes {
            Schedule::new(o, vec![]).map_err(|e| StoreError::invalid("bad_offset", e.to_string()))?;
            c.utc_offset_minutes = o;
        }
        if let Some(cap) = upd.per_transaction_cap {
            c.per_transaction_cap = cap;
        }
        if let Some(cap) = upd.daily_cap {
            c.daily_cap = cap;
        }
        sqlx::query("UPDATE canteens SET name = $1, utc_offset_minutes = $2, per_txn_cap_fen = $3, daily_cap_fen = $4 WHERE id = $5")
            .bind(&c.name)
            .bind(i64::from(c.utc_offset_minutes))
            .bind(c.per_transaction_cap.map(|f| f.0))
            .bind(c.daily_cap.map(|f| f.0))
            .bind(id)
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        Self::audit(&mut tx, actor, "canteen.update", serde_json::json!({"canteen": &c}), now).await?;
        tx.commit().await.map_err(db)?;
        self.forget_rules();
        Ok(c)
    }

    async fn list_canteens(&self) -> SResult<Vec<Canteen>> {
        let rows: Vec<CanteenRow> = sqlx::query_as(
            "SELECT id, name, utc_offset_minutes, per_txn_cap_fen, daily_cap_fen, created_at FROM canteens ORDER BY id",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(db)?;
        rows.into_iter().map(canteen_from).collect()
    }

    async fn canteen_config(&self, id: i64) -> SResult<CanteenConfig> {
        let r: CanteenRow = sqlx::query_as(
            "SELECT id, name, utc_offset_minutes, per_txn_cap_fen, daily_cap_fen, created_at FROM canteens WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(&self.pool)
        .await
        .map_err(db)?
        .ok_or(StoreError::NotFound("canteen"))?;
        let windows: Vec<(String, i64, i64)> = sqlx::query_as(
            "SELECT meal, start_minute, end_minute FROM meal_windows WHERE canteen_id = $1 ORDER BY start_minute",
        )
        .bind(id)
        .fetch_all(&self.pool)
        .await
        .map_err(db)?;
        let prices: Vec<(String, String, i64)> = sqlx::query_as(
            "SELECT category, meal, price_fen FROM prices WHERE canteen_id = $1 ORDER BY category, meal",
        )
        .bind(id)
        .fetch_all(&self.pool)
        .await
        .map_err(db)?;
        Ok(CanteenConfig {
            canteen: canteen_from(r)?,
            windows: windows
                .into_iter()
                .map(|(m, s, e)| {
                    Ok(MealWindow { canteen_id: id, meal: parse_meal(&m)?, start_minute: to_u16(s)?, end_minute: to_u16(e)? })
                })
                .collect::<SResult<_>>()?,
            prices: prices
                .into_iter()
                .map(|(c, m, p)| Ok(Price { canteen_id: id, category: c, meal: parse_meal(&m)?, price: Fen(p) }))
                .collect::<SResult<_>>()?,
        })
    }

    async fn set_meal_window(&self, w: MealWindow, actor: &Actor) -> SResult<()> {
        let now = now_ms();
        let mut tx = self.begin().await?;
        let (offset,): (i64,) = sqlx::query_as(concat!("SELECT utc_offset_minutes FROM canteens WHERE id = $1", for_update!()))
            .bind(w.canteen_id)
            .fetch_optional(&mut *tx)
            .await
            .map_err(db)?
            .ok_or(StoreError::NotFound("canteen"))?;
        let existing: Vec<(String, i64, i64)> =
            sqlx::query_as("SELECT meal, start_minute, end_minute FROM meal_windows WHERE canteen_id = $1")
                .bind(w.canteen_id)
                .fetch_all(&mut *tx)
                .await
                .map_err(db)?;
        // Validate the schedule as it will be after the change: windows must not overlap.
        let mut periods = vec![MealPeriod::new(w.meal, w.start_minute, w.end_minute)
            .map_err(|e| StoreError::invalid("bad_meal_window", e.to_string()))?];
        for (m, s, e) in existing {
            let m = parse_meal(&m)?;
            if m != w.meal {
                periods.push(MealPeriod::new(m, to_u16(s)?, to_u16(e)?).map_err(corrupt)?);
            }
        }
        Schedule::new(to_i32(offset)?, periods).map_err(|e| StoreError::invalid("bad_meal_window", e.to_string()))?;
        sqlx::query(
            "INSERT INTO meal_windows (canteen_id, meal, start_minute, end_minute) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (canteen_id, meal) DO UPDATE SET start_minute = excluded.start_minute, end_minute = excluded.end_minute",
        )
        .bind(w.canteen_id)
        .bind(w.meal.as_str())
        .bind(i64::from(w.start_minute))
        .bind(i64::from(w.end_minute))
        .execute(&mut *tx)
        .await
        .map_err(db)?;
        Self::audit(&mut tx, actor, "canteen.meal_window", serde_json::json!(w), now).await?;
        tx.commit().await.map_err(db)?;
        self.forget_rules();
        Ok(())
    }

    async fn set_price(&self, p: Price, actor: &Actor) -> SResult<()> {
        if p.price.0 <= 0 {
            return Err(StoreError::invalid("bad_price", "a price must be positive"));
        }
        if p.category.trim().is_empty() {
            return Err(StoreError::invalid("bad_category", "category must not be empty"));
        }
        let now = now_ms();
        let mut tx = self.begin().await?;
        sqlx::query(
            "INSERT INTO prices (canteen_id, category, meal, price_fen) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (canteen_id, category, meal) DO UPDATE SET price_fen = excluded.price_fen",
        )
        .bind(p.canteen_id)
        .bind(&p.category)
        .bind(p.meal.as_str())
        .bind(p.price.0)
        .execute(&mut *tx)
        .await
        .map_err(db)?;
        Self::audit(&mut tx, actor, "canteen.price", serde_json::json!(p), now).await?;
        tx.commit().await.map_err(db)?;
        self.forget_rules();
        Ok(())
    }

    async fn set_subsidy_rule(&self, r: SubsidyRule, actor: &Actor) -> SResult<()> {
        if r.amount.0 < 0 {
            return Err(StoreError::invalid("bad_amount", "a subsidy must not be negative"));
        }
        let now = now_ms();
        let mut tx = self.begin().await?;
        sqlx::query(
            "INSERT INTO subsidy_rules (category, amount_fen, expires) VALUES ($1, $2, $3) \
             ON CONFLICT (category) DO UPDATE SET amount_fen = excluded.amount_fen, expires = excluded.expires",
        )
        .bind(&r.category)
        .bind(r.amount.0)
        .bind(r.expires)
        .execute(&mut *tx)
        .await
        .map_err(db)?;
        Self::audit(&mut tx, actor, "subsidy.rule", serde_json::json!(r), now).await?;
        tx.commit().await.map_err(db)?;
        Ok(())
    }

    async fn list_subsidy_rules(&self) -> SResult<Vec<SubsidyRule>> {
        let rows: Vec<(String, i64, bool)> =
            sqlx::query_as("SELECT category, amount_fen, expires FROM subsidy_rules ORDER BY category")
                .fetch_all(&self.pool)
                .await
                .map_err(db)?;
        Ok(rows.into_iter().map(|(category, a, expires)| SubsidyRule { category, amount: Fen(a), expires }).collect())
    }

    async fn grant_subsidies(&self, period: &str, now_ms: i64, actor: &Actor) -> SResult<GrantSummary> {
        let period = ledger::subsidy::parse_period(period)
            .ok_or_else(|| StoreError::invalid("bad_period", "period must look like 2026-11"))?;
        let sys = self.system_ids().await?;
        let rules = self.list_subsidy_rules().await?;
        let staff: Vec<(i64, String)> =
            sqlx::query_as("SELECT id, category FROM staff WHERE active = TRUE ORDER BY id")
                .fetch_all(&self.pool)
                .await
                .map_err(db)?;
        let mut sum = GrantSummary { period: period.clone(), ..Default::default() };
        // One transaction per person: a long run never holds many locks, and a crash half-way
        // is resumed by running it again (subsidy_grants makes each person's grant idempotent).
        for (id, category) in staff {
            let Some(rule) = rules.iter().find(|r| r.category == category) else { continue };
            match self.grant_one(&sys, id, &period, rule, now_ms, actor).await? {
                Some((g, e)) => {
                    sum.people += 1;
                    sum.granted = Fen(sum.granted.0 + g.0);
                    sum.expired = Fen(sum.expired.0 + e.0);
                }
                None => sum.skipped += 1,
            }
        }
        Ok(sum)
    }

    // ---- staff, users, sessions -------------------------------------------------------------

    async fn create_staff(&self, new: NewStaff, actor: &Actor) -> SResult<Staff> {
        if new.employee_no.trim().is_empty() || new.name.trim().is_empty() || new.category.trim().is_empty() {
            return Err(StoreError::invalid("bad_staff", "employee number, name and category are required"));
        }
        let now = now_ms();
        let mut tx = self.begin().await?;
        let r: StaffRow = sqlx::query_as(
            "INSERT INTO staff (employee_no, name, department, category, active, meals_per_period, created_at) \
             VALUES ($1, $2, $3, $4, TRUE, 1, $5) \
             RETURNING id, employee_no, name, department, category, active, meals_per_period, created_at",
        )
        .bind(&new.employee_no)
        .bind(&new.name)
        .bind(&new.department)
        .bind(&new.category)
        .bind(now)
        .fetch_one(&mut *tx)
        .await
        .map_err(|e| match db(e) {
            e if is_unique_violation(&e) => StoreError::conflict("employee_no_taken", "this employee number exists"),
            e => e,
        })?;
        let s = staff_from(r)?;
        sqlx::query("INSERT INTO book_accounts (kind, staff_id, balance_fen) VALUES ('cash', $1, 0), ('subsidy', $1, 0)")
            .bind(s.id)
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        Self::audit(&mut tx, actor, "staff.create", serde_json::json!({"staff": &s}), now).await?;
        tx.commit().await.map_err(db)?;
        Ok(s)
    }

    async fn update_staff(&self, id: i64, upd: StaffUpdate, actor: &Actor) -> SResult<Staff> {
        let now = now_ms();
        let mut tx = self.begin().await?;
        let r: StaffRow = sqlx::query_as(concat!(
            "SELECT id, employee_no, name, department, category, active, meals_per_period, created_at FROM staff WHERE id = $1",
            for_update!()
        ))
            .bind(id)
            .fetch_optional(&mut *tx)
            .await
            .map_err(db)?
            .ok_or(StoreError::NotFound("staff"))?;
        let mut s = staff_from(r)?;
        if let Some(v) = upd.name {
            s.name = v;
        }
        if let Some(v) = upd.department {
            s.department = v;
        }
        if let Some(v) = upd.category {
            s.category = v;
        }
        if let Some(v) = upd.active {
            s.active = v;
        }
        if let Some(v) = upd.meals_per_period {
            s.meals_per_period = v;
        }
        sqlx::query("UPDATE staff SET name = $1, department = $2, category = $3, active = $4, meals_per_period = $5 WHERE id = $6")
            .bind(&s.name)
            .bind(&s.department)
            .bind(&s.category)
            .bind(s.active)
            .bind(i64::from(s.meals_per_period))
            .bind(id)
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        Self::audit(&mut tx, actor, "staff.update", serde_json::json!({"staff": &s}), now).await?;
        tx.commit().await.map_err(db)?;
        Ok(s)
    }

    async fn get_staff(&self, id: i64) -> SResult<Staff> {
        let r: StaffRow = sqlx::query_as(
            "SELECT id, employee_no, name, department, category, active, meals_per_period, created_at FROM staff WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(&self.pool)
        .await
        .map_err(db)?
        .ok_or(StoreError::NotFound("staff"))?;
        staff_from(r)
    }

    async fn list_staff(&self, after_id: i64, limit: i64) -> SResult<Vec<Staff>> {
        let rows: Vec<StaffRow> = sqlx::query_as(
            "SELECT id, employee_no, name, department, category, active, meals_per_period, created_at FROM staff \
             WHERE id > $1 ORDER BY id LIMIT $2",
        )
        .bind(after_id)
        .bind(limit.clamp(1, 1000))
        .fetch_all(&self.pool)
        .await
        .map_err(db)?;
        rows.into_iter().map(staff_from).collect()
    }

    async fn balances(&self, staff_id: i64) -> SResult<Balances> {
        let rows: Vec<(String, i64)> =
            sqlx::query_as("SELECT kind, balance_fen FROM book_accounts WHERE staff_id = $1")
                .bind(staff_id)
                .fetch_all(&self.pool)
                .await
                .map_err(db)?;
        if rows.is_empty() {
            return Err(StoreError::NotFound("staff"));
        }
        let get = |k: &str| Fen(rows.iter().find(|(kind, _)| kind == k).map(|(_, b)| *b).unwrap_or(0));
        Ok(Balances { staff_id, cash: get("cash"), subsidy: get("subsidy") })
    }

    async fn balance_page(&self, after_staff_id: i64, limit: i64) -> SResult<Vec<BalanceRow>> {
        let rows: Vec<(i64, bool, String, i64, i64, i64)> = sqlx::query_as(
            "SELECT s.id, s.active, s.category, c.balance_fen, sb.balance_fen, c.version + sb.version FROM staff s \
             JOIN book_accounts c ON c.staff_id = s.id AND c.kind = 'cash' \
             JOIN book_accounts sb ON sb.staff_id = s.id AND sb.kind = 'subsidy' \
             WHERE s.id > $1 ORDER BY s.id LIMIT $2",
        )
        .bind(after_staff_id)
        .bind(limit.clamp(1, 10_000))
        .fetch_all(&self.pool)
        .await
        .map_err(db)?;
        Ok(rows
            .into_iter()
            .map(|(staff_id, active, category, cash, subsidy, version)| BalanceRow {
                staff_id,
                active,
                category,
                cash: Fen(cash),
                subsidy: Fen(subsidy),
                version,
            })
            .collect())
    }

    async fn statement(&self, staff_id: i64, limit: i64) -> SResult<Vec<StatementLine>> {
        let rows: Vec<(i64, String, i64, String, String, i64)> = sqlx::query_as(
            "SELECT e.id, e.kind, e.created_at, e.memo, a.kind, p.amount_fen FROM postings p \
             JOIN book_accounts a ON a.id = p.account_id JOIN journal_entries e ON e.id = p.entry_id \
             WHERE a.staff_id = $1 ORDER BY e.id DESC, p.account_id LIMIT $2",
        )
        .bind(staff_id)
        .bind(limit.clamp(1, 1000) * 2)
        .fetch_all(&self.pool)
        .await
        .map_err(db)?;
        let mut out: Vec<StatementLine> = Vec::new();
        for (id, kind, at, memo, acct, amount) in rows {
            if out.last().map(|l| l.entry_id) != Some(id) {
                out.push(StatementLine { entry_id: id, kind, at_ms: at, cash_delta: Fen(0), subsidy_delta: Fen(0), memo });
            }
            if let Some(l) = out.last_mut() {
                if acct == "cash" {
                    l.cash_delta = Fen(l.cash_delta.0 + amount);
                } else {
                    l.subsidy_delta = Fen(l.subsidy_delta.0 + amount);
                }
            }
        }
        out.truncate(limit.clamp(1, 1000) as usize);
        Ok(out)
    }

    async fn create_user(&self, new: NewUser, actor: &Actor) -> SResult<User> {
        if (new.role == Role::Staff) != new.staff_id.is_some() {
            return Err(StoreError::invalid("bad_user", "staff users (and only they) are linked to a staff member"));
        }
        let now = now_ms();
        let mut tx = self.begin().await?;
        let r: UserRow = sqlx::query_as(
            "INSERT INTO users (username, password_hash, role, staff_id, active, created_at) \
             VALUES ($1, $2, $3, $4, TRUE, $5) RETURNING id, username, role, staff_id, active, password_hash",
        )
        .bind(&new.username)
        .bind(&new.password_hash)
        .bind(new.role.as_str())
        .bind(new.staff_id)
        .bind(now)
        .fetch_one(&mut *tx)
        .await
        .map_err(|e| match db(e) {
            e if is_unique_violation(&e) => StoreError::conflict("username_taken", "this username exists"),
            e => e,
        })?;
        let u = user_from(r)?;
        Self::audit(
            &mut tx,
            actor,
            "user.create",
            serde_json::json!({"user_id": u.id, "username": u.username, "role": u.role, "staff_id": u.staff_id}),
            now,
        )
        .await?;
        tx.commit().await.map_err(db)?;
        Ok(u)
    }

    async fn user_by_username(&self, username: &str) -> SResult<Option<User>> {
        let r: Option<UserRow> = sqlx::query_as(
            "SELECT id, username, role, staff_id, active, password_hash FROM users WHERE username = $1",
        )
        .bind(username)
        .fetch_optional(&self.pool)
        .await
        .map_err(db)?;
        r.map(user_from).transpose()
    }

    async fn create_session(&self, s: NewSession) -> SResult<()> {
        sqlx::query("INSERT INTO sessions (token_hash, user_id, csrf_token, created_at, expires_at) VALUES ($1, $2, $3, $4, $5)")
            .bind(&s.token_hash)
            .bind(s.user_id)
            .bind(&s.csrf_token)
            .bind(s.created_ms)
            .bind(s.expires_ms)
            .execute(&self.pool)
            .await
            .map_err(db)?;
        Ok(())
    }

    async fn session(&self, token_hash: &str, now_ms: i64) -> SResult<Option<Session>> {
        let r: Option<(i64, String, String, Option<i64>, bool, String, String, i64)> = sqlx::query_as(
            "SELECT u.id, u.username, u.role, u.staff_id, u.active, u.password_hash, s.csrf_token, s.expires_at \
             FROM sessions s JOIN users u ON u.id = s.user_id WHERE s.token_hash = $1 AND s.expires_at > $2 AND u.active = TRUE",
        )
        .bind(token_hash)
        .bind(now_ms)
        .fetch_optional(&self.pool)
        .await
        .map_err(db)?;
        r.map(|r| Ok(Session { user: user_from((r.0, r.1, r.2, r.3, r.4, r.5))?, csrf_token: r.6, expires_ms: r.7 }))
            .transpose()
    }

    async fn delete_session(&self, token_hash: &str) -> SResult<()> {
        sqlx::query("DELETE FROM sessions WHERE token_hash = $1")
            .bind(token_hash)
            .execute(&self.pool)
            .await
            .map_err(db)?;
        Ok(())
    }

    async fn purge_expired(&self, now_ms: i64) -> SResult<u64> {
        let a = sqlx::query("DELETE FROM sessions WHERE expires_at <= $1")
            .bind(now_ms)
            .execute(&self.pool)
            .await
            .map_err(db)?
            .rows_affected();
        let b = sqlx::query("DELETE FROM rate_limits WHERE window_start < $1")
            .bind(now_ms - 24 * 3600 * 1000)
            .execute(&self.pool)
            .await
            .map_err(db)?
            .rows_affected();
        Ok(a + b)
    }

    async fn rate_limit_hit(&self, key: &str, now_ms: i64, window_ms: i64, max: i64) -> SResult<bool> {
        let (hits,): (i64,) = sqlx::query_as(
            "INSERT INTO rate_limits (key, window_start, hits) VALUES ($1, $2, 1) \
             ON CONFLICT (key) DO UPDATE SET \
               hits = CASE WHEN rate_limits.window_start <= $3 THEN 1 ELSE rate_limits.hits + 1 END, \
               window_start = CASE WHEN rate_limits.window_start <= $3 THEN $2 ELSE rate_limits.window_start END \
             RETURNING hits",
        )
        .bind(key)
        .bind(now_ms)
        .bind(now_ms - window_ms)
        .fetch_one(&self.pool)
        .await
        .map_err(db)?;
        Ok(hits <= max)
    }

    // ---- kiosks -------------------------------------------------------------------------------

    async fn create_enrolment_code(&self, canteen_id: i64, code_hash: &str, expires_ms: i64, actor: &Actor) -> SResult<()> {
        let now = now_ms();
        let mut tx = self.begin().await?;
        sqlx::query("INSERT INTO enrolment_codes (code_hash, canteen_id, expires_at, created_at) VALUES ($1, $2, $3, $4)")
            .bind(code_hash)
            .bind(canteen_id)
            .bind(expires_ms)
            .bind(now)
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        Self::audit(&mut tx, actor, "kiosk.enrolment_code", serde_json::json!({"canteen_id": canteen_id, "expires_at": expires_ms}), now).await?;
        tx.commit().await.map_err(db)?;
        Ok(())
    }

    async fn redeem_enrolment_code(&self, code_hash: &str, name: &str, token_hash: &str, now_ms: i64) -> SResult<Kiosk> {
        let mut tx = self.begin().await?;
        let code: Option<(i64,)> = sqlx::query_as(concat!(
            "SELECT canteen_id FROM enrolment_codes WHERE code_hash = $1 AND used_at IS NULL AND expires_at > $2",
            for_update!()
        ))
        .bind(code_hash)
        .bind(now_ms)
        .fetch_optional(&mut *tx)
        .await
        .map_err(db)?;
        let Some((canteen_id,)) = code else {
            return Err(StoreError::invalid("enrolment_code_invalid", "the enrolment code is unknown, used or expired"));
        };
        let r: KioskRow = sqlx::query_as(
            "INSERT INTO kiosks (name, canteen_id, token_hash, created_at) VALUES ($1, $2, $3, $4) \
             RETURNING id, name, canteen_id, revoked_at, created_at",
        )
        .bind(name)
        .bind(canteen_id)
        .bind(token_hash)
        .bind(now_ms)
        .fetch_one(&mut *tx)
        .await
        .map_err(db)?;
        let k = kiosk_from(r);
        sqlx::query("UPDATE enrolment_codes SET used_at = $1, kiosk_id = $2 WHERE code_hash = $3")
            .bind(now_ms)
            .bind(k.id)
            .bind(code_hash)
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        Self::audit(&mut tx, &Actor::Kiosk { id: k.id }, "kiosk.enrol", serde_json::json!({"kiosk": &k}), now_ms).await?;
        tx.commit().await.map_err(db)?;
        Ok(k)
    }

    async fn kiosk_by_token(&self, token_hash: &str) -> SResult<Option<Kiosk>> {
        let r: Option<KioskRow> = sqlx::query_as(
            "SELECT id, name, canteen_id, revoked_at, created_at FROM kiosks WHERE token_hash = $1 AND revoked_at IS NULL",
        )
        .bind(token_hash)
        .fetch_optional(&self.pool)
        .await
        .map_err(db)?;
        Ok(r.map(kiosk_from))
    }

    async fn revoke_kiosk(&self, id: i64, now_ms: i64, actor: &Actor) -> SResult<Kiosk> {
        let mut tx = self.begin().await?;
        let r: KioskRow = sqlx::query_as(
            "UPDATE kiosks SET revoked_at = COALESCE(revoked_at, $1) WHERE id = $2 \
             RETURNING id, name, canteen_id, revoked_at, created_at",
        )
        .bind(now_ms)
        .bind(id)
        .fetch_optional(&mut *tx)
        .await
        .map_err(db)?
        .ok_or(StoreError::NotFound("kiosk"))?;
        Self::audit(&mut tx, actor, "kiosk.revoke", serde_json::json!({"kiosk_id": id}), now_ms).await?;
        tx.commit().await.map_err(db)?;
        Ok(kiosk_from(r))
    }

    async fn list_kiosks(&self) -> SResult<Vec<Kiosk>> {
        let rows: Vec<KioskRow> =
            sqlx::query_as("SELECT id, name, canteen_id, revoked_at, created_at FROM kiosks ORDER BY id")
                .fetch_all(&self.pool)
                .await
                .map_err(db)?;
        Ok(rows.into_iter().map(kiosk_from).collect())
    }

    // ---- money --------------------------------------------------------------------------------

    async fn charge(&self, cmd: ChargeCommand) -> SResult<ChargeResult> {
        self.charge_batched(cmd).await
    }

    fn charge_batch_stats(&self) -> Option<store::ChargeBatchStats> {
        self.queue.settings.enabled().then(|| self.queue.stats())
    }

    async fn get_charge(&self, id: i64) -> SResult<ChargeRecord> {
        let row = sqlx::query(
            "SELECT id, kiosk_id, idempotency_key, staff_id, canteen_id, meal, local_date, kiosk_time, received_at, \
             amount_fen, subsidy_fen, cash_fen, status, reason, entry_id, offline FROM charges WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(&self.pool)
        .await
        .map_err(db)?
        .ok_or(StoreError::NotFound("charge"))?;
        charge_from_row(&row)
    }

    async fn list_charges(&self, f: ChargeFilter) -> SResult<Vec<ChargeRecord>> {
        let rows = sqlx::query(
            "SELECT id, kiosk_id, idempotency_key, staff_id, canteen_id, meal, local_date, kiosk_time, received_at, \
             amount_fen, subsidy_fen, cash_fen, status, reason, entry_id, offline FROM charges \
             WHERE ($1 IS NULL OR staff_id = $1) AND ($2 IS NULL OR status = $2) AND ($3 IS NULL OR kiosk_id = $3) \
               AND id < $4 ORDER BY id DESC LIMIT $5",
        )
        .bind(f.staff_id)
        .bind(f.status.map(|s| s.as_str()))
        .bind(f.kiosk_id)
        .bind(f.before_id.unwrap_or(i64::MAX))
        .bind(f.limit.clamp(1, 100_000))
        .fetch_all(&self.pool)
        .await
        .map_err(db)?;
        rows.iter().map(charge_from_row).collect()
    }

    async fn resolve_exception(&self, charge_id: i64, collect: bool, now_ms: i64, actor: &Actor) -> SResult<ChargeRecord> {
        let sys = self.system_ids().await?;
        let mut tx = self.begin().await?;
        let mut c = Self::load_charge(&mut tx, charge_id).await?;
        if c.status != ChargeStatus::Exception {
            return Err(StoreError::invalid("not_an_exception", "only exceptions can be resolved"));
        }
        if collect {
            if c.amount.0 <= 0 {
                return Err(StoreError::invalid("no_amount", "this exception has no price; waive it instead"));
            }
            let (mut w, _) = Self::must_lock_wallets(&mut tx, c.staff_id).await?;
            // The manager overrides the meal and cap rules, never the balance: money that is not
            // there cannot be collected.
            let subsidy = Fen(w.subsidy.0.max(0).min(c.amount.0));
            let cash = Fen(c.amount.0 - subsidy.0);
            if cash > w.cash {
                return Err(StoreError::invalid("insufficient_funds", "the balance is too low to collect this charge"));
            }
            let entry = ProposedEntry::charge(c.staff_id, subsidy, cash).map_err(corrupt)?;
            let memo = format!("exception {} collected", c.id);
            let entry_id = Self::post_entry(&mut tx, &sys, &mut w, &entry, &memo, now_ms).await?;
            sqlx::query("UPDATE charges SET status = 'accepted', subsidy_fen = $1, cash_fen = $2, entry_id = $3 WHERE id = $4")
                .bind(subsidy.0)
                .bind(cash.0)
                .bind(entry_id)
                .bind(c.id)
                .execute(&mut *tx)
                .await
                .map_err(db)?;
            c.status = ChargeStatus::Accepted;
            c.subsidy = subsidy;
            c.cash = cash;
            c.entry_id = Some(entry_id);
        } else {
            sqlx::query("UPDATE charges SET status = 'waived' WHERE id = $1")
                .bind(c.id)
                .execute(&mut *tx)
                .await
                .map_err(db)?;
            c.status = ChargeStatus::Waived;
        }
        let action = if collect { "exception.collect" } else { "exception.waive" };
        Self::audit(&mut tx, actor, action, serde_json::json!({"charge_id": c.id, "amount_fen": c.amount.0, "staff_id": c.staff_id}), now_ms).await?;
        tx.commit().await.map_err(db)?;
        Ok(c)
    }

    async fn reverse_charge(&self, charge_id: i64, reason: &str, now_ms: i64, actor: &Actor) -> SResult<Refund> {
        let mut tx = self.begin().await?;
        let c = Self::load_charge(&mut tx, charge_id).await?;
        refund::manager_may_reverse(c.status).map_err(|e| StoreError::invalid("not_refundable", e.to_string()))?;
        let r = self.reverse_standing(&mut tx, &c, reason, "charge.reverse", serde_json::json!({}), now_ms, actor).await?;
        tx.commit().await.map_err(db)?;
        Ok(r)
    }

    async fn void_kiosk_charge(&self, kiosk_id: i64, idempotency_key: &str, reason: &str, now_ms: i64) -> SResult<VoidOutcome> {
        let mut tx = self.begin().await?;
        // The same row lock as a manager reversal (`load_charge`): concurrent voids, and a void
        // racing a manager, serialise on the charge and the later ones see it refunded.
        let row = sqlx::query(concat!(
            "SELECT id, kiosk_id, idempotency_key, staff_id, canteen_id, meal, local_date, kiosk_time, received_at, \
             amount_fen, subsidy_fen, cash_fen, status, reason, entry_id, offline FROM charges \
             WHERE kiosk_id = $1 AND idempotency_key = $2",
            for_update!()
        ))
        .bind(kiosk_id)
        .bind(idempotency_key)
        .fetch_optional(&mut *tx)
        .await
        .map_err(db)?
        .ok_or(StoreError::NotFound("charge"))?;
        let charge = charge_from_row(&row)?;
        match charge.status {
            ChargeStatus::Accepted => {}
            // Checked before the window: answering an old void again changes nothing.
            ChargeStatus::Refunded => {
                let row = sqlx::query(concat!("SELECT ", refund_cols!(), " FROM refunds WHERE charge_id = $1 AND status = 'approved'"))
                    .bind(charge.id)
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(db)?
                    .ok_or_else(|| corrupt(format!("refunded charge {} has no approved refund", charge.id)))?;
                let refund = refund_from_row(&row)?;
                return Ok(VoidOutcome { charge, refund, already_void: true });
            }
            other => {
                return Err(StoreError::conflict(
                    "nothing_to_void",
                    format!("charge {} is {}: nothing was taken from the balance, so there is nothing to void", charge.id, other.as_str()),
                ))
            }
        }
        if now_ms.saturating_sub(charge.received_ms) > refund::KIOSK_VOID_WINDOW_MS {
            return Err(StoreError::conflict(
                "void_too_late",
                "this charge is older than 7 days; a kiosk cannot void it, a manager can reverse it",
            ));
        }
        let actor = Actor::Kiosk { id: kiosk_id };
        let extra = serde_json::json!({"key": idempotency_key});
        let refund = self
            .reverse_standing(&mut tx, &charge, &format!("voided by kiosk {kiosk_id}: {reason}"), "charge.void", extra, now_ms, &actor)
            .await?;
        tx.commit().await.map_err(db)?;
        let charge = ChargeRecord { status: ChargeStatus::Refunded, ..charge };
        Ok(VoidOutcome { charge, refund, already_void: false })
    }

    async fn request_refund(&self, charge_id: i64, staff_id: i64, reason: &str, now_ms: i64, actor: &Actor) -> SResult<Refund> {
        let mut tx = self.begin().await?;
        let c = Self::load_charge(&mut tx, charge_id).await?;
        refund::staff_may_request(c.status, c.staff_id, staff_id, c.received_ms, now_ms).map_err(|e| match e {
            refund::RefundDenied::NotOwner => StoreError::NotFound("charge"),
            e => StoreError::invalid("not_refundable", e.to_string()),
        })?;
        let row = sqlx::query(concat!(
            "INSERT INTO refunds (charge_id, staff_id, kind, status, amount_fen, reason, requested_at) \
             VALUES ($1, $2, 'staff_request', 'requested', $3, $4, $5) RETURNING ",
            refund_cols!()
        ))
        .bind(c.id)
        .bind(c.staff_id)
        .bind(c.amount.0)
        .bind(reason)
        .bind(now_ms)
        .fetch_one(&mut *tx)
        .await
        .map_err(|e| match db(e) {
            e if is_unique_violation(&e) => StoreError::conflict("refund_exists", "a refund for this charge is already open or done"),
            e => e,
        })?;
        let r = refund_from_row(&row)?;
        Self::audit(&mut tx, actor, "refund.request", serde_json::json!({"charge_id": c.id, "refund_id": r.id, "reason": reason}), now_ms).await?;
        tx.commit().await.map_err(db)?;
        Ok(r)
    }

    async fn decide_refund(&self, refund_id: i64, approve: bool, now_ms: i64, actor: &Actor) -> SResult<Refund> {
        let mut tx = self.begin().await?;
        let mut r = Self::load_refund(&mut tx, refund_id, true).await?;
        if r.status != RefundStatus::Requested {
            return Err(StoreError::invalid("already_decided", "this refund was already decided"));
        }
        if approve {
            let c = Self::load_charge(&mut tx, r.charge_id).await?;
            refund::manager_may_reverse(c.status).map_err(|e| StoreError::invalid("not_refundable", e.to_string()))?;
            let entry_id = self.reverse_in_tx(&mut tx, &c, EntryKind::Refund, now_ms).await?;
            sqlx::query("UPDATE refunds SET status = 'approved', entry_id = $1, decided_at = $2 WHERE id = $3")
                .bind(entry_id)
                .bind(now_ms)
                .bind(r.id)
                .execute(&mut *tx)
                .await
                .map_err(db)?;
            r.status = RefundStatus::Approved;
            r.entry_id = Some(entry_id);
        } else {
            sqlx::query("UPDATE refunds SET status = 'rejected', decided_at = $1 WHERE id = $2")
                .bind(now_ms)
                .bind(r.id)
                .execute(&mut *tx)
                .await
                .map_err(db)?;
            r.status = RefundStatus::Rejected;
        }
        r.decided_at_ms = Some(now_ms);
        let action = if approve { "refund.approve" } else { "refund.reject" };
        Self::audit(&mut tx, actor, action, serde_json::json!({"refund_id": r.id, "charge_id": r.charge_id, "amount_fen": r.amount.0}), now_ms).await?;
        tx.commit().await.map_err(db)?;
        Ok(r)
    }

    async fn list_refunds(&self, status: Option<RefundStatus>, staff_id: Option<i64>) -> SResult<Vec<Refund>> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            refund_cols!(),
            " FROM refunds WHERE ($1 IS NULL OR status = $1) AND ($2 IS NULL OR staff_id = $2) ORDER BY id DESC LIMIT 1000"
        ))
        .bind(status.map(|s| s.as_str()))
        .bind(staff_id)
        .fetch_all(&self.pool)
        .await
        .map_err(db)?;
        rows.iter().map(refund_from_row).collect()
    }

    async fn offboard_staff(&self, staff_id: i64, now_ms: i64, actor: &Actor) -> SResult<Offboarding> {
        let sys = self.system_ids().await?;
        let mut tx = self.begin().await?;
        let (mut w, _) = Self::must_lock_wallets(&mut tx, staff_id).await?;
        let cash = w.cash;
        let subsidy = w.subsidy;
        if cash.0 > 0 {
            let e = ProposedEntry::cash_out(staff_id, cash).map_err(corrupt)?;
            Self::post_entry(&mut tx, &sys, &mut w, &e, "cash-out on leaving", now_ms).await?;
        }
        if subsidy.0 > 0 {
            let e = ProposedEntry::subsidy_expiry(staff_id, subsidy).map_err(corrupt)?;
            Self::post_entry(&mut tx, &sys, &mut w, &e, "subsidy returned on leaving", now_ms).await?;
        }
        sqlx::query("INSERT INTO offboardings (staff_id, cash_fen, subsidy_fen, created_at) VALUES ($1, $2, $3, $4)")
            .bind(staff_id)
            .bind(cash.0)
            .bind(subsidy.0)
            .bind(now_ms)
            .execute(&mut *tx)
            .await
            .map_err(|e| match db(e) {
                e if is_unique_violation(&e) => StoreError::conflict("already_offboarded", "this person has already left"),
                e => e,
            })?;
        sqlx::query("UPDATE staff SET active = FALSE WHERE id = $1")
            .bind(staff_id)
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        sqlx::query("DELETE FROM sessions WHERE user_id IN (SELECT id FROM users WHERE staff_id = $1)")
            .bind(staff_id)
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        let templates = Self::tombstone_templates(&mut tx, staff_id).await?;
        let o = Offboarding { staff_id, cash_paid_out: cash, subsidy_returned: subsidy, templates_deleted: templates };
        Self::audit(&mut tx, actor, "staff.offboard", serde_json::json!(o), now_ms).await?;
        tx.commit().await.map_err(db)?;
        Ok(o)
    }

    // ---- top-ups ------------------------------------------------------------------------------

    async fn create_payment_order(&self, new: NewPaymentOrder, actor: &Actor) -> SResult<PaymentOrder> {
        if new.amount.0 <= 0 {
            return Err(StoreError::invalid("bad_amount", "a top-up must be positive"));
        }
        let mut tx = self.begin().await?;
        let active: Option<(bool,)> = sqlx::query_as("SELECT active FROM staff WHERE id = $1")
            .bind(new.staff_id)
            .fetch_optional(&mut *tx)
            .await
            .map_err(db)?;
        match active {
            None => return Err(StoreError::NotFound("staff")),
            Some((false,)) => return Err(StoreError::invalid("staff_inactive", "inactive accounts cannot be topped up")),
            Some((true,)) => {}
        }
        sqlx::query(
            "INSERT INTO payment_orders (order_no, staff_id, amount_fen, provider, status, created_at) \
             VALUES ($1, $2, $3, $4, 'created', $5)",
        )
        .bind(&new.order_no)
        .bind(new.staff_id)
        .bind(new.amount.0)
        .bind(&new.provider)
        .bind(new.now_ms)
        .execute(&mut *tx)
        .await
        .map_err(db)?;
        Self::audit(&mut tx, actor, "topup.order", serde_json::json!({"order_no": new.order_no, "staff_id": new.staff_id, "amount_fen": new.amount.0}), new.now_ms).await?;
        let o = Self::load_order(&mut tx, &new.order_no).await?.ok_or(StoreError::NotFound("order"))?;
        tx.commit().await.map_err(db)?;
        Ok(o)
    }

    async fn get_payment_order(&self, order_no: &str) -> SResult<PaymentOrder> {
        let row = sqlx::query(
            "SELECT order_no, staff_id, amount_fen, provider, status, provider_txn, created_at, credited_at, entry_id \
             FROM payment_orders WHERE order_no = $1",
        )
        .bind(order_no)
        .fetch_optional(&self.pool)
        .await
        .map_err(db)?
        .ok_or(StoreError::NotFound("order"))?;
        order_from_row(&row)
    }

    async fn list_payment_orders(&self, staff_id: Option<i64>, limit: i64) -> SResult<Vec<PaymentOrder>> {
        let rows = sqlx::query(
            "SELECT order_no, staff_id, amount_fen, provider, status, provider_txn, created_at, credited_at, entry_id \
             FROM payment_orders WHERE ($1 IS NULL OR staff_id = $1) ORDER BY created_at DESC, order_no LIMIT $2",
        )
        .bind(staff_id)
        .bind(limit.clamp(1, 1000))
        .fetch_all(&self.pool)
        .await
        .map_err(db)?;
        rows.iter().map(order_from_row).collect()
    }

    async fn credit_payment(&self, order_no: &str, provider_txn: &str, paid: Fen, raw: &str, now_ms: i64) -> SResult<CreditOutcome> {
        let sys = self.system_ids().await?;
        let mut tx = self.begin().await?;
        // The order row lock makes concurrent duplicate notifications queue up here; the first
        // credits, the rest find the order credited.
        let Some(order) = Self::load_order(&mut tx, order_no).await? else {
            Self::log_notification(&mut tx, Some(order_no), raw, "unknown_order", now_ms).await?;
            tx.commit().await.map_err(db)?;
            return Ok(CreditOutcome::UnknownOrder);
        };
        let outcome = if order.status == OrderStatus::Credited {
            CreditOutcome::AlreadyCredited
        } else if paid != order.amount {
            CreditOutcome::AmountMismatch
        } else {
            let (mut w, _) = Self::must_lock_wallets(&mut tx, order.staff_id).await?;
            let e = ProposedEntry::top_up(order.staff_id, order.amount).map_err(corrupt)?;
            let memo = format!("top-up order {order_no}");
            let entry_id = Self::post_entry(&mut tx, &sys, &mut w, &e, &memo, now_ms).await?;
            sqlx::query("UPDATE payment_orders SET status = 'credited', provider_txn = $1, credited_at = $2, entry_id = $3 WHERE order_no = $4")
                .bind(provider_txn)
                .bind(now_ms)
                .bind(entry_id)
                .bind(order_no)
                .execute(&mut *tx)
                .await
                .map_err(db)?;
            CreditOutcome::Credited
        };
        Self::log_notification(&mut tx, Some(order_no), raw, outcome.as_str(), now_ms).await?;
        if outcome != CreditOutcome::AlreadyCredited {
            Self::audit(
                &mut tx,
                &Actor::Gateway,
                &format!("topup.{}", outcome.as_str()),
                serde_json::json!({"order_no": order_no, "staff_id": order.staff_id, "order_fen": order.amount.0, "paid_fen": paid.0, "provider_txn": provider_txn}),
                now_ms,
            )
            .await?;
        }
        tx.commit().await.map_err(db)?;
        Ok(outcome)
    }

    async fn log_payment_notification(&self, order_no: Option<&str>, raw: &str, verdict: &str, now_ms: i64) -> SResult<()> {
        let mut tx = self.begin().await?;
        Self::log_notification(&mut tx, order_no, raw, verdict, now_ms).await?;
        tx.commit().await.map_err(db)?;
        Ok(())
    }

    async fn sandbox_record_payment(&self, order_no: &str, amount: Fen, txn: &str, now_ms: i64) -> SResult<bool> {
        let n = sqlx::query(
            "INSERT INTO sandbox_gateway (order_no, amount_fen, txn, paid_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (order_no) DO NOTHING",
        )
        .bind(order_no)
        .bind(amount.0)
        .bind(txn)
        .bind(now_ms)
        .execute(&self.pool)
        .await
        .map_err(db)?
        .rows_affected();
        Ok(n == 1)
    }

    async fn sandbox_payment(&self, order_no: &str) -> SResult<Option<SandboxPayment>> {
        let r: Option<(String, i64, String, i64)> =
            sqlx::query_as("SELECT order_no, amount_fen, txn, paid_at FROM sandbox_gateway WHERE order_no = $1")
                .bind(order_no)
                .fetch_optional(&self.pool)
                .await
                .map_err(db)?;
        Ok(r.map(|(order_no, a, txn, paid_at_ms)| SandboxPayment { order_no, amount: Fen(a), txn, paid_at_ms }))
    }

    async fn create_pay_code(&self, staff_id: i64, code_hash: &str, now_ms: i64, expires_ms: i64) -> SResult<()> {
        sqlx::query("INSERT INTO pay_codes (code_hash, staff_id, created_at, expires_at) VALUES ($1, $2, $3, $4)")
            .bind(code_hash)
            .bind(staff_id)
            .bind(now_ms)
            .bind(expires_ms)
            .execute(&self.pool)
            .await
            .map_err(db)?;
        Ok(())
    }

    async fn redeem_pay_code(&self, code_hash: &str, kiosk_id: i64, now_ms: i64) -> SResult<PayCodeRedemption> {
        // One statement marks the code used only if it is unused and unexpired, so two kiosks
        // scanning the same code at once cannot both redeem it.
        let won: Option<(i64, bool)> = sqlx::query_as(
            "UPDATE pay_codes SET used_at = $2, kiosk_id = $3 \
             WHERE code_hash = $1 AND used_at IS NULL AND expires_at > $2 \
             RETURNING staff_id, (SELECT active FROM staff WHERE staff.id = pay_codes.staff_id)",
        )
        .bind(code_hash)
        .bind(now_ms)
        .bind(kiosk_id)
        .fetch_optional(&self.pool)
        .await
        .map_err(db)?;
        if let Some((staff_id, active)) = won {
            return Ok(if active { PayCodeRedemption::Redeemed { staff_id } } else { PayCodeRedemption::StaffInactive });
        }
        let row: Option<(Option<i64>,)> = sqlx::query_as("SELECT used_at FROM pay_codes WHERE code_hash = $1")
            .bind(code_hash)
            .fetch_optional(&self.pool)
            .await
            .map_err(db)?;
        Ok(match row {
            None => PayCodeRedemption::Unknown,
            Some((Some(_),)) => PayCodeRedemption::AlreadyUsed,
            Some((None,)) => PayCodeRedemption::Expired,
        })
    }

    // ---- plate waste --------------------------------------------------------------------------

    async fn record_waste(&self, cmd: WasteCommand) -> SResult<WasteRecord> {
        let net = ledger::waste::net_grams(cmd.gross_grams, cmd.tare_grams)
            .map_err(|e| StoreError::invalid("bad_weight", e.to_string()))?;
        for _ in 0..5 {
            let mut tx = self.begin().await?;
            if let Some((h, resp)) = Self::lookup_idempotency(&mut tx, cmd.kiosk_id, "waste", &cmd.idempotency_key).await? {
                let mut r: WasteRecord = Self::replay(&h, &resp, &cmd.request_hash)?;
                r.replayed = true;
                return Ok(r);
            }
            let mut staff_id = cmd.staff_id;
            if let Some(cid) = cmd.charge_id {
                let c: Option<(i64,)> = sqlx::query_as("SELECT staff_id FROM charges WHERE id = $1")
                    .bind(cid)
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(db)?;
                let Some((owner,)) = c else {
                    return Err(StoreError::invalid("unknown_charge", "the charge does not exist"));
                };
                if staff_id.is_some_and(|s| s != owner) {
                    return Err(StoreError::invalid("charge_mismatch", "the charge belongs to someone else"));
                }
                staff_id = Some(owner);
            }
            let mut charge_id = cmd.charge_id;
            if let (None, Some(person)) = (charge_id, staff_id) {
                // A return station at the tray belt never saw the charge: link the record to the
                // person's accepted charge of the same canteen-local day and meal, if exactly one.
                let canteen: Option<(i64,)> = sqlx::query_as("SELECT canteen_id FROM kiosks WHERE id = $1")
                    .bind(cmd.kiosk_id)
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(db)?;
                if let Some((canteen_id,)) = canteen {
                    let rules = self.canteen_rules(canteen_id).await?;
                    if let Ok(Some(slot)) = rules.schedule.locate(cmd.measured_at_ms) {
                        let found: Vec<(i64,)> = sqlx::query_as(
                            "SELECT id FROM charges WHERE staff_id = $1 AND local_date = $2 AND meal = $3 \
                             AND status = 'accepted' LIMIT 2",
                        )
                        .bind(person)
                        .bind(slot.local_date.to_string())
                        .bind(slot.meal.as_str())
                        .fetch_all(&mut *tx)
                        .await
                        .map_err(db)?;
                        if let [(id,)] = found.as_slice() {
                            charge_id = Some(*id);
                        }
                    }
                }
            }
            let r: WasteRow = sqlx::query_as(
                "INSERT INTO waste_records (kiosk_id, staff_id, charge_id, gross_grams, tare_grams, net_grams, dish, category, measured_at, created_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) \
                 RETURNING id, kiosk_id, staff_id, charge_id, gross_grams, tare_grams, net_grams, dish, category, measured_at",
            )
            .bind(cmd.kiosk_id)
            .bind(staff_id)
            .bind(charge_id)
            .bind(cmd.gross_grams)
            .bind(cmd.tare_grams)
            .bind(net)
            .bind(&cmd.dish)
            .bind(&cmd.category)
            .bind(cmd.measured_at_ms)
            .bind(cmd.received_ms)
            .fetch_one(&mut *tx)
            .await
            .map_err(db)?;
            let rec = waste_from(r);
            let resp = serde_json::to_string(&rec).map_err(corrupt)?;
            match Self::save_idempotency(&mut tx, cmd.kiosk_id, "waste", &cmd.idempotency_key, &cmd.request_hash, &resp, cmd.received_ms).await {
                Err(e) if is_unique_violation(&e) => continue,
                other => other?,
            }
            match tx.commit().await.map_err(db) {
                Err(e) if is_unique_violation(&e) => continue,
                other => other?,
            }
            return Ok(rec);
        }
        Err(StoreError::Busy("could not settle a concurrent use of the same idempotency key".into()))
    }

    async fn list_waste(&self, staff_id: Option<i64>, limit: i64) -> SResult<Vec<WasteRecord>> {
        let rows: Vec<WasteRow> = sqlx::query_as(
            "SELECT id, kiosk_id, staff_id, charge_id, gross_grams, tare_grams, net_grams, dish, category, measured_at \
             FROM waste_records WHERE ($1 IS NULL OR staff_id = $1) ORDER BY id DESC LIMIT $2",
        )
        .bind(staff_id)
        .bind(limit.clamp(1, 10_000))
        .fetch_all(&self.pool)
        .await
        .map_err(db)?;
        Ok(rows.into_iter().map(waste_from).collect())
    }

    async fn waste_stats(&self, staff_id: i64, canteen_id: i64, since_ms: i64) -> SResult<WasteStats> {
        let (person, canteen): (Option<f64>, Option<f64>) = sqlx::query_as(
            "SELECT CAST(AVG(CASE WHEN w.staff_id = $1 THEN w.net_grams END) AS DOUBLE PRECISION), \
                    CAST(AVG(w.net_grams) AS DOUBLE PRECISION) \
             FROM waste_records w JOIN kiosks k ON k.id = w.kiosk_id \
             WHERE k.canteen_id = $2 AND w.measured_at >= $3",
        )
        .bind(staff_id)
        .bind(canteen_id)
        .bind(since_ms)
        .fetch_one(&self.pool)
        .await
        .map_err(db)?;
        Ok(WasteStats { person_average_g: person, canteen_average_g: canteen })
    }

    // ---- face templates -----------------------------------------------------------------------

    async fn set_consent(&self, staff_id: i64, granted: bool, now_ms: i64, actor: &Actor) -> SResult<Consent> {
        let mut tx = self.begin().await?;
        let exists: Option<(i64,)> = sqlx::query_as(concat!("SELECT id FROM staff WHERE id = $1", for_update!()))
            .bind(staff_id)
            .fetch_optional(&mut *tx)
            .await
            .map_err(db)?;
        if exists.is_none() {
            return Err(StoreError::NotFound("staff"));
        }
        sqlx::query(
            "INSERT INTO consents (staff_id, granted, changed_at) VALUES ($1, $2, $3) \
             ON CONFLICT (staff_id) DO UPDATE SET granted = excluded.granted, changed_at = excluded.changed_at",
        )
        .bind(staff_id)
        .bind(granted)
        .bind(now_ms)
        .execute(&mut *tx)
        .await
        .map_err(db)?;
        // Withdrawing consent removes the templates themselves, not just access to them.
        let deleted = if granted { 0 } else { Self::tombstone_templates(&mut tx, staff_id).await? };
        let action = if granted { "face.consent_granted" } else { "face.consent_withdrawn" };
        Self::audit(&mut tx, actor, action, serde_json::json!({"staff_id": staff_id, "templates_deleted": deleted}), now_ms).await?;
        tx.commit().await.map_err(db)?;
        Ok(Consent { staff_id, granted, changed_at_ms: Some(now_ms) })
    }

    async fn consent(&self, staff_id: i64) -> SResult<Consent> {
        let r: Option<(bool, i64)> = sqlx::query_as("SELECT granted, changed_at FROM consents WHERE staff_id = $1")
            .bind(staff_id)
            .fetch_optional(&self.pool)
            .await
            .map_err(db)?;
        Ok(match r {
            Some((granted, at)) => Consent { staff_id, granted, changed_at_ms: Some(at) },
            None => Consent { staff_id, granted: false, changed_at_ms: None },
        })
    }

    async fn add_template(&self, staff_id: i64, sealed: SealedTemplate, now_ms: i64, actor: &Actor) -> SResult<TemplateMeta> {
        let mut tx = self.begin().await?;
        // Lock the consent row so a concurrent withdrawal cannot slip between check and insert.
        let consent: Option<(bool,)> = sqlx::query_as(concat!("SELECT granted FROM consents WHERE staff_id = $1", for_update!()))
            .bind(staff_id)
            .fetch_optional(&mut *tx)
            .await
            .map_err(db)?;
        if consent != Some((true,)) {
            return Err(StoreError::invalid("consent_required", "record the person's consent before storing face templates"));
        }
        let v = Self::next_gallery_version(&mut tx).await?;
        let (id,): (i64,) = sqlx::query_as(
            "INSERT INTO face_templates (staff_id, version, nonce, ciphertext, deleted, created_at) \
             VALUES ($1, $2, $3, $4, FALSE, $5) RETURNING id",
        )
        .bind(staff_id)
        .bind(v)
        .bind(&sealed.nonce)
        .bind(&sealed.ciphertext)
        .bind(now_ms)
        .fetch_one(&mut *tx)
        .await
        .map_err(db)?;
        Self::audit(&mut tx, actor, "face.template_added", serde_json::json!({"staff_id": staff_id, "template_id": id, "version": v}), now_ms).await?;
        tx.commit().await.map_err(db)?;
        Ok(TemplateMeta { id, staff_id, version: v, deleted: false, created_at_ms: now_ms })
    }

    async fn delete_template(&self, template_id: i64, now_ms: i64, actor: &Actor) -> SResult<TemplateMeta> {
        let mut tx = self.begin().await?;
        let r: Option<(i64, bool, i64)> = sqlx::query_as(concat!(
            "SELECT staff_id, deleted, created_at FROM face_templates WHERE id = $1",
            for_update!()
        ))
        .bind(template_id)
        .fetch_optional(&mut *tx)
        .await
        .map_err(db)?;
        let Some((staff_id, false, created)) = r else { return Err(StoreError::NotFound("template")) };
        let v = Self::next_gallery_version(&mut tx).await?;
        sqlx::query("UPDATE face_templates SET deleted = TRUE, ciphertext = NULL, nonce = NULL, version = $1 WHERE id = $2")
            .bind(v)
            .bind(template_id)
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        Self::audit(&mut tx, actor, "face.template_deleted", serde_json::json!({"staff_id": staff_id, "template_id": template_id, "version": v}), now_ms).await?;
        tx.commit().await.map_err(db)?;
        Ok(TemplateMeta { id: template_id, staff_id, version: v, deleted: true, created_at_ms: created })
    }

    async fn list_templates(&self, staff_id: i64) -> SResult<Vec<TemplateMeta>> {
        let rows: Vec<(i64, i64, bool, i64)> = sqlx::query_as(
            "SELECT id, version, deleted, created_at FROM face_templates WHERE staff_id = $1 AND deleted = FALSE ORDER BY id",
        )
        .bind(staff_id)
        .fetch_all(&self.pool)
        .await
        .map_err(db)?;
        Ok(rows
            .into_iter()
            .map(|(id, version, deleted, created)| TemplateMeta { id, staff_id, version, deleted, created_at_ms: created })
            .collect())
    }

    async fn gallery_changes(&self, since: i64, limit: i64) -> SResult<GalleryPage> {
        // Read the counter first: everything up to it is committed (versions are assigned under
        // the counter's lock), so a page never promises a version it does not contain.
        let (current,): (i64,) = sqlx::query_as("SELECT value FROM counters WHERE name = 'gallery'")
            .fetch_one(&self.pool)
            .await
            .map_err(db)?;
        let rows: Vec<(i64, i64, i64, Option<Vec<u8>>, Option<Vec<u8>>, bool)> = sqlx::query_as(
            "SELECT id, staff_id, version, nonce, ciphertext, deleted FROM face_templates \
             WHERE version > $1 AND version <= $2 ORDER BY version LIMIT $3",
        )
        .bind(since)
        .bind(current)
        .bind(limit.clamp(1, 10_000))
        .fetch_all(&self.pool)
        .await
        .map_err(db)?;
        let changes = rows
            .into_iter()
            .map(|(id, staff_id, version, nonce, ct, deleted)| {
                let sealed = match (deleted, nonce, ct) {
                    (false, Some(nonce), Some(ciphertext)) => Some(SealedTemplate { nonce, ciphertext }),
                    (true, _, _) => None,
                    _ => return Err(corrupt(format!("template {id} has no ciphertext"))),
                };
                Ok(GalleryChange { template_id: id, staff_id, version, sealed })
            })
            .collect::<SResult<Vec<_>>>()?;
        Ok(GalleryPage { changes, current_version: current })
    }

    // ---- audit and checks ---------------------------------------------------------------------

    async fn append_audit(&self, actor: &Actor, action: &str, detail: serde_json::Value, now_ms: i64) -> SResult<()> {
        let mut tx = self.begin().await?;
        Self::audit(&mut tx, actor, action, detail, now_ms).await?;
        tx.commit().await.map_err(db)?;
        Ok(())
    }

    async fn seal_audit(&self, max: i64) -> SResult<usize> {
        let mut tx = self.begin().await?;
        if !try_sealer_lock(&mut tx).await? {
            return Ok(0);
        }
        let last: Option<(i64, String)> = sqlx::query_as(
            "SELECT seq, hash FROM audit_log WHERE seq IS NOT NULL ORDER BY seq DESC LIMIT 1",
        )
        .fetch_optional(&mut *tx)
        .await
        .map_err(db)?;
        let (mut seq, mut prev) = last.unwrap_or((0, GENESIS_HASH.to_string()));
        let rows: Vec<(i64, i64, String, String, String)> = sqlx::query_as(
            "SELECT id, at, actor, action, detail FROM audit_log WHERE seq IS NULL ORDER BY id LIMIT $1",
        )
        .bind(max.clamp(1, 100_000))
        .fetch_all(&mut *tx)
        .await
        .map_err(db)?;
        // Hash in order, then write in batches of one statement each (a round trip per entry
        // would make the sealer the busiest client of the database under load).
        let mut sealed: Vec<(i64, i64, String, String)> = Vec::with_capacity(rows.len());
        for (id, at, actor, action, detail) in &rows {
            seq += 1;
            let h = audit_hash(&prev, seq, *id, *at, actor, action, detail);
            sealed.push((*id, seq, std::mem::replace(&mut prev, h.clone()), h));
        }
        for chunk in sealed.chunks(500) {
            let values: Vec<String> = (0..chunk.len())
                .map(|i| format!("(${}, ${}, ${}, ${})", 4 * i + 1, 4 * i + 2, 4 * i + 3, 4 * i + 4))
                .collect();
            // Only numbered placeholders are formatted into the text; all data is bound.
            let sql = format!(
                "UPDATE audit_log SET seq = v.column2, prev_hash = v.column3, hash = v.column4 \
                 FROM (VALUES {}) AS v WHERE audit_log.id = v.column1",
                values.join(", ")
            );
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
            for (id, seq, prev_hash, hash) in chunk {
                q = q.bind(*id).bind(*seq).bind(prev_hash.clone()).bind(hash.clone());
            }
            q.execute(&mut *tx).await.map_err(db)?;
        }
        tx.commit().await.map_err(db)?;
        Ok(rows.len())
    }

    async fn list_audit(&self, after_id: i64, limit: i64) -> SResult<Vec<AuditEntry>> {
        let rows: Vec<(i64, i64, String, String, String, Option<i64>, Option<String>, Option<String>)> = sqlx::query_as(
            "SELECT id, at, actor, action, detail, seq, prev_hash, hash FROM audit_log WHERE id > $1 ORDER BY id LIMIT $2",
        )
        .bind(after_id)
        .bind(limit.clamp(1, 10_000))
        .fetch_all(&self.pool)
        .await
        .map_err(db)?;
        Ok(rows
            .into_iter()
            .map(|r| AuditEntry { id: r.0, at_ms: r.1, actor: r.2, action: r.3, detail: r.4, seq: r.5, prev_hash: r.6, hash: r.7 })
            .collect())
    }

    async fn check(&self, now_ms: i64, unsealed_grace_ms: i64) -> SResult<CheckReport> {
        let mut rep = CheckReport::default();
        let p = &self.pool;
        let mut problems = Vec::new();
        macro_rules! ids {
            ($sql:expr, $what:expr) => {{
                let rows: Vec<(i64,)> = sqlx::query_as($sql).fetch_all(p).await.map_err(db)?;
                if !rows.is_empty() {
                    let shown: Vec<String> = rows.iter().take(20).map(|r| r.0.to_string()).collect();
                    problems.push(format!("{} ({}): {}", $what, rows.len(), shown.join(", ")));
                }
            }};
        }
        ids!(
            "SELECT entry_id FROM postings GROUP BY entry_id HAVING SUM(amount_fen) <> 0",
            "journal entries whose postings do not sum to zero"
        );
        ids!(
            "SELECT e.id FROM journal_entries e LEFT JOIN postings p ON p.entry_id = e.id GROUP BY e.id HAVING COUNT(p.entry_id) < 2",
            "journal entries with fewer than two postings"
        );
        ids!(
            "SELECT p.entry_id FROM postings p LEFT JOIN journal_entries e ON e.id = p.entry_id \
             LEFT JOIN book_accounts a ON a.id = p.account_id WHERE e.id IS NULL OR a.id IS NULL",
            "orphan postings (no entry or no account), by entry"
        );
        ids!(
            "SELECT entry_id FROM charges WHERE entry_id IS NOT NULL GROUP BY entry_id HAVING COUNT(*) > 1",
            "journal entries claimed by more than one charge"
        );
        ids!(
            "SELECT a.id FROM book_accounts a LEFT JOIN postings p ON p.account_id = a.id WHERE a.staff_id IS NOT NULL \
             GROUP BY a.id, a.balance_fen HAVING a.balance_fen <> CAST(COALESCE(SUM(p.amount_fen), 0) AS BIGINT)",
            "accounts whose cached balance differs from the sum of their postings"
        );
        ids!(
            "SELECT id FROM book_accounts WHERE staff_id IS NOT NULL AND balance_fen < 0",
            "overdrawn accounts"
        );
        ids!(
            "SELECT s.id FROM staff s WHERE (SELECT COUNT(*) FROM book_accounts a WHERE a.staff_id = s.id) <> 2",
            "staff without exactly a cash and a subsidy account"
        );
        ids!(
            "SELECT c.id FROM charges c LEFT JOIN journal_entries e ON e.id = c.entry_id \
             WHERE c.status IN ('accepted','refunded') AND (e.id IS NULL OR e.kind <> 'charge')",
            "posted charges without their charge entry"
        );
        ids!(
            "SELECT c.id FROM charges c JOIN postings p ON p.entry_id = c.entry_id JOIN book_accounts a ON a.id = p.account_id \
             GROUP BY c.id, c.amount_fen, c.cash_fen, c.subsidy_fen \
             HAVING CAST(SUM(CASE WHEN a.kind = 'cash' THEN p.amount_fen ELSE 0 END) AS BIGINT) <> -c.cash_fen \
                 OR CAST(SUM(CASE WHEN a.kind = 'subsidy' THEN p.amount_fen ELSE 0 END) AS BIGINT) <> -c.subsidy_fen \
                 OR CAST(SUM(CASE WHEN a.kind = 'revenue' THEN p.amount_fen ELSE 0 END) AS BIGINT) <> c.amount_fen",
            "charges whose postings differ from the charge"
        );
        ids!(
            "SELECT e.id FROM journal_entries e LEFT JOIN charges c ON c.entry_id = e.id WHERE e.kind = 'charge' AND c.id IS NULL",
            "charge entries without a charge"
        );
        ids!(
            "SELECT e.id FROM journal_entries e LEFT JOIN refunds r ON r.entry_id = e.id \
             WHERE e.kind IN ('reversal','refund') AND r.id IS NULL",
            "reversal/refund entries without a refund record"
        );
        ids!(
            "SELECT r.id FROM refunds r JOIN charges c ON c.id = r.charge_id WHERE r.status = 'approved' AND c.status <> 'refunded'",
            "approved refunds whose charge still stands"
        );
        ids!(
            "SELECT c.id FROM charges c LEFT JOIN refunds r ON r.charge_id = c.id AND r.status = 'approved' \
             WHERE c.status = 'refunded' AND r.id IS NULL",
            "refunded charges without an approved refund"
        );
        ids!(
            "SELECT e.id FROM journal_entries e LEFT JOIN payment_orders o ON o.entry_id = e.id WHERE e.kind = 'top_up' AND o.order_no IS NULL",
            "top-up entries without a paid order"
        );
        ids!(
            "SELECT c.id FROM charges c LEFT JOIN idempotency i ON i.kiosk_id = c.kiosk_id AND i.scope = 'charge' \
             AND i.key = c.idempotency_key WHERE i.key IS NULL",
            "charges without their idempotency record"
        );
        ids!(
            "SELECT f.id FROM face_templates f, counters k WHERE k.name = 'gallery' AND f.version > k.value",
            "face templates above the gallery counter"
        );

        // The audit chain, streamed in pages so a large log does not need to fit in memory.
        let mut prev = GENESIS_HASH.to_string();
        let mut expect_seq = 1i64;
        let mut chain_broken = false;
        loop {
            let rows: Vec<(i64, i64, String, String, String, i64, Option<String>, Option<String>)> = sqlx::query_as(
                "SELECT id, at, actor, action, detail, seq, prev_hash, hash FROM audit_log \
                 WHERE seq IS NOT NULL AND seq >= $1 ORDER BY seq LIMIT 5000",
            )
            .bind(expect_seq)
            .fetch_all(p)
            .await
            .map_err(db)?;
            if rows.is_empty() {
                break;
            }
            for (id, at, actor, action, detail, seq, ph, h) in rows {
                if seq != expect_seq {
                    problems.push(format!("audit chain: sequence jumps from {} to {seq} (entry {id})", expect_seq - 1));
                    chain_broken = true;
                    break;
                }
                let want = audit_hash(&prev, seq, id, at, &actor, &action, &detail);
                if ph.as_deref() != Some(prev.as_str()) || h.as_deref() != Some(want.as_str()) {
                    problems.push(format!("audit chain: entry {id} (seq {seq}) does not match its hash"));
                    chain_broken = true;
                    break;
                }
                prev = want;
                expect_seq += 1;
                rep.audit_sealed += 1;
            }
            if chain_broken {
                break;
            }
        }
        let (unsealed, stale): (i64, i64) = sqlx::query_as(
            "SELECT COUNT(*), CAST(COALESCE(SUM(CASE WHEN at < $1 THEN 1 ELSE 0 END), 0) AS BIGINT) FROM audit_log WHERE seq IS NULL",
        )
        .bind(now_ms - unsealed_grace_ms)
        .fetch_one(p)
        .await
        .map_err(db)?;
        rep.audit_unsealed = unsealed;
        if stale > 0 {
            problems.push(format!(
                "audit log: {stale} entries older than {} s are not sealed into the chain (is a server running its sealer?)",
                unsealed_grace_ms / 1000
            ));
        }
        let (entries,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM journal_entries").fetch_one(p).await.map_err(db)?;
        let (postings,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM postings").fetch_one(p).await.map_err(db)?;
        let (charges,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM charges").fetch_one(p).await.map_err(db)?;
        rep.entries = entries;
        rep.postings = postings;
        rep.charges = charges;
        rep.problems = problems;
        Ok(rep)
    }
}

fn now_ms() -> i64 {
    (time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64
}
