//! One-time pay codes: a person shows a QR code instead of their face; only the code's hash is
//! stored, and redeeming uses it up in one statement (two kiosks scanning it: one wins).

use super::error::db;
use super::SqlStore;
use store::{PayCodeRedemption, Result};

pub(crate) async fn create_pay_code(
    s: &SqlStore,
    staff_id: i64,
    code_hash: &str,
    now_ms: i64,
    expires_ms: i64,
) -> Result<()> {
    sqlx::query("INSERT INTO pay_codes (code_hash, staff_id, created_at, expires_at) VALUES ($1, $2, $3, $4)")
        .bind(code_hash)
        .bind(staff_id)
        .bind(now_ms)
        .bind(expires_ms)
        .execute(&s.pool)
        .await
        .map_err(db)?;
    Ok(())
}

pub(crate) async fn redeem_pay_code(
    s: &SqlStore,
    code_hash: &str,
    kiosk_id: i64,
    now_ms: i64,
) -> Result<PayCodeRedemption> {
    // One statement marks the code used only if it is unused and unexpired, so two kiosks
    // scanning the same code at once cannot both redeem it.
    let won: Option<(i64, bool)> = sqlx::query_as(
        "UPDATE pay_codes SET used_at = $2, kiosk_id = $3 \
         WHERE code_hash = $1 AND used_at IS NULL AND expires_at > $2 \
         RETURNING staff_id, (SELECT active FROM staff WHERE staff.id = pay_codes.staff_id)",
    )
    .bind(code_hash)
    .bind(now_ms)
    .bind(kiosk_id)
    .fetch_optional(&s.pool)
    .await
    .map_err(db)?;
    if let Some((staff_id, active)) = won {
        return Ok(if active {
            PayCodeRedemption::Redeemed { staff_id }
        } else {
            PayCodeRedemption::StaffInactive
        });
    }
    let row: Option<(Option<i64>,)> =
        sqlx::query_as("SELECT used_at FROM pay_codes WHERE code_hash = $1")
            .bind(code_hash)
            .fetch_optional(&s.pool)
            .await
            .map_err(db)?;
    Ok(match row {
        None => PayCodeRedemption::Unknown,
        Some((Some(_),)) => PayCodeRedemption::AlreadyUsed,
        Some((None,)) => PayCodeRedemption::Expired,
    })
}
