//! Who is looking at a page, and signing in and out. The visitor is named by the API's own
//! session cookie, looked up through [`crate::Host::session`]; a form is accepted only with the
//! session's CSRF token in its hidden `csrf` field (the API takes the same token in a header).
//! The sign-in form has no session yet, so it carries a token that must match a short-lived
//! `cp_login_csrf` cookie set with the form (double submit; the cookies are SameSite=Strict).

use crate::error::{OrPage, PageError};
use crate::i18n::{Lang, Tr, LANG_COOKIE};
use crate::{HostRef, PageSession};
use askama::Template;
use askama_web::WebTemplate;
use axum::extract::{ConnectInfo, FromRequestParts, Path, Query, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use serde::Deserialize;
use std::convert::Infallible;
use store::{Role, User};

pub const SESSION_COOKIE: &str = "cp_session";
const LOGIN_CSRF_COOKIE: &str = "cp_login_csrf";

/// A cookie's value from the request's `Cookie` headers.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// What every page's frame shows: language, who is signed in, the CSRF token its forms carry
/// and the path the language switch comes back to.
pub struct Chrome {
    pub t: &'static Tr,
    pub lang: Lang,
    pub csrf: String,
    pub who: String,
    pub manager: bool,
    pub path: String,
    /// Which navigation entry is current (`dashboard`, `journal`, ...).
    pub here: &'static str,
}

impl Chrome {
    pub fn switch_href(&self) -> String {
        format!("/lang/{}?back={}", self.lang.other().code(), self.path)
    }

    /// A staff category as the pages show it. The three that seeds and imports use by default
    /// have names in both languages; in Chinese the stored code follows in brackets, since the
    /// import file and the forms take the code. A category a manager made up shows as written.
    pub fn category(&self, code: &str) -> String {
        let name = match code {
            "regular" => self.t.cat_regular,
            "contractor" => self.t.cat_contractor,
            "intern" => self.t.cat_intern,
            _ => return code.to_string(),
        };
        match self.lang {
            Lang::Zh => format!("{name}（{code}）"),
            Lang::En => name.to_string(),
        }
    }

    pub fn aria_current(&self, entry: &str) -> &'static str {
        if self.here == entry {
            "page"
        } else {
            "false"
        }
    }
}

/// A signed-in person (any role).
pub struct Visitor {
    pub session: PageSession,
    pub lang: Lang,
    pub path: String,
}

impl Visitor {
    pub fn user(&self) -> &User {
        &self.session.user
    }

    pub fn chrome(&self, here: &'static str) -> Chrome {
        let u = &self.session.user;
        Chrome {
            t: self.lang.tr(),
            lang: self.lang,
            csrf: self.session.csrf_token.clone(),
            who: u.username.clone(),
            manager: u.role == Role::Manager,
            path: self.path.clone(),
            here,
        }
    }

    /// Who the audit log and the journal name for what this visitor does.
    pub fn actor(&self) -> store::Actor {
        let u = &self.session.user;
        store::Actor::User {
            id: u.id,
            username: u.username.clone(),
            role: u.role,
        }
    }

    /// Refuses a form whose hidden `csrf` field is not this session's token.
    pub fn check_csrf(&self, host: &HostRef, sent: &str) -> Result<(), PageError> {
        if host.csrf_matches(&self.session, sent) {
            Ok(())
        } else {
            Err(PageError::bad_form(self.lang))
        }
    }
}

/// Only for a path on this site (no `//host`, no scheme): where a sign-in may send one back.
pub fn local_path(p: &str) -> Option<&str> {
    (p.starts_with('/') && !p.starts_with("//") && !p.contains('\\') && !p.contains("://"))
        .then_some(p)
}

fn path_and_query(parts: &Parts) -> String {
    parts
        .uri
        .path_and_query()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "/".into())
}

impl FromRequestParts<HostRef> for Visitor {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, host: &HostRef) -> Result<Self, Response> {
        let lang = Lang::of(parts);
        let path = path_and_query(parts);
        let session = match cookie(&parts.headers, SESSION_COOKIE) {
            Some(token) => host
                .session(token)
                .await
                .or_page(lang)
                .map_err(IntoResponse::into_response)?,
            None => None,
        };
        match session {
            Some(session) => Ok(Visitor {
                session,
                lang,
                path,
            }),
            // Pages send a stranger to the sign-in form and back; forms just refuse.
            None if parts.method == axum::http::Method::GET => {
                Err(Redirect::to(&format!("/login?next={}", encode(&path))).into_response())
            }
            None => Err(
                PageError::new(StatusCode::UNAUTHORIZED, lang, lang.tr().form_expired)
                    .into_response(),
            ),
        }
    }
}

