//! Talking to the backend: the [`BackendApi`] trait (what the kiosk needs from the
//! backend, in `wire` types) and [`HttpBackend`], its implementation over HTTP with a
//! small blocking client. The kiosk links no backend crate; the trait lets the stations
//! be tested against a fake, and a backend too old to offer a route (pay codes, waste
//! statistics, balances) answers [`ApiError::NotSupported`], which the kiosk treats as
//! "use the local fallback". [`DropChargeAnswers`] is a test hook that loses answers.
//!
//! Errors are classified for the outbox: [`ApiError::NotSent`] means the request surely
//! never reached the backend (connection refused, no route, DNS), so the kiosk may still
//! change it (e.g. mark a charge `offline`); [`ApiError::NoAnswer`] means it may have
//! arrived, so only the identical request may be sent again.

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Serialize;
use wire::{
    BalancesResponse, ChargeRequest, ChargeResponse, EnrolRequest, EnrolResponse, GalleryResponse,
    KioskInfo, PayCodeRedeemRequest, PayCodeRedeemResponse, VoidChargeRequest, VoidChargeResponse,
    WasteRequest, WasteResponse, WasteStatsResponse,
};

use wire::Canteen;

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

/// What the kiosk needs from the backend.
pub trait BackendApi: Send + Sync {
    fn enrol(&self, req: &EnrolRequest) -> Result<EnrolResponse, ApiError>;
    fn me(&self) -> Result<KioskInfo, ApiError>;
    fn charge(&self, req: &ChargeRequest) -> Result<ChargeResponse, ApiError>;
    fn waste(&self, req: &WasteRequest) -> Result<WasteResponse, ApiError>;
    fn gallery(&self, since: i64, limit: i64) -> Result<GalleryResponse, ApiError>;
    /// Redeems (uses up) a one-time pay code shown as a QR code: who is paying.
    fn redeem_pay_code(&self, _code: &str) -> Result<PayCodeRedeemResponse, ApiError> {
        Err(ApiError::NotSupported("pay codes"))
    }
    /// A person's and the canteen's average plate waste.
    fn waste_stats(&self, _staff_id: i64) -> Result<WasteStatsResponse, ApiError> {
        Err(ApiError::NotSupported("waste statistics"))
    }
    /// One page of the balances snapshot (offline decisions).
    fn balances(&self, _since: i64, _limit: i64) -> Result<BalancesResponse, ApiError> {
        Err(ApiError::NotSupported("balances"))
    }
    /// The kiosk's canteen: UTC offset, meal windows, prices.
    fn canteen(&self, _canteen_id: i64) -> Result<Canteen, ApiError> {
        Err(ApiError::NotSupported("canteen settings"))
    }
    /// Reverses a charge of this kiosk whose diner was not served.
    fn void_charge(&self, _req: &VoidChargeRequest) -> Result<VoidChargeResponse, ApiError> {
        Err(ApiError::NotSupported("voiding charges"))
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

    fn redeem_pay_code(&self, code: &str) -> Result<PayCodeRedeemResponse, ApiError> {
        let body = PayCodeRedeemRequest {
            code: code.to_string(),
        };
        missing_route_is_unsupported(
            self.post("/api/v1/kiosk/pay-codes/redeem", &body),
            "pay codes",
        )
    }

    fn waste_stats(&self, staff_id: i64) -> Result<WasteStatsResponse, ApiError> {
        missing_route_is_unsupported(
            self.get(&format!("/api/v1/kiosk/waste-stats?staff_id={staff_id}")),
            "waste statistics",
        )
    }

    fn balances(&self, since: i64, limit: i64) -> Result<BalancesResponse, ApiError> {
        missing_route_is_unsupported(
            self.get(&format!(
                "/api/v1/kiosk/balances?since={since}&limit={limit}"
            )),
            "balances",
        )
    }

    fn void_charge(&self, req: &VoidChargeRequest) -> Result<VoidChargeResponse, ApiError> {
        self.post("/api/v1/kiosk/charges/void", req)
    }

    fn canteen(&self, canteen_id: i64) -> Result<Canteen, ApiError> {
        // 403: a backend from before kiosks were allowed to read their canteen.
        match self.get(&format!("/api/v1/canteens/{canteen_id}")) {
            Err(ApiError::Status { status: 403, .. }) => {
                Err(ApiError::NotSupported("canteen settings"))
            }
            other => missing_route_is_unsupported(other, "canteen settings"),
        }
    }
}

/// A backend without the route answers 404/405 with a generic code (a known route answers
/// its own codes, e.g. `unknown_pay_code`).
fn missing_route_is_unsupported<T>(
    r: Result<T, ApiError>,
    what: &'static str,
) -> Result<T, ApiError> {
    match r {
        Err(ApiError::Status {
            status: 404 | 405,
            code,
            ..
        }) if code == "http_error" || code == "not_found" => Err(ApiError::NotSupported(what)),
        other => other,
    }
}

/// Set this environment variable to N to lose the answers of the first N online charge
/// attempts: the request reaches the backend (which applies and stores it), the answer is
/// thrown away and the kiosk sees [`ApiError::NoAnswer`], as after a timeout. The
/// end-to-end test of the "lost answer" path uses it.
pub const TEST_DROP_CHARGE_ANSWERS: &str = "CLEANPLATE_KIOSK_TEST_DROP_CHARGE_ANSWERS";

/// Wraps a backend and loses the answers of its first `n` online charges (test hook).
pub struct DropChargeAnswers<A> {
    inner: A,
    remaining: AtomicU32,
}

impl<A: BackendApi> DropChargeAnswers<A> {
    pub fn new(inner: A, n: u32) -> Self {
        DropChargeAnswers {
            inner,
            remaining: AtomicU32::new(n),
        }
    }
}

impl<A: BackendApi> BackendApi for DropChargeAnswers<A> {
    fn enrol(&self, req: &EnrolRequest) -> Result<EnrolResponse, ApiError> {
        self.inner.enrol(req)
    }
    fn me(&self) -> Result<KioskInfo, ApiError> {
        self.inner.me()
    }
    fn charge(&self, req: &ChargeRequest) -> Result<ChargeResponse, ApiError> {
        let r = self.inner.charge(req);
        let drop = !req.offline
            && r.is_ok()
            && self
                .remaining
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                .is_ok();
        if drop {
            tracing::warn!(
                key = %req.idempotency_key,
                "{TEST_DROP_CHARGE_ANSWERS}: the backend answered; losing the answer"
            );
            return Err(ApiError::NoAnswer(
                "test hook: the answer was lost on the way back".into(),
            ));
        }
        r
    }
    fn waste(&self, req: &WasteRequest) -> Result<WasteResponse, ApiError> {
        self.inner.waste(req)
    }
    fn gallery(&self, since: i64, limit: i64) -> Result<GalleryResponse, ApiError> {
        self.inner.gallery(since, limit)
    }
    fn redeem_pay_code(&self, code: &str) -> Result<PayCodeRedeemResponse, ApiError> {
        self.inner.redeem_pay_code(code)
    }
    fn waste_stats(&self, staff_id: i64) -> Result<WasteStatsResponse, ApiError> {
        self.inner.waste_stats(staff_id)
    }
    fn balances(&self, since: i64, limit: i64) -> Result<BalancesResponse, ApiError> {
        self.inner.balances(since, limit)
    }
    fn canteen(&self, canteen_id: i64) -> Result<Canteen, ApiError> {
        self.inner.canteen(canteen_id)
    }
    fn void_charge(&self, req: &VoidChargeRequest) -> Result<VoidChargeResponse, ApiError> {
        self.inner.void_charge(req)
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

    /// Counts charges; everything else is not needed here.
    struct Counting(std::sync::Mutex<u32>);

    impl BackendApi for Counting {
        fn enrol(&self, _: &EnrolRequest) -> Result<EnrolResponse, ApiError> {
            Err(ApiError::NotSupported("enrol"))
        }
        fn me(&self) -> Result<KioskInfo, ApiError> {
            Err(ApiError::NotSupported("me"))
        }
        fn charge(&self, _: &ChargeRequest) -> Result<ChargeResponse, ApiError> {
            *self.0.lock().unwrap() += 1;
            serde_json::from_str(
                r#"{"status":"accepted","charge_id":1,"reason":null,"meal":"lunch","local_date":"2026-11-26",
                    "amount":"15.00","subsidy_used":"0.00","cash_used":"15.00","cash_balance":"5.00",
                    "subsidy_balance":"0.00","replayed":false}"#,
            )
            .map_err(|e| ApiError::Decode(e.to_string()))
        }
        fn waste(&self, _: &WasteRequest) -> Result<WasteResponse, ApiError> {
            Err(ApiError::NotSupported("waste"))
        }
        fn gallery(&self, _: i64, _: i64) -> Result<GalleryResponse, ApiError> {
            Err(ApiError::NotSupported("gallery"))
        }
    }

