//! A page that cannot be shown answers a small HTML page in the visitor's language with the
//! right status code (never the API's JSON, never a stack of internals: those go to the log).

use crate::i18n::Lang;
use crate::HostError;
use askama::Template;
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use store::StoreError;

#[derive(Debug)]
pub struct PageError {
    pub status: StatusCode,
    pub lang: Lang,
    pub message: String,
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage<'a> {
    t: &'static crate::i18n::Tr,
    lang: Lang,
    status: u16,
    message: &'a str,
}

impl PageError {
    pub fn new(status: StatusCode, lang: Lang, message: impl Into<String>) -> Self {
        PageError {
            status,
            lang,
            message: message.into(),
        }
    }

    pub fn forbidden(lang: Lang) -> Self {
        PageError::new(StatusCode::FORBIDDEN, lang, lang.tr().forbidden)
    }

    pub fn not_found(lang: Lang) -> Self {
        PageError::new(StatusCode::NOT_FOUND, lang, lang.tr().not_found)
    }

    pub fn bad_filter(lang: Lang) -> Self {
        PageError::new(StatusCode::BAD_REQUEST, lang, lang.tr().bad_filter)
    }

    pub fn bad_form(lang: Lang) -> Self {
        PageError::new(StatusCode::FORBIDDEN, lang, lang.tr().form_expired)
    }

    pub fn internal(lang: Lang, detail: impl std::fmt::Display) -> Self {
        tracing::error!(%detail, "page failed");
        PageError::new(StatusCode::INTERNAL_SERVER_ERROR, lang, lang.tr().internal)
    }

    pub fn from_store(lang: Lang, e: StoreError) -> Self {
        match e {
            StoreError::NotFound(_) => PageError::not_found(lang),
            StoreError::Conflict { message, .. } => {
                PageError::new(StatusCode::CONFLICT, lang, message)
            }
            StoreError::Invalid { message, .. } => {
                PageError::new(StatusCode::UNPROCESSABLE_ENTITY, lang, message)
            }
            e @ StoreError::Busy { .. } => {
                tracing::warn!(detail = %e.report(), "page: store busy");
                PageError::new(StatusCode::SERVICE_UNAVAILABLE, lang, lang.tr().unavailable)
            }
            e => PageError::internal(lang, e.report()),
        }
    }

    pub fn from_host(lang: Lang, e: HostError) -> Self {
        let t = lang.tr();
        match e {
            HostError::BadCredentials => {
                PageError::new(StatusCode::UNAUTHORIZED, lang, t.bad_credentials)
            }
            HostError::RateLimited => {
                PageError::new(StatusCode::TOO_MANY_REQUESTS, lang, t.rate_limited)
            }
            HostError::Refused {
                status, message, ..
            } => PageError::new(
                StatusCode::from_u16(status).unwrap_or(StatusCode::UNPROCESSABLE_ENTITY),
                lang,
                message,
            ),
            HostError::Unavailable(detail) => {
                tracing::warn!(%detail, "page: unavailable");
                PageError::new(StatusCode::SERVICE_UNAVAILABLE, lang, t.unavailable)
            }
            HostError::Internal(detail) => PageError::internal(lang, detail),
        }
    }
}

/// `result.or_page(lang)?` in handlers.
pub trait OrPage<T> {
    fn or_page(self, lang: Lang) -> Result<T, PageError>;
}

impl<T> OrPage<T> for Result<T, StoreError> {
    fn or_page(self, lang: Lang) -> Result<T, PageError> {
        self.map_err(|e| PageError::from_store(lang, e))
    }
}

impl<T> OrPage<T> for Result<T, HostError> {
    fn or_page(self, lang: Lang) -> Result<T, PageError> {
        self.map_err(|e| PageError::from_host(lang, e))
    }
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        let page = ErrorPage {
            t: self.lang.tr(),
            lang: self.lang,
            status: self.status.as_u16(),
            message: &self.message,
        };
        match page.render() {
            Ok(html) => (self.status, Html(html)).into_response(),
            Err(e) => {
                tracing::error!(error = %e, "error page did not render");
                (self.status, self.message).into_response()
            }
        }
    }
}
