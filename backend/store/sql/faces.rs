//! Face templates: consent, (already encrypted) templates, tombstones, and the gallery sync
//! kiosks poll ("changes since version V"). Versions come from one counter row locked until
//! commit, so they become visible in increasing order and a sync never skips one.

use super::error::{corrupt, db};
use super::journal::audit;
use super::tx::Tx;
use super::SqlStore;
use crate::dialect::for_update;
use store::{
    Actor, Consent, GalleryChange, GalleryPage, Result, SealedTemplate, StoreError, TemplateMeta,
};

pub(crate) async fn set_consent(
    s: &SqlStore,
    staff_id: i64,
    granted: bool,
    now_ms: i64,
    actor: &Actor,
) -> Result<Consent> {
    let mut tx = s.begin().await?;
    let exists: Option<(i64,)> =
        sqlx::query_as(concat!("SELECT id FROM staff WHERE id = $1", for_update!()))
            .bind(staff_id)
            .fetch_optional(&mut *tx)
            .await
            .map_err(db)?;
    if exists.is_none() {
        return Err(StoreError::NotFound("staff"));
    }
    sqlx::query(
        "INSERT INTO consents (staff_id, granted, changed_at) VALUES ($1, $2, $3) \
         ON CONFLICT (staff_id) DO UPDATE SET granted = excluded.granted, changed_at = excluded.changed_at",
    )
    .bind(staff_id)
    .bind(granted)
    .bind(now_ms)
    .execute(&mut *tx)
    .await
    .map_err(db)?;
    // Withdrawing consent removes the templates themselves, not just access to them.
    let deleted = if granted {
        0
    } else {
        tombstone_templates(&mut tx, staff_id).await?
    };
    let action = if granted {
        "face.consent_granted"
    } else {
        "face.consent_withdrawn"
    };
    audit(
        &mut tx,
        actor,
        action,
        serde_json::json!({"staff_id": staff_id, "templates_deleted": deleted}),
        now_ms,
    )
    .await?;
    tx.commit().await?;
    Ok(Consent {
        staff_id,
        granted,
        changed_at_ms: Some(now_ms),
    })
}

pub(crate) async fn consent(s: &SqlStore, staff_id: i64) -> Result<Consent> {
    let r: Option<(bool, i64)> =
        sqlx::query_as("SELECT granted, changed_at FROM consents WHERE staff_id = $1")
            .bind(staff_id)
            .fetch_optional(&s.pool)
            .await
            .map_err(db)?;
    Ok(match r {
        Some((granted, at)) => Consent {
            staff_id,
            granted,
            changed_at_ms: Some(at),
        },
        None => Consent {
            staff_id,
            granted: false,
            changed_at_ms: None,
        },
    })
}

pub(crate) async fn add_template(
    s: &SqlStore,
    staff_id: i64,
    sealed: SealedTemplate,
    now_ms: i64,
    actor: &Actor,
) -> Result<TemplateMeta> {
    let mut tx = s.begin().await?;
    // Lock the consent row so a concurrent withdrawal cannot slip between check and insert.
    let consent: Option<(bool,)> = sqlx::query_as(concat!(
        "SELECT granted FROM consents WHERE staff_id = $1",
        for_update!()
    ))
    .bind(staff_id)
    .fetch_optional(&mut *tx)
    .await
    .map_err(db)?;
    if consent != Some((true,)) {
        return Err(StoreError::invalid(
            "consent_required",
            "record the person's consent before storing face templates",
        ));
    }
    let v = next_gallery_version(&mut tx).await?;
    let (id,): (i64,) = sqlx::query_as(
        "INSERT INTO face_templates (staff_id, version, nonce, ciphertext, deleted, created_at) \
         VALUES ($1, $2, $3, $4, FALSE, $5) RETURNING id",
    )
    .bind(staff_id)
    .bind(v)
    .bind(&sealed.nonce)
    .bind(&sealed.ciphertext)
    .bind(now_ms)
    .fetch_one(&mut *tx)
    .await
    .map_err(db)?;
    audit(
        &mut tx,
        actor,
        "face.template_added",
        serde_json::json!({"staff_id": staff_id, "template_id": id, "version": v}),
        now_ms,
    )
    .await?;
    tx.commit().await?;
    Ok(TemplateMeta {
        id,
        staff_id,
        version: v,
        deleted: false,
        created_at_ms: now_ms,
    })
}

