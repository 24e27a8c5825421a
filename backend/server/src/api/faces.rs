//! Manager routes for face data: consent, enrolling templates (encrypted with AES-256-GCM before
//! they reach the database, and only after consent is recorded) and deleting them. Deletions
//! become tombstones that kiosks pick up on their next gallery sync. Templates arrive either as
//! embeddings computed by the kiosk's enrolment desk or as photos the server analyses itself
//! (`face_photos`); both are stored by the same store call.

use super::types::*;
use crate::auth::{Need, AUDITOR, MANAGER};
use crate::error::ApiPath;
use crate::error::{ApiError, JsonBody};
use crate::face_photos::PhotoError;
use crate::state::{now_ms, AppState};
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::Json;

/// A person's consent. Roles: manager, auditor.
#[utoipa::path(get, path = "/api/v1/staff/{id}/consent", tag = "faces", params(("id" = i64, Path)), responses((status = 200, body = ConsentOut)))]
pub async fn get_consent(
    State(st): State<AppState>,
    _w: Need<{ MANAGER | AUDITOR }>,
    ApiPath(id): ApiPath<i64>,
) -> Result<Json<ConsentOut>, ApiError> {
    st.store.get_staff(id).await?;
    Ok(Json(consent_out(st.store.consent(id).await?)))
}

/// Record consent given (e.g. on paper at the desk) or withdrawn. Roles: manager.
#[utoipa::path(put, path = "/api/v1/staff/{id}/consent", tag = "faces", params(("id" = i64, Path)), request_body = ConsentIn,
    responses((status = 200, body = ConsentOut)))]
pub async fn put_consent(
    State(st): State<AppState>,
    Need(p): Need<MANAGER>,
    ApiPath(id): ApiPath<i64>,
    JsonBody(b): JsonBody<ConsentIn>,
) -> Result<Json<ConsentOut>, ApiError> {
    Ok(Json(consent_out(
        st.store
            .set_consent(id, b.granted, now_ms(), &p.actor())
            .await?,
    )))
}

/// A person's templates (metadata only). Roles: manager, auditor.
#[utoipa::path(get, path = "/api/v1/staff/{id}/templates", tag = "faces", params(("id" = i64, Path)), responses((status = 200, body = Vec<TemplateOut>)))]
pub async fn list_templates(
    State(st): State<AppState>,
    _w: Need<{ MANAGER | AUDITOR }>,
    ApiPath(id): ApiPath<i64>,
) -> Result<Json<Vec<TemplateOut>>, ApiError> {
    Ok(Json(
        st.store
            .list_templates(id)
            .await?
            .into_iter()
            .map(template_out)
            .collect(),
    ))
}

/// Enrol a face template (refused without consent): an embedding of this system's model (128
/// numbers, else 422 `bad_embedding`). Refused with 409 `face_matches_other` when a kiosk could
/// take it for someone else, 422 `face_unlike_own` when it is unlike the person's own
/// templates. Roles: manager.
#[utoipa::path(post, path = "/api/v1/staff/{id}/templates", tag = "faces", params(("id" = i64, Path)), request_body = TemplateIn,
    responses((status = 200, body = TemplateOut), (status = 409, body = wire::ErrorBody), (status = 422, body = wire::ErrorBody)))]
pub async fn add_template(
    State(st): State<AppState>,
    Need(p): Need<MANAGER>,
    ApiPath(id): ApiPath<i64>,
    JsonBody(b): JsonBody<TemplateIn>,
) -> Result<Json<TemplateOut>, ApiError> {
    Ok(Json(template_out(
        store_template(&st, id, &b.embedding, &p.actor()).await?,
    )))
}

/// Encrypts and stores one template: the store checks consent under a lock, bumps the gallery
/// version kiosks sync by and writes the audit entry, all in one transaction.
async fn store_template(
    st: &AppState,
    staff_id: i64,
    embedding: &[f32],
    actor: &store::Actor,
) -> Result<store::TemplateMeta, ApiError> {
    refuse_look_alikes(st, staff_id, embedding).await?;
    let sealed = st
        .cipher
        .seal(staff_id, embedding)
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    Ok(st
        .store
        .add_template(staff_id, sealed, now_ms(), actor)
        .await?)
}

