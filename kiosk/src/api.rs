//! Talking to the backend: the [`BackendApi`] trait (what the kiosk needs from the
//! backend, in `wire` types) and [`HttpBackend`], its implementation over HTTP with a
//! small blocking client. The kiosk links no backend crate; the trait lets the stations
//! be tested against a fake and lets features the backend does not offer yet (pay codes,
//! waste statistics) be coded now and answered with [`ApiError::NotSupported`].
//!
//! Errors are classified for the outbox: [`ApiError::NotSent`] means the request surely
//! never reached the backend (connection refused, no route, DNS), so the kiosk may still
//! change it (e.g. mark a charge `offline`); [`ApiError::NoAnswer`] means it may have
//! arrived, so only the identical request may be sent again.

use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use wire::{
    ChargeRequest, ChargeResponse, EnrolRequest, EnrolResponse, GalleryResponse, KioskInfo,
    WasteRequest, WasteResponse,
};

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ApiError {
    #[error("backend unreachable (request not sent): {0}")]
    NotSent(String),
    #[error("no answer from the backend (the request may have arrived): {0}")]
    NoAnswer(String),
    #[error("backend answered {status} {code}: {message}")]
    Status {
        status: u16,
        code: String,
        message: String,
    },
    #[error("unexpected answer from the backend: {0}")]
    Decode(String),
    #[error("the backend does not offer {0} yet")]
    NotSupported(&'static str),
}

impl ApiError {
    /// Worth trying again later with the same request.
    pub fn is_transient(&self) -> bool {
        match self {
            ApiError::NotSent(_) | ApiError::NoAnswer(_) => true,
            // 401/403: the token may be re-issued; 408/429/5xx: the backend is busy.
            ApiError::Status { status, .. } => {
                matches!(status, 401 | 403 | 408 | 429) || *status >= 500
            }
            ApiError::Decode(_) | ApiError::NotSupported(_) => false,
        }
    }
}

/// A verified one-time pay code (see `NEEDS_FROM_BACKEND.md`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PayCodeGrant {
    pub staff_id: i64,
}

/// Plate-waste figures shown to a diner (see `NEEDS_FROM_BACKEND.md`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WasteStats {
    pub person_average_g: Option<f64>,
    pub canteen_average_g: Option<f64>,
}

/// What the kiosk needs from the backend.
pub trait BackendApi: Send + Sync {
    fn enrol(&self, req: &EnrolRequest) -> Result<EnrolResponse, ApiError>;
    fn me(&self) -> Result<KioskInfo, ApiError>;
    fn charge(&self, req: &ChargeRequest) -> Result<ChargeResponse, ApiError>;
    fn waste(&self, req: &WasteRequest) -> Result<WasteResponse, ApiError>;
    fn gallery(&self, since: i64, limit: i64) -> Result<GalleryResponse, ApiError>;
    /// Redeems a one-time pay code shown as a QR code.
    fn redeem_pay_code(&self, _code: &str) -> Result<PayCodeGrant, ApiError> {
        Err(ApiError::NotSupported("pay codes"))
    }
    /// A person's and the canteen's average plate waste.
    fn waste_stats(&self, _staff_id: i64) -> Result<WasteStats, ApiError> {
        Err(ApiError::NotSupported("waste statistics"))
    }
}

pub struct HttpBackend {
    base: String,
    token: Option<String>,
    agent: ureq::Agent,
}

impl HttpBackend {
    pub fn new(
        base_url: &str,
        token: Option<String>,
        connect_timeout: Duration,
        request_timeout: Duration,
    ) -> HttpBackend {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_connect(Some(connect_timeout))
            .timeout_global(Some(request_timeout))
            .build()
            .into();
        HttpBackend {
            base: base_url.trim_end_matches('/').to_string(),
            token,
            agent,
        }
    }

    pub fn base_url(&self) -> &str {
        &self.base
    }

    fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    fn auth(&self) -> Option<String> {
        self.token.as_ref().map(|t| format!("Bearer {t}"))
    }

    fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, ApiError> {
        let mut req = self.agent.get(&self.url(path));
        if let Some(a) = self.auth() {
            req = req.header("Authorization", &a);
        }
        finish(req.call())
    }

    fn post<B: Serialize, T: DeserializeOwned>(&self, path: &str, body: &B) -> Result<T, ApiError> {
        let mut req = self.agent.post(&self.url(path));
        if let Some(a) = self.auth() {
            req = req.header("Authorization", &a);
        }
        finish(req.send_json(body))
    }
}