/// A signed-in manager.
pub struct Manager(pub Visitor);

impl FromRequestParts<HostRef> for Manager {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, host: &HostRef) -> Result<Self, Response> {
        let v = Visitor::from_request_parts(parts, host).await?;
        if v.user().role != Role::Manager {
            return Err(PageError::forbidden(v.lang).into_response());
        }
        Ok(Manager(v))
    }
}

/// A signed-in manager or auditor: who may read the audit log and take the inspection export.
pub struct Overseer(pub Visitor);

impl FromRequestParts<HostRef> for Overseer {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, host: &HostRef) -> Result<Self, Response> {
        let v = Visitor::from_request_parts(parts, host).await?;
        if !matches!(v.user().role, Role::Manager | Role::Auditor) {
            return Err(PageError::forbidden(v.lang).into_response());
        }
        Ok(Overseer(v))
    }
}

/// A signed-in member of staff and their own staff id: the only person whose data their
/// pages ever read.
pub struct StaffMember(pub Visitor, pub i64);

impl FromRequestParts<HostRef> for StaffMember {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, host: &HostRef) -> Result<Self, Response> {
        let v = Visitor::from_request_parts(parts, host).await?;
        if v.user().must_set_password() {
            // Signed in with a one-time code: choosing a password comes first.
            return Err(if parts.method == axum::http::Method::GET {
                Redirect::to("/me/password").into_response()
            } else {
                PageError::forbidden(v.lang).into_response()
            });
        }
        match (v.user().role, v.user().staff_id) {
            (Role::Staff, Some(id)) => Ok(StaffMember(v, id)),
            _ => Err(PageError::forbidden(v.lang).into_response()),
        }
    }
}

/// Percent-encodes a path for a query parameter.
pub fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'/' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

fn landing(user: &User) -> &'static str {
    match user.role {
        Role::Manager => "/manage",
        // The audit page is the one page of the desk an auditor may see.
        Role::Auditor => "/manage/audit",
        Role::Staff => "/me",
    }
}

/// `/`: the visitor's own start page, or the sign-in form.
pub async fn home(State(host): State<HostRef>, headers: HeaderMap) -> Response {
    if let Some(token) = cookie(&headers, SESSION_COOKIE) {
        if let Ok(Some(s)) = host.session(token).await {
            return Redirect::to(landing(&s.user)).into_response();
        }
    }
    Redirect::to("/login").into_response()
}

#[derive(Template, WebTemplate)]
#[template(path = "login.html")]
pub struct LoginPage {
    pub c: Chrome,
    pub next: String,
    pub error: Option<&'static str>,
    pub username: String,
}

#[derive(Deserialize)]
pub struct NextQuery {
    #[serde(default)]
    pub next: String,
}

fn login_chrome(lang: Lang, csrf: String, path: String) -> Chrome {
    Chrome {
        t: lang.tr(),
        lang,
        csrf,
        who: String::new(),
        manager: false,
        path,
        here: "",
    }
}

fn login_response(host: &HostRef, page: LoginPage, status: StatusCode) -> Response {
    let cookie = format!(
        "{LOGIN_CSRF_COOKIE}={}; Path=/login; HttpOnly; SameSite=Strict; Max-Age=3600{}",
        page.c.csrf,
        if host.cookie_secure() { "; Secure" } else { "" }
    );
    let mut resp = (status, page).into_response();
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        resp.headers_mut().append(header::SET_COOKIE, v);
    }
    resp
}

pub async fn login_page(
    State(host): State<HostRef>,
    headers: HeaderMap,
    Query(q): Query<NextQuery>,
) -> Response {
    let lang = Lang::of_headers(&headers);
    let next = local_path(&q.next).unwrap_or("").to_string();
    let path = if next.is_empty() {
        "/login".to_string()
    } else {
        format!("/login?next={}", encode(&next))
    };
    let page = LoginPage {
        c: login_chrome(lang, host.random_token(), path),
        next,
        error: None,
        username: String::new(),
    };
    login_response(&host, page, StatusCode::OK)
}

#[derive(Deserialize)]
pub struct LoginForm {
    #[serde(default)]
    pub csrf: String,
    #[serde(default)]
    pub username: String,
    #[serde(default)]
    pub password: String,
    #[serde(default)]
    pub next: String,
}

