//! Canteens and their rules (meal windows, prices, caps), subsidy rules and the monthly grant of
//! subsidies. The charge path reads a canteen's rules through a one-second per-instance cache
//! (`canteen_rules`); a change made through this instance clears it at once.

use super::error::{corrupt, db};
use super::journal::{audit, lock_wallets, post_entry, SystemIds};
use super::rows::{canteen_from, parse_meal, to_i32, to_u16, CanteenRow};
use super::SqlStore;
use crate::dialect::for_update;
use ledger::meal::{MealPeriod, Schedule};
use ledger::posting::{BookAccount, EntryKind};
use ledger::{Fen, MealKind};
use std::sync::Arc;
use std::time::{Duration, Instant};
use store::{
    Actor, Canteen, CanteenConfig, CanteenUpdate, GrantSummary, MealWindow, NewCanteen, Price,
    Result, StoreError, SubsidyRule,
};

/// How long a cached copy of a canteen's rules is used.
const RULES_TTL: Duration = Duration::from_secs(1);

/// A canteen's charging rules as the charge path needs them.
pub(crate) struct CanteenRules {
    pub(crate) schedule: Schedule,
    pub(crate) txn_cap: Option<Fen>,
    pub(crate) daily_cap: Option<Fen>,
    pub(crate) prices: Vec<(String, MealKind, Fen)>,
}

fn forget_rules(s: &SqlStore) {
    if let Ok(mut m) = s.rules.lock() {
        m.clear();
    }
}

pub(crate) async fn canteen_rules(s: &SqlStore, canteen_id: i64) -> Result<Arc<CanteenRules>> {
    if let Ok(m) = s.rules.lock() {
        if let Some((at, r)) = m.get(&canteen_id) {
            if at.elapsed() < RULES_TTL {
                return Ok(r.clone());
            }
        }
    }
    let cfg = canteen_config(s, canteen_id).await?;
    let periods = cfg
        .windows
        .iter()
        .map(|w| MealPeriod::new(w.meal, w.start_minute, w.end_minute).map_err(corrupt))
        .collect::<Result<Vec<_>>>()?;
    let r = Arc::new(CanteenRules {
        schedule: Schedule::new(cfg.canteen.utc_offset_minutes, periods).map_err(corrupt)?,
        txn_cap: cfg.canteen.per_transaction_cap,
        daily_cap: cfg.canteen.daily_cap,
        prices: cfg
            .prices
            .into_iter()
            .map(|p| (p.category, p.meal, p.price))
            .collect(),
    });
    if let Ok(mut m) = s.rules.lock() {
        m.insert(canteen_id, (Instant::now(), r.clone()));
    }
    Ok(r)
}

pub(crate) async fn create_canteen(
    s: &SqlStore,
    new: NewCanteen,
    actor: &Actor,
) -> Result<Canteen> {
    Schedule::new(new.utc_offset_minutes, vec![])
        .map_err(|e| StoreError::invalid("bad_offset", e.to_string()))?;
    let now = store::now_ms();
    let mut tx = s.begin().await?;
    let r: CanteenRow = sqlx::query_as(
        "INSERT INTO canteens (name, utc_offset_minutes, per_txn_cap_fen, daily_cap_fen, created_at) \
         VALUES ($1, $2, $3, $4, $5) \
         RETURNING id, name, utc_offset_minutes, per_txn_cap_fen, daily_cap_fen, created_at, waste_target_grams",
    )
    .bind(&new.name)
    .bind(i64::from(new.utc_offset_minutes))
    .bind(new.per_transaction_cap.map(|f| f.0))
    .bind(new.daily_cap.map(|f| f.0))
    .bind(now)
    .fetch_one(&mut *tx)
    .await
    .map_err(db)?;
    let c = canteen_from(r)?;
    audit(
        &mut tx,
        actor,
        "canteen.create",
        serde_json::json!({"canteen": &c}),
        now,
    )
    .await?;
    tx.commit().await?;
    forget_rules(s);
    Ok(c)
}

