//! The managers' views over the books: the dashboard's meals, money and plate waste summed per
//! canteen-local day in the database (a month of a large canteen costs five grouped index
//! scans, run at once, not millions of rows), the journal's pages of entries as they touched people's accounts, and
//! its pages of plate-waste records.
//! A local day is `(instant + offset) / one day` in integer arithmetic, which both databases
//! compute alike for the non-negative instants the ledger holds.

use super::error::db;
use super::rows::parse_meal_opt;
use super::SqlStore;
use ledger::{Fen, MealKind};
use std::collections::BTreeMap;
use store::{
    DashboardFigures, DashboardQuery, JournalFilter, JournalLine, MealDay, MoneyDay, Result,
    WasteDay, WasteFilter, WasteGroup, WasteLine, WastePerson,
};

const DAY_MS: i64 = 24 * 3600 * 1000;

pub(crate) async fn dashboard_figures(s: &SqlStore, q: DashboardQuery) -> Result<DashboardFigures> {
    let offset_ms = q.utc_offset_minutes as i64 * 60_000;
    let meals = sqlx::query_as::<_, (i64, Option<String>, i64, i64, i64)>(
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
    .fetch_all(&s.pool);
    let top_ups = sqlx::query_as::<_, (i64, i64, i64)>(
        "SELECT (credited_at + $1) / $2 AS day, COUNT(*), CAST(COALESCE(SUM(amount_fen), 0) AS BIGINT) \
         FROM payment_orders WHERE status = 'credited' AND credited_at >= $3 AND credited_at < $4 \
         GROUP BY day ORDER BY day",
    )
    .bind(offset_ms)
    .bind(DAY_MS)
    .bind(q.from_ms)
    .bind(q.to_ms)
    .fetch_all(&s.pool);
    let refunds = sqlx::query_as::<_, (i64, i64, i64)>(
        "SELECT (decided_at + $1) / $2 AS day, COUNT(*), CAST(COALESCE(SUM(amount_fen), 0) AS BIGINT) \
         FROM refunds WHERE status = 'approved' AND decided_at >= $3 AND decided_at < $4 \
         GROUP BY day ORDER BY day",
    )
    .bind(offset_ms)
    .bind(DAY_MS)
    .bind(q.from_ms)
    .bind(q.to_ms)
    .fetch_all(&s.pool);
    let waste = sqlx::query_as::<_, (i64, i64, i64, i64)>(
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
    .fetch_all(&s.pool);
    // Per department and meal period over the whole range, in one pass over the time index
    // (which carries each plate's person and period); plates of no one known have no
    // department, plates of no charge no period.
    let groups = sqlx::query_as::<_, (Option<String>, Option<String>, i64, i64, i64)>(
        "SELECT st.department, w.meal, COUNT(*), CAST(COALESCE(SUM(w.net_grams), 0) AS BIGINT), \
                CAST(COALESCE(SUM(CASE WHEN w.net_grams <= $3 THEN 1 ELSE 0 END), 0) AS BIGINT) \
         FROM waste_records w LEFT JOIN staff st ON st.id = w.staff_id \
         WHERE w.measured_at >= $1 AND w.measured_at < $2 \
         GROUP BY st.department, w.meal",
    )
    .bind(q.from_ms)
    .bind(q.to_ms)
    .bind(q.clean_plate_max_grams)
    .fetch_all(&s.pool);
    // The five reads are independent: run them at once, each on a connection of its own
    // (a month of charges is the slowest; the waste reads fit in beside it).
    let (meals, top_ups, refunds, waste, groups) =
        tokio::try_join!(meals, top_ups, refunds, waste, groups).map_err(db)?;
    let mut by_department: BTreeMap<String, WasteGroup> = BTreeMap::new();
    let mut by_meal: BTreeMap<(bool, Option<MealKind>), WasteGroup> = BTreeMap::new();
    for (department, meal, plates, grams, clean_plates) in groups {
        let add = |g: &mut WasteGroup| {
            g.plates += plates;
            g.grams += grams;
            g.clean_plates += clean_plates;
        };
        if let Some(d) = department {
            add(by_department
                .entry(d.clone())
                .or_insert_with(|| WasteGroup::empty(d)));
        }
        let meal = parse_meal_opt(meal)?;
        let name = meal.map(|m| m.as_str().to_string()).unwrap_or_default();
        // Breakfast, lunch, dinner, then plates of no period.
        add(by_meal
            .entry((meal.is_none(), meal))
            .or_insert_with(|| WasteGroup::empty(name)));
    }
    let mut by_department: Vec<WasteGroup> = by_department.into_values().collect();
    // Most grams per plate first (compared as fractions, no rounding).
    by_department.sort_by(|a, b| {
        (i128::from(b.grams) * i128::from(a.plates.max(1)))
            .cmp(&(i128::from(a.grams) * i128::from(b.plates.max(1))))
            .then_with(|| a.group.cmp(&b.group))
    });
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
        waste_by_department: by_department,
        waste_by_meal: by_meal.into_values().collect(),
    })
}