pub async fn login_submit(
    State(host): State<HostRef>,
    headers: HeaderMap,
    ClientIp(ip): ClientIp,
    Form(f): Form<LoginForm>,
) -> Response {
    let lang = Lang::of_headers(&headers);
    let t = lang.tr();
    let next = local_path(&f.next).unwrap_or("").to_string();
    let again = |error: &'static str, status: StatusCode| {
        let page = LoginPage {
            c: login_chrome(lang, host.random_token(), "/login".into()),
            next: next.clone(),
            error: Some(error),
            username: f.username.clone(),
        };
        login_response(&host, page, status)
    };
    let expected = cookie(&headers, LOGIN_CSRF_COOKIE).unwrap_or("");
    if expected.is_empty() || !constant_time_eq(expected.as_bytes(), f.csrf.as_bytes()) {
        return again(t.form_expired, StatusCode::FORBIDDEN);
    }
    match host.sign_in(f.username.trim(), &f.password, &ip).await {
        Ok(signed) => {
            let to = if next.is_empty() {
                landing(&signed.user).to_string()
            } else {
                next
            };
            let mut resp = Redirect::to(&to).into_response();
            if let Ok(v) = HeaderValue::from_str(&signed.set_cookie) {
                resp.headers_mut().append(header::SET_COOKIE, v);
            }
            resp
        }
        Err(crate::HostError::BadCredentials) => again(t.bad_credentials, StatusCode::UNAUTHORIZED),
        Err(crate::HostError::RateLimited) => again(t.rate_limited, StatusCode::TOO_MANY_REQUESTS),
        Err(e) => PageError::from_host(lang, e).into_response(),
    }
}

/// The caller's address, for the login rate limit (as the API counts it: the TCP peer's).
pub struct ClientIp(pub String);

impl<S: Send + Sync> FromRequestParts<S> for ClientIp {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Infallible> {
        Ok(ClientIp(
            parts
                .extensions
                .get::<ConnectInfo<std::net::SocketAddr>>()
                .map(|c| c.0.ip().to_string())
                .unwrap_or_else(|| "in-process".into()),
        ))
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[derive(Deserialize)]
pub struct CsrfForm {
    #[serde(default)]
    pub csrf: String,
}

pub async fn logout(
    State(host): State<HostRef>,
    headers: HeaderMap,
    v: Visitor,
    Form(f): Form<CsrfForm>,
) -> Result<Response, PageError> {
    v.check_csrf(&host, &f.csrf)?;
    if let Some(token) = cookie(&headers, SESSION_COOKIE) {
        host.sign_out(token).await.or_page(v.lang)?;
    }
    let mut resp = Redirect::to("/login").into_response();
    resp.headers_mut().append(
        header::SET_COOKIE,
        HeaderValue::from_static("cp_session=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0"),
    );
    Ok(resp)
}

#[derive(Deserialize)]
pub struct BackQuery {
    #[serde(default)]
    pub back: String,
}

/// `/lang/en?back=/me`: remembers the language for a year and returns to the page.
pub async fn switch_language(Path(lang): Path<String>, Query(q): Query<BackQuery>) -> Response {
    let lang = Lang::parse(&lang).unwrap_or(Lang::Zh);
    let back = local_path(&q.back).unwrap_or("/");
    let mut resp = Redirect::to(back).into_response();
    let cookie = format!(
        "{LANG_COOKIE}={}; Path=/; SameSite=Lax; Max-Age=31536000",
        lang.code()
    );
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        resp.headers_mut().append(header::SET_COOKIE, v);
    }
    resp
}

#[cfg(test)]
mod category_tests {
    use super::*;

    fn chrome(lang: Lang) -> Chrome {
        Chrome {
            t: lang.tr(),
            lang,
            csrf: String::new(),
            who: String::new(),
            manager: true,
            path: "/manage/settings".into(),
            here: "settings",
        }
    }

    #[test]
    fn known_categories_are_named_in_the_page_language_and_others_shown_as_written() {
        assert_eq!(
            chrome(Lang::Zh).category("contractor"),
            "外包人员（contractor）"
        );
        assert_eq!(chrome(Lang::En).category("intern"), "Intern");
        assert_eq!(chrome(Lang::Zh).category("退休返聘"), "退休返聘");
        assert_eq!(chrome(Lang::En).category("visiting"), "visiting");
    }
}
