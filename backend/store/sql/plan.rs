//! A batch of charges decided and written. Deciding is pure: every charge of a batch, in arrival
//! order, goes through `ledger::decide_charge` against the facts read for the batch, updated as
//! charges are accepted (balances, the day's totals and meals, the same key twice in one batch).
//! This is the only place a charge is decided: a charge written alone is a batch of one.
//! Writing a decision as rows (`write_rows`) is plain SQL both databases accept; SQLite writes
//! its batches that way, PostgreSQL in one statement of its own (its `batch_io`).

use super::canteens::CanteenRules;
use super::error::corrupt;
use super::journal::{
    account_id, audit, insert_charge, post_entry, replay, save_idempotency, SystemIds, Wallets,
};
use super::rows::{parse_meal, to_u32};
use super::tx::Tx;
use ledger::charge::{decide_charge, ChargeFacts, ChargeSplit};
use ledger::posting::ProposedEntry;
use ledger::{Fen, MealKind};
use std::collections::HashMap;
use store::{Actor, ChargeCommand, ChargeOutcome, ChargeResult, Result, StoreError};

/// A charge ready for a batch: the command plus what the rules say about its timestamp.
#[derive(Clone)]
pub(crate) struct PreparedCharge {
    pub(crate) cmd: ChargeCommand,
    pub(crate) local_date: String,
    pub(crate) meal: Option<MealKind>,
    pub(crate) rules: std::sync::Arc<CanteenRules>,
}

/// A charge's answer before its decision: declined, nothing taken, the balances as read.
fn undecided_result(
    meal: Option<MealKind>,
    local_date: &str,
    price: Option<Fen>,
    w: &Wallets,
) -> ChargeResult {
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
fn accept_result(
    result: &mut ChargeResult,
    split: &ChargeSplit,
    cash_after: Fen,
    subsidy_after: Fen,
) {
    result.outcome = ChargeOutcome::Accepted;
    result.amount = split.total;
    result.subsidy = split.subsidy;
    result.cash = split.cash;
    result.cash_balance = cash_after;
    result.subsidy_balance = subsidy_after;
}

/// A person of the batch as locked: facts and wallets, updated as the batch's charges are decided.
#[derive(Clone, Debug)]
pub(crate) struct BatchPerson {
    pub(crate) active: bool,
    pub(crate) meals_per_period: u32,
    pub(crate) category: String,
    pub(crate) wallets: Wallets,
}

/// What a batch's decisions rest on, as the driver read it.
pub(crate) struct BatchFacts {
    pub(crate) people: Vec<(i64, BatchPerson)>,
    /// Accepted charges per (person, local day, meal): sum and count.
    pub(crate) totals: Vec<(i64, String, Option<String>, i64, i64)>,
    /// Stored responses: (kiosk, key, request hash, response).
    pub(crate) seen: Vec<(i64, String, String, String)>,
}

/// One charge of a batch, as decided.
pub(crate) enum Plan {
    /// Answered without writing: a replay of a stored result, a key conflict, an unknown person.
    Answer(Result<ChargeResult>),
    /// The same key and body as the earlier charge `first` of this batch: its result, replayed.
    SameAs(usize),
    Write(PlannedWrite),
}

/// A charge to write: always an idempotency record; a charge row when accepted or an exception;
/// a journal entry when accepted. `result.charge_id` is filled in by the writer.
pub(crate) struct PlannedWrite {
    pub(crate) item: usize,
    pub(crate) result: ChargeResult,
    pub(crate) status: Option<&'static str>,
    pub(crate) entry: Option<ProposedEntry>,
    pub(crate) memo: String,
    pub(crate) cash_id: i64,
    pub(crate) subsidy_id: i64,
}

impl PlannedWrite {
    /// The person's wallet ids, for account lookups (balances are not needed by a writer).
    pub(crate) fn wallets(&self, staff_id: i64) -> Wallets {
        Wallets {
            staff_id,
            cash_id: self.cash_id,
            cash: Fen::ZERO,
            subsidy_id: self.subsidy_id,
            subsidy: Fen::ZERO,
        }
    }

    pub(crate) fn audit_action(&self) -> Option<&'static str> {
        match self.result.outcome {
            ChargeOutcome::Accepted => Some("charge.accepted"),
            ChargeOutcome::Exception => Some("charge.exception"),
            ChargeOutcome::Declined => None,
        }
    }

    pub(crate) fn audit_detail(&self, cmd: &ChargeCommand) -> serde_json::Value {
        let r = &self.result;
        serde_json::json!({
            "charge_id": r.charge_id, "staff_id": cmd.staff_id, "amount_fen": r.amount.0,
            "subsidy_fen": r.subsidy.0, "cash_fen": r.cash.0, "reason": r.reason,
            "key": cmd.idempotency_key, "offline": cmd.offline, "kiosk_time": cmd.kiosk_time_ms,
        })
    }
}

