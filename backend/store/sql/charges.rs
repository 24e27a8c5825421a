//! Kiosk charges: the way in (validation, the meal and local day from the canteen's rules, the
//! batch queue or a charge settled alone), reading charges back, and a manager's settling of an
//! exception. Deciding and writing a charge happen in `plan` and the database's `batch_io`, for
//! a batch of one as for a batch of sixty-four.

use super::batch::{run_batch, BatchReply, Locking};
use super::canteens::{canteen_rules, CanteenRules};
use super::error::{corrupt, db};
use super::journal::{audit, lock_wallets, post_entry};
use super::plan::PreparedCharge;
use super::rows::{charge_cols, charge_from_row};
use super::tx::Tx;
use super::SqlStore;
use crate::dialect::for_update;
use ledger::posting::ProposedEntry;
use ledger::refund::ChargeStatus;
use ledger::{Fen, MealKind};
use std::sync::Arc;
use store::{Actor, ChargeCommand, ChargeFilter, ChargeRecord, ChargeResult, Result, StoreError};

/// How often a charge settled alone is tried when it keeps losing races on its key. Bounded:
/// the winner has committed before the loser tries again, and the next try reads its result.
const ALONE_ATTEMPTS: usize = 5;

/// `Store::charge`: through the batch queue unless batching is off.
pub(crate) async fn charge(s: &SqlStore, cmd: ChargeCommand) -> Result<ChargeResult> {
    validate_charge(&cmd)?;
    let prepared = prepare(s, cmd).await?;
    if !s.queue.settings.enabled() {
        return charge_alone(s, &prepared).await;
    }
    let ctx = s.batch_ctx(false).await?;
    match s.queue.submit(ctx, prepared.clone()).await? {
        BatchReply::Done(r) => r,
        BatchReply::Alone => charge_alone(s, &prepared).await,
    }
}

impl SqlStore {
    /// Applies `cmds` as ONE batch (one transaction), in order, outside the queue: what a batch
    /// writer does with the charges it takes. For tests and tools that need a known batch; the
    /// outer error is a failure of the whole batch (nothing of it was committed).
    pub async fn charge_batch(
        &self,
        cmds: Vec<ChargeCommand>,
    ) -> Result<Vec<Result<ChargeResult>>> {
        let mut answers: Vec<Option<Result<ChargeResult>>> = Vec::with_capacity(cmds.len());
        let mut items = Vec::new();
        let mut slots = Vec::new();
        for cmd in cmds {
            let prepared = match validate_charge(&cmd) {
                Ok(()) => prepare(self, cmd).await,
                Err(e) => Err(e),
            };
            match prepared {
                Err(e) => answers.push(Some(Err(e))),
                Ok(p) => {
                    slots.push(answers.len());
                    answers.push(None);
                    items.push(p);
                }
            }
        }
        let ctx = self.batch_ctx(false).await?;
        let replies = if items.is_empty() {
            Vec::new()
        } else {
            run_batch(&ctx, &items, Locking::Optimistic).await?
        };
        for ((slot, item), reply) in slots.into_iter().zip(&items).zip(replies) {
            answers[slot] = Some(match reply {
                BatchReply::Done(r) => r,
                BatchReply::Alone => charge_alone(self, item).await,
            });
        }
        Ok(answers
            .into_iter()
            .map(|a| a.unwrap_or_else(|| Err(corrupt("charge without an answer"))))
            .collect())
    }
}

/// A charge settled alone: a batch of one that waits for its wallet locks, on the main pool. Used
/// when batching is off and for the charges of a batch that could not be settled as a whole.
async fn charge_alone(s: &SqlStore, item: &PreparedCharge) -> Result<ChargeResult> {
    let ctx = s.batch_ctx(true).await?;
    for _ in 0..ALONE_ATTEMPTS {
        let reply = run_batch(&ctx, std::slice::from_ref(item), Locking::Wait).await?;
        if let Some(BatchReply::Done(r)) = reply.into_iter().next() {
            return r;
        }
        // `Alone` again: it lost a race on its key to a request that has committed since.
    }
    Err(StoreError::busy(
        "could not settle a concurrent use of the same idempotency key",
    ))
}

fn validate_charge(cmd: &ChargeCommand) -> Result<()> {
    if cmd.idempotency_key.is_empty() || cmd.idempotency_key.len() > 128 {
        return Err(StoreError::invalid(
            "bad_idempotency_key",
            "idempotency key must be 1 to 128 characters",
        ));
    }
    if let Some(a) = cmd.amount {
        if a.0 <= 0 {
            return Err(StoreError::invalid(
                "bad_amount",
                "an explicit amount must be positive",
            ));
        }
    }
    Ok(())
}

