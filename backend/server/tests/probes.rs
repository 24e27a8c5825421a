//! The holes found by probing the running backend from outside (issue 9), one test each, on
//! both databases: money without payment through the sandbox in production, back-dated online
//! charges, errors that were not JSON, and limits a stranger could use to lock others out.

mod common;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use common::{Caller, Db, TestApp};
use serde_json::{json, Value};

/// A production configuration: real secrets, no dev mode, no sandbox.
fn production(cfg: &mut backend::config::Config) {
    cfg.dev_mode = false;
    cfg.sandbox_payments = false;
}

fn from(addr: &str, mut req: Request<Body>) -> Request<Body> {
    let sock: std::net::SocketAddr = addr.parse().expect("address");
    req.extensions_mut()
        .insert(axum::extract::ConnectInfo(sock));
    req
}

async fn error_of(app: &TestApp, req: Request<Body>) -> (StatusCode, Value) {
    let (s, h, body) = app.raw(req).await;
    let ct = h
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    assert!(
        ct.starts_with("application/json"),
        "{s}: content-type {ct:?}, body {:?}",
        String::from_utf8_lossy(&body)
    );
    let v: Value = serde_json::from_slice(&body).expect("JSON error body");
    assert!(
        v["error"]["code"].as_str().is_some_and(|c| !c.is_empty())
            && v["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty()),
        "{s}: {v}"
    );
    (s, v)
}

macro_rules! on_both {
    ($name:ident, $body:expr) => {
        mod $name {
            use super::*;
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                let run = $body;
                run(Db::Sqlite).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                let run = $body;
                run(Db::Postgres).await
            }
        }
    };
}

// 1. Money without payment: in production nothing credits a balance but a configured provider.
on_both!(production_has_no_sandbox_to_pay_with, |db| async move {
    let Some(app) = TestApp::with_config(db, production).await else {
        return;
    };
    let (s, v) = app
        .call(
            &app.staff,
            Method::POST,
            "/api/v1/me/topups",
            Some(json!({"amount": "5000.00"})),
        )
        .await;
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Some("payments_unavailable")
        ),
        "{v}"
    );
    for (method, path) in [
        (Method::GET, "/sandbox/pay/CP1"),
        (Method::POST, "/sandbox/pay/CP1"),
        (Method::POST, "/api/v1/payments/sandbox/notify"),
    ] {
        let (s, _) = error_of(&app, app.request(&Caller::Anonymous, method, path, None)).await;
        assert_eq!(
            s,
            StatusCode::NOT_FOUND,
            "{path} must not exist in production"
        );
    }
    // An order made earlier (say, before the sandbox was switched off) cannot be paid either.
    let order = app
        .store
        .create_payment_order(
            store::NewPaymentOrder {
                order_no: "CP-OLD".into(),
                staff_id: app.staff_id,
                amount: ledger::Fen(500_000),
                provider: "sandbox".into(),
                now_ms: 0,
            },
            &store::Actor::System("test"),
        )
        .await
        .expect("order");
    let path = format!("/sandbox/pay/{}", order.order_no);
    let (s, _) = error_of(
        &app,
        app.request(&Caller::Anonymous, Method::POST, &path, None),
    )
    .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let (_, b) = app
        .call(&app.staff, Method::GET, "/api/v1/me/balance", None)
        .await;
    assert_eq!(b["cash"], "0.00", "nothing was credited: {b}");
    let doc = app
        .call(&Caller::Anonymous, Method::GET, "/api/openapi.json", None)
        .await
        .1;
    let paths = doc["paths"].as_object().expect("paths");
    assert!(
        paths.keys().all(|p| !p.contains("sandbox")),
        "the document lists no sandbox route in production"
    );
    app.check_ok().await;
});

