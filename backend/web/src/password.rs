//! A member of staff chooses their password (`/me/password`): on their first sign-in with the
//! one-time code a manager handed them (they can do nothing else until they have), or later to
//! change it. The rule and the hashing are the server's ([`crate::Host::set_own_password`]);
//! every other session of theirs ends, so whoever saw the code or the old password is out.

use crate::error::{OrPage, PageError};
use crate::session::{cookie, Chrome, Visitor, SESSION_COOKIE};
use crate::HostRef;
use askama::Template;
use askama_web::WebTemplate;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::{Form, Router};
use serde::Deserialize;
use store::Role;

pub fn routes() -> Router<HostRef> {
    Router::new().route("/me/password", get(form).post(submit))
}

#[derive(Template, WebTemplate)]
#[template(path = "password.html")]
pub struct PasswordPage {
    pub c: Chrome,
    /// Signed in with a one-time code: this is their first password.
    pub first: bool,
    pub error: Option<String>,
}

fn staff_only(v: &Visitor) -> Result<(), PageError> {
    if v.user().role == Role::Staff {
        Ok(())
    } else {
        Err(PageError::forbidden(v.lang))
    }
}

pub async fn form(v: Visitor) -> Result<PasswordPage, PageError> {
    staff_only(&v)?;
    Ok(PasswordPage {
        first: v.user().must_set_password(),
        c: v.chrome("password"),
        error: None,
    })
}

#[derive(Deserialize)]
pub struct PasswordForm {
    #[serde(default)]
    pub csrf: String,
    #[serde(default)]
    pub password: String,
    #[serde(default)]
    pub repeat: String,
}

pub async fn submit(
    State(host): State<HostRef>,
    headers: HeaderMap,
    v: Visitor,
    Form(f): Form<PasswordForm>,
) -> Result<Response, PageError> {
    staff_only(&v)?;
    v.check_csrf(&host, &f.csrf)?;
    let t = v.lang.tr();
    let again = |error: String| PasswordPage {
        first: v.user().must_set_password(),
        c: v.chrome("password"),
        error: Some(error),
    };
    if f.password != f.repeat {
        return Ok((
            StatusCode::UNPROCESSABLE_ENTITY,
            again(t.passwords_differ.into()),
        )
            .into_response());
    }
    let token = cookie(&headers, SESSION_COOKIE).unwrap_or("");
    match host.set_own_password(token, v.user(), &f.password).await {
        Ok(()) => Ok(Redirect::to("/me?password=1").into_response()),
        Err(crate::HostError::Refused { status: 422, .. }) => Ok((
            StatusCode::UNPROCESSABLE_ENTITY,
            again(t.password_rule.into()),
        )
            .into_response()),
        Err(e) => Err(e).or_page(v.lang),
    }
}
