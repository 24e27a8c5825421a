//! The managers' dashboard: meals, money and plate waste summed per canteen-local day in the
//! database, so a month of a large canteen costs four grouped scans, not millions of rows.
//! A local day is `(instant + offset) / one day` in integer arithmetic, which both databases
//! compute alike for the non-negative instants the ledger holds.

use super::error::db;
use super::rows::parse_meal_opt;
use super::SqlStore;
use ledger::Fen;
use store::{DashboardFigures, DashboardQuery, MealDay, MoneyDay, Result, WasteDay};

const DAY_MS: i64 = 24 * 3600 * 1000;

pub(crate) async fn dashboard_figures(s: &SqlStore, q: DashboardQuery) -> Result<DashboardFigures> {
    let offset_ms = q.utc_offset_minutes as i64 * 60_000;
    let meals: Vec<(i64, Option<String>, i64, i64, i64)> = sqlx::query_as(
        "SELECT (kiosk_time + $1) / $2 AS day, meal, COUNT(*), \
                CAST(COALESCE(SUM(CASE WHEN status = 'accepted' THEN amount_fen ELSE 0 END), 0) AS BIGINT), \
                CAST(COALESCE(SUM(CASE WHEN status = 'accepted' THEN subsidy_fen ELSE 0 END), 0) AS BIGINT) \
         FROM charges WHERE kiosk_time >= $3 AND kiosk_time < $4 \
         GROUP BY day, meal ORDER BY day, meal",
    )
    .bind(offset_ms)
    .bind(DAY_MS)
    .bind(q.from_ms)
    .bind(q.to_ms)
    .fetch_all(&s.pool)
    .await
    .map_err(db)?;
    let top_ups: Vec<(i64, i64, i64)> = sqlx::query_as(
        "SELECT (credited_at + $1) / $2 AS day, COUNT(*), CAST(COALESCE(SUM(amount_fen), 0) AS BIGINT) \
         FROM payment_orders WHERE status = 'credited' AND credited_at >= $3 AND credited_at < $4 \
         GROUP BY day ORDER BY day",
    )
    .bind(offset_ms)
    .bind(DAY_MS)
    .bind(q.from_ms)
    .bind(q.to_ms)
    .fetch_all(&s.pool)
    .await
    .map_err(db)?;
    let refunds: Vec<(i64, i64, i64)> = sqlx::query_as(
        "SELECT (decided_at + $1) / $2 AS day, COUNT(*), CAST(COALESCE(SUM(amount_fen), 0) AS BIGINT) \
         FROM refunds WHERE status = 'approved' AND decided_at >= $3 AND decided_at < $4 \
         GROUP BY day ORDER BY day",
    )
    .bind(offset_ms)
    .bind(DAY_MS)
    .bind(q.from_ms)
    .bind(q.to_ms)
    .fetch_all(&s.pool)
    .await
    .map_err(db)?;
    let waste: Vec<(i64, i64, i64, i64)> = sqlx::query_as(
        "SELECT (measured_at + $1) / $2 AS day, COUNT(*), CAST(COALESCE(SUM(net_grams), 0) AS BIGINT), \
                CAST(COALESCE(SUM(CASE WHEN net_grams <= $5 THEN 1 ELSE 0 END), 0) AS BIGINT) \
         FROM waste_records WHERE measured_at >= $3 AND measured_at < $4 \
         GROUP BY day ORDER BY day",
    )
    .bind(offset_ms)
    .bind(DAY_MS)
    .bind(q.from_ms)
    .bind(q.to_ms)
    .bind(q.clean_plate_max_grams)
    .fetch_all(&s.pool)
    .await
    .map_err(db)?;
    let money = |rows: Vec<(i64, i64, i64)>| {
        rows.into_iter()
            .map(|(day, count, amount)| MoneyDay {
                day,
                count,
                amount: Fen(amount),
            })
            .collect()
    };
    Ok(DashboardFigures {
        meals: meals
            .into_iter()
            .map(|(day, meal, meals, revenue, subsidy)| {
                Ok(MealDay {
                    day,
                    meal: parse_meal_opt(meal)?,
                    meals,
                    revenue: Fen(revenue),
                    subsidy: Fen(subsidy),
                })
            })
            .collect::<Result<_>>()?,
        top_ups: money(top_ups),
        refunds: money(refunds),
        waste: waste
            .into_iter()
            .map(|(day, plates, grams, clean_plates)| WasteDay {
                day,
                plates,
                grams,
                clean_plates,
            })
            .collect(),
    })
}