/// Enrolment's guard, the same rule kiosks match by (`MatchPolicy::default()`): a template
/// that a kiosk would take for someone else, or that is too close to someone else to tell
/// apart, would let one person be charged for another's meal — refused with 409
/// `face_matches_other`. One that is unlike the person's own templates is most likely a wrong
/// photo: 422 `face_unlike_own`. The gallery is read and decrypted whole because enrolment is
/// rare and the kiosks' view must be judged, not a cache of it (15,000 templates decrypt in
/// tens of milliseconds).
async fn refuse_look_alikes(
    st: &AppState,
    staff_id: i64,
    embedding: &[f32],
) -> Result<(), ApiError> {
    if embedding.len() != models::gallery::EMBEDDING_LEN {
        return Err(ApiError::unprocessable(
            "bad_embedding",
            format!(
                "this system's face model gives embeddings of {} numbers (got {}): enrol with the kiosk's desk or a photo",
                models::gallery::EMBEDDING_LEN,
                embedding.len()
            ),
        ));
    }
    let gallery = current_gallery(st).await?;
    let policy = models::gallery::MatchPolicy::default();
    let check = gallery
        .check_new_template(&staff_id, embedding, &policy)
        .map_err(|e| ApiError::unprocessable("bad_embedding", e.to_string()))?;
    match check {
        models::gallery::TemplateCheck::Fits => Ok(()),
        models::gallery::TemplateCheck::CloseToOther { other, distance, .. } => {
            let who = match st.store.get_staff(other).await {
                Ok(s) => format!("{} ({}, staff #{})", s.name, s.employee_no, s.id),
                Err(_) => format!("staff #{other}"),
            };
            Err(ApiError::Conflict {
                code: "face_matches_other",
                message: format!(
                    "this face is too close to {who} (distance {distance:.3}, policy threshold {:.2}, margin {:.2}): a kiosk could charge one for the other; check the person and the photo",
                    policy.threshold, policy.margin
                ),
            })
        }
        models::gallery::TemplateCheck::UnlikeOwn { own_distance } => Err(ApiError::unprocessable(
            "face_unlike_own",
            format!(
                "this face does not look like the person's enrolled templates (distance {own_distance:.3} > {:.2}): a wrong photo or a wrong person? delete the old templates first to re-enrol",
                policy.threshold
            ),
        )),
    }
}

/// Every live template, decrypted, keyed by staff id: what a kiosk holds after a full sync.
async fn current_gallery(st: &AppState) -> Result<models::gallery::Gallery<i64>, ApiError> {
    let mut live: std::collections::BTreeMap<i64, (i64, Vec<f32>)> = Default::default();
    let mut since = 0;
    loop {
        let page = st.store.gallery_changes(since, 5000).await?;
        for c in &page.changes {
            match &c.sealed {
                Some(sealed) => {
                    let v = st.cipher.open(c.staff_id, sealed).map_err(|_| {
                        ApiError::Internal(format!(
                            "template {} does not decrypt with the configured key",
                            c.template_id
                        ))
                    })?;
                    live.insert(c.template_id, (c.staff_id, v));
                }
                None => {
                    live.remove(&c.template_id);
                }
            }
        }
        match page.changes.last() {
            Some(last) if last.version < page.current_version => since = last.version,
            _ => break,
        }
    }
    let mut gallery = models::gallery::Gallery::with_capacity(live.len());
    for (template_id, (staff_id, v)) in live {
        // A stored template of the wrong length cannot be compared; the kiosks skip it too.
        if gallery.insert(staff_id, template_id as u64, &v).is_err() {
            tracing::warn!(template_id, "stored template cannot join the gallery");
        }
    }
    Ok(gallery)
}

/// Content types the photo route reads. The decoder goes by the bytes, not by this header;
/// the check only turns away clients that meant to send something else (JSON, a form).
const PHOTO_TYPES: [&str; 4] = [
    "image/jpeg",
    "image/png",
    "image/webp",
    "application/octet-stream",
];

/// Enrol a face template from a photo: the server finds the main face, refuses unusable photos
/// (`bad_image`, `no_face`, `several_faces`, `poor_quality`) and stores the embedding encrypted
/// like `POST /staff/{id}/templates` (refused without consent, and by the same look-alike guard:
/// 409 `face_matches_other`, 422 `face_unlike_own`). Body: the image bytes (JPEG, PNG
/// or WebP, at most 10 MB). 503 `face_pipeline_unavailable` when the face models are not
/// installed. Roles: manager.
#[utoipa::path(post, path = "/api/v1/staff/{id}/face-photos", tag = "faces", params(("id" = i64, Path)),
    request_body(description = "The photo's bytes, at most 10 MB", content(
        (PhotoBytes = "image/jpeg"), (PhotoBytes = "image/png"), (PhotoBytes = "image/webp"),
        (PhotoBytes = "application/octet-stream"))),
    responses((status = 200, body = FacePhotoOut), (status = 404, body = wire::ErrorBody),
        (status = 409, body = wire::ErrorBody), (status = 413, body = wire::ErrorBody), (status = 415, body = wire::ErrorBody),
        (status = 422, body = wire::ErrorBody), (status = 503, body = wire::ErrorBody)))]