pub(crate) async fn update_canteen(
    s: &SqlStore,
    id: i64,
    upd: CanteenUpdate,
    actor: &Actor,
) -> Result<Canteen> {
    let now = store::now_ms();
    let mut tx = s.begin().await?;
    let cur: CanteenRow = sqlx::query_as(concat!(
        "SELECT id, name, utc_offset_minutes, per_txn_cap_fen, daily_cap_fen, created_at, waste_target_grams FROM canteens WHERE id = $1",
        for_update!()
    ))
    .bind(id)
    .fetch_optional(&mut *tx)
    .await
    .map_err(db)?
    .ok_or(StoreError::NotFound("canteen"))?;
    let mut c = canteen_from(cur)?;
    if let Some(n) = upd.name {
        c.name = n;
    }
    if let Some(o) = upd.utc_offset_minutes {
        Schedule::new(o, vec![]).map_err(|e| StoreError::invalid("bad_offset", e.to_string()))?;
        c.utc_offset_minutes = o;
    }
    if let Some(cap) = upd.per_transaction_cap {
        c.per_transaction_cap = cap;
    }
    if let Some(cap) = upd.daily_cap {
        c.daily_cap = cap;
    }
    if let Some(t) = upd.waste_target_grams {
        if t.is_some_and(|g| !ledger::waste::valid_target(g)) {
            return Err(StoreError::invalid(
                "bad_waste_target",
                "a plate-waste target is 0-5000 grams per plate",
            ));
        }
        c.waste_target_grams = t;
    }
    sqlx::query("UPDATE canteens SET name = $1, utc_offset_minutes = $2, per_txn_cap_fen = $3, daily_cap_fen = $4, waste_target_grams = $5 WHERE id = $6")
        .bind(&c.name)
        .bind(i64::from(c.utc_offset_minutes))
        .bind(c.per_transaction_cap.map(|f| f.0))
        .bind(c.daily_cap.map(|f| f.0))
        .bind(c.waste_target_grams)
        .bind(id)
        .execute(&mut *tx)
        .await
        .map_err(db)?;
    audit(
        &mut tx,
        actor,
        "canteen.update",
        serde_json::json!({"canteen": &c}),
        now,
    )
    .await?;
    tx.commit().await?;
    forget_rules(s);
    Ok(c)
}

pub(crate) async fn list_canteens(s: &SqlStore) -> Result<Vec<Canteen>> {
    let rows: Vec<CanteenRow> = sqlx::query_as(
        "SELECT id, name, utc_offset_minutes, per_txn_cap_fen, daily_cap_fen, created_at, waste_target_grams FROM canteens ORDER BY id",
    )
    .fetch_all(&s.pool)
    .await
    .map_err(db)?;
    rows.into_iter().map(canteen_from).collect()
}

pub(crate) async fn canteen_config(s: &SqlStore, id: i64) -> Result<CanteenConfig> {
    let r: CanteenRow = sqlx::query_as(
        "SELECT id, name, utc_offset_minutes, per_txn_cap_fen, daily_cap_fen, created_at, waste_target_grams FROM canteens WHERE id = $1",
    )
    .bind(id)
    .fetch_optional(&s.pool)
    .await
    .map_err(db)?
    .ok_or(StoreError::NotFound("canteen"))?;
    let windows: Vec<(String, i64, i64)> = sqlx::query_as(
        "SELECT meal, start_minute, end_minute FROM meal_windows WHERE canteen_id = $1 ORDER BY start_minute",
    )
    .bind(id)
    .fetch_all(&s.pool)
    .await
    .map_err(db)?;
    let prices: Vec<(String, String, i64)> = sqlx::query_as(
        "SELECT category, meal, price_fen FROM prices WHERE canteen_id = $1 ORDER BY category, meal",
    )
    .bind(id)
    .fetch_all(&s.pool)
    .await
    .map_err(db)?;
    Ok(CanteenConfig {
        canteen: canteen_from(r)?,
        windows: windows
            .into_iter()
            .map(|(m, s, e)| {
                Ok(MealWindow {
                    canteen_id: id,
                    meal: parse_meal(&m)?,
                    start_minute: to_u16(s)?,
                    end_minute: to_u16(e)?,
                })
            })
            .collect::<Result<_>>()?,
        prices: prices
            .into_iter()
            .map(|(c, m, p)| {
                Ok(Price {
                    canteen_id: id,
                    category: c,
                    meal: parse_meal(&m)?,
                    price: Fen(p),
                })
            })
            .collect::<Result<_>>()?,
    })
}