// 1b. The sandbox only when chosen by a setting whose name says so (and never with the
// secret published in the source).
#[test]
fn sandbox_in_production_needs_its_own_secret() {
    let mut cfg = common::test_config();
    production(&mut cfg);
    cfg.sandbox_payments = true;
    cfg.gateway_secret = backend::config::DEV_GATEWAY_SECRET.into();
    assert!(cfg.validate_for_serving().is_err());
    cfg.gateway_secret = "a-real-secret-from-the-vault".into();
    assert!(cfg.validate_for_serving().is_ok());
    assert!(cfg.sandbox_enabled());
}

// 3. Back-dated online charges are judged at the server's time: they cannot dodge the daily
// cap or one meal per period by landing on another day.
on_both!(back_dated_online_charges_are_judged_now, |db| async move {
    let Some(app) = TestApp::new(db).await else {
        return;
    };
    app.top_up_via_store(app.staff_id, 100_000).await;
    let today = app
        .call(
            &app.kiosk,
            Method::POST,
            "/api/v1/kiosk/charges",
            Some(json!({"idempotency_key": "now", "staff_id": app.staff_id,
                        "kiosk_time": common::lunch_today()})),
        )
        .await
        .1;
    assert_eq!(today["status"], "accepted", "{today}");
    for (key, when) in [
        ("day", "1 day"),
        ("year", "365 days"),
        ("epoch", "0001-01-01"),
    ] {
        let t = if when == "0001-01-01" {
            "0001-01-01T12:10:00+08:00".to_string()
        } else {
            let days: i64 = when.split(' ').next().unwrap().parse().unwrap();
            let t = time::OffsetDateTime::parse(
                &common::lunch_today(),
                &time::format_description::well_known::Rfc3339,
            )
            .unwrap()
                - time::Duration::days(days);
            t.format(&time::format_description::well_known::Rfc3339)
                .unwrap()
        };
        let (s, v) = app
            .call(
                &app.kiosk,
                Method::POST,
                "/api/v1/kiosk/charges",
                Some(json!({"idempotency_key": key, "staff_id": app.staff_id, "kiosk_time": t})),
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{v}");
        assert_eq!(
            (v["status"].as_str(), v["reason"].as_str()),
            (Some("declined"), Some("meal_already_taken")),
            "a charge back-dated by {when} is judged at the server's time: {v}"
        );
        assert_eq!(v["local_date"], today["local_date"], "{v}");
    }
    app.check_ok().await;
});

// 5. Every error is the documented JSON shape, whoever produces it.
on_both!(every_error_is_json, |db| async move {
    let Some(app) = TestApp::new(db).await else {
        return;
    };
    let charge = |body: Body, ct: Option<&str>| {
        let mut b = app.kiosk.authorize(
            Request::builder()
                .method(Method::POST)
                .uri("/api/v1/kiosk/charges"),
        );
        if let Some(ct) = ct {
            b = b.header("content-type", ct);
        }
        b.body(body).expect("request")
    };
    let big = vec![b' '; 2 * 1024 * 1024];
    // Declared too large.
    let (s, v) = error_of(
        &app,
        charge(Body::from(big.clone()), Some("application/json")),
    )
    .await;
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (StatusCode::PAYLOAD_TOO_LARGE, Some("payload_too_large"))
    );
    // Streamed (chunked, no length) and too large.
    let stream = futures_stream(big);
    let (s, v) = error_of(&app, charge(stream, Some("application/json"))).await;
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (StatusCode::PAYLOAD_TOO_LARGE, Some("payload_too_large")),
        "{v}"
    );
    // No or wrong content type.
    for ct in [
        None,
        Some("text/plain"),
        Some("application/x-www-form-urlencoded"),
    ] {
        let (s, v) = error_of(&app, charge(Body::from("{}"), ct)).await;
        assert_eq!(
            (s, v["error"]["code"].as_str()),
            (
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                Some("unsupported_media_type")
            ),
            "{ct:?}"
        );
    }
    // A method the route does not have: 405 with Allow.
    let (s, h, _) = app
        .raw(app.request(&app.kiosk, Method::DELETE, "/api/v1/kiosk/charges", None))
        .await;
    assert_eq!(s, StatusCode::METHOD_NOT_ALLOWED);
    assert!(h.get("allow").is_some(), "405 keeps its Allow header");
    let (_, v) = error_of(
        &app,
        app.request(&app.kiosk, Method::DELETE, "/api/v1/kiosk/charges", None),
    )
    .await;
    assert_eq!(v["error"]["code"], "method_not_allowed");
    // A very long URI.
    let long = format!("/api/v1/staff?after_id={}", "1".repeat(20_000));
    let (s, v) = error_of(&app, app.request(&app.manager, Method::GET, &long, None)).await;
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (StatusCode::URI_TOO_LONG, Some("uri_too_long"))
    );
});

