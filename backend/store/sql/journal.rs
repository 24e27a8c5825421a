//! The book's row writers, shared by every operation that moves money or must be replayable:
//! locking a person's wallets, a balanced journal entry with its postings and cached balances,
//! a charge row, the idempotency record of a request and an audit entry. Each is plain SQL both
//! databases accept; the caller holds the write transaction.

use super::error::{corrupt, db};
use super::tx::Tx;
use crate::dialect::lock_wallets as lock_wallets_clause;
use ledger::posting::{BookAccount, Posting, ProposedEntry};
use ledger::Fen;
use sqlx::Row;
use store::{Actor, ChargeCommand, ChargeResult, Result, StoreError};

/// Ids of the four system book accounts, created by the first migration.
#[derive(Clone, Copy, Debug)]
pub(crate) struct SystemIds {
    pub(crate) revenue: i64,
    pub(crate) subsidy_fund: i64,
    pub(crate) gateway: i64,
    pub(crate) cash_out: i64,
}

/// A person's wallets as read (and locked) inside a money transaction.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Wallets {
    pub(crate) staff_id: i64,
    pub(crate) cash_id: i64,
    pub(crate) cash: Fen,
    pub(crate) subsidy_id: i64,
    pub(crate) subsidy: Fen,
}

/// Locks and reads a person's wallets. Every money operation calls this first, so two
/// operations on one person never interleave.
pub(crate) async fn lock_wallets(tx: &mut Tx, staff_id: i64) -> Result<Wallets> {
    let row = sqlx::query(concat!(
        "SELECT c.id, c.balance_fen, sb.id, sb.balance_fen \
         FROM staff s \
         JOIN book_accounts c ON c.staff_id = s.id AND c.kind = 'cash' \
         JOIN book_accounts sb ON sb.staff_id = s.id AND sb.kind = 'subsidy' \
         WHERE s.id = $1",
        lock_wallets_clause!()
    ))
    .bind(staff_id)
    .fetch_optional(&mut **tx)
    .await
    .map_err(db)?
    .ok_or(StoreError::NotFound("staff"))?;
    Ok(Wallets {
        staff_id,
        cash_id: row.try_get(0).map_err(db)?,
        cash: Fen(row.try_get(1).map_err(db)?),
        subsidy_id: row.try_get(2).map_err(db)?,
        subsidy: Fen(row.try_get(3).map_err(db)?),
    })
}

pub(crate) fn account_id(sys: &SystemIds, w: &Wallets, a: BookAccount) -> Result<i64> {
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
pub(crate) async fn post_entry(
    tx: &mut Tx,
    sys: &SystemIds,
    w: &mut Wallets,
    entry: &ProposedEntry,
    memo: &str,
    now_ms: i64,
) -> Result<i64> {
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
        q = q.bind(account_id(sys, w, p.account)?).bind(p.amount.0);
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
pub(crate) async fn entry_postings(tx: &mut Tx, entry_id: i64) -> Result<Vec<Posting>> {
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
            Ok(Posting {
                account,
                amount: Fen(amount),
            })
        })
        .collect()
}

pub(crate) async fn audit(
    tx: &mut Tx,
    actor: &Actor,
    action: &str,
    detail: serde_json::Value,
    now_ms: i64,
) -> Result<()> {
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

pub(crate) async fn lookup_idempotency(
    tx: &mut Tx,
    kiosk_id: i64,
    scope: &str,
    key: &str,
) -> Result<Option<(String, String)>> {
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

pub(crate) async fn save_idempotency(
    tx: &mut Tx,
    kiosk_id: i64,
    scope: &str,
    key: &str,
    hash: &str,
    response: &str,
    now_ms: i64,
) -> Result<()> {
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

pub(crate) fn replay<T: serde::de::DeserializeOwned>(
    stored_hash: &str,
    response: &str,
    hash: &str,
) -> Result<T> {
    if stored_hash != hash {
        return Err(StoreError::conflict(
            "idempotency_key_reused",
            "this idempotency key was already used for a different request",
        ));
    }
    serde_json::from_str(response).map_err(corrupt)
}

/// Inserts a charge row (accepted or exception) for `cmd` as `r` describes it; returns its id.
/// Every charge row of the row-by-row writers comes through here (PostgreSQL's batch statement
/// writes its rows from arrays, see its `batch_io`).
pub(crate) async fn insert_charge(
    tx: &mut Tx,
    cmd: &ChargeCommand,
    r: &ChargeResult,
    status: &str,
    entry_id: Option<i64>,
) -> Result<i64> {
    let (id,): (i64,) = sqlx::query_as(
        "INSERT INTO charges (kiosk_id, idempotency_key, staff_id, canteen_id, meal, local_date, \
         kiosk_time, received_at, amount_fen, subsidy_fen, cash_fen, status, reason, entry_id, offline) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15) RETURNING id",
    )
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
    Ok(id)
}
