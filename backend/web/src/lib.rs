//! CleanPlate's web pages: the managers' desktop ledger (`/manage/...`) and the staff's mobile
//! page (`/me/...`), rendered on the server from compile-time checked askama templates, working
//! with no JavaScript, every asset served from this crate (`include_str!`), zh-CN by default and
//! English on request (remembered in a cookie).
//!
//! The backend server mounts these pages beside its JSON API, so this crate cannot depend on
//! the server. Instead it declares the narrow [`Host`] trait — the few things the pages need
//! from the server besides the store: look up a session, check its CSRF token, sign in and
//! out, start a top-up through the payment provider, issue a pay code — and the server
//! implements it with the very functions its API handlers use (`backend::pages`). So the
//! dependency points one way (`backend` → `web` → `store`), sessions, CSRF tokens, the login
//! rate limit and the payment provider exist once, and a page and its API route share one
//! rule. Everything else the pages read or write goes through the same [`store::Store`]
//! methods as the JSON handlers, never the API over HTTP.

pub mod audit;
pub mod chart;
pub mod error;
pub mod format;
pub mod i18n;
pub mod import;
pub mod journal;
pub mod manage;
pub mod money_desk;
pub mod password;
pub mod people;
pub mod refunds;
pub mod session;
pub mod settings;
pub mod staff;
pub mod upload;

use axum::http::{header, HeaderValue};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::Router;
use std::sync::Arc;
use store::{Store, User};
use tower_http::set_header::SetResponseHeaderLayer;

pub use error::PageError;

/// What a signed-in visitor's session holds (the same session the API's cookie names).
#[derive(Clone, Debug)]
pub struct PageSession {
    pub user: User,
    pub csrf_token: String,
}

/// A successful sign-in: the user and the `Set-Cookie` value that carries the new session.
#[derive(Clone, Debug)]
pub struct SignIn {
    pub user: User,
    pub set_cookie: String,
}

/// Why the server refused something the pages asked of it.
#[derive(Debug, thiserror::Error)]
pub enum HostError {
    #[error("wrong username or password")]
    BadCredentials,
    #[error("too many attempts; wait a minute")]
    RateLimited,
    /// The request was understood and refused (the message is safe to show; the code is the
    /// API's stable error code, for pages that say it in the visitor's language).
    #[error("{message}")]
    Refused {
        status: u16,
        code: String,
        message: String,
    },
    #[error("temporarily unavailable")]
    Unavailable(String),
    #[error("internal error")]
    Internal(String),
}