/// A body sent in chunks with no declared length.
fn futures_stream(bytes: Vec<u8>) -> Body {
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
        bytes.chunks(64 * 1024).map(|c| Ok(c.to_vec())).collect();
    Body::from_stream(futures_util::stream::iter(chunks))
}

// 7a. Kiosk enrolment: bad codes from one source do not lock out an installer elsewhere.
on_both!(
    bad_enrolment_codes_lock_out_only_their_source,
    |db| async move {
        let Some(app) = TestApp::new(db).await else {
            return;
        };
        let enrol = |code: &str| {
            app.request(
                &Caller::Anonymous,
                Method::POST,
                "/api/v1/kiosk/enrol",
                Some(json!({"code": code, "name": "north"})),
            )
        };
        let mut last = StatusCode::OK;
        for i in 0..40 {
            last = app
                .raw(from("203.0.113.9:4000", enrol(&format!("WRONG{i}"))))
                .await
                .0;
        }
        assert_eq!(
            last,
            StatusCode::TOO_MANY_REQUESTS,
            "the guesser is throttled"
        );
        let (s, c) = app
            .call(
                &app.manager,
                Method::POST,
                "/api/v1/kiosks/enrolment-codes",
                Some(json!({"canteen_id": app.canteen})),
            )
            .await;
        assert_eq!(s, StatusCode::OK);
        let (s, _, body) = app
            .raw(from(
                "198.51.100.7:5000",
                enrol(c["code"].as_str().unwrap()),
            ))
            .await;
        assert_eq!(s, StatusCode::OK, "{}", String::from_utf8_lossy(&body));
    }
);

// 7b. Wrong passwords from a stranger do not lock the owner out of their account.
on_both!(
    wrong_passwords_lock_out_only_their_source,
    |db| async move {
        let Some(app) = TestApp::new(db).await else {
            return;
        };
        let login = |p: &str| {
            app.request(
                &Caller::Anonymous,
                Method::POST,
                "/api/v1/auth/login",
                Some(json!({"username": "boss", "password": p})),
            )
        };
        let mut last = StatusCode::OK;
        for _ in 0..12 {
            last = app.raw(from("203.0.113.9:4000", login("guess"))).await.0;
        }
        assert_eq!(
            last,
            StatusCode::TOO_MANY_REQUESTS,
            "the guesser is throttled"
        );
        let (s, _, _) = app
            .raw(from("198.51.100.7:5000", login("password-of-boss")))
            .await;
        assert_eq!(s, StatusCode::OK, "the owner signs in from elsewhere");
        // The guesser keeps being refused even with the right password (no oracle).
        let (s, _, _) = app
            .raw(from("203.0.113.9:4000", login("password-of-boss")))
            .await;
        assert_eq!(s, StatusCode::TOO_MANY_REQUESTS);
    }
);

