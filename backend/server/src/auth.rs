//! Who is calling. Kiosks send `Authorization: Bearer <device token>`; people (manager, staff,
//! auditor) carry a session cookie set at login. A cookie is sent by browsers automatically, so
//! every state-changing request made with one must also carry the session's CSRF token in the
//! `X-CSRF-Token` header, which a foreign site cannot read or forge. Sessions live in the
//! database, so any instance can serve any request.
//!
//! Handlers declare who may call them through the extractor's type: `Need<{MANAGER | AUDITOR}>`.
//! No credentials: 401; valid credentials of the wrong role (or a missing CSRF token): 403.

use crate::crypto::token_hash;
use crate::error::ApiError;
use crate::state::{now_ms, AppState};
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{header, Method};
use store::{Actor, Kiosk, Role, User};

pub const KIOSK: u8 = 1;
pub const STAFF: u8 = 2;
pub const MANAGER: u8 = 4;
pub const AUDITOR: u8 = 8;
pub const PEOPLE: u8 = STAFF | MANAGER | AUDITOR;

pub const SESSION_COOKIE: &str = "cp_session";
pub const CSRF_HEADER: &str = "x-csrf-token";

#[derive(Clone, Debug)]
pub enum Principal {
    Kiosk(Kiosk),
    User(User),
}

impl Principal {
    pub fn mask(&self) -> u8 {
        match self {
            Principal::Kiosk(_) => KIOSK,
            Principal::User(u) => match u.role {
                Role::Staff => STAFF,
                Role::Manager => MANAGER,
                Role::Auditor => AUDITOR,
            },
        }
    }

    pub fn actor(&self) -> Actor {
        match self {
            Principal::Kiosk(k) => Actor::Kiosk { id: k.id },
            Principal::User(u) => Actor::User {
                id: u.id,
                username: u.username.clone(),
                role: u.role,
            },
        }
    }

    pub fn kiosk(&self) -> Result<&Kiosk, ApiError> {
        match self {
            Principal::Kiosk(k) => Ok(k),
            Principal::User(_) => Err(ApiError::Forbidden("kiosks only")),
        }
    }

    pub fn user(&self) -> Result<&User, ApiError> {
        match self {
            Principal::User(u) => Ok(u),
            Principal::Kiosk(_) => Err(ApiError::Forbidden("people only")),
        }
    }

    /// The staff id of a staff user (their own records).
    pub fn own_staff_id(&self) -> Result<i64, ApiError> {
        self.user()?
            .staff_id
            .ok_or(ApiError::Forbidden("not linked to a staff member"))
    }
}

/// An authenticated caller whose role is in the bit mask `M`.
pub struct Need<const M: u8>(pub Principal);

fn cookie_value<'a>(parts: &'a Parts, name: &str) -> Option<&'a str> {
    parts
        .headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// Whether a sent CSRF token is the session's (constant time): the API's header and the web
/// pages' hidden form field are checked by this one function.
pub fn csrf_matches(sent: &str, expected: &str) -> bool {
    constant_time_eq(sent.as_bytes(), expected.as_bytes())
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

pub async fn authenticate(parts: &Parts, state: &AppState) -> Result<Principal, ApiError> {
    if let Some(auth) = parts.headers.get(header::AUTHORIZATION) {
        let token = auth
            .to_str()
            .ok()
            .and_then(|v| v.strip_prefix("Bearer "))
            .ok_or(ApiError::Unauthorized)?
            .trim();
        let h = token_hash(token);
        if let Some(k) = state.kiosk_cache.get(&h) {
            return Ok(Principal::Kiosk(k));
        }
        let k = state
            .store
            .kiosk_by_token(&h)
            .await?
            .ok_or(ApiError::Unauthorized)?;
        state.kiosk_cache.put(h, k.clone());
        // "Last heard from" for the managers' kiosk list: off the request's path, and only on
        // a cache miss (every few seconds at most per kiosk; the store keeps minutes).
        let store = state.store.clone();
        let id = k.id;
        tokio::spawn(async move {
            if let Err(e) = store.kiosk_seen(id, now_ms()).await {
                tracing::debug!(kiosk = id, error = %e.report(), "could not note the kiosk as seen");
            }
        });
        return Ok(Principal::Kiosk(k));
    }
    let token = cookie_value(parts, SESSION_COOKIE).ok_or(ApiError::Unauthorized)?;
    let session = state
        .store
        .session(&token_hash(token), now_ms())
        .await?
        .ok_or(ApiError::Unauthorized)?;
    let safe = matches!(parts.method, Method::GET | Method::HEAD | Method::OPTIONS);
    if !safe {
        let sent = parts
            .headers
            .get(CSRF_HEADER)
            .map(|v| v.as_bytes())
            .unwrap_or_default();
        if !constant_time_eq(sent, session.csrf_token.as_bytes()) {
            return Err(ApiError::Forbidden(
                "missing or wrong CSRF token (send the X-CSRF-Token header from login)",
            ));
        }
    }
    if session.user.must_set_password() {
        // Signed in with a one-time code: the web page's password form is the only way on.
        return Err(ApiError::Forbidden(
            "sign in on the staff web page and choose a password first",
        ));
    }
    Ok(Principal::User(session.user))
}

impl<const M: u8> FromRequestParts<AppState> for Need<M> {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let p = authenticate(parts, state).await?;
        if p.mask() & M == 0 {
            return Err(ApiError::Forbidden("this role may not do that"));
        }
        Ok(Need(p))
    }
}

pub fn session_token_from(parts_headers: &axum::http::HeaderMap) -> Option<String> {
    parts_headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == SESSION_COOKIE)
        .map(|(_, v)| v.to_string())
}

/// The caller's network address, for limits that must not let one stranger lock out everyone:
/// failures are counted per source, so a flood from one address throttles that address only.
/// (The address is the TCP peer's; behind a reverse proxy every caller shares the proxy's, so
/// give the proxy its own limits.) Requests made in-process, as tests do, share one.
pub struct ClientIp(pub String);

impl<S: Send + Sync> FromRequestParts<S> for ClientIp {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Ok(ClientIp(
            parts
                .extensions
                .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
                .map(|c| c.0.ip().to_string())
                .unwrap_or_else(|| "in-process".into()),
        ))
    }
}
