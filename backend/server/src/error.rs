//! The one HTTP error type. Every handler returns `Result<_, ApiError>`; this maps each kind to a
//! status code and the JSON body `{"error": {"code": "...", "message": "..."}}` with a stable code
//! clients can branch on. Storage constraint violations arrive here as `Conflict`/`Invalid` and
//! become 409/422: they are the client's mistake, not a server failure.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use store::StoreError;
use wire::{ErrorBody, ErrorDetail};

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("authentication required")]
    Unauthorized,
    #[error("{0}")]
    Forbidden(&'static str),
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error("{message}")]
    BadRequest { code: &'static str, message: String },
    #[error("{message}")]
    Conflict { code: &'static str, message: String },
    #[error("{message}")]
    Unprocessable { code: &'static str, message: String },
    /// 404 with a specific code (when "no such thing" must not read as "no such route").
    #[error("{message}")]
    Missing { code: &'static str, message: String },
    /// The thing existed but is used up or expired (410).
    #[error("{message}")]
    Gone { code: &'static str, message: String },
    /// The body is larger than the route accepts (413).
    #[error("{message}")]
    PayloadTooLarge { code: &'static str, message: String },
    /// The body's declared content type is not one the route reads (415).
    #[error("{message}")]
    UnsupportedMediaType { code: &'static str, message: String },
    #[error("too many requests")]
    TooManyRequests,
    /// The request target is longer than any route takes (414).
    #[error("the request URI is too long")]
    UriTooLong,
    #[error("temporarily unavailable: {0}")]
    Unavailable(String),
    /// 503 whose cause the client must be told (a missing optional component, e.g. the face
    /// models), unlike `Unavailable`, whose detail is only logged.
    #[error("{message}")]
    NotAvailable { code: &'static str, message: String },
    #[error("internal error")]
    Internal(String),
}

impl ApiError {
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        ApiError::BadRequest {
            code,
            message: message.into(),
        }
    }

    pub fn unprocessable(code: &'static str, message: impl Into<String>) -> Self {
        ApiError::Unprocessable {
            code,
            message: message.into(),
        }
    }

    /// The HTTP status this error answers with.
    pub fn status(&self) -> StatusCode {
        self.parts().0
    }

    /// The stable code the error's JSON body carries (`no_face`, `face_matches_other`, ...).
    pub fn code(&self) -> &'static str {
        self.parts().1
    }

    fn parts(&self) -> (StatusCode, &'static str) {
        match self {
            ApiError::Unauthorized => (StatusCode::UNAUTHORIZED, "unauthorized"),
            ApiError::Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden"),
            ApiError::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
            ApiError::BadRequest { code, .. } => (StatusCode::BAD_REQUEST, code),
            ApiError::Conflict { code, .. } => (StatusCode::CONFLICT, code),
            ApiError::Unprocessable { code, .. } => (StatusCode::UNPROCESSABLE_ENTITY, code),
            ApiError::Gone { code, .. } => (StatusCode::GONE, code),
            ApiError::Missing { code, .. } => (StatusCode::NOT_FOUND, code),
            ApiError::PayloadTooLarge { code, .. } => (StatusCode::PAYLOAD_TOO_LARGE, code),
            ApiError::UnsupportedMediaType { code, .. } => {
                (StatusCode::UNSUPPORTED_MEDIA_TYPE, code)
            }
            ApiError::TooManyRequests => (StatusCode::TOO_MANY_REQUESTS, "rate_limited"),
            ApiError::UriTooLong => (StatusCode::URI_TOO_LONG, "uri_too_long"),
            ApiError::Unavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "busy"),
            ApiError::NotAvailable { code, .. } => (StatusCode::SERVICE_UNAVAILABLE, code),
            ApiError::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound(what) => ApiError::NotFound(what),
            StoreError::Conflict { code, message } => ApiError::Conflict { code, message },
            StoreError::Invalid { code, message } => ApiError::Unprocessable { code, message },
            e @ StoreError::Busy { .. } => ApiError::Unavailable(e.report()),
            e @ (StoreError::Database(_) | StoreError::Corrupt(_)) => {
                ApiError::Internal(e.report())
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code) = self.parts();
        // Internal details go to the log, not to the client.
        let message = match &self {
            ApiError::Internal(detail) => {
                tracing::error!(%detail, "internal error");
                "internal error".to_string()
            }
            ApiError::Unavailable(detail) => {
                tracing::warn!(%detail, "busy");
                "temporarily unavailable, retry".to_string()
            }
            other => other.to_string(),
        };
        let body = ErrorBody {
            error: ErrorDetail {
                code: code.to_string(),
                message,
            },
        };
        (status, Json(body)).into_response()
    }
}

/// JSON extraction with our error shape (axum's default rejection is plain text), and one
/// reading of every failure:
/// - no `application/json` content type: 415 `unsupported_media_type`;
/// - a body over the route's limit (declared or streamed): 413 `payload_too_large`;
/// - not JSON, or JSON of the wrong shape: 400 `bad_json`, naming the field;
/// - a field that breaks its kind's rule (`wire::fields`): 422 with that rule's code.
///
/// Whole numbers written as `480.0` are whole numbers (JSON Schema counts them as integers), so
/// a body that fails only because of such a number is read again with them made integers.
pub struct JsonBody<T>(pub T);

impl<S, T> axum::extract::FromRequest<S> for JsonBody<T>
where
    T: serde::de::DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: axum::extract::Request, state: &S) -> Result<Self, Self::Rejection> {
        if !has_json_content_type(req.headers()) {
            return Err(ApiError::UnsupportedMediaType {
                code: "unsupported_media_type",
                message: "send the body as JSON with Content-Type: application/json".into(),
            });
        }
        let bytes = axum::body::Bytes::from_request(req, state)
            .await
            .map_err(|e| {
                if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                    ApiError::PayloadTooLarge {
                        code: "payload_too_large",
                        message: "the request body is larger than this route accepts".into(),
                    }
                } else {
                    ApiError::bad_request("bad_body", e.body_text())
                }
            })?;
        parse_json(&bytes).map(JsonBody)
    }
}

fn has_json_content_type(headers: &axum::http::HeaderMap) -> bool {
    let Some(ct) = headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let mime = ct
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    mime == "application/json" || (mime.starts_with("application/") && mime.ends_with("+json"))
}

/// Reads `bytes` as `T` (see [`JsonBody`] for how each failure is reported).
pub fn parse_json<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    // Every body is an object; serde would also read a struct from an array of its fields.
    if bytes.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return Err(ApiError::bad_request(
            "bad_json",
            "the body must be a JSON object",
        ));
    }
    let (path, first) = match read_with_path::<T>(bytes) {
        Ok(v) => return Ok(v),
        Err(e) => e,
    };
    if first.classify() == serde_json::error::Category::Data {
        if let Ok(mut value) = serde_json::from_slice::<serde_json::Value>(bytes) {
            if integral_floats_to_integers(&mut value) {
                if let Ok(v) = serde_json::from_value::<T>(value) {
                    return Ok(v);
                }
            }
        }
    }
    Err(body_error(&path, &first))
}

