//! Kiosks: one-time enrolment codes a manager makes, a kiosk's enrolment with one (it receives
//! a device token, of which only the hash is kept), token lookups, revocation.

use super::error::db;
use super::journal::audit;
use super::rows::{kiosk_from, KioskRow};
use super::SqlStore;
use crate::dialect::for_update;
use store::{Actor, Kiosk, Result, StoreError};

pub(crate) async fn create_enrolment_code(
    s: &SqlStore,
    canteen_id: i64,
    code_hash: &str,
    expires_ms: i64,
    actor: &Actor,
) -> Result<()> {
    let now = store::now_ms();
    let mut tx = s.begin().await?;
    sqlx::query("INSERT INTO enrolment_codes (code_hash, canteen_id, expires_at, created_at) VALUES ($1, $2, $3, $4)")
        .bind(code_hash)
        .bind(canteen_id)
        .bind(expires_ms)
        .bind(now)
        .execute(&mut *tx)
        .await
        .map_err(db)?;
    audit(
        &mut tx,
        actor,
        "kiosk.enrolment_code",
        serde_json::json!({"canteen_id": canteen_id, "expires_at": expires_ms}),
        now,
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

pub(crate) async fn redeem_enrolment_code(
    s: &SqlStore,
    code_hash: &str,
    name: &str,
    token_hash: &str,
    now_ms: i64,
) -> Result<Kiosk> {
    let mut tx = s.begin().await?;
    let code: Option<(i64,)> = sqlx::query_as(concat!(
        "SELECT canteen_id FROM enrolment_codes WHERE code_hash = $1 AND used_at IS NULL AND expires_at > $2",
        for_update!()
    ))
    .bind(code_hash)
    .bind(now_ms)
    .fetch_optional(&mut *tx)
    .await
    .map_err(db)?;
    let Some((canteen_id,)) = code else {
        return Err(StoreError::invalid(
            "enrolment_code_invalid",
            "the enrolment code is unknown, used or expired",
        ));
    };
    let r: KioskRow = sqlx::query_as(
        "INSERT INTO kiosks (name, canteen_id, token_hash, created_at) VALUES ($1, $2, $3, $4) \
         RETURNING id, name, canteen_id, revoked_at, created_at, last_seen_at",
    )
    .bind(name)
    .bind(canteen_id)
    .bind(token_hash)
    .bind(now_ms)
    .fetch_one(&mut *tx)
    .await
    .map_err(db)?;
    let k = kiosk_from(r);
    sqlx::query("UPDATE enrolment_codes SET used_at = $1, kiosk_id = $2 WHERE code_hash = $3")
        .bind(now_ms)
        .bind(k.id)
        .bind(code_hash)
        .execute(&mut *tx)
        .await
        .map_err(db)?;
    audit(
        &mut tx,
        &Actor::Kiosk { id: k.id },
        "kiosk.enrol",
        serde_json::json!({"kiosk": &k}),
        now_ms,
    )
    .await?;
    tx.commit().await?;
    Ok(k)
}

pub(crate) async fn kiosk_by_token(s: &SqlStore, token_hash: &str) -> Result<Option<Kiosk>> {
    let r: Option<KioskRow> = sqlx::query_as(
        "SELECT id, name, canteen_id, revoked_at, created_at, last_seen_at FROM kiosks WHERE token_hash = $1 AND revoked_at IS NULL",
    )
    .bind(token_hash)
    .fetch_optional(&s.pool)
    .await
    .map_err(db)?;
    Ok(r.map(kiosk_from))
}

/// Notes that a kiosk was heard from, at most once a minute (the condition makes repeats free).
pub(crate) async fn kiosk_seen(s: &SqlStore, id: i64, now_ms: i64) -> Result<()> {
    sqlx::query(
        "UPDATE kiosks SET last_seen_at = $1 WHERE id = $2 \
         AND (last_seen_at IS NULL OR last_seen_at < $3)",
    )
    .bind(now_ms)
    .bind(id)
    .bind(now_ms - 60_000)
    .execute(&s.pool)
    .await
    .map_err(db)?;
    Ok(())
}

pub(crate) async fn revoke_kiosk(
    s: &SqlStore,
    id: i64,
    now_ms: i64,
    actor: &Actor,
) -> Result<Kiosk> {
    let mut tx = s.begin().await?;
    let r: KioskRow = sqlx::query_as(
        "UPDATE kiosks SET revoked_at = COALESCE(revoked_at, $1) WHERE id = $2 \
         RETURNING id, name, canteen_id, revoked_at, created_at, last_seen_at",
    )
    .bind(now_ms)
    .bind(id)
    .fetch_optional(&mut *tx)
    .await
    .map_err(db)?
    .ok_or(StoreError::NotFound("kiosk"))?;
    audit(
        &mut tx,
        actor,
        "kiosk.revoke",
        serde_json::json!({"kiosk_id": id}),
        now_ms,
    )
    .await?;
    tx.commit().await?;
    Ok(kiosk_from(r))
}

pub(crate) async fn list_kiosks(s: &SqlStore) -> Result<Vec<Kiosk>> {
    let rows: Vec<KioskRow> = sqlx::query_as(
        "SELECT id, name, canteen_id, revoked_at, created_at, last_seen_at FROM kiosks ORDER BY id",
    )
    .fetch_all(&s.pool)
    .await
    .map_err(db)?;
    Ok(rows.into_iter().map(kiosk_from).collect())
}
