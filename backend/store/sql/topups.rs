//! Top-ups: payment orders, the provider's notifications (logged, every one) and the
//! exactly-once credit of a paid order, and the sandbox gateway's own record of payments.

use super::error::{corrupt, db};
use super::journal::{audit, lock_wallets, post_entry};
use super::rows::{order_cols, order_from_row};
use super::tx::Tx;
use super::SqlStore;
use crate::dialect::for_update;
use ledger::posting::ProposedEntry;
use ledger::Fen;
use store::{
    Actor, CreditOutcome, NewPaymentOrder, OrderStatus, PaymentOrder, PaymentReturn, Result,
    SandboxPayment, StoreError,
};

pub(crate) async fn create_payment_order(
    s: &SqlStore,
    new: NewPaymentOrder,
    actor: &Actor,
) -> Result<PaymentOrder> {
    if new.amount.0 <= 0 {
        return Err(StoreError::invalid(
            "bad_amount",
            "a top-up must be positive",
        ));
    }
    let mut tx = s.begin().await?;
    let active: Option<(bool,)> = sqlx::query_as("SELECT active FROM staff WHERE id = $1")
        .bind(new.staff_id)
        .fetch_optional(&mut *tx)
        .await
        .map_err(db)?;
    match active {
        None => return Err(StoreError::NotFound("staff")),
        Some((false,)) => {
            return Err(StoreError::invalid(
                "staff_inactive",
                "inactive accounts cannot be topped up",
            ))
        }
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
    audit(&mut tx, actor, "topup.order", serde_json::json!({"order_no": new.order_no, "staff_id": new.staff_id, "amount_fen": new.amount.0}), new.now_ms).await?;
    let o = load_order(&mut tx, &new.order_no)
        .await?
        .ok_or(StoreError::NotFound("order"))?;
    tx.commit().await?;
    Ok(o)
}

pub(crate) async fn get_payment_order(s: &SqlStore, order_no: &str) -> Result<PaymentOrder> {
    let row = sqlx::query(concat!(
        "SELECT ",
        order_cols!(),
        " FROM payment_orders WHERE order_no = $1"
    ))
    .bind(order_no)
    .fetch_optional(&s.pool)
    .await
    .map_err(db)?
    .ok_or(StoreError::NotFound("order"))?;
    order_from_row(&row)
}

pub(crate) async fn list_payment_orders(
    s: &SqlStore,
    staff_id: Option<i64>,
    limit: i64,
) -> Result<Vec<PaymentOrder>> {
    let rows = sqlx::query(concat!(
        "SELECT ",
        order_cols!(),
        " FROM payment_orders WHERE ($1 IS NULL OR staff_id = $1) ORDER BY created_at DESC, order_no LIMIT $2"
    ))
    .bind(staff_id)
    .bind(limit.clamp(1, 1000))
    .fetch_all(&s.pool)
    .await
    .map_err(db)?;
    rows.iter().map(order_from_row).collect()
}

pub(crate) async fn credit_payment(
    s: &SqlStore,
    order_no: &str,
    provider_txn: &str,
    paid: Fen,
    raw: &str,
    now_ms: i64,
) -> Result<CreditOutcome> {
    let sys = s.system_ids().await?;
    let mut tx = s.begin().await?;
    // The order row lock makes concurrent duplicate notifications queue up here; the first
    // credits, the rest find the order credited.
    let Some(order) = load_order(&mut tx, order_no).await? else {
        log_notification(&mut tx, Some(order_no), raw, "unknown_order", now_ms).await?;
        tx.commit().await?;
        return Ok(CreditOutcome::UnknownOrder);
    };
    let outcome = if order.status == OrderStatus::Credited {
        CreditOutcome::AlreadyCredited
    } else if matches!(order.status, OrderStatus::Refused | OrderStatus::Returned) {
        CreditOutcome::RefusedLeft
    } else if paid != order.amount {
        CreditOutcome::AmountMismatch
    } else {
        let mut w = lock_wallets(&mut tx, order.staff_id).await?;
        // Under the wallet lock, so an offboarding either finished before (the payment is
        // refused) or waits for this credit (and pays it out with the rest).
        if has_left(&mut tx, order.staff_id).await? {
            sqlx::query(
                "INSERT INTO payment_returns (order_no, amount_fen, provider_txn, reason, created_at) \
                 VALUES ($1, $2, $3, 'left', $4)",
            )
            .bind(order_no)
            .bind(order.amount.0)
            .bind(provider_txn)
            .bind(now_ms)
            .execute(&mut *tx)
            .await
            .map_err(db)?;
            log_notification(&mut tx, Some(order_no), raw, "refused_left", now_ms).await?;
            audit(
                &mut tx,
                &Actor::Gateway,
                "topup.refused_left",
                serde_json::json!({"order_no": order_no, "staff_id": order.staff_id, "paid_fen": paid.0, "provider_txn": provider_txn}),
                now_ms,
            )
            .await?;
            tx.commit().await?;
            return Ok(CreditOutcome::RefusedLeft);
        }
        let e = ProposedEntry::top_up(order.staff_id, order.amount).map_err(corrupt)?;
        let memo = format!("top-up order {order_no}");
        let entry_id = post_entry(&mut tx, &sys, &mut w, &e, &memo, now_ms).await?;
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
    log_notification(&mut tx, Some(order_no), raw, outcome.as_str(), now_ms).await?;
    if !matches!(
        outcome,
        CreditOutcome::AlreadyCredited | CreditOutcome::RefusedLeft
    ) {
        audit(
            &mut tx,
            &Actor::Gateway,
            &format!("topup.{}", outcome.as_str()),
            serde_json::json!({"order_no": order_no, "staff_id": order.staff_id, "order_fen": order.amount.0, "paid_fen": paid.0, "provider_txn": provider_txn}),
            now_ms,
        )
        .await?;
    }
    tx.commit().await?;
    Ok(outcome)
}

pub(crate) async fn log_payment_notification(
    s: &SqlStore,
    order_no: Option<&str>,
    raw: &str,
    verdict: &str,
    now_ms: i64,
) -> Result<()> {
    let mut tx = s.begin().await?;
    log_notification(&mut tx, order_no, raw, verdict, now_ms).await?;
    tx.commit().await?;
    Ok(())
}

pub(crate) async fn sandbox_record_payment(
    s: &SqlStore,
    order_no: &str,
    amount: Fen,
    txn: &str,
    now_ms: i64,
) -> Result<bool> {
    let n = sqlx::query(
        "INSERT INTO sandbox_gateway (order_no, amount_fen, txn, paid_at) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (order_no) DO NOTHING",
    )
    .bind(order_no)
    .bind(amount.0)
    .bind(txn)
    .bind(now_ms)
    .execute(&s.pool)
    .await
    .map_err(db)?
    .rows_affected();
    Ok(n == 1)
}

pub(crate) async fn sandbox_payment(
    s: &SqlStore,
    order_no: &str,
) -> Result<Option<SandboxPayment>> {
    let r: Option<(String, i64, String, i64)> = sqlx::query_as(
        "SELECT order_no, amount_fen, txn, paid_at FROM sandbox_gateway WHERE order_no = $1",
    )
    .bind(order_no)
    .fetch_optional(&s.pool)
    .await
    .map_err(db)?;
    Ok(r.map(|(order_no, a, txn, paid_at_ms)| SandboxPayment {
        order_no,
        amount: Fen(a),
        txn,
        paid_at_ms,
    }))
}

pub(crate) async fn load_order(tx: &mut Tx, order_no: &str) -> Result<Option<PaymentOrder>> {
    let row = sqlx::query(concat!(
        "SELECT ",
        order_cols!(),
        " FROM payment_orders WHERE order_no = $1",
        for_update!()
    ))
    .bind(order_no)
    .fetch_optional(&mut **tx)
    .await
    .map_err(db)?;
    row.map(|r| order_from_row(&r)).transpose()
}

pub(crate) async fn log_notification(
    tx: &mut Tx,
    order_no: Option<&str>,
    raw: &str,
    verdict: &str,
    now_ms: i64,
) -> Result<()> {
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

/// Whether the person was offboarded (their cash paid out; they cannot be paid out again).
async fn has_left(tx: &mut Tx, staff_id: i64) -> Result<bool> {
    let left: Option<(i64,)> =
        sqlx::query_as("SELECT staff_id FROM offboardings WHERE staff_id = $1")
            .bind(staff_id)
            .fetch_optional(&mut **tx)
            .await
            .map_err(db)?;
    Ok(left.is_some())
}

pub(crate) async fn pending_payment_returns(
    s: &SqlStore,
    limit: i64,
) -> Result<Vec<PaymentReturn>> {
    let rows: Vec<(String, i64, i64, String, i64)> = sqlx::query_as(
        "SELECT r.order_no, o.staff_id, r.amount_fen, r.provider_txn, r.created_at \
         FROM payment_returns r JOIN payment_orders o ON o.order_no = r.order_no \
         WHERE r.returned_at IS NULL ORDER BY r.created_at, r.order_no LIMIT $1",
    )
    .bind(limit.clamp(1, 1000))
    .fetch_all(&s.pool)
    .await
    .map_err(db)?;
    Ok(rows
        .into_iter()
        .map(
            |(order_no, staff_id, a, provider_txn, created_at_ms)| PaymentReturn {
                order_no,
                staff_id,
                amount: Fen(a),
                provider_txn,
                created_at_ms,
                provider_refund: None,
            },
        )
        .collect())
}

pub(crate) async fn mark_payment_returned(
    s: &SqlStore,
    order_no: &str,
    provider_refund: &str,
    now_ms: i64,
) -> Result<()> {
    let mut tx = s.begin().await?;
    let n = sqlx::query(
        "UPDATE payment_returns SET provider_refund = $1, returned_at = $2 \
         WHERE order_no = $3 AND returned_at IS NULL",
    )
    .bind(provider_refund)
    .bind(now_ms)
    .bind(order_no)
    .execute(&mut *tx)
    .await
    .map_err(db)?
    .rows_affected();
    if n == 1 {
        audit(
            &mut tx,
            &Actor::Gateway,
            "topup.returned",
            serde_json::json!({"order_no": order_no, "provider_refund": provider_refund}),
            now_ms,
        )
        .await?;
    }
    tx.commit().await?;
    Ok(())
}

pub(crate) async fn sandbox_record_refund(
    s: &SqlStore,
    order_no: &str,
    amount: Fen,
    refund_txn: &str,
    now_ms: i64,
) -> Result<bool> {
    let n = sqlx::query(
        "INSERT INTO sandbox_refunds (order_no, amount_fen, refund_txn, refunded_at) \
         VALUES ($1, $2, $3, $4) ON CONFLICT (order_no) DO NOTHING",
    )
    .bind(order_no)
    .bind(amount.0)
    .bind(refund_txn)
    .bind(now_ms)
    .execute(&s.pool)
    .await
    .map_err(db)?
    .rows_affected();
    Ok(n == 1)
}

pub(crate) async fn sandbox_refund(s: &SqlStore, order_no: &str) -> Result<Option<String>> {
    let r: Option<(String,)> =
        sqlx::query_as("SELECT refund_txn FROM sandbox_refunds WHERE order_no = $1")
            .bind(order_no)
            .fetch_optional(&s.pool)
            .await
            .map_err(db)?;
    Ok(r.map(|(t,)| t))
}