/// Works out the meal and local day of a charge from the canteen's rules (cached).
async fn prepare(s: &SqlStore, cmd: ChargeCommand) -> Result<PreparedCharge> {
    let (rules, local_date, meal) = charge_slot(s, &cmd).await?;
    Ok(PreparedCharge {
        cmd,
        local_date,
        meal,
        rules,
    })
}

/// The canteen's rules, and the local day and meal (if any) a charge's kiosk time falls in.
async fn charge_slot(
    s: &SqlStore,
    cmd: &ChargeCommand,
) -> Result<(Arc<CanteenRules>, String, Option<MealKind>)> {
    let rules = canteen_rules(s, cmd.canteen_id).await?;
    let slot = rules
        .schedule
        .locate(cmd.kiosk_time_ms)
        .map_err(|e| StoreError::invalid("bad_timestamp", e.to_string()))?;
    let local_date = match slot {
        Some(s) => s.local_date,
        None => rules
            .schedule
            .local_date(cmd.kiosk_time_ms)
            .map_err(|e| StoreError::invalid("bad_timestamp", e.to_string()))?,
    }
    .to_string();
    Ok((rules, local_date, slot.map(|s| s.meal)))
}

pub(crate) async fn get_charge(s: &SqlStore, id: i64) -> Result<ChargeRecord> {
    let row = sqlx::query(concat!(
        "SELECT ",
        charge_cols!(),
        " FROM charges WHERE id = $1"
    ))
    .bind(id)
    .fetch_optional(&s.pool)
    .await
    .map_err(db)?
    .ok_or(StoreError::NotFound("charge"))?;
    charge_from_row(&row)
}

pub(crate) async fn list_charges(s: &SqlStore, f: ChargeFilter) -> Result<Vec<ChargeRecord>> {
    let rows = sqlx::query(concat!(
        "SELECT ",
        charge_cols!(),
        " FROM charges \
         WHERE ($1 IS NULL OR staff_id = $1) AND ($2 IS NULL OR status = $2) AND ($3 IS NULL OR kiosk_id = $3) \
           AND id < $4 ORDER BY id DESC LIMIT $5"
    ))
    .bind(f.staff_id)
    .bind(f.status.map(|s| s.as_str()))
    .bind(f.kiosk_id)
    .bind(f.before_id.unwrap_or(i64::MAX))
    .bind(f.limit.clamp(1, 100_000))
    .fetch_all(&s.pool)
    .await
    .map_err(db)?;
    rows.iter().map(charge_from_row).collect()
}

pub(crate) async fn resolve_exception(
    s: &SqlStore,
    charge_id: i64,
    collect: bool,
    now_ms: i64,
    actor: &Actor,
) -> Result<ChargeRecord> {
    let sys = s.system_ids().await?;
    let mut tx = s.begin().await?;
    let mut c = load_charge(&mut tx, charge_id).await?;
    if c.status != ChargeStatus::Exception {
        return Err(StoreError::invalid(
            "not_an_exception",
            "only exceptions can be resolved",
        ));
    }
    if collect {
        if c.amount.0 <= 0 {
            return Err(StoreError::invalid(
                "no_amount",
                "this exception has no price; waive it instead",
            ));
        }
        let mut w = lock_wallets(&mut tx, c.staff_id).await?;
        // The manager overrides the meal and cap rules, never the balance: money that is not
        // there cannot be collected.
        let subsidy = Fen(w.subsidy.0.max(0).min(c.amount.0));
        let cash = Fen(c.amount.0 - subsidy.0);
        if cash > w.cash {
            return Err(StoreError::invalid(
                "insufficient_funds",
                "the balance is too low to collect this charge",
            ));
        }
        let entry = ProposedEntry::charge(c.staff_id, subsidy, cash).map_err(corrupt)?;
        let memo = format!("exception {} collected", c.id);
        let entry_id = post_entry(&mut tx, &sys, &mut w, &entry, &memo, now_ms).await?;
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
    let action = if collect {
        "exception.collect"
    } else {
        "exception.waive"
    };
    audit(
        &mut tx,
        actor,
        action,
        serde_json::json!({"charge_id": c.id, "amount_fen": c.amount.0, "staff_id": c.staff_id}),
        now_ms,
    )
    .await?;
    tx.commit().await?;
    Ok(c)
}

pub(crate) async fn load_charge(tx: &mut Tx, id: i64) -> Result<ChargeRecord> {
    let row = sqlx::query(concat!(
        "SELECT ",
        charge_cols!(),
        " FROM charges WHERE id = $1",
        for_update!()
    ))
    .bind(id)
    .fetch_optional(&mut **tx)
    .await
    .map_err(db)?
    .ok_or(StoreError::NotFound("charge"))?;
    charge_from_row(&row)
}
