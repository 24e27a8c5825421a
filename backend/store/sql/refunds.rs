//! Undoing charges: a manager's reversal, a kiosk's void of a charge it never served, a
//! person's refund request and a manager's decision on it. Every reversal posts the exact
//! negation of the charge's entry and records an approved refund, in one code path
//! (`reverse_standing`), so a manager's reversal and a kiosk's void cannot drift apart.

use super::charges::load_charge;
use super::error::{corrupt, db};
use super::journal::{audit, entry_postings, lock_wallets, post_entry};
use super::rows::{charge_cols, charge_from_row, refund_cols, refund_from_row};
use super::tx::Tx;
use super::SqlStore;
use crate::dialect::for_update;
use ledger::posting::{EntryKind, ProposedEntry};
use ledger::refund::{self, ChargeStatus};
use store::{Actor, ChargeRecord, Refund, RefundStatus, Result, StoreError, VoidOutcome};

pub(crate) async fn reverse_charge(
    s: &SqlStore,
    charge_id: i64,
    reason: &str,
    now_ms: i64,
    actor: &Actor,
) -> Result<Refund> {
    let mut tx = s.begin().await?;
    let c = load_charge(&mut tx, charge_id).await?;
    refund::manager_may_reverse(c.status)
        .map_err(|e| StoreError::invalid("not_refundable", e.to_string()))?;
    let r = reverse_standing(
        s,
        &mut tx,
        &c,
        reason,
        "charge.reverse",
        serde_json::json!({}),
        now_ms,
        actor,
    )
    .await?;
    tx.commit().await?;
    Ok(r)
}