pub(crate) async fn set_meal_window(s: &SqlStore, w: MealWindow, actor: &Actor) -> Result<()> {
    let now = store::now_ms();
    let mut tx = s.begin().await?;
    let (offset,): (i64,) = sqlx::query_as(concat!(
        "SELECT utc_offset_minutes FROM canteens WHERE id = $1",
        for_update!()
    ))
    .bind(w.canteen_id)
    .fetch_optional(&mut *tx)
    .await
    .map_err(db)?
    .ok_or(StoreError::NotFound("canteen"))?;
    let existing: Vec<(String, i64, i64)> = sqlx::query_as(
        "SELECT meal, start_minute, end_minute FROM meal_windows WHERE canteen_id = $1",
    )
    .bind(w.canteen_id)
    .fetch_all(&mut *tx)
    .await
    .map_err(db)?;
    // Validate the schedule as it will be after the change: windows must not overlap.
    let mut periods = vec![MealPeriod::new(w.meal, w.start_minute, w.end_minute)
        .map_err(|e| StoreError::invalid("bad_meal_window", e.to_string()))?];
    for (m, s, e) in existing {
        let m = parse_meal(&m)?;
        if m != w.meal {
            periods.push(MealPeriod::new(m, to_u16(s)?, to_u16(e)?).map_err(corrupt)?);
        }
    }
    Schedule::new(to_i32(offset)?, periods)
        .map_err(|e| StoreError::invalid("bad_meal_window", e.to_string()))?;
    sqlx::query(
        "INSERT INTO meal_windows (canteen_id, meal, start_minute, end_minute) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (canteen_id, meal) DO UPDATE SET start_minute = excluded.start_minute, end_minute = excluded.end_minute",
    )
    .bind(w.canteen_id)
    .bind(w.meal.as_str())
    .bind(i64::from(w.start_minute))
    .bind(i64::from(w.end_minute))
    .execute(&mut *tx)
    .await
    .map_err(db)?;
    audit(
        &mut tx,
        actor,
        "canteen.meal_window",
        serde_json::json!(w),
        now,
    )
    .await?;
    tx.commit().await?;
    forget_rules(s);
    Ok(())
}

pub(crate) async fn set_price(s: &SqlStore, p: Price, actor: &Actor) -> Result<()> {
    if p.price.0 <= 0 {
        return Err(StoreError::invalid("bad_price", "a price must be positive"));
    }
    if p.category.trim().is_empty() {
        return Err(StoreError::invalid(
            "bad_category",
            "category must not be empty",
        ));
    }
    let now = store::now_ms();
    let mut tx = s.begin().await?;
    sqlx::query(
        "INSERT INTO prices (canteen_id, category, meal, price_fen) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (canteen_id, category, meal) DO UPDATE SET price_fen = excluded.price_fen",
    )
    .bind(p.canteen_id)
    .bind(&p.category)
    .bind(p.meal.as_str())
    .bind(p.price.0)
    .execute(&mut *tx)
    .await
    .map_err(db)?;
    audit(&mut tx, actor, "canteen.price", serde_json::json!(p), now).await?;
    tx.commit().await?;
    forget_rules(s);
    Ok(())
}

pub(crate) async fn set_subsidy_rule(s: &SqlStore, r: SubsidyRule, actor: &Actor) -> Result<()> {
    if r.amount.0 < 0 {
        return Err(StoreError::invalid(
            "bad_amount",
            "a subsidy must not be negative",
        ));
    }
    let now = store::now_ms();
    let mut tx = s.begin().await?;
    sqlx::query(
        "INSERT INTO subsidy_rules (category, amount_fen, expires) VALUES ($1, $2, $3) \
         ON CONFLICT (category) DO UPDATE SET amount_fen = excluded.amount_fen, expires = excluded.expires",
    )
    .bind(&r.category)
    .bind(r.amount.0)
    .bind(r.expires)
    .execute(&mut *tx)
    .await
    .map_err(db)?;
    audit(&mut tx, actor, "subsidy.rule", serde_json::json!(r), now).await?;
    tx.commit().await?;
    Ok(())
}