    #[test]
    fn the_test_hook_loses_answers_of_online_charges_only_and_only_n() {
        let api = DropChargeAnswers::new(Counting(std::sync::Mutex::new(0)), 2);
        let req = |offline| ChargeRequest {
            idempotency_key: "k".into(),
            staff_id: 1,
            kiosk_time: time::macros::datetime!(2026-11-26 12:00 +08:00),
            offline,
            amount: None,
        };
        assert!(api.charge(&req(true)).is_ok(), "offline charges pass");
        assert!(matches!(
            api.charge(&req(false)),
            Err(ApiError::NoAnswer(_))
        ));
        assert!(matches!(
            api.charge(&req(false)),
            Err(ApiError::NoAnswer(_))
        ));
        assert!(api.charge(&req(false)).is_ok());
        assert_eq!(
            *api.inner.0.lock().unwrap(),
            4,
            "every request reached the backend"
        );
        assert!(matches!(
            api.balances(0, 10),
            Err(ApiError::NotSupported("balances"))
        ));
    }

    #[test]
    fn a_missing_route_means_not_supported_but_a_known_refusal_stays() {
        let missing: Result<(), ApiError> = Err(ApiError::Status {
            status: 404,
            code: "not_found".into(),
            message: "no route".into(),
        });
        assert_eq!(
            missing_route_is_unsupported(missing, "pay codes"),
            Err(ApiError::NotSupported("pay codes"))
        );
        let unknown: Result<(), ApiError> = Err(ApiError::Status {
            status: 404,
            code: "unknown_pay_code".into(),
            message: "no such pay code".into(),
        });
        assert!(matches!(
            missing_route_is_unsupported(unknown, "pay codes"),
            Err(ApiError::Status { status: 404, .. })
        ));
    }
}