/// `serde_json::from_slice`, with the path of the field it failed on.
fn read_with_path<T: serde::de::DeserializeOwned>(
    bytes: &[u8],
) -> Result<T, (String, serde_json::Error)> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let v = serde_path_to_error::deserialize(&mut de)
        .map_err(|e| (e.path().to_string(), e.into_inner()))?;
    // Trailing characters after the value are an error, as in `serde_json::from_slice`.
    de.end().map_err(|e| (String::new(), e))?;
    Ok(v)
}

/// A field rule's error (`wire::fields`) becomes 422 with its code; anything else 400.
fn body_error(path: &str, e: &serde_json::Error) -> ApiError {
    // serde_json appends " at line L column C"; the field's path says more to a client.
    let text = e.to_string();
    let text = text
        .rsplit_once(" at line ")
        .map(|(t, _)| t.to_string())
        .unwrap_or(text);
    if let Some(fe) = wire::fields::FieldError::parse(&text) {
        let message = if path.is_empty() || path == "." {
            fe.message
        } else {
            format!("{path}: {}", fe.message)
        };
        return ApiError::Unprocessable {
            code: fe.code,
            message,
        };
    }
    let message = if path.is_empty() || path == "." {
        text
    } else {
        format!("{path}: {text}")
    };
    ApiError::bad_request("bad_json", message)
}