fn finish<T: DeserializeOwned>(
    r: Result<ureq::http::Response<ureq::Body>, ureq::Error>,
) -> Result<T, ApiError> {
    let mut resp = r.map_err(classify)?;
    let status = resp.status().as_u16();
    let text = resp
        .body_mut()
        .read_to_string()
        .map_err(|e| ApiError::NoAnswer(e.to_string()))?;
    if (200..300).contains(&status) {
        return serde_json::from_str(&text)
            .map_err(|e| ApiError::Decode(format!("{e}: {}", snippet(&text))));
    }
    let (code, message) = match serde_json::from_str::<wire::ErrorBody>(&text) {
        Ok(b) => (b.error.code, b.error.message),
        Err(_) => ("http_error".to_string(), snippet(&text)),
    };
    Err(ApiError::Status {
        status,
        code,
        message,
    })
}

fn snippet(s: &str) -> String {
    s.chars().take(200).collect()
}

/// Sorts a transport error into "surely not sent" and "may have arrived".
fn classify(e: ureq::Error) -> ApiError {
    use std::io::ErrorKind;
    use ureq::Timeout;
    let text = e.to_string();
    match &e {
        ureq::Error::HostNotFound | ureq::Error::ConnectionFailed | ureq::Error::BadUri(_) => {
            ApiError::NotSent(text)
        }
        ureq::Error::Timeout(Timeout::Resolve | Timeout::Connect) => ApiError::NotSent(text),
        ureq::Error::Io(io)
            if matches!(
                io.kind(),
                ErrorKind::ConnectionRefused
                    | ErrorKind::AddrNotAvailable
                    | ErrorKind::NetworkUnreachable
                    | ErrorKind::HostUnreachable
            ) =>
        {
            ApiError::NotSent(text)
        }
        _ => ApiError::NoAnswer(text),
    }
}

impl BackendApi for HttpBackend {
    fn enrol(&self, req: &EnrolRequest) -> Result<EnrolResponse, ApiError> {
        self.post("/api/v1/kiosk/enrol", req)
    }

    fn me(&self) -> Result<KioskInfo, ApiError> {
        self.get("/api/v1/kiosk/me")
    }

    fn charge(&self, req: &ChargeRequest) -> Result<ChargeResponse, ApiError> {
        self.post("/api/v1/kiosk/charges", req)
    }

    fn waste(&self, req: &WasteRequest) -> Result<WasteResponse, ApiError> {
        self.post("/api/v1/kiosk/waste", req)
    }

    fn gallery(&self, since: i64, limit: i64) -> Result<GalleryResponse, ApiError> {
        self.get(&format!(
            "/api/v1/kiosk/gallery?since={since}&limit={limit}"
        ))
    }

    fn redeem_pay_code(&self, code: &str) -> Result<PayCodeGrant, ApiError> {
        #[derive(Serialize)]
        struct Body<'a> {
            code: &'a str,
        }
        match self.post("/api/v1/kiosk/pay-codes/redeem", &Body { code }) {
            Err(ApiError::Status {
                status: 404 | 405,
                code,
                ..
            }) if code == "http_error" || code == "not_found" => {
                Err(ApiError::NotSupported("pay codes"))
            }
            other => other,
        }
    }

    fn waste_stats(&self, staff_id: i64) -> Result<WasteStats, ApiError> {
        match self.get(&format!("/api/v1/kiosk/waste-stats?staff_id={staff_id}")) {
            Err(ApiError::Status {
                status: 404 | 405,
                code,
                ..
            }) if code == "http_error" || code == "not_found" => {
                Err(ApiError::NotSupported("waste statistics"))
            }
            other => other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_closed_port_is_not_sent() {
        // Bind then drop a listener to find a port nobody listens on.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let b = HttpBackend::new(
            &format!("http://127.0.0.1:{port}"),
            None,
            Duration::from_millis(500),
            Duration::from_secs(2),
        );
        let e = b.me().unwrap_err();
        assert!(matches!(e, ApiError::NotSent(_)), "{e:?}");
        assert!(e.is_transient());
    }

    #[test]
    fn error_bodies_and_silence_are_classified() {
        use std::io::{Read, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let server = std::thread::spawn(move || {
            // 1: a 409 with the API's error body; 2: accept and hang up without answering.
            let (mut s, _) = listener.accept().unwrap();
            let mut buf = [0u8; 4096];
            let _ = s.read(&mut buf);
            let body = r#"{"error":{"code":"idempotency_key_reused","message":"different body"}}"#;
            let _ = write!(s, "HTTP/1.1 409 Conflict\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{}", body.len(), body);
            drop(s);
            let (mut s, _) = listener.accept().unwrap();
            let _ = s.read(&mut buf);
            drop(s);
        });
        let b = HttpBackend::new(
            &format!("http://{addr}"),
            Some("t".into()),
            Duration::from_millis(500),
            Duration::from_secs(2),
        );
        let e = b.me().unwrap_err();
        assert_eq!(
            e,
            ApiError::Status {
                status: 409,
                code: "idempotency_key_reused".into(),
                message: "different body".into()
            }
        );
        assert!(!e.is_transient());
        let e = b.me().unwrap_err();
        assert!(matches!(e, ApiError::NoAnswer(_)), "{e:?}");
        server.join().unwrap();
    }
}