pub(crate) async fn list_subsidy_rules(s: &SqlStore) -> Result<Vec<SubsidyRule>> {
    let rows: Vec<(String, i64, bool)> =
        sqlx::query_as("SELECT category, amount_fen, expires FROM subsidy_rules ORDER BY category")
            .fetch_all(&s.pool)
            .await
            .map_err(db)?;
    Ok(rows
        .into_iter()
        .map(|(category, a, expires)| SubsidyRule {
            category,
            amount: Fen(a),
            expires,
        })
        .collect())
}

pub(crate) async fn grant_subsidies(
    s: &SqlStore,
    period: &str,
    now_ms: i64,
    actor: &Actor,
) -> Result<GrantSummary> {
    let period = ledger::subsidy::parse_period(period)
        .ok_or_else(|| StoreError::invalid("bad_period", "period must look like 2026-11"))?;
    let sys = s.system_ids().await?;
    let rules = list_subsidy_rules(s).await?;
    let staff: Vec<(i64, String)> =
        sqlx::query_as("SELECT id, category FROM staff WHERE active = TRUE ORDER BY id")
            .fetch_all(&s.pool)
            .await
            .map_err(db)?;
    let mut sum = GrantSummary {
        period: period.clone(),
        ..Default::default()
    };
    // One transaction per person: a long run never holds many locks, and a crash half-way
    // is resumed by running it again (subsidy_grants makes each person's grant idempotent).
    for (id, category) in staff {
        let Some(rule) = rules.iter().find(|r| r.category == category) else {
            continue;
        };
        match grant_one(s, &sys, id, &period, rule, now_ms, actor).await? {
            Some((g, e)) => {
                sum.people += 1;
                sum.granted = Fen(sum.granted.0 + g.0);
                sum.expired = Fen(sum.expired.0 + e.0);
            }
            None => sum.skipped += 1,
        }
    }
    Ok(sum)
}

pub(crate) async fn grant_one(
    s: &SqlStore,
    sys: &SystemIds,
    staff_id: i64,
    period: &str,
    rule: &SubsidyRule,
    now_ms: i64,
    actor: &Actor,
) -> Result<Option<(Fen, Fen)>> {
    let mut tx = s.begin().await?;
    let inserted = sqlx::query(
        "INSERT INTO subsidy_grants (staff_id, period, granted_fen, expired_fen, created_at) \
         VALUES ($1, $2, 0, 0, $3) ON CONFLICT (staff_id, period) DO NOTHING",
    )
    .bind(staff_id)
    .bind(period)
    .bind(now_ms)
    .execute(&mut *tx)
    .await
    .map_err(db)?
    .rows_affected();
    if inserted == 0 {
        return Ok(None);
    }
    let mut w = lock_wallets(&mut tx, staff_id).await?;
    let leftover = w.subsidy;
    let entries = ledger::subsidy::period_entries(staff_id, leftover, rule.amount, rule.expires)
        .map_err(corrupt)?;
    let mut expired = Fen::ZERO;
    let mut granted = Fen::ZERO;
    for e in &entries {
        match e.kind() {
            EntryKind::SubsidyExpiry => {
                expired = Fen(-e.delta(BookAccount::StaffSubsidy(staff_id)).0)
            }
            _ => granted = e.delta(BookAccount::StaffSubsidy(staff_id)),
        }
        let memo = format!("subsidy period {period}");
        post_entry(&mut tx, sys, &mut w, e, &memo, now_ms).await?;
    }
    sqlx::query("UPDATE subsidy_grants SET granted_fen = $1, expired_fen = $2 WHERE staff_id = $3 AND period = $4")
        .bind(granted.0)
        .bind(expired.0)
        .bind(staff_id)
        .bind(period)
        .execute(&mut *tx)
        .await
        .map_err(db)?;
    audit(
        &mut tx,
        actor,
        "subsidy.period",
        serde_json::json!({"staff_id": staff_id, "period": period, "granted_fen": granted.0, "expired_fen": expired.0}),
        now_ms,
    )
    .await?;
    tx.commit().await?;
    Ok(Some((granted, expired)))
}