/// Turns every float with no fractional part that fits an `i64` into that integer; true when
/// anything changed.
fn integral_floats_to_integers(v: &mut serde_json::Value) -> bool {
    match v {
        serde_json::Value::Number(n) if !n.is_i64() && !n.is_u64() => match n.as_f64() {
            Some(f) if f.fract() == 0.0 && f.abs() < 9.0e15 => {
                *v = serde_json::Value::from(f as i64);
                true
            }
            _ => false,
        },
        serde_json::Value::Array(items) => items
            .iter_mut()
            .fold(false, |changed, i| integral_floats_to_integers(i) | changed),
        serde_json::Value::Object(map) => map
            .values_mut()
            .fold(false, |changed, i| integral_floats_to_integers(i) | changed),
        _ => false,
    }
}

/// Gives every error response the JSON error body, whoever produced it: axum's own 405 and
/// body-limit 413 answer with plain text or nothing, and clients branch on `error.code`.
pub async fn json_errors(resp: Response) -> Response {
    let status = resp.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return resp;
    }
    let is_json = resp
        .headers()
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("application/json"));
    if is_json {
        return resp;
    }
    let (parts, body) = resp.into_parts();
    let text = axum::body::to_bytes(body, 4096)
        .await
        .map(|b| String::from_utf8_lossy(&b).trim().to_string())
        .unwrap_or_default();
    let code = match status {
        StatusCode::METHOD_NOT_ALLOWED => "method_not_allowed",
        StatusCode::PAYLOAD_TOO_LARGE => "payload_too_large",
        StatusCode::URI_TOO_LONG => "uri_too_long",
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_media_type",
        StatusCode::NOT_FOUND => "not_found",
        StatusCode::REQUEST_TIMEOUT => "timeout",
        s if s.is_server_error() => "internal",
        _ => "bad_request",
    };
    let message = if text.is_empty() {
        status
            .canonical_reason()
            .unwrap_or("request refused")
            .to_string()
    } else {
        text
    };
    let body = ErrorBody {
        error: ErrorDetail {
            code: code.to_string(),
            message,
        },
    };
    let mut out = (status, Json(body)).into_response();
    // Keep headers such as `Allow` on a 405.
    for (name, value) in parts.headers.iter() {
        if name != axum::http::header::CONTENT_TYPE && name != axum::http::header::CONTENT_LENGTH {
            out.headers_mut().insert(name.clone(), value.clone());
        }
    }
    out
}

/// Refuses request targets longer than any route needs (414, JSON), before routing.
pub const MAX_URI_BYTES: usize = 8 * 1024;

pub async fn refuse_long_uris(
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    if req.uri().to_string().len() > MAX_URI_BYTES {
        return ApiError::UriTooLong.into_response();
    }
    next.run(req).await
}

/// Path parameters with our error shape (axum's default rejection is plain text).
pub struct ApiPath<T>(pub T);

impl<S, T> axum::extract::FromRequestParts<S> for ApiPath<T>
where
    T: serde::de::DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, Self::Rejection> {
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(v)) => Ok(ApiPath(v)),
            Err(e) => Err(ApiError::bad_request("bad_path", e.body_text())),
        }
    }
}

/// Query parameters with our error shape.
pub struct ApiQuery<T>(pub T);

impl<S, T> axum::extract::FromRequestParts<S> for ApiQuery<T>
where
    T: serde::de::DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, Self::Rejection> {
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(v)) => Ok(ApiQuery(v)),
            Err(e) => {
                let text = e.body_text();
                let detail = text
                    .strip_prefix("Failed to deserialize query string: ")
                    .unwrap_or(&text);
                // A parameter that broke its kind's rule keeps the rule's code.
                Err(match wire::fields::FieldError::parse(detail) {
                    Some(fe) => ApiError::bad_request(fe.code, fe.message),
                    None => ApiError::bad_request("bad_query", text),
                })
            }
        }
    }
}