// 7c. Unsigned gateway notifications are refused before anything is written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsigned_notifications_are_not_stored() {
    let app = TestApp::new(Db::Sqlite).await.expect("sqlite app");
    for i in 0..50 {
        let req = Request::builder()
            .method(Method::POST)
            .uri("/api/v1/payments/sandbox/notify")
            .header("content-type", "application/json")
            .header("x-sandbox-signature", "00")
            .body(Body::from(format!(
                "{{\"order_no\":\"X{i}\",\"amount\":\"1.00\",\"txn\":\"{}\",\"paid_at_ms\":0}}",
                "t".repeat(3000)
            )))
            .expect("request");
        let (s, _) = error_of(&app, req).await;
        assert_eq!(s, StatusCode::UNAUTHORIZED);
    }
    let pool = sqlx::SqlitePool::connect(&app.state.cfg.database_url())
        .await
        .expect("open the test database");
    let (n,): (i64,) = sqlx::query_as("SELECT count(*) FROM payment_notifications")
        .fetch_one(&pool)
        .await
        .expect("count");
    assert_eq!(n, 0, "refused notifications are not stored");
}

// 6. One rule per field kind, the same on every route.
on_both!(one_rule_per_field_kind, |db| async move {
    let Some(app) = TestApp::new(db).await else {
        return;
    };
    app.top_up_via_store(app.staff_id, 10_000).await;
    let refused = |path: &'static str, who: Caller, body: Value, code: &'static str| {
        let app = &app;
        async move {
            let (s, v) = app.call(&who, Method::POST, path, Some(body.clone())).await;
            assert_eq!(
                (s, v["error"]["code"].as_str()),
                (StatusCode::UNPROCESSABLE_ENTITY, Some(code)),
                "{path} {body}: {v}"
            );
        }
    };
    let waste = |key: String| {
        json!({"idempotency_key": key, "staff_id": null, "charge_id": null, "gross_grams": 500,
               "tare_grams": 300, "dish": null, "category": null, "measured_at": common::lunch_today()})
    };
    // Waste records keep to the same key rule as charges.
    refused(
        "/api/v1/kiosk/waste",
        app.kiosk.clone(),
        waste(String::new()),
        "bad_idempotency_key",
    )
    .await;
    refused(
        "/api/v1/kiosk/waste",
        app.kiosk.clone(),
        waste("k".repeat(500_000)),
        "bad_idempotency_key",
    )
    .await;
    // The key limit counts characters: 128 Chinese characters (384 bytes) is a good key.
    let (s, v) = app
        .call(
            &app.kiosk,
            Method::POST,
            "/api/v1/kiosk/waste",
            Some(waste("键".repeat(128))),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    // An empty amount is not "no amount".
    refused(
        "/api/v1/kiosk/charges",
        app.kiosk.clone(),
        json!({"idempotency_key": "e", "staff_id": app.staff_id, "kiosk_time": common::lunch_today(), "amount": ""}),
        "bad_amount",
    )
    .await;
    let (_, b) = app
        .call(&app.staff, Method::GET, "/api/v1/me/balance", None)
        .await;
    assert_eq!(b["cash"], "100.00", "nothing was charged: {b}");
    // Names: no NUL, no right-to-left override, not blank, at most 100 characters.
    for name in ["a\u{0}b", "gpj\u{202e}exe", "   ", &"名".repeat(101)] {
        refused(
            "/api/v1/staff",
            app.manager.clone(),
            json!({"employee_no": "E9", "name": name, "category": "regular"}),
            "bad_name",
        )
        .await;
        refused(
            "/api/v1/canteens",
            app.manager.clone(),
            json!({"name": name, "utc_offset_minutes": 480}),
            "bad_name",
        )
        .await;
    }
    refused(
        "/api/v1/canteens",
        app.manager.clone(),
        json!({"name": "", "utc_offset_minutes": 480}),
        "bad_name",
    )
    .await;
    // A whole number written as 480.0 is a whole number; 480.5 is not.
    let (s, v) = app
        .call(
            &app.manager,
            Method::POST,
            "/api/v1/canteens",
            Some(json!({"name": "East hall", "utc_offset_minutes": 480.0})),
        )
        .await;
    assert_eq!(
        (s, v["utc_offset_minutes"].as_i64()),
        (StatusCode::OK, Some(480)),
        "{v}"
    );
    let (s, v) = app
        .call(
            &app.manager,
            Method::POST,
            "/api/v1/canteens",
            Some(json!({"name": "West hall", "utc_offset_minutes": 480.5})),
        )
        .await;
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("bad_json")),
        "{v}"
    );
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("utc_offset_minutes"),
        "the message names the field: {v}"
    );
    app.check_ok().await;
});

