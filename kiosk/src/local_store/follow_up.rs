//! What a charge's final answer teaches the local state, and the follow-up requests the
//! outbox queues by itself, all inside the transaction that records the answer.
//!
//! Learning: the person's balance (the answer's), the backend's charge id for the meal mark,
//! the offline allowance settled, and a declined meal forgotten so the person may pay again.
//!
//! One case adds a charge: a charge whose answer was lost and whose diner the kiosk served
//! anyway (within the offline allowance, marked `served`) may turn out `declined` (or refused
//! for good, i.e. never applied). The idempotency key keeps its meaning at the backend, so
//! the kiosk then queues a NEW charge for the served meal, `offline: true`, under the derived
//! key `<key>:served`: the backend records it (accepted, or an exception for a manager)
//! exactly once, whatever crashes or lost answers happen around it.
//!
//! The mirror case: a charge whose answer was lost and whose diner the kiosk then REFUSED on
//! its own (marked `refused`; it could not be withdrawn because it may have arrived) may turn
//! out `accepted`: the person paid for a meal never served. The transaction that records that
//! answer queues a void (`<key>:void`), which asks the backend to reverse exactly that charge;
//! the backend answers a repeated void with the same reversal.

use ledger::Fen;
use rusqlite::Connection;
use wire::{ChargeRequest, ChargeStatus, VoidChargeRequest};

use super::outbox::{insert_derived, Answer, Delivery, OutboxItem, Request};
use super::{allowance, balances, meals, Result};

/// Suffix of the key of the offline charge queued for a meal served after a lost answer
/// whose request the backend declined.
pub const SERVED_SUFFIX: &str = ":served";

/// Suffix of the key of the void queued for a charge whose diner was not served.
pub const VOID_SUFFIX: &str = ":void";

/// The reason a void gives the backend (and the manager reading the journal) when the kiosk
/// refused the diner on its own.
pub const VOID_REASON: &str = "refused_offline_not_served";

/// The key of the offline charge that records a served meal of charge `key`.
pub fn served_key(key: &str) -> String {
    format!("{key}{SERVED_SUFFIX}")
}

/// The key of the void of charge `charge_key`.
pub fn void_key(charge_key: &str) -> String {
    format!("{charge_key}{VOID_SUFFIX}")
}

/// The charge a served meal still needs when `outcome` is the final answer to `item`:
/// `Some` only for a served, online (`offline: false`) charge that was declined or refused
/// for good (so never applied). Pure, so the state machine can be tested on its own.
pub fn served_follow_up(item: &OutboxItem, outcome: &Delivery) -> Option<ChargeRequest> {
    let Request::Charge(req) = &item.request else {
        return None;
    };
    if !item.served || req.offline {
        // An offline charge already: the backend never declines those (a broken rule becomes
        // an exception), and one refused for good would be refused again.
        return None;
    }
    let never_applied = match outcome {
        Delivery::Delivered(Answer::Charge(r)) => r.status == ChargeStatus::Declined,
        Delivery::Delivered(_) => false,
        Delivery::Permanent(_) => true,
        Delivery::Transient(_) | Delivery::Unreachable(_) => false,
    };
    never_applied.then(|| ChargeRequest {
        idempotency_key: served_key(&item.idempotency_key),
        offline: true,
        ..req.clone()
    })
}

/// The void an accepted charge needs when its diner was refused: `Some` only for a charge
/// marked `refused` whose final answer is `accepted` (money taken for a meal not served).
/// Its outbox key is [`void_key`]. Pure, like [`served_follow_up`].
pub fn refused_follow_up(item: &OutboxItem, outcome: &Delivery) -> Option<VoidChargeRequest> {
    if !matches!(item.request, Request::Charge(_)) || !item.refused || item.served {
        return None;
    }
    let Delivery::Delivered(Answer::Charge(resp)) = outcome else {
        return None;
    };
    (resp.status == ChargeStatus::Accepted).then(|| VoidChargeRequest {
        charge_key: item.idempotency_key.clone(),
        reason: VOID_REASON.to_string(),
    })
}

/// What a final answer (delivered or refused for good) to `item` teaches the local state,
/// inside the transaction that records it.
pub(super) fn learn_charge_outcome(
    tx: &Connection,
    item: &OutboxItem,
    outcome: &Delivery,
    now_ms: i64,
) -> Result<()> {
    let Request::Charge(req) = &item.request else {
        return Ok(());
    };
    let key = &item.idempotency_key;
    if let Some(follow) = served_follow_up(item, outcome) {
        // The meal was eaten: its mark and its share of the offline allowance now belong to
        // the charge that records it.
        insert_derived(tx, &Request::Charge(follow.clone()), true, key, now_ms)?;
        meals::move_to(tx, key, &follow.idempotency_key)?;
        allowance::move_to(tx, key, &follow.idempotency_key)?;
        tracing::warn!(
            key = %key,
            staff_id = follow.staff_id,
            "a meal served after a lost answer was declined by the backend; queued {} as an offline charge",
            follow.idempotency_key
        );
    }
    if let Some(void) = refused_follow_up(item, outcome) {
        insert_derived(tx, &Request::Void(void), false, key, now_ms)?;
        tracing::warn!(
            key = %key,
            "a charge whose diner was refused offline was accepted by the backend; queued {} to reverse it",
            void_key(key)
        );
    }
    match outcome {
        Delivery::Delivered(Answer::Charge(resp)) => {
            allowance::settle(tx, key)?;
            match Fen::from_yuan(resp.cash_balance + resp.subsidy_balance) {
                Ok(available) => balances::set_from_charge(tx, req.staff_id, available.0, now_ms)?,
                // Never from a sound backend; the rest of the answer still counts.
                Err(e) => tracing::warn!(key = %key, "the answer's balance is not money: {e}"),
            }
            if let Some(id) = resp.charge_id {
                meals::set_charge(tx, key, id)?;
            }
            if resp.status == ChargeStatus::Declined {
                // Not eaten (or moved to the follow-up above): the person may pay again.
                meals::forget(tx, key)?;
            }
        }
        Delivery::Permanent(_) if !item.served => meals::forget(tx, key)?,
        _ => {}
    }
    Ok(())
}
