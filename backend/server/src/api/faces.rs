//! Manager routes for face data: consent, enrolling templates (encrypted with AES-256-GCM before
//! they reach the database, and only after consent is recorded) and deleting them. Deletions
//! become tombstones that kiosks pick up on their next gallery sync.

use super::types::*;
use crate::auth::{Need, AUDITOR, MANAGER};
use crate::error::ApiPath;
use crate::error::{ApiError, JsonBody};
use crate::state::{now_ms, AppState};
use axum::extract::State;
use axum::Json;

/// A person's consent. Roles: manager, auditor.
#[utoipa::path(get, path = "/api/v1/staff/{id}/consent", tag = "faces", params(("id" = i64, Path)), responses((status = 200, body = ConsentOut)))]
pub async fn get_consent(
    State(st): State<AppState>,
    _w: Need<{ MANAGER | AUDITOR }>,
    ApiPath(id): ApiPath<i64>,
) -> Result<Json<ConsentOut>, ApiError> {
    st.store.get_staff(id).await?;
    Ok(Json(st.store.consent(id).await?.into()))
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
    Ok(Json(
        st.store
            .set_consent(id, b.granted, now_ms(), &p.actor())
            .await?
            .into(),
    ))
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
            .map(Into::into)
            .collect(),
    ))
}

/// Enrol a face template (refused without consent). Roles: manager.
#[utoipa::path(post, path = "/api/v1/staff/{id}/templates", tag = "faces", params(("id" = i64, Path)), request_body = TemplateIn,
    responses((status = 200, body = TemplateOut), (status = 422, body = wire::ErrorBody)))]
pub async fn add_template(
    State(st): State<AppState>,
    Need(p): Need<MANAGER>,
    ApiPath(id): ApiPath<i64>,
    JsonBody(b): JsonBody<TemplateIn>,
) -> Result<Json<TemplateOut>, ApiError> {
    if b.embedding.is_empty()
        || b.embedding.len() > 4096
        || b.embedding.iter().any(|x| !x.is_finite())
    {
        return Err(ApiError::unprocessable(
            "bad_embedding",
            "an embedding is 1-4096 finite numbers",
        ));
    }
    let sealed = st
        .cipher
        .seal(id, &b.embedding)
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    Ok(Json(
        st.store
            .add_template(id, sealed, now_ms(), &p.actor())
            .await?
            .into(),
    ))
}

/// Delete a template (logged; kiosks receive a tombstone). Roles: manager.
#[utoipa::path(delete, path = "/api/v1/templates/{id}", tag = "faces", params(("id" = i64, Path)), responses((status = 200, body = TemplateOut)))]
pub async fn delete_template(
    State(st): State<AppState>,
    Need(p): Need<MANAGER>,
    ApiPath(id): ApiPath<i64>,
) -> Result<Json<TemplateOut>, ApiError> {
    Ok(Json(
        st.store
            .delete_template(id, now_ms(), &p.actor())
            .await?
            .into(),
    ))
}