pub(crate) async fn delete_template(
    s: &SqlStore,
    template_id: i64,
    now_ms: i64,
    actor: &Actor,
) -> Result<TemplateMeta> {
    let mut tx = s.begin().await?;
    let r: Option<(i64, bool, i64)> = sqlx::query_as(concat!(
        "SELECT staff_id, deleted, created_at FROM face_templates WHERE id = $1",
        for_update!()
    ))
    .bind(template_id)
    .fetch_optional(&mut *tx)
    .await
    .map_err(db)?;
    let Some((staff_id, false, created)) = r else {
        return Err(StoreError::NotFound("template"));
    };
    let v = next_gallery_version(&mut tx).await?;
    sqlx::query("UPDATE face_templates SET deleted = TRUE, ciphertext = NULL, nonce = NULL, version = $1 WHERE id = $2")
        .bind(v)
        .bind(template_id)
        .execute(&mut *tx)
        .await
        .map_err(db)?;
    audit(
        &mut tx,
        actor,
        "face.template_deleted",
        serde_json::json!({"staff_id": staff_id, "template_id": template_id, "version": v}),
        now_ms,
    )
    .await?;
    tx.commit().await?;
    Ok(TemplateMeta {
        id: template_id,
        staff_id,
        version: v,
        deleted: true,
        created_at_ms: created,
    })
}

pub(crate) async fn list_templates(s: &SqlStore, staff_id: i64) -> Result<Vec<TemplateMeta>> {
    let rows: Vec<(i64, i64, bool, i64)> = sqlx::query_as(
        "SELECT id, version, deleted, created_at FROM face_templates WHERE staff_id = $1 AND deleted = FALSE ORDER BY id",
    )
    .bind(staff_id)
    .fetch_all(&s.pool)
    .await
    .map_err(db)?;
    Ok(rows
        .into_iter()
        .map(|(id, version, deleted, created)| TemplateMeta {
            id,
            staff_id,
            version,
            deleted,
            created_at_ms: created,
        })
        .collect())
}

/// (id, staff id, version, nonce, ciphertext, deleted).
type GalleryRow = (i64, i64, i64, Option<Vec<u8>>, Option<Vec<u8>>, bool);

pub(crate) async fn gallery_changes(s: &SqlStore, since: i64, limit: i64) -> Result<GalleryPage> {
    // Read the counter first: everything up to it is committed (versions are assigned under
    // the counter's lock), so a page never promises a version it does not contain.
    let (current,): (i64,) = sqlx::query_as("SELECT value FROM counters WHERE name = 'gallery'")
        .fetch_one(&s.pool)
        .await
        .map_err(db)?;
    let rows: Vec<GalleryRow> = sqlx::query_as(
        "SELECT id, staff_id, version, nonce, ciphertext, deleted FROM face_templates \
         WHERE version > $1 AND version <= $2 ORDER BY version LIMIT $3",
    )
    .bind(since)
    .bind(current)
    .bind(limit.clamp(1, 10_000))
    .fetch_all(&s.pool)
    .await
    .map_err(db)?;
    let changes = rows
        .into_iter()
        .map(|(id, staff_id, version, nonce, ct, deleted)| {
            let sealed = match (deleted, nonce, ct) {
                (false, Some(nonce), Some(ciphertext)) => {
                    Some(SealedTemplate { nonce, ciphertext })
                }
                (true, _, _) => None,
                _ => return Err(corrupt(format!("template {id} has no ciphertext"))),
            };
            Ok(GalleryChange {
                template_id: id,
                staff_id,
                version,
                sealed,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(GalleryPage {
        changes,
        current_version: current,
    })
}

/// Bumps the gallery counter. The counter row stays locked until commit, so template
/// versions become visible in increasing order and a kiosk syncing "since N" never skips one.
pub(crate) async fn next_gallery_version(tx: &mut Tx) -> Result<i64> {
    let (v,): (i64,) = sqlx::query_as(
        "UPDATE counters SET value = value + 1 WHERE name = 'gallery' RETURNING value",
    )
    .fetch_one(&mut **tx)
    .await
    .map_err(db)?;
    Ok(v)
}

pub(crate) async fn tombstone_templates(tx: &mut Tx, staff_id: i64) -> Result<i64> {
    let ids: Vec<(i64,)> = sqlx::query_as(
        "SELECT id FROM face_templates WHERE staff_id = $1 AND deleted = FALSE ORDER BY id",
    )
    .bind(staff_id)
    .fetch_all(&mut **tx)
    .await
    .map_err(db)?;
    for (id,) in &ids {
        let v = next_gallery_version(tx).await?;
        sqlx::query(
            "UPDATE face_templates SET deleted = TRUE, ciphertext = NULL, nonce = NULL, version = $1 WHERE id = $2",
        )
        .bind(v)
        .bind(id)
        .execute(&mut **tx)
        .await
        .map_err(db)?;
    }
    Ok(ids.len() as i64)
}
