//! Login, logout and "who am I". Sessions are random tokens whose SHA-256 is stored in the
//! database; the cookie is HttpOnly and SameSite=Strict, and a separate CSRF token (returned in
//! the login body, never in a cookie) must accompany every state-changing request.

use super::types::{LoginRequest, LoginResponse, MeResponse};
use crate::auth::{session_token_from, ClientIp, Need, Principal, KIOSK, PEOPLE, SESSION_COOKIE};
use crate::crypto::{dummy_password_hash, random_token, token_hash, verify_password};
use crate::error::{ApiError, JsonBody};
use crate::state::{now_ms, AppState};
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::Json;
use store::NewSession;

/// Log in with a username and password (managers, staff, auditors). Public.
#[utoipa::path(post, path = "/api/v1/auth/login", tag = "session", request_body = LoginRequest,
    responses((status = 200, body = LoginResponse), (status = 401, body = wire::ErrorBody), (status = 429, body = wire::ErrorBody)))]
pub async fn login(
    State(st): State<AppState>,
    ClientIp(ip): ClientIp,
    JsonBody(req): JsonBody<LoginRequest>,
) -> Result<Response, ApiError> {
    let opened = open_session(&st, &req.username, &req.password, &ip).await?;
    let body = LoginResponse {
        csrf_token: opened.csrf,
        role: opened.user.role.as_str().into(),
        user_id: opened.user.id,
        staff_id: opened.user.staff_id,
    };
    let mut resp = Json(body).into_response();
    resp.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_str(&opened.cookie).map_err(|e| ApiError::Internal(e.to_string()))?,
    );
    Ok(resp)
}

/// A session just opened: its user, CSRF token and the `Set-Cookie` value carrying it.
pub struct OpenedSession {
    pub user: store::User,
    pub csrf: String,
    pub cookie: String,
}

/// Checks a password under the login rate limits and opens a database session: the one way
/// in for the API's login and the web pages' sign-in form.
pub async fn open_session(
    st: &AppState,
    username: &str,
    password: &str,
    ip: &str,
) -> Result<OpenedSession, ApiError> {
    let now = now_ms();
    login_budget(st, username, ip, now).await?;
    let user = st.store.user_by_username(username).await?;
    let stored = user
        .as_ref()
        .map(|u| u.password_hash.clone())
        .unwrap_or_else(|| dummy_password_hash().to_string());
    let password = password.to_string();
    // Argon2 is deliberately slow: keep it off the async workers.
    let ok = tokio::task::spawn_blocking(move || verify_password(&password, &stored))
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    let user = match user {
        // A one-time sign-in code stops working at its time, like a wrong password (the
        // manager issues a new one).
        Some(u) if ok && u.active && u.one_time_until_ms.is_none_or(|t| now < t) => u,
        _ => return Err(ApiError::Unauthorized),
    };
    let token = random_token();
    let csrf = random_token();
    let ttl_ms = st.cfg.session_ttl_hours.max(1) * 3600 * 1000;
    st.store
        .create_session(NewSession {
            token_hash: token_hash(&token),
            user_id: user.id,
            csrf_token: csrf.clone(),
            created_ms: now,
            expires_ms: now + ttl_ms,
        })
        .await?;
    let cookie = format!(
        "{SESSION_COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}{}",
        ttl_ms / 1000,
        if st.cfg.cookie_secure { "; Secure" } else { "" }
    );
    Ok(OpenedSession { user, csrf, cookie })
}

/// Throttles password guessing without handing strangers a lock on other people's accounts:
/// the budget is per (account, source address), so guesses from elsewhere never lock out the
/// account's owner, with a per-source budget over all accounts against spraying one password
/// over many. Each budget has a minute window and a longer hour window, so a source that keeps
/// coming back after each minute is held off for longer (a back-off). Counters live in the
/// database, so they hold across instances.
async fn login_budget(st: &AppState, username: &str, ip: &str, now: i64) -> Result<(), ApiError> {
    let per_minute = st.cfg.login_attempts_per_minute.max(1);
    let account = format!("{}|{ip}", username.to_lowercase());
    let budgets = [
        (format!("login:{account}"), 60_000, per_minute),
        (format!("login-h:{account}"), 3_600_000, per_minute * 3),
        (format!("login-src:{ip}"), 60_000, per_minute * 10),
    ];
    for (key, window_ms, max) in budgets {
        if !st.store.rate_limit_hit(&key, now, window_ms, max).await? {
            return Err(ApiError::TooManyRequests);
        }
    }
    Ok(())
}

/// End the current session. Roles: staff, manager, auditor.
#[utoipa::path(post, path = "/api/v1/auth/logout", tag = "session", responses((status = 204)))]
pub async fn logout(
    State(st): State<AppState>,
    _who: Need<PEOPLE>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    if let Some(t) = session_token_from(&headers) {
        st.store.delete_session(&token_hash(&t)).await?;
    }
    let mut resp = axum::http::StatusCode::NO_CONTENT.into_response();
    resp.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_static("cp_session=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0"),
    );
    Ok(resp)
}

/// Who is calling. Roles: any authenticated caller (kiosk, staff, manager, auditor).
#[utoipa::path(get, path = "/api/v1/me", tag = "session", responses((status = 200, body = MeResponse)))]
pub async fn me(Need(p): Need<{ PEOPLE | KIOSK }>) -> Json<MeResponse> {
    Json(match p {
        Principal::User(u) => MeResponse {
            user_id: Some(u.id),
            username: Some(u.username),
            role: u.role.as_str().into(),
            staff_id: u.staff_id,
            kiosk_id: None,
        },
        Principal::Kiosk(k) => MeResponse {
            user_id: None,
            username: None,
            role: "kiosk".into(),
            staff_id: None,
            kiosk_id: Some(k.id),
        },
    })
}
