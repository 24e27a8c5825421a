//! Reads for the audit page and the inspection export: the audit log newest first, and one
//! kind of record at a time over a date range, each page keyed by an ascending id so a year of
//! a large canteen is read in pages and never held at once. Each record comes with its
//! person's employee number, name and department (as the staff table says now).

use super::error::db;
use super::rows::{
    charge_cols, charge_from_row, order_cols, order_from_row, refund_cols, refund_from_row,
    waste_from, WasteRow,
};
use super::{DbRow, SqlStore};
use sqlx::Row;
use store::{
    AuditEntry, ExportCharge, ExportPerson, ExportRange, ExportRefund, ExportTopUp, ExportWaste,
    Result,
};

const MAX_PAGE: i64 = 10_000;

/// The person's columns at `at`, `at + 1` and `at + 2` of a row.
fn person_at(r: &DbRow, at: usize) -> Result<ExportPerson> {
    Ok(ExportPerson {
        employee_no: r.try_get(at).map_err(db)?,
        name: r.try_get(at + 1).map_err(db)?,
        department: r.try_get(at + 2).map_err(db)?,
    })
}

pub(crate) async fn audit_page(
    s: &SqlStore,
    before_id: Option<i64>,
    limit: i64,
) -> Result<Vec<AuditEntry>> {
    let rows: Vec<super::audit::AuditRow> = sqlx::query_as(
        "SELECT id, at, actor, action, detail, seq, prev_hash, hash FROM audit_log \
         WHERE id < $1 ORDER BY id DESC LIMIT $2",
    )
    .bind(before_id.unwrap_or(i64::MAX))
    .bind(limit.clamp(1, MAX_PAGE))
    .fetch_all(&s.pool)
    .await
    .map_err(db)?;
    Ok(rows.into_iter().map(super::audit::entry_from).collect())
}

pub(crate) async fn export_charges(s: &SqlStore, r: ExportRange) -> Result<Vec<ExportCharge>> {
    // The page is chosen from `charges` alone, then joined to its people (the charge columns
    // keep their places 0..=15, the person follows at 16).
    let rows = sqlx::query(concat!(
        "SELECT x.*, st.employee_no, st.name, st.department FROM (SELECT ",
        charge_cols!(),
        " FROM charges WHERE received_at >= $1 AND received_at < $2 AND id > $3 \
          ORDER BY id LIMIT $4) x JOIN staff st ON st.id = x.staff_id ORDER BY x.id"
    ))
    .bind(r.from_ms)
    .bind(r.to_ms)
    .bind(r.after_id)
    .bind(r.limit.clamp(1, MAX_PAGE))
    .fetch_all(&s.pool)
    .await
    .map_err(db)?;
    rows.iter()
        .map(|row| {
            Ok(ExportCharge {
                charge: charge_from_row(row)?,
                person: person_at(row, 16)?,
            })
        })
        .collect()
}

pub(crate) async fn export_refunds(s: &SqlStore, r: ExportRange) -> Result<Vec<ExportRefund>> {
    let rows = sqlx::query(concat!(
        "SELECT x.*, st.employee_no, st.name, st.department FROM (SELECT ",
        refund_cols!(),
        " FROM refunds WHERE requested_at >= $1 AND requested_at < $2 AND id > $3 \
          ORDER BY id LIMIT $4) x JOIN staff st ON st.id = x.staff_id ORDER BY x.id"
    ))
    .bind(r.from_ms)
    .bind(r.to_ms)
    .bind(r.after_id)
    .bind(r.limit.clamp(1, MAX_PAGE))
    .fetch_all(&s.pool)
    .await
    .map_err(db)?;
    rows.iter()
        .map(|row| {
            Ok(ExportRefund {
                refund: refund_from_row(row)?,
                person: person_at(row, 10)?,
            })
        })
        .collect()
}

pub(crate) async fn export_top_ups(s: &SqlStore, r: ExportRange) -> Result<Vec<ExportTopUp>> {
    let rows = sqlx::query(concat!(
        "SELECT x.*, st.employee_no, st.name, st.department FROM (SELECT ",
        order_cols!(),
        " FROM payment_orders WHERE entry_id IS NOT NULL AND credited_at >= $1 AND credited_at < $2 \
          AND entry_id > $3 ORDER BY entry_id LIMIT $4) x JOIN staff st ON st.id = x.staff_id \
          ORDER BY x.entry_id"
    ))
    .bind(r.from_ms)
    .bind(r.to_ms)
    .bind(r.after_id)
    .bind(r.limit.clamp(1, MAX_PAGE))
    .fetch_all(&s.pool)
    .await
    .map_err(db)?;
    rows.iter()
        .map(|row| {
            Ok(ExportTopUp {
                order: order_from_row(row)?,
                person: person_at(row, 10)?,
            })
        })
        .collect()
}

/// A weighing and its (optional) person.
type WastePersonRow = (WasteRow, Option<String>, Option<String>, Option<String>);

pub(crate) async fn export_waste(s: &SqlStore, r: ExportRange) -> Result<Vec<ExportWaste>> {
    let rows = sqlx::query(
        "SELECT w.id, w.kiosk_id, w.staff_id, w.charge_id, w.gross_grams, w.tare_grams, w.net_grams, \
                w.dish, w.category, w.measured_at, st.employee_no, st.name, st.department \
         FROM waste_records w LEFT JOIN staff st ON st.id = w.staff_id \
         WHERE w.measured_at >= $1 AND w.measured_at < $2 AND w.id > $3 ORDER BY w.id LIMIT $4",
    )
    .bind(r.from_ms)
    .bind(r.to_ms)
    .bind(r.after_id)
    .bind(r.limit.clamp(1, MAX_PAGE))
    .fetch_all(&s.pool)
    .await
    .map_err(db)?;
    rows.iter()
        .map(|row| {
            let w: WastePersonRow = (
                (
                    row.try_get(0).map_err(db)?,
                    row.try_get(1).map_err(db)?,
                    row.try_get(2).map_err(db)?,
                    row.try_get(3).map_err(db)?,
                    row.try_get(4).map_err(db)?,
                    row.try_get(5).map_err(db)?,
                    row.try_get(6).map_err(db)?,
                    row.try_get(7).map_err(db)?,
                    row.try_get(8).map_err(db)?,
                    row.try_get(9).map_err(db)?,
                ),
                row.try_get(10).map_err(db)?,
                row.try_get(11).map_err(db)?,
                row.try_get(12).map_err(db)?,
            );
            let (waste, no, name, department) = w;
            Ok(ExportWaste {
                waste: waste_from(waste),
                person: no.map(|employee_no| ExportPerson {
                    employee_no,
                    name: name.unwrap_or_default(),
                    department: department.unwrap_or_default(),
                }),
            })
        })
        .collect()
}