pub(crate) async fn void_kiosk_charge(
    s: &SqlStore,
    kiosk_id: i64,
    idempotency_key: &str,
    reason: &str,
    now_ms: i64,
) -> Result<VoidOutcome> {
    let mut tx = s.begin().await?;
    // The same row lock as a manager reversal (`load_charge`): concurrent voids, and a void
    // racing a manager, serialise on the charge and the later ones see it refunded.
    let row = sqlx::query(concat!(
        "SELECT ",
        charge_cols!(),
        " FROM charges WHERE kiosk_id = $1 AND idempotency_key = $2",
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
            let row = sqlx::query(concat!(
                "SELECT ",
                refund_cols!(),
                " FROM refunds WHERE charge_id = $1 AND status = 'approved'"
            ))
            .bind(charge.id)
            .fetch_optional(&mut *tx)
            .await
            .map_err(db)?
            .ok_or_else(|| {
                corrupt(format!(
                    "refunded charge {} has no approved refund",
                    charge.id
                ))
            })?;
            let refund = refund_from_row(&row)?;
            return Ok(VoidOutcome {
                charge,
                refund,
                already_void: true,
            });
        }
        other => {
            return Err(StoreError::conflict(
                "nothing_to_void",
                format!(
                "charge {} is {}: nothing was taken from the balance, so there is nothing to void",
                charge.id,
                other.as_str()
            ),
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
    let refund = reverse_standing(
        s,
        &mut tx,
        &charge,
        &format!("voided by kiosk {kiosk_id}: {reason}"),
        "charge.void",
        extra,
        now_ms,
        &actor,
    )
    .await?;
    tx.commit().await?;
    let charge = ChargeRecord {
        status: ChargeStatus::Refunded,
        ..charge
    };
    Ok(VoidOutcome {
        charge,
        refund,
        already_void: false,
    })
}

pub(crate) async fn request_refund(
    s: &SqlStore,
    charge_id: i64,
    staff_id: i64,
    reason: &str,
    now_ms: i64,
    actor: &Actor,
) -> Result<Refund> {
    let mut tx = s.begin().await?;
    let c = load_charge(&mut tx, charge_id).await?;
    refund::staff_may_request(c.status, c.staff_id, staff_id, c.received_ms, now_ms).map_err(
        |e| match e {
            refund::RefundDenied::NotOwner => StoreError::NotFound("charge"),
            e => StoreError::invalid("not_refundable", e.to_string()),
        },
    )?;
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
    .map_err(db)?;
    let r = refund_from_row(&row)?;
    audit(
        &mut tx,
        actor,
        "refund.request",
        serde_json::json!({"charge_id": c.id, "refund_id": r.id, "reason": reason}),
        now_ms,
    )
    .await?;
    tx.commit().await?;
    Ok(r)
}

pub(crate) async fn decide_refund(
    s: &SqlStore,
    refund_id: i64,
    approve: bool,
    now_ms: i64,
    actor: &Actor,
) -> Result<Refund> {
    let mut tx = s.begin().await?;
    let mut r = load_refund(&mut tx, refund_id, true).await?;
    if r.status != RefundStatus::Requested {
        return Err(StoreError::invalid(
            "already_decided",
            "this refund was already decided",
        ));
    }
    if approve {
        let c = load_charge(&mut tx, r.charge_id).await?;
        refund::manager_may_reverse(c.status)
            .map_err(|e| StoreError::invalid("not_refundable", e.to_string()))?;
        let entry_id = reverse_in_tx(s, &mut tx, &c, EntryKind::Refund, now_ms).await?;
        sqlx::query(
            "UPDATE refunds SET status = 'approved', entry_id = $1, decided_at = $2 WHERE id = $3",
        )
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
    let action = if approve {
        "refund.approve"
    } else {
        "refund.reject"
    };
    audit(
        &mut tx,
        actor,
        action,
        serde_json::json!({"refund_id": r.id, "charge_id": r.charge_id, "amount_fen": r.amount.0}),
        now_ms,
    )
    .await?;
    tx.commit().await?;
    Ok(r)
}

pub(crate) async fn list_refunds(
    s: &SqlStore,
    status: Option<RefundStatus>,
    staff_id: Option<i64>,
) -> Result<Vec<Refund>> {
    let rows = sqlx::query(concat!(
        "SELECT ",
        refund_cols!(),
        " FROM refunds WHERE ($1 IS NULL OR status = $1) AND ($2 IS NULL OR staff_id = $2) ORDER BY id DESC LIMIT 1000"
    ))
    .bind(status.map(|s| s.as_str()))
    .bind(staff_id)
    .fetch_all(&s.pool)
    .await
    .map_err(db)?;
    rows.iter().map(refund_from_row).collect()
}

pub(crate) async fn load_refund(tx: &mut Tx, id: i64, lock: bool) -> Result<Refund> {
    // On SQLite `for_update!()` is empty and both arms are the same query.
    #[allow(clippy::if_same_then_else)]
    let q = if lock {
        sqlx::query(concat!(
            "SELECT ",
            refund_cols!(),
            " FROM refunds WHERE id = $1",
            for_update!()
        ))
    } else {
        sqlx::query(concat!(
            "SELECT ",
            refund_cols!(),
            " FROM refunds WHERE id = $1"
        ))
    };
    let row = q
        .bind(id)
        .fetch_optional(&mut **tx)
        .await
        .map_err(db)?
        .ok_or(StoreError::NotFound("refund"))?;
    refund_from_row(&row)
}

/// Posts the reversal of a standing charge and marks it refunded.
pub(crate) async fn reverse_in_tx(
    s: &SqlStore,
    tx: &mut Tx,
    charge: &ChargeRecord,
    kind: EntryKind,
    now_ms: i64,
) -> Result<i64> {
    let sys = s.system_ids().await?;
    let entry_id = charge
        .entry_id
        .ok_or_else(|| corrupt(format!("charge {} has no entry", charge.id)))?;
    let mut w = lock_wallets(tx, charge.staff_id).await?;
    let original = entry_postings(tx, entry_id).await?;
    let rev = ProposedEntry::reversing(kind, &original).map_err(corrupt)?;
    let memo = format!("{} of charge {}", kind.as_str(), charge.id);
    let rev_id = post_entry(tx, &sys, &mut w, &rev, &memo, now_ms).await?;
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
pub(crate) async fn reverse_standing(
    s: &SqlStore,
    tx: &mut Tx,
    c: &ChargeRecord,
    reason: &str,
    action: &str,
    extra: serde_json::Value,
    now_ms: i64,
    actor: &Actor,
) -> Result<Refund> {
    sqlx::query("UPDATE refunds SET status = 'rejected', decided_at = $1 WHERE charge_id = $2 AND status = 'requested'")
        .bind(now_ms)
        .bind(c.id)
        .execute(&mut **tx)
        .await
        .map_err(db)?;
    let entry_id = reverse_in_tx(s, tx, c, EntryKind::Reversal, now_ms).await?;
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
    audit(tx, actor, action, detail, now_ms).await?;
    Ok(r)
}
