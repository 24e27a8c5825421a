//! Read-only oversight: the hash-chained audit log and an on-demand run of the invariant check
//! (the same one `backend check` runs).

use super::types::*;
use crate::auth::{Need, AUDITOR, MANAGER};
use crate::error::ApiError;
use crate::error::ApiQuery;
use crate::state::{now_ms, AppState};
use axum::extract::State;
use axum::Json;
use serde::Deserialize;
use utoipa::IntoParams;

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuditQuery {
    #[serde(default)]
    pub after_id: i64,
    pub limit: Option<i64>,
}

/// Audit log entries in insertion order. Roles: manager, auditor.
#[utoipa::path(get, path = "/api/v1/audit", tag = "audit", params(AuditQuery), responses((status = 200, body = Vec<AuditOut>)))]
pub async fn list_audit(
    State(st): State<AppState>,
    _w: Need<{ MANAGER | AUDITOR }>,
    ApiQuery(q): ApiQuery<AuditQuery>,
) -> Result<Json<Vec<AuditOut>>, ApiError> {
    Ok(Json(
        st.store
            .list_audit(q.after_id, q.limit.unwrap_or(500))
            .await?
            .into_iter()
            .map(Into::into)
            .collect(),
    ))
}

/// Verify the book's invariants and the audit chain now. Roles: manager, auditor.
#[utoipa::path(get, path = "/api/v1/check", tag = "audit", responses((status = 200, body = CheckOut)))]
pub async fn check(
    State(st): State<AppState>,
    _w: Need<{ MANAGER | AUDITOR }>,
) -> Result<Json<CheckOut>, ApiError> {
    let r = crate::full_check(&st.store, &st.cfg, now_ms())
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    Ok(Json(r.into()))
}