/// Decides every charge of a batch in arrival order against the locked state, updating that state
/// (balances, the day's totals) as charges are accepted. Pure: no I/O.
fn plan_batch(
    sys: &SystemIds,
    items: &[PreparedCharge],
    mut people: HashMap<i64, BatchPerson>,
    totals: &[(i64, String, Option<String>, i64, i64)],
    seen: HashMap<(i64, String), (String, String)>,
) -> Result<Vec<Plan>> {
    let mut spent: HashMap<(i64, String), i64> = HashMap::new();
    let mut taken: HashMap<(i64, String, MealKind), i64> = HashMap::new();
    for (staff, date, meal, sum, count) in totals {
        *spent.entry((*staff, date.clone())).or_default() += sum;
        if let Some(m) = meal {
            *taken
                .entry((*staff, date.clone(), parse_meal(m)?))
                .or_default() += count;
        }
    }
    let mut first_of_key: HashMap<(i64, &str), usize> = HashMap::new();
    let mut plans = Vec::with_capacity(items.len());
    for (i, p) in items.iter().enumerate() {
        let cmd = &p.cmd;
        if let Some(&first) = first_of_key.get(&(cmd.kiosk_id, cmd.idempotency_key.as_str())) {
            plans.push(if items[first].cmd.request_hash == cmd.request_hash {
                Plan::SameAs(first)
            } else {
                Plan::Answer(Err(key_reused()))
            });
            continue;
        }
        if let Some((hash, response)) = seen.get(&(cmd.kiosk_id, cmd.idempotency_key.clone())) {
            plans.push(Plan::Answer(
                replay::<ChargeResult>(hash, response, &cmd.request_hash).map(|mut r| {
                    r.replayed = true;
                    r
                }),
            ));
            continue;
        }
        let Some(person) = people.get_mut(&cmd.staff_id) else {
            plans.push(Plan::Answer(Err(StoreError::NotFound("staff"))));
            continue;
        };
        let day = (cmd.staff_id, p.local_date.clone());
        let spent_today = spent.get(&day).copied().unwrap_or(0);
        let meals_taken = match p.meal {
            Some(m) => taken
                .get(&(cmd.staff_id, p.local_date.clone(), m))
                .copied()
                .unwrap_or(0),
            None => 0,
        };
        let price = match cmd.amount {
            Some(a) => Some(a),
            None => p.meal.and_then(|m| {
                p.rules
                    .prices
                    .iter()
                    .find(|(c, pm, _)| *pm == m && *c == person.category)
                    .map(|(_, _, price)| *price)
            }),
        };
        let w = &mut person.wallets;
        let facts = ChargeFacts {
            served_too_long_ago: cmd.offline_too_old,
            staff_active: person.active,
            meal: p.meal,
            price,
            cash_balance: w.cash,
            subsidy_balance: w.subsidy,
            spent_today: Fen(spent_today),
            meals_taken: to_u32(meals_taken)?,
            meals_allowed: person.meals_per_period,
            per_transaction_cap: p.rules.txn_cap,
            daily_cap: p.rules.daily_cap,
        };
        let mut result = undecided_result(p.meal, &p.local_date, price, w);
        let mut write = PlannedWrite {
            item: i,
            result: result.clone(),
            status: None,
            entry: None,
            memo: String::new(),
            cash_id: w.cash_id,
            subsidy_id: w.subsidy_id,
        };
        match decide_charge(&facts) {
            Ok(split) => {
                let entry = ProposedEntry::charge(cmd.staff_id, split.subsidy, split.cash)
                    .map_err(corrupt)?;
                // Every leg must name this person's wallets or a system account.
                for posting in entry.postings() {
                    account_id(sys, w, posting.account)?;
                }
                w.cash = Fen(w.cash.0 - split.cash.0);
                w.subsidy = Fen(w.subsidy.0 - split.subsidy.0);
                *spent.entry(day).or_default() += split.total.0;
                *taken
                    .entry((cmd.staff_id, p.local_date.clone(), split.meal))
                    .or_default() += 1;
                accept_result(&mut result, &split, w.cash, w.subsidy);
                write.memo = format!("{} {} at kiosk {}", split.meal, p.local_date, cmd.kiosk_id);
                write.entry = Some(entry);
                write.status = Some("accepted");
            }
            Err(rejection) => {
                result.reason = Some(rejection.code().to_string());
                if cmd.offline {
                    // Served while the kiosk was offline: never dropped, parked for a manager.
                    result.outcome = ChargeOutcome::Exception;
                    write.status = Some("exception");
                }
            }
        }
        write.result = result;
        first_of_key.insert((cmd.kiosk_id, cmd.idempotency_key.as_str()), i);
        plans.push(Plan::Write(write));
    }
    Ok(plans)
}