/// entry id, kind, time, memo, staff id, employee number, name, account kind, amount.
type JournalRow = (i64, String, i64, String, i64, String, String, String, i64);

/// A page of journal entries (see [`store::Store::journal_page`]): the entries are chosen
/// first (newest first, whole entries, so a page never splits one), then their postings on
/// people's accounts are summed per person.
pub(crate) async fn journal_page(s: &SqlStore, f: JournalFilter) -> Result<Vec<JournalLine>> {
    // Two shapes of one query: for one person the page starts from their accounts (the
    // employee number's index, then postings by account), so a year of a 5,000-person canteen
    // is not scanned for their few hundred entries; for everyone it walks entries newest first.
    let sql = if f.employee_no.is_some() {
        "WITH page AS ( \
           SELECT DISTINCT p.entry_id AS id FROM staff st \
           JOIN book_accounts a ON a.staff_id = st.id \
           JOIN postings p ON p.account_id = a.id \
           JOIN journal_entries e ON e.id = p.entry_id \
           WHERE st.employee_no = $3 AND e.created_at >= $1 AND e.created_at < $2 \
             AND ($4 IS NULL OR e.kind = $4) AND ($5 IS NULL OR e.id < $5) \
             AND ($7 IS NULL OR st.department = $7) \
             AND ($8 IS NULL OR EXISTS (SELECT 1 FROM charges c WHERE c.entry_id = e.id AND c.kiosk_id = $8)) \
           ORDER BY p.entry_id DESC LIMIT $6) \
         SELECT e.id, e.kind, e.created_at, e.memo, st.id, st.employee_no, st.name, a.kind, p.amount_fen \
         FROM page JOIN journal_entries e ON e.id = page.id \
         JOIN postings p ON p.entry_id = e.id JOIN book_accounts a ON a.id = p.account_id \
         JOIN staff st ON st.id = a.staff_id \
         WHERE st.employee_no = $3 \
         ORDER BY e.id DESC, st.id, a.kind"
    } else {
        "WITH page AS ( \
           SELECT e.id FROM journal_entries e \
           WHERE e.created_at >= $1 AND e.created_at < $2 \
             AND ($4 IS NULL OR e.kind = $4) AND ($5 IS NULL OR e.id < $5) \
             AND ($3 IS NULL) \
             AND EXISTS (SELECT 1 FROM postings p JOIN book_accounts a ON a.id = p.account_id \
                         JOIN staff st ON st.id = a.staff_id \
                         WHERE p.entry_id = e.id AND ($7 IS NULL OR st.department = $7)) \
             AND ($8 IS NULL OR EXISTS (SELECT 1 FROM charges c WHERE c.entry_id = e.id AND c.kiosk_id = $8)) \
           ORDER BY e.id DESC LIMIT $6) \
         SELECT e.id, e.kind, e.created_at, e.memo, st.id, st.employee_no, st.name, a.kind, p.amount_fen \
         FROM page JOIN journal_entries e ON e.id = page.id \
         JOIN postings p ON p.entry_id = e.id JOIN book_accounts a ON a.id = p.account_id \
         JOIN staff st ON st.id = a.staff_id \
         WHERE ($7 IS NULL OR st.department = $7) \
         ORDER BY e.id DESC, st.id, a.kind"
    };
    let rows: Vec<JournalRow> = sqlx::query_as(sql)
        .bind(f.from_ms)
        .bind(f.to_ms)
        .bind(f.employee_no.as_deref())
        .bind(f.kind.as_deref())
        .bind(f.before_entry_id)
        .bind(f.limit.clamp(1, 5000))
        .bind(f.department.as_deref())
        .bind(f.kiosk_id)
        .fetch_all(&s.pool)
        .await
        .map_err(db)?;
    let mut out: Vec<JournalLine> = Vec::new();
    for (id, kind, at, memo, staff_id, employee_no, name, account, amount) in rows {
        let same = out
            .last()
            .is_some_and(|l| l.entry_id == id && l.staff_id == staff_id);
        if !same {
            out.push(JournalLine {
                entry_id: id,
                kind,
                at_ms: at,
                staff_id,
                employee_no,
                name,
                cash_delta: Fen(0),
                subsidy_delta: Fen(0),
                memo,
            });
        }
        if let Some(l) = out.last_mut() {
            if account == "cash" {
                l.cash_delta = Fen(l.cash_delta.0 + amount);
            } else {
                l.subsidy_delta = Fen(l.subsidy_delta.0 + amount);
            }
        }
    }
    Ok(out)
}