/// The server's side of the pages (see the crate's doc comment).
#[async_trait::async_trait]
pub trait Host: Send + Sync + 'static {
    /// The book of record; the same store the API handlers use.
    fn store(&self) -> &Arc<dyn Store>;
    /// The server's clock (tests pin it).
    fn now_ms(&self) -> i64;
    /// A fresh unguessable token (for the sign-in form's CSRF cookie).
    fn random_token(&self) -> String;
    /// Whether cookies must be marked `Secure` (the server is behind HTTPS).
    fn cookie_secure(&self) -> bool;
    /// The live session named by the session cookie's value, if any.
    async fn session(&self, cookie_token: &str) -> Result<Option<PageSession>, HostError>;
    /// Whether `sent` is the session's CSRF token (compared as the API compares it).
    fn csrf_matches(&self, session: &PageSession, sent: &str) -> bool;
    /// Checks a password under the API's login rate limits and opens a session.
    async fn sign_in(
        &self,
        username: &str,
        password: &str,
        client_ip: &str,
    ) -> Result<SignIn, HostError>;
    /// Ends the session named by the cookie's value.
    async fn sign_out(&self, cookie_token: &str) -> Result<(), HostError>;
    /// Creates a top-up order for the user (a staff member) and answers the provider's pay
    /// page address, where the payer is sent.
    async fn start_top_up(&self, user: &User, amount: ledger::Fen) -> Result<String, HostError>;
    /// Issues a one-time pay code for the user; answers the code and when it expires (ms).
    async fn new_pay_code(&self, user: &User) -> Result<(String, i64), HostError>;
    /// A manager gives a member of staff a one-time sign-in code (their first sign-in, or a
    /// forgotten password); answers the code, to be shown once, and when it stops working.
    async fn issue_sign_in_code(
        &self,
        manager: &User,
        staff_id: i64,
    ) -> Result<(String, i64), HostError>;
    /// Enrols a face template for a person from a photo, as the API's `face-photos` route
    /// does (consent, one clear face of good quality, the look-alike guard); answers the
    /// photo's quality score (0-1).
    async fn enrol_photo(
        &self,
        manager: &User,
        staff_id: i64,
        photo: Vec<u8>,
    ) -> Result<f32, HostError>;
    /// A one-time code a new kiosk registers with at the canteen (`kiosk register --code`);
    /// answers the code, to be shown once, and when it stops working.
    async fn issue_kiosk_code(
        &self,
        manager: &User,
        canteen_id: i64,
    ) -> Result<(String, i64), HostError>;
    /// Revokes a kiosk's token on this instance at once (and on others within their token
    /// cache time), as the API's revoke does.
    async fn revoke_kiosk(&self, manager: &User, kiosk_id: i64) -> Result<(), HostError>;
    /// Asks the payment provider about a top-up order and credits it if it was paid (exactly
    /// once); answers `not_paid` or the credit's outcome (`credited`, `already_credited`, ...).
    async fn reconcile_top_up(&self, order_no: &str) -> Result<String, HostError>;
    /// The signed-in user chooses their own password (under the API's password rule); their
    /// other sessions end, the one named by `cookie_token` goes on.
    async fn set_own_password(
        &self,
        cookie_token: &str,
        user: &User,
        new_password: &str,
    ) -> Result<(), HostError>;
    /// Runs `backend check` (the store's invariants, the audit chain, the anchors outside the
    /// database) and answers its report. Expensive over a large ledger: run on demand.
    async fn verify_audit(&self) -> Result<store::CheckReport, HostError>;
}

/// The shared state of every page handler.
pub type HostRef = Arc<dyn Host>;

/// Largest form body the pages accept.
const MAX_FORM_BYTES: usize = 64 * 1024;

/// The pages, ready to be merged into the server's router (of any state type).
pub fn router<S: Clone + Send + Sync + 'static>(host: HostRef) -> Router<S> {
    Router::new()
        .route("/", get(session::home))
        .route(
            "/login",
            get(session::login_page).post(session::login_submit),
        )
        .route("/logout", post(session::logout))
        .route("/lang/{lang}", get(session::switch_language))
        .route("/assets/web.css", get(css))
        .route("/favicon.svg", get(favicon))
        .merge(manage::routes())
        .merge(journal::routes())
        .merge(refunds::routes())
        .merge(staff::routes())
        .merge(password::routes())
        .merge(people::routes())
        .merge(money_desk::routes())
        .merge(settings::routes())
        .merge(audit::routes())
        .layer(tower_http::limit::RequestBodyLimitLayer::new(
            MAX_FORM_BYTES,
        ))
        // Added after the small-form limit, so they keep their own (a spreadsheet, a photo).
        .merge(import::routes())
        .merge(people::upload_routes())
        // Pages show one person's money: never kept in a shared browser's cache (assets set
        // their own caching), never framed, nothing loaded from anywhere but here. Forms may
        // lead elsewhere: a top-up redirects to the payment provider's page.
        .layer(SetResponseHeaderLayer::if_not_present(
            header::CACHE_CONTROL,
            HeaderValue::from_static("no-store"),
        ))
        .layer(SetResponseHeaderLayer::overriding(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(
                "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; \
                 form-action 'self' http: https:; frame-ancestors 'none'; base-uri 'none'",
            ),
        ))
        .layer(SetResponseHeaderLayer::overriding(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ))
        .with_state(host)
}

async fn css() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        include_str!("../assets/web.css"),
    )
}

async fn favicon() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "image/svg+xml"),
            (header::CACHE_CONTROL, "public, max-age=86400"),
        ],
        include_str!("../assets/favicon.svg"),
    )
}