fn key_reused() -> StoreError {
    StoreError::conflict(
        "idempotency_key_reused",
        "this idempotency key was already used for a different request",
    )
}

/// The distinct people, (person, local day) pairs and (kiosk, key) pairs of a batch.
pub(crate) struct BatchKeys {
    pub(crate) staff_ids: Vec<i64>,
    pub(crate) days: Vec<(i64, String)>,
    pub(crate) keys: Vec<(i64, String)>,
}

impl BatchKeys {
    pub(crate) fn of(items: &[PreparedCharge]) -> Self {
        fn distinct<T: Ord>(mut v: Vec<T>) -> Vec<T> {
            v.sort_unstable();
            v.dedup();
            v
        }
        BatchKeys {
            staff_ids: distinct(items.iter().map(|p| p.cmd.staff_id).collect()),
            days: distinct(
                items
                    .iter()
                    .map(|p| (p.cmd.staff_id, p.local_date.clone()))
                    .collect(),
            ),
            keys: distinct(
                items
                    .iter()
                    .map(|p| (p.cmd.kiosk_id, p.cmd.idempotency_key.clone()))
                    .collect(),
            ),
        }
    }
}

/// Decides a batch from what the driver read.
pub(crate) fn plan_from_facts(
    sys: &SystemIds,
    items: &[PreparedCharge],
    facts: BatchFacts,
) -> Result<Vec<Plan>> {
    let people: HashMap<i64, BatchPerson> = facts.people.into_iter().collect();
    let seen: HashMap<(i64, String), (String, String)> = facts
        .seen
        .into_iter()
        .map(|(k, key, h, r)| ((k, key), (h, r)))
        .collect();
    plan_batch(sys, items, people, &facts.totals, seen)
}

/// Writes a batch's plans one charge at a time in the caller's transaction: entry and postings
/// (accepted), charge row (accepted or exception), idempotency record (always) and audit entry.
/// SQLite writes its batches so (a statement costs microseconds in-process; what a batch saves
/// is fsyncs); PostgreSQL, where every round trip counts, has one statement of its own.
#[allow(
    dead_code,
    reason = "unused where batches are written in one statement (PostgreSQL)"
)]
pub(crate) async fn write_rows(
    tx: &mut Tx,
    sys: &SystemIds,
    items: &[PreparedCharge],
    plans: &mut [Plan],
) -> Result<()> {
    for plan in plans.iter_mut() {
        let Plan::Write(w) = plan else { continue };
        let cmd = &items[w.item].cmd;
        let entry_id = match &w.entry {
            Some(entry) => {
                let mut wallets = w.wallets(cmd.staff_id);
                Some(post_entry(tx, sys, &mut wallets, entry, &w.memo, cmd.received_ms).await?)
            }
            None => None,
        };
        if let Some(status) = w.status {
            w.result.charge_id = Some(insert_charge(tx, cmd, &w.result, status, entry_id).await?);
        }
        let response = serde_json::to_string(&w.result).map_err(corrupt)?;
        save_idempotency(
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
            let actor = Actor::Kiosk { id: cmd.kiosk_id };
            audit(tx, &actor, action, w.audit_detail(cmd), cmd.received_ms).await?;
        }
    }
    Ok(())
}