// 2. A top-up paid after the person left is not credited: it goes back to the payer through
// the provider, and the books stay at zero.
on_both!(
    a_payment_after_leaving_goes_back_to_the_payer,
    |db| async move {
        let Some(app) = TestApp::new(db).await else {
            return;
        };
        app.top_up_via_store(app.staff_id, 2_000).await;
        let (s, order) = app
            .call(
                &app.staff,
                Method::POST,
                "/api/v1/me/topups",
                Some(json!({"amount": "50.00"})),
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{order}");
        let order_no = order["order_no"].as_str().unwrap().to_string();
        let (s, left) = app
            .call(
                &app.manager,
                Method::POST,
                &format!("/api/v1/staff/{}/offboard", app.staff_id),
                None,
            )
            .await;
        assert_eq!(
            (s, left["cash_paid_out"].as_str()),
            (StatusCode::OK, Some("20.00")),
            "{left}"
        );
        // The person pays the order they opened before leaving.
        let (s, _, body) = app
            .raw(app.request(
                &Caller::Anonymous,
                Method::POST,
                &format!("/sandbox/pay/{order_no}"),
                None,
            ))
            .await;
        assert_eq!(s, StatusCode::OK, "{}", String::from_utf8_lossy(&body));
        let path = format!("/api/v1/topups?staff_id={}", app.staff_id);
        let mut status = String::new();
        for _ in 0..100 {
            let (_, list) = app.call(&app.manager, Method::GET, &path, None).await;
            status = list
                .as_array()
                .and_then(|l| l.iter().find(|o| o["order_no"] == order_no.as_str()))
                .map(|o| o["status"].as_str().unwrap_or("").to_string())
                .unwrap_or_default();
            if status == "returned" {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        assert_eq!(status, "returned", "the payment went back to the payer");
        assert!(
            app.store.sandbox_refund(&order_no).await.unwrap().is_some(),
            "the provider (sandbox) recorded the refund"
        );
        // Nothing was credited: the person's books end at zero.
        let (_, b) = app
            .call(
                &app.manager,
                Method::GET,
                &format!("/api/v1/staff/{}/balance", app.staff_id),
                None,
            )
            .await;
        assert_eq!(
            (b["cash"].as_str(), b["subsidy"].as_str()),
            (Some("0.00"), Some("0.00")),
            "{b}"
        );
        // A repeated notification (the gateway retries) is refused again, never credited.
        let paid = app.store.sandbox_payment(&order_no).await.unwrap().unwrap();
        let again = app
            .store
            .credit_payment(
                &order_no,
                &paid.txn,
                paid.amount,
                "{}",
                backend::state::now_ms(),
            )
            .await
            .unwrap();
        assert_eq!(again, store::CreditOutcome::RefusedLeft);
        let (_, b) = app
            .call(
                &app.manager,
                Method::GET,
                &format!("/api/v1/staff/{}/balance", app.staff_id),
                None,
            )
            .await;
        assert_eq!(b["cash"], "0.00");
        app.check_ok().await;
    }
);

// 3b. Offline charges carry their kiosk time, within a bounded age; older ones go to a manager.
on_both!(old_offline_charges_become_exceptions, |db| async move {
    let Some(app) = TestApp::new(db).await else {
        return;
    };
    app.top_up_via_store(app.staff_id, 100_000).await;
    let days_ago = |d: i64| {
        (time::OffsetDateTime::parse(
            &common::lunch_today(),
            &time::format_description::well_known::Rfc3339,
        )
        .unwrap()
            - time::Duration::days(d))
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap()
    };
    let offline = |key: &str, when: String| json!({"idempotency_key": key, "staff_id": app.staff_id, "kiosk_time": when, "offline": true});
    let (_, recent) = app
        .call(
            &app.kiosk,
            Method::POST,
            "/api/v1/kiosk/charges",
            Some(offline("two-days", days_ago(2))),
        )
        .await;
    assert_eq!(
        recent["status"], "accepted",
        "two days (default bound 72 h): {recent}"
    );
    assert_eq!(recent["local_date"].as_str().unwrap(), &days_ago(2)[..10]);
    for (key, d) in [("four-days", 4), ("a-year", 365)] {
        let (_, old) = app
            .call(
                &app.kiosk,
                Method::POST,
                "/api/v1/kiosk/charges",
                Some(offline(key, days_ago(d))),
            )
            .await;
        assert_eq!(
            (old["status"].as_str(), old["reason"].as_str()),
            (Some("exception"), Some("offline_too_old")),
            "{d} days: {old}"
        );
    }
    let (_, b) = app
        .call(&app.staff, Method::GET, "/api/v1/me/balance", None)
        .await;
    assert_eq!(b["cash"], "985.00", "only the recent one was charged: {b}");
    app.check_ok().await;
});

// 4c. Deleting the newest sealed audit rows leaves a consistent chain in the database; the
// anchors written outside it show the loss.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anchors_reveal_deleted_audit_rows() {
    let app = TestApp::new(Db::Sqlite).await.expect("sqlite app");
    app.top_up_via_store(app.staff_id, 10_000).await;
    let (s, v) = app
        .call(
            &app.kiosk,
            Method::POST,
            "/api/v1/kiosk/charges",
            Some(json!({"idempotency_key": "a1", "staff_id": app.staff_id, "kiosk_time": common::lunch_today()})),
        )
        .await;
    assert_eq!(
        (s, v["status"].as_str()),
        (StatusCode::OK, Some("accepted")),
        "{v}"
    );
    while app.store.seal_audit(10_000).await.unwrap() == 10_000 {}
    let cfg = &app.state.cfg;
    let key = cfg.audit_key().unwrap();
    let path = cfg.audit_anchor_path();
    let anchored = backend::anchors::append_head(&app.store, &key, &path, 1)
        .await
        .unwrap()
        .expect("an anchor");
    let clean = backend::full_check(&app.store, cfg, backend::state::now_ms())
        .await
        .unwrap();
    assert!(clean.ok(), "{:?}", clean.problems);
    // Remove the two newest sealed audit rows, and the journal seals they accounted for: what
    // is left is a valid chain (the unsealed journal entries are still within the grace time).
    let pool = sqlx::SqlitePool::connect(&cfg.database_url())
        .await
        .unwrap();
    sqlx::query("DELETE FROM audit_log WHERE seq > $1")
        .bind(anchored.seq - 2)
        .execute(&pool)
        .await
        .unwrap();
    sqlx::query("DELETE FROM journal_seals WHERE audit_id NOT IN (SELECT id FROM audit_log)")
        .execute(&pool)
        .await
        .unwrap();
    let r = backend::full_check(&app.store, cfg, backend::state::now_ms())
        .await
        .unwrap();
    assert!(
        r.problems.iter().any(|p| p.contains("is gone")),
        "{:?}",
        r.problems
    );
    // The chain left in the database is consistent: only the anchor names the loss.
    assert!(
        !r.problems
            .iter()
            .any(|p| p.contains("sequence jumps") || p.contains("does not match its hash")),
        "{:?}",
        r.problems
    );
    // An anchor line written without the key is refused, not trusted.
    let mut forged = anchored.clone();
    forged.seq = 1;
    std::fs::write(
        &path,
        format!("{}\n", serde_json::to_string(&forged).unwrap()),
    )
    .unwrap();
    let r = backend::full_check(&app.store, cfg, backend::state::now_ms())
        .await
        .unwrap();
    assert!(
        r.problems.iter().any(|p| p.contains("not signed")),
        "{:?}",
        r.problems
    );
}
