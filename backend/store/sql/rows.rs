//! Rows as the store's types: column lists shared by the statements that read a table, and the
//! functions that turn a row into a `store` type (a value the code does not expect is `Corrupt`).

use super::error::{corrupt, db};
use super::DbRow;
use ledger::refund::ChargeStatus;
use ledger::{Fen, MealKind};
use sqlx::Row;
use std::str::FromStr;
use store::{
    Canteen, ChargeRecord, Kiosk, OrderStatus, PaymentOrder, Refund, RefundStatus, Result, Role,
    Staff, User, WasteRecord,
};

/// The columns `refund_from_row` reads, in its order.
macro_rules! refund_cols {
    () => {
        "id, charge_id, staff_id, kind, status, amount_fen, reason, entry_id, requested_at, decided_at"
    };
}
pub(crate) use refund_cols;

/// The columns `charge_from_row` reads, in its order.
macro_rules! charge_cols {
    () => {
        "id, kiosk_id, idempotency_key, staff_id, canteen_id, meal, local_date, kiosk_time, received_at, \
         amount_fen, subsidy_fen, cash_fen, status, reason, entry_id, offline"
    };
}
pub(crate) use charge_cols;

/// The columns `order_from_row` reads, in its order.
macro_rules! order_cols {
    () => {
        "order_no, staff_id, amount_fen, provider, status, provider_txn, created_at, credited_at, entry_id, \
         (SELECT CASE WHEN r.returned_at IS NULL THEN 'refused' ELSE 'returned' END \
          FROM payment_returns r WHERE r.order_no = payment_orders.order_no)"
    };
}
pub(crate) use order_cols;

pub(crate) fn charge_from_row(r: &DbRow) -> Result<ChargeRecord> {
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

pub(crate) fn refund_from_row(r: &DbRow) -> Result<Refund> {
    let status: String = r.try_get(4).map_err(db)?;
    Ok(Refund {
        id: r.try_get(0).map_err(db)?,
        charge_id: r.try_get(1).map_err(db)?,
        staff_id: r.try_get(2).map_err(db)?,
        kind: r.try_get(3).map_err(db)?,
        status: RefundStatus::parse(&status)
            .ok_or_else(|| corrupt(format!("refund status {status}")))?,
        amount: Fen(r.try_get(5).map_err(db)?),
        reason: r.try_get(6).map_err(db)?,
        entry_id: r.try_get(7).map_err(db)?,
        requested_at_ms: r.try_get(8).map_err(db)?,
        decided_at_ms: r.try_get(9).map_err(db)?,
    })
}

pub(crate) fn order_from_row(r: &DbRow) -> Result<PaymentOrder> {
    // A refused order (see `payment_returns`) keeps `created` in its own row.
    let returned: Option<String> = r.try_get(9).map_err(db)?;
    let status: String = match returned {
        Some(s) => s,
        None => r.try_get(4).map_err(db)?,
    };
    Ok(PaymentOrder {
        order_no: r.try_get(0).map_err(db)?,
        staff_id: r.try_get(1).map_err(db)?,
        amount: Fen(r.try_get(2).map_err(db)?),
        provider: r.try_get(3).map_err(db)?,
        status: OrderStatus::parse(&status)
            .ok_or_else(|| corrupt(format!("order status {status}")))?,
        provider_txn: r.try_get(5).map_err(db)?,
        created_at_ms: r.try_get(6).map_err(db)?,
        credited_at_ms: r.try_get(7).map_err(db)?,
        entry_id: r.try_get(8).map_err(db)?,
    })
}

pub(crate) type StaffRow = (i64, String, String, String, String, bool, i64, i64);

pub(crate) fn staff_from(r: StaffRow) -> Result<Staff> {
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

pub(crate) type CanteenRow = (i64, String, i64, Option<i64>, Option<i64>, i64, Option<i64>);

pub(crate) fn canteen_from(r: CanteenRow) -> Result<Canteen> {
    Ok(Canteen {
        id: r.0,
        name: r.1,
        utc_offset_minutes: to_i32(r.2)?,
        per_transaction_cap: r.3.map(Fen),
        daily_cap: r.4.map(Fen),
        created_at_ms: r.5,
        waste_target_grams: r.6,
    })
}

pub(crate) type UserRow = (i64, String, String, Option<i64>, bool, String, Option<i64>);

pub(crate) fn user_from(r: UserRow) -> Result<User> {
    Ok(User {
        id: r.0,
        username: r.1,
        role: Role::parse(&r.2).ok_or_else(|| corrupt(format!("role {}", r.2)))?,
        staff_id: r.3,
        active: r.4,
        password_hash: r.5,
        one_time_until_ms: r.6,
    })
}

pub(crate) type KioskRow = (i64, String, i64, Option<i64>, i64, Option<i64>);

pub(crate) fn kiosk_from(r: KioskRow) -> Kiosk {
    Kiosk {
        id: r.0,
        name: r.1,
        canteen_id: r.2,
        revoked: r.3.is_some(),
        created_at_ms: r.4,
        last_seen_ms: r.5,
    }
}

pub(crate) type WasteRow = (
    i64,
    i64,
    Option<i64>,
    Option<i64>,
    i64,
    i64,
    i64,
    Option<String>,
    Option<String>,
    i64,
);

pub(crate) fn waste_from(r: WasteRow) -> WasteRecord {
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

pub(crate) fn parse_meal(s: &str) -> Result<MealKind> {
    MealKind::from_str(s).map_err(corrupt)
}

pub(crate) fn parse_meal_opt(s: Option<String>) -> Result<Option<MealKind>> {
    s.map(|m| parse_meal(&m)).transpose()
}

pub(crate) fn parse_status(s: &str) -> Result<ChargeStatus> {
    ChargeStatus::parse(s).ok_or_else(|| corrupt(format!("charge status {s:?}")))
}

pub(crate) fn to_u16(v: i64) -> Result<u16> {
    u16::try_from(v).map_err(|_| corrupt(format!("minute {v}")))
}

pub(crate) fn to_i32(v: i64) -> Result<i32> {
    i32::try_from(v).map_err(|_| corrupt(format!("offset {v}")))
}

pub(crate) fn to_u32(v: i64) -> Result<u32> {
    u32::try_from(v).map_err(|_| corrupt(format!("count {v}")))
}
