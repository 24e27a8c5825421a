//! Plate waste: weighings from the return station, idempotent per kiosk and key like charges,
//! linked to the person's charge of the same meal when the station did not see it; averages for
//! the kiosk's feedback.

use super::canteens::canteen_rules;
use super::error::{corrupt, db, is_key_race};
use super::journal::{lookup_idempotency, replay, save_idempotency};
use super::rows::{waste_from, WasteRow};
use super::SqlStore;
use store::{Result, StoreError, WasteCommand, WasteRecord, WasteStats};

pub(crate) async fn record_waste(s: &SqlStore, cmd: WasteCommand) -> Result<WasteRecord> {
    let net = ledger::waste::net_grams(cmd.gross_grams, cmd.tare_grams)
        .map_err(|e| StoreError::invalid("bad_weight", e.to_string()))?;
    for _ in 0..5 {
        let mut tx = s.begin().await?;
        if let Some((h, resp)) =
            lookup_idempotency(&mut tx, cmd.kiosk_id, "waste", &cmd.idempotency_key).await?
        {
            let mut r: WasteRecord = replay(&h, &resp, &cmd.request_hash)?;
            r.replayed = true;
            return Ok(r);
        }
        let mut staff_id = cmd.staff_id;
        // The plate's meal period is its charge's (the dashboard groups by it).
        let mut meal: Option<String> = None;
        if let Some(cid) = cmd.charge_id {
            let c: Option<(i64, Option<String>)> =
                sqlx::query_as("SELECT staff_id, meal FROM charges WHERE id = $1")
                    .bind(cid)
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(db)?;
            let Some((owner, charge_meal)) = c else {
                return Err(StoreError::invalid(
                    "unknown_charge",
                    "the charge does not exist",
                ));
            };
            if staff_id.is_some_and(|s| s != owner) {
                return Err(StoreError::invalid(
                    "charge_mismatch",
                    "the charge belongs to someone else",
                ));
            }
            staff_id = Some(owner);
            meal = charge_meal;
        }
        let mut charge_id = cmd.charge_id;
        if let (None, Some(person)) = (charge_id, staff_id) {
            // A return station at the tray belt never saw the charge: link the record to the
            // person's accepted charge of the same canteen-local day and meal, if exactly one.
            let canteen: Option<(i64,)> =
                sqlx::query_as("SELECT canteen_id FROM kiosks WHERE id = $1")
                    .bind(cmd.kiosk_id)
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(db)?;
            if let Some((canteen_id,)) = canteen {
                let rules = canteen_rules(s, canteen_id).await?;
                if let Ok(Some(slot)) = rules.schedule.locate(cmd.measured_at_ms) {
                    let found: Vec<(i64,)> = sqlx::query_as(
                        "SELECT id FROM charges WHERE staff_id = $1 AND local_date = $2 AND meal = $3 \
                         AND status = 'accepted' LIMIT 2",
                    )
                    .bind(person)
                    .bind(slot.local_date.to_string())
                    .bind(slot.meal.as_str())
                    .fetch_all(&mut *tx)
                    .await
                    .map_err(db)?;
                    if let [(id,)] = found.as_slice() {
                        charge_id = Some(*id);
                        meal = Some(slot.meal.as_str().to_string());
                    }
                }
            }
        }
        let r: WasteRow = sqlx::query_as(
            "INSERT INTO waste_records (kiosk_id, staff_id, charge_id, gross_grams, tare_grams, net_grams, dish, category, measured_at, created_at, meal) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) \
             RETURNING id, kiosk_id, staff_id, charge_id, gross_grams, tare_grams, net_grams, dish, category, measured_at",
        )
        .bind(cmd.kiosk_id)
        .bind(staff_id)
        .bind(charge_id)
        .bind(cmd.gross_grams)
        .bind(cmd.tare_grams)
        .bind(net)
        .bind(&cmd.dish)
        .bind(&cmd.category)
        .bind(cmd.measured_at_ms)
        .bind(cmd.received_ms)
        .bind(meal)
        .fetch_one(&mut *tx)
        .await
        .map_err(db)?;
        let rec = waste_from(r);
        let resp = serde_json::to_string(&rec).map_err(corrupt)?;
        match save_idempotency(
            &mut tx,
            cmd.kiosk_id,
            "waste",
            &cmd.idempotency_key,
            &cmd.request_hash,
            &resp,
            cmd.received_ms,
        )
        .await
        {
            Err(e) if is_key_race(&e) => continue,
            other => other?,
        }
        match tx.commit().await {
            Err(e) if is_key_race(&e) => continue,
            other => other?,
        }
        return Ok(rec);
    }
    Err(StoreError::busy(
        "could not settle a concurrent use of the same idempotency key",
    ))
}

pub(crate) async fn list_waste(
    s: &SqlStore,
    staff_id: Option<i64>,
    limit: i64,
) -> Result<Vec<WasteRecord>> {
    let rows: Vec<WasteRow> = sqlx::query_as(
        "SELECT id, kiosk_id, staff_id, charge_id, gross_grams, tare_grams, net_grams, dish, category, measured_at \
         FROM waste_records WHERE ($1 IS NULL OR staff_id = $1) ORDER BY id DESC LIMIT $2",
    )
    .bind(staff_id)
    .bind(limit.clamp(1, 10_000))
    .fetch_all(&s.pool)
    .await
    .map_err(db)?;
    Ok(rows.into_iter().map(waste_from).collect())
}

pub(crate) async fn waste_stats(
    s: &SqlStore,
    staff_id: i64,
    canteen_id: i64,
    since_ms: i64,
) -> Result<WasteStats> {
    let (person, canteen): (Option<f64>, Option<f64>) = sqlx::query_as(
        "SELECT CAST(AVG(CASE WHEN w.staff_id = $1 THEN w.net_grams END) AS DOUBLE PRECISION), \
                CAST(AVG(w.net_grams) AS DOUBLE PRECISION) \
         FROM waste_records w JOIN kiosks k ON k.id = w.kiosk_id \
         WHERE k.canteen_id = $2 AND w.measured_at >= $3",
    )
    .bind(staff_id)
    .bind(canteen_id)
    .bind(since_ms)
    .fetch_one(&s.pool)
    .await
    .map_err(db)?;
    Ok(WasteStats {
        person_average_g: person,
        canteen_average_g: canteen,
    })
}