/// record id, time, kiosk name, employee number, name, department, net grams, dish.
type WasteRow = (
    i64,
    i64,
    String,
    Option<String>,
    Option<String>,
    Option<String>,
    i64,
    Option<String>,
);

/// A page of plate-waste records (see [`store::Store::waste_page`]), the latest weighed first:
/// a walk down the time index from the cursor. The person is the record's (the store writes the
/// charge's person onto a plate weighed against a charge).
pub(crate) async fn waste_page(s: &SqlStore, f: WasteFilter) -> Result<Vec<WasteLine>> {
    let rows: Vec<WasteRow> = sqlx::query_as(
        "SELECT w.id, w.measured_at, k.name, st.employee_no, st.name, st.department, w.net_grams, w.dish \
         FROM waste_records w JOIN kiosks k ON k.id = w.kiosk_id \
         LEFT JOIN staff st ON st.id = w.staff_id \
         WHERE w.measured_at >= $1 AND w.measured_at < $2 AND (w.measured_at, w.id) < ($6, $7) \
           AND ($3 IS NULL OR st.employee_no = $3) AND ($4 IS NULL OR st.department = $4) \
           AND ($5 IS NULL OR w.kiosk_id = $5) \
         ORDER BY w.measured_at DESC, w.id DESC LIMIT $8",
    )
    .bind(f.from_ms)
    .bind(f.to_ms)
    .bind(f.employee_no.as_deref())
    .bind(f.department.as_deref())
    .bind(f.kiosk_id)
    // No cursor: below everything.
    .bind(f.before.map_or(i64::MAX, |b| b.0))
    .bind(f.before.map_or(i64::MAX, |b| b.1))
    .bind(f.limit.clamp(1, 5000))
    .fetch_all(&s.pool)
    .await
    .map_err(db)?;
    Ok(rows
        .into_iter()
        .map(
            |(id, at_ms, kiosk, employee_no, name, department, net_grams, dish)| WasteLine {
                id,
                at_ms,
                kiosk,
                person: match (employee_no, name, department) {
                    (Some(employee_no), Some(name), Some(department)) => Some(WastePerson {
                        employee_no,
                        name,
                        department,
                    }),
                    _ => None,
                },
                net_grams,
                dish,
            },
        )
        .collect())
}

pub(crate) async fn departments(s: &SqlStore) -> Result<Vec<String>> {
    let rows: Vec<(String,)> = sqlx::query_as(
        "SELECT DISTINCT department FROM staff WHERE department <> '' ORDER BY department",
    )
    .fetch_all(&s.pool)
    .await
    .map_err(db)?;
    Ok(rows.into_iter().map(|r| r.0).collect())
}