pub async fn add_face_photo(
    State(st): State<AppState>,
    Need(p): Need<MANAGER>,
    ApiPath(id): ApiPath<i64>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<FacePhotoOut>, ApiError> {
    if let Some(ct) = headers.get(header::CONTENT_TYPE) {
        // The media type without parameters (`image/jpeg; charset=...` is still JPEG).
        let media = ct
            .to_str()
            .unwrap_or("")
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        if !PHOTO_TYPES.contains(&media.as_str()) {
            return Err(ApiError::UnsupportedMediaType {
                code: "unsupported_media_type",
                message: format!(
                    "send the photo's bytes as {} (got {media:?})",
                    PHOTO_TYPES.join(", ")
                ),
            });
        }
    }
    let body = body.map_err(|e| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::PayloadTooLarge {
                code: "photo_too_large",
                message: format!(
                    "the photo is larger than {} MB",
                    crate::face_photos::MAX_PHOTO_BYTES / (1024 * 1024)
                ),
            }
        } else {
            ApiError::bad_request("bad_body", e.body_text())
        }
    })?;
    let (t, face) = enrol_photo(&st, id, body, &p.actor()).await?;
    Ok(Json(FacePhotoOut {
        id: t.id,
        staff_id: t.staff_id,
        version: t.version,
        deleted: t.deleted,
        quality_score: face.quality.score,
        detection_score: face.detection_score,
        eye_distance_px: face.quality.eye_distance_px,
        faces_detected: face.faces_detected,
    }))
}

/// A template from a photo: the person must exist and have consented; the server finds the
/// one clear face and stores its embedding under the look-alike guard. The API's photo route
/// and the managers' person page.
pub async fn enrol_photo(
    st: &AppState,
    id: i64,
    body: Bytes,
    actor: &store::Actor,
) -> Result<(store::TemplateMeta, crate::face_photos::PhotoFace), ApiError> {
    st.store.get_staff(id).await?;
    // The store checks consent again under a lock when writing; checking first spares the
    // pipeline a photo that could never be stored. Same code and words as the store's refusal.
    if !st.store.consent(id).await?.granted {
        return Err(ApiError::unprocessable(
            "consent_required",
            "record the person's consent before storing face templates",
        ));
    }
    let faces = st.faces.clone();
    let face = tokio::task::spawn_blocking(move || faces.enrol_photo(&body))
        .await
        .map_err(|e| ApiError::Internal(format!("photo analysis task: {e}")))?
        .map_err(photo_error)?;
    let t = store_template(st, id, &face.embedding, actor).await?;
    Ok((t, face))
}

fn photo_error(e: PhotoError) -> ApiError {
    let message = e.to_string();
    match e {
        PhotoError::Unavailable(_) => ApiError::NotAvailable {
            code: "face_pipeline_unavailable",
            message,
        },
        PhotoError::BadImage(_) => ApiError::unprocessable("bad_image", message),
        PhotoError::NoFace => ApiError::unprocessable("no_face", message),
        PhotoError::SeveralFaces { .. } => ApiError::unprocessable("several_faces", message),
        PhotoError::PoorQuality { .. } => ApiError::unprocessable("poor_quality", message),
        PhotoError::Pipeline(_) => ApiError::Internal(message),
    }
}

/// Delete a template (logged; kiosks receive a tombstone). Roles: manager.
#[utoipa::path(delete, path = "/api/v1/templates/{id}", tag = "faces", params(("id" = i64, Path)), responses((status = 200, body = TemplateOut)))]
pub async fn delete_template(
    State(st): State<AppState>,
    Need(p): Need<MANAGER>,
    ApiPath(id): ApiPath<i64>,
) -> Result<Json<TemplateOut>, ApiError> {
    Ok(Json(template_out(
        st.store.delete_template(id, now_ms(), &p.actor()).await?,
    )))
}
