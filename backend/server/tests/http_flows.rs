//! End-to-end flows through the HTTP API on both databases: kiosk charges replayed 100 times,
//! idempotency conflicts, the sandbox payment gateway (pay page, signed asynchronous
//! notification, duplicates, forgeries, wrong amounts, late arrivals, reconciliation), refunds
//! asked from a phone, offline exceptions, plate waste and encrypted gallery sync.

mod common;

use axum::http::{Method, StatusCode};
use common::{lunch_today, Caller};
use serde_json::json;
use std::sync::Arc;

fn charge_body(key: &str, staff: i64) -> serde_json::Value {
    json!({"idempotency_key": key, "staff_id": staff, "kiosk_time": lunch_today()})
}

both_dbs!(charge_replayed_100_times_over_http_charges_once, |app| {
    app.top_up_via_store(app.staff_id, 10_000).await;
    let app = Arc::new(app);
    let mut tasks = Vec::new();
    for _ in 0..100 {
        let app = app.clone();
        tasks.push(tokio::spawn(async move {
            app.call(
                &app.kiosk,
                Method::POST,
                "/api/v1/kiosk/charges",
                Some(charge_body("k-1", app.staff_id)),
            )
            .await
        }));
    }
    let mut first = 0;
    let mut ids = std::collections::HashSet::new();
    for t in tasks {
        let (s, v) = t.await.expect("task");
        assert_eq!(s, StatusCode::OK, "{v}");
        assert_eq!(v["status"], "accepted");
        assert_eq!(
            v["cash_balance"], "85.00",
            "every replay returns the first result"
        );
        ids.insert(v["charge_id"].as_i64().expect("id"));
        if v["replayed"] == false {
            first += 1;
        }
    }
    assert_eq!((first, ids.len()), (1, 1));
    let (s, b) = app
        .call(&app.staff, Method::GET, "/api/v1/me/balance", None)
        .await;
    assert_eq!((s, b["cash"].as_str()), (StatusCode::OK, Some("85.00")));
    // Same key, different body.
    let mut other = charge_body("k-1", app.staff_id);
    other["amount"] = json!("9.99");
    let (s, v) = app
        .call(
            &app.kiosk,
            Method::POST,
            "/api/v1/kiosk/charges",
            Some(other),
        )
        .await;
    assert_eq!(s, StatusCode::CONFLICT);
    assert_eq!(v["error"]["code"], "idempotency_key_reused");
    // Malformed JSON is a 400 with the error shape, not a crash.
    let (s, v) = app
        .call(
            &app.kiosk,
            Method::POST,
            "/api/v1/kiosk/charges",
            Some(json!({"staff_id": "x"})),
        )
        .await;
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("bad_json"))
    );
    // A kiosk clock running ahead is refused.
    let future = (time::OffsetDateTime::now_utc() + time::Duration::hours(1))
        .format(&time::format_description::well_known::Rfc3339)
        .expect("fmt");
    let (s, v) = app
        .call(
            &app.kiosk,
            Method::POST,
            "/api/v1/kiosk/charges",
            Some(json!({"idempotency_key": "f-1", "staff_id": app.staff_id, "kiosk_time": future})),
        )
        .await;
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("kiosk_clock_ahead"))
    );
    // Sub-fen amounts are refused, not rounded.
    let mut tiny = charge_body("k-2", app.staff_id);
    tiny["amount"] = json!("0.001");
    let (s, v) = app
        .call(
            &app.kiosk,
            Method::POST,
            "/api/v1/kiosk/charges",
            Some(tiny),
        )
        .await;
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("bad_amount"))
    );
    app.check_ok().await;
});

both_dbs!(kiosk_voids_a_charge_it_did_not_serve, |app| {
    app.top_up_via_store(app.staff_id, 10_000).await;
    let (s, c) = app
        .call(
            &app.kiosk,
            Method::POST,
            "/api/v1/kiosk/charges",
            Some(charge_body("v-1", app.staff_id)),
        )
        .await;
    assert_eq!(
        (s, c["status"].as_str()),
        (StatusCode::OK, Some("accepted")),
        "{c}"
    );
    assert_eq!(cash(&app).await, "85.00");
    let void = json!({"charge_key": "v-1", "reason": "refused_offline_not_served"});
    let (s, v) = app
        .call(
            &app.kiosk,
            Method::POST,
            "/api/v1/kiosk/charges/void",
            Some(void.clone()),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["charge_id"], c["charge_id"]);
    assert_eq!(
        (v["amount"].as_str(), v["already_void"].as_bool()),
        (Some("15.00"), Some(false))
    );
    assert_eq!(cash(&app).await, "100.00", "the whole charge went back");
    // The kiosk lost this answer too and asks again: the same reversal, nothing more.
    let (s, again) = app
        .call(
            &app.kiosk,
            Method::POST,
            "/api/v1/kiosk/charges/void",
            Some(void),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{again}");
    assert_eq!(again["refund_id"], v["refund_id"]);
    assert_eq!(again["already_void"], true);
    assert_eq!(cash(&app).await, "100.00");
    // Unknown key: 404 in the common error shape.
    let (s, e) = app
        .call(
            &app.kiosk,
            Method::POST,
            "/api/v1/kiosk/charges/void",
            Some(json!({"charge_key": "never-sent", "reason": "x"})),
        )
        .await;
    assert_eq!(
        (s, e["error"]["code"].as_str()),
        (StatusCode::NOT_FOUND, Some("not_found")),
        "{e}"
    );
    // Bad bodies are refused before the store sees them.
    for (body, code) in [
        (
            json!({"charge_key": "", "reason": "x"}),
            "bad_idempotency_key",
        ),
        (
            json!({"charge_key": "k".repeat(129), "reason": "x"}),
            "bad_idempotency_key",
        ),
        (json!({"charge_key": "v-1", "reason": "  "}), "bad_reason"),
        (
            json!({"charge_key": "v-1", "reason": "r".repeat(201)}),
            "bad_reason",
        ),
    ] {
        let (s, e) = app
            .call(
                &app.kiosk,
                Method::POST,
                "/api/v1/kiosk/charges/void",
                Some(body),
            )
            .await;
        assert_eq!(
            (s, e["error"]["code"].as_str()),
            (StatusCode::UNPROCESSABLE_ENTITY, Some(code)),
            "{e}"
        );
    }
    app.check_ok().await;
});

fn signed(body: &serde_json::Value, secret: &str) -> (Vec<u8>, String) {
    let bytes = serde_json::to_vec(body).expect("json");
    let sig = backend::payments::sign(secret.as_bytes(), &bytes);
    (bytes, sig)
}

async fn notify(
    app: &common::TestApp,
    body: Vec<u8>,
    sig: Option<&str>,
) -> (StatusCode, serde_json::Value) {
    let mut b = axum::http::Request::builder()
        .method(Method::POST)
        .uri("/api/v1/payments/sandbox/notify")
        .header("content-type", "application/json");
    if let Some(s) = sig {
        b = b.header("x-sandbox-signature", s);
    }
    let (s, _, bytes) = app
        .raw(b.body(axum::body::Body::from(body)).expect("request"))
        .await;
    (
        s,
        serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null),
    )
}

async fn cash(app: &common::TestApp) -> String {
    let (_, b) = app
        .call(&app.staff, Method::GET, "/api/v1/me/balance", None)
        .await;
    b["cash"].as_str().unwrap_or_default().to_string()
}

both_dbs!(sandbox_gateway_credits_exactly_once, |app| {
    // Create an order from the phone and pay it on the sandbox's page.
    let (s, o) = app
        .call(
            &app.staff,
            Method::POST,
            "/api/v1/me/topups",
            Some(json!({"amount": "50.00"})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{o}");
    let order_no = o["order_no"].as_str().expect("order").to_string();
    assert!(o["pay_url"]
        .as_str()
        .expect("url")
        .ends_with(&format!("/sandbox/pay/{order_no}")));
    let (s, page) = app
        .call(
            &Caller::Anonymous,
            Method::GET,
            &format!("/sandbox/pay/{order_no}"),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    assert!(page.as_str().unwrap_or_default().contains("50.00"));
    let (s, _) = app
        .call(
            &Caller::Anonymous,
            Method::POST,
            &format!("/sandbox/pay/{order_no}"),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    // The notification is asynchronous: wait for it.
    let mut credited = false;
    for _ in 0..100 {
        if cash(&app).await == "50.00" {
            credited = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(credited, "the sandbox's notification credited the order");
    // Pressing Pay again re-sends the same notification: nothing more is credited.
    let (s, _) = app
        .call(
            &Caller::Anonymous,
            Method::POST,
            &format!("/sandbox/pay/{order_no}"),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    tokio::time::sleep(std::time::Duration::from_millis(400)).await;
    assert_eq!(cash(&app).await, "50.00");

    // A duplicate notification sent by hand, correctly signed.
    let txn = app
        .store
        .sandbox_payment(&order_no)
        .await
        .expect("query")
        .expect("paid")
        .txn;
    let notice = json!({"order_no": order_no, "amount": "50.00", "txn": txn, "paid_at_ms": 1});
    let (body, sig) = signed(&notice, common::GATEWAY_SECRET);
    let (s, v) = notify(&app, body.clone(), Some(&sig)).await;
    assert_eq!(
        (s, v["outcome"].as_str()),
        (StatusCode::OK, Some("already_credited"))
    );

    // A second order: forged notifications (no signature, wrong key, tampered body) credit nothing.
    let (_, o2) = app
        .call(
            &app.staff,
            Method::POST,
            "/api/v1/me/topups",
            Some(json!({"amount": "20.00"})),
        )
        .await;
    let no2 = o2["order_no"].as_str().expect("order").to_string();
    let good = json!({"order_no": no2, "amount": "20.00", "txn": "T2", "paid_at_ms": 2});
    let (b2, _) = signed(&good, common::GATEWAY_SECRET);
    assert_eq!(
        notify(&app, b2.clone(), None).await.0,
        StatusCode::UNAUTHORIZED
    );
    let (_, wrong_key) = signed(&good, "not-the-secret");
    assert_eq!(
        notify(&app, b2.clone(), Some(&wrong_key)).await.0,
        StatusCode::UNAUTHORIZED
    );
    let (_, sig_good) = signed(&good, common::GATEWAY_SECRET);
    let tampered = serde_json::to_vec(
        &json!({"order_no": no2, "amount": "2000.00", "txn": "T2", "paid_at_ms": 2}),
    )
    .expect("json");
    assert_eq!(
        notify(&app, tampered, Some(&sig_good)).await.0,
        StatusCode::UNAUTHORIZED
    );
    // Signed but with the wrong amount: logged, not credited.
    let (bw, sw) = signed(
        &json!({"order_no": no2, "amount": "200.00", "txn": "T2", "paid_at_ms": 2}),
        common::GATEWAY_SECRET,
    );
    let (s, v) = notify(&app, bw, Some(&sw)).await;
    assert_eq!(
        (s, v["outcome"].as_str()),
        (StatusCode::OK, Some("amount_mismatch"))
    );
    assert_eq!(cash(&app).await, "50.00");
    // The real notification arrives late, twice: credited once.
    for want in ["credited", "already_credited"] {
        let (s, v) = notify(&app, b2.clone(), Some(&sig_good)).await;
        assert_eq!((s, v["outcome"].as_str()), (StatusCode::OK, Some(want)));
    }
    assert_eq!(cash(&app).await, "70.00");

    // A third order paid at the gateway whose notification never arrives: reconciliation finds it.
    let (_, o3) = app
        .call(
            &app.staff,
            Method::POST,
            "/api/v1/me/topups",
            Some(json!({"amount": "5.00"})),
        )
        .await;
    let no3 = o3["order_no"].as_str().expect("order").to_string();
    let (_, v) = app
        .call(
            &app.manager,
            Method::POST,
            &format!("/api/v1/topups/{no3}/reconcile"),
            None,
        )
        .await;
    assert_eq!(v["outcome"], "not_paid");
    assert!(app
        .store
        .sandbox_record_payment(&no3, ledger::Fen(500), "T3", 3)
        .await
        .expect("pay"));
    let (_, v) = app
        .call(
            &app.manager,
            Method::POST,
            &format!("/api/v1/topups/{no3}/reconcile"),
            None,
        )
        .await;
    assert_eq!(v["outcome"], "credited");
    let (_, v) = app
        .call(
            &app.manager,
            Method::POST,
            &format!("/api/v1/topups/{no3}/reconcile"),
            None,
        )
        .await;
    assert_eq!(v["outcome"], "already_credited");
    assert_eq!(cash(&app).await, "75.00");
    app.check_ok().await;
});

both_dbs!(refund_from_phone_and_offline_exception, |app| {
    app.top_up_via_store(app.staff_id, 2000).await;
    let (_, c) = app
        .call(
            &app.kiosk,
            Method::POST,
            "/api/v1/kiosk/charges",
            Some(charge_body("r-1", app.staff_id)),
        )
        .await;
    assert_eq!(c["status"], "accepted");
    let cid = c["charge_id"].as_i64().expect("id");
    let (s, r) = app
        .call(
            &app.staff,
            Method::POST,
            "/api/v1/me/refunds",
            Some(json!({"charge_id": cid, "reason": "wrong tray"})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{r}");
    let (s, _) = app
        .call(
            &app.staff,
            Method::POST,
            "/api/v1/me/refunds",
            Some(json!({"charge_id": cid, "reason": "again"})),
        )
        .await;
    assert_eq!(s, StatusCode::CONFLICT);
    let (s, d) = app
        .call(
            &app.manager,
            Method::POST,
            &format!("/api/v1/refunds/{}/decide", r["id"]),
            Some(json!({"approve": true})),
        )
        .await;
    assert_eq!(
        (s, d["status"].as_str()),
        (StatusCode::OK, Some("approved"))
    );
    assert_eq!(cash(&app).await, "20.00");
    // Another person's charge is invisible to this staff member.
    let other = app
        .store
        .create_staff(
            store::NewStaff {
                employee_no: "S2".into(),
                name: "Two".into(),
                department: "D".into(),
                category: "regular".into(),
            },
            &store::Actor::System("t"),
        )
        .await
        .expect("staff");
    app.top_up_via_store(other.id, 2000).await;
    let (_, c2) = app
        .call(
            &app.kiosk,
            Method::POST,
            "/api/v1/kiosk/charges",
            Some(charge_body("r-2", other.id)),
        )
        .await;
    let (s, _) = app
        .call(
            &app.staff,
            Method::POST,
            "/api/v1/me/refunds",
            Some(json!({"charge_id": c2["charge_id"], "reason": "x"})),
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);

    // Offline: a second lunch recorded while offline becomes an exception, then is waived.
    let mut b = charge_body("r-3", other.id);
    b["offline"] = json!(true);
    let (_, e) = app
        .call(&app.kiosk, Method::POST, "/api/v1/kiosk/charges", Some(b))
        .await;
    assert_eq!(
        (e["status"].as_str(), e["reason"].as_str()),
        (Some("exception"), Some("meal_already_taken"))
    );
    let (_, list) = app
        .call(
            &app.auditor,
            Method::GET,
            "/api/v1/charges?status=exception",
            None,
        )
        .await;
    assert_eq!(list.as_array().map(|a| a.len()), Some(1));
    let (s, w) = app
        .call(
            &app.manager,
            Method::POST,
            &format!("/api/v1/charges/{}/resolve", e["charge_id"]),
            Some(json!({"action": "waive"})),
        )
        .await;
    assert_eq!((s, w["status"].as_str()), (StatusCode::OK, Some("waived")));
    app.check_ok().await;
});

both_dbs!(waste_and_encrypted_gallery_sync, |app| {
    let (_, c) = {
        app.top_up_via_store(app.staff_id, 2000).await;
        app.call(
            &app.kiosk,
            Method::POST,
            "/api/v1/kiosk/charges",
            Some(charge_body("w-1", app.staff_id)),
        )
        .await
    };
    let w = json!({"idempotency_key": "waste-1", "charge_id": c["charge_id"], "staff_id": null, "gross_grams": 612, "tare_grams": 480,
                   "dish": "rice", "category": null, "measured_at": lunch_today()});
    let (s, v) = app
        .call(
            &app.kiosk,
            Method::POST,
            "/api/v1/kiosk/waste",
            Some(w.clone()),
        )
        .await;
    assert_eq!((s, v["net_grams"].as_i64()), (StatusCode::OK, Some(132)));
    let (_, again) = app
        .call(&app.kiosk, Method::POST, "/api/v1/kiosk/waste", Some(w))
        .await;
    assert_eq!(
        (again["id"].clone(), again["replayed"].clone()),
        (v["id"].clone(), json!(true))
    );
    let (_, list) = app
        .call(
            &app.manager,
            Method::GET,
            &format!("/api/v1/waste?staff_id={}", app.staff_id),
            None,
        )
        .await;
    assert_eq!(list[0]["net_grams"], 132);

    // Templates need consent; they are stored encrypted and reach kiosks decrypted.
    let emb: Vec<f32> = (0..128).map(|i| (i as f32 * 0.37).sin()).collect();
    let path = format!("/api/v1/staff/{}/templates", app.staff_id);
    let (s, v) = app
        .call(
            &app.manager,
            Method::POST,
            &path,
            Some(json!({"embedding": emb})),
        )
        .await;
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("consent_required"))
    );
    let (s, _) = app
        .call(
            &app.staff,
            Method::PUT,
            "/api/v1/me/consent",
            Some(json!({"granted": true})),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let (s, t) = app
        .call(
            &app.manager,
            Method::POST,
            &path,
            Some(json!({"embedding": emb})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{t}");
    let (_, g) = app
        .call(
            &app.kiosk,
            Method::GET,
            "/api/v1/kiosk/gallery?since=0",
            None,
        )
        .await;
    let change = &g["changes"][0];
    let got =
        wire::decode_embedding(change["embedding"].as_str().expect("embedding")).expect("decode");
    assert_eq!(got, emb);
    let since = g["next_since"].as_i64().expect("next");
    // At rest it is ciphertext: the plaintext bytes appear nowhere in the stored row.
    let page = app.store.gallery_changes(0, 10).await.expect("page");
    let sealed = page.changes[0].sealed.clone().expect("sealed");
    let plain: Vec<u8> = emb.iter().flat_map(|x| x.to_le_bytes()).collect();
    assert!(!sealed
        .ciphertext
        .windows(16)
        .any(|w| plain.windows(16).any(|p| p == w)));
    // Nothing new: an empty page.
    let (_, g2) = app
        .call(
            &app.kiosk,
            Method::GET,
            &format!("/api/v1/kiosk/gallery?since={since}"),
            None,
        )
        .await;
    assert_eq!(g2["changes"].as_array().map(|a| a.len()), Some(0));
    // The person deletes it from their phone: kiosks get a tombstone.
    let (s, _) = app
        .call(
            &app.staff,
            Method::DELETE,
            &format!("/api/v1/me/templates/{}", t["id"]),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let (_, g3) = app
        .call(
            &app.kiosk,
            Method::GET,
            &format!("/api/v1/kiosk/gallery?since={since}"),
            None,
        )
        .await;
    assert_eq!(g3["changes"][0]["deleted"], true);
    assert!(g3["changes"][0]["embedding"].is_null());
    let (_, audit) = app
        .call(&app.auditor, Method::GET, "/api/v1/audit?limit=1000", None)
        .await;
    assert!(audit
        .as_array()
        .expect("audit")
        .iter()
        .any(|a| a["action"] == "face.template_deleted"));
    app.check_ok().await;
});

both_dbs!(pay_codes_and_waste_stats, |app| {
    // A QR pay code from the phone: redeemed once, then refused; unknown and expired codes too.
    let (s, c) = app
        .call(&app.staff, Method::POST, "/api/v1/me/pay-codes", None)
        .await;
    assert_eq!(s, StatusCode::OK, "{c}");
    let code = c["code"].as_str().expect("code").to_string();
    let redeem = |code: &str| json!({"code": code});
    let (s, v) = app
        .call(
            &app.kiosk,
            Method::POST,
            "/api/v1/kiosk/pay-codes/redeem",
            Some(redeem(&code)),
        )
        .await;
    assert_eq!(
        (s, v["staff_id"].as_i64()),
        (StatusCode::OK, Some(app.staff_id))
    );
    let (s, v) = app
        .call(
            &app.kiosk,
            Method::POST,
            "/api/v1/kiosk/pay-codes/redeem",
            Some(redeem(&code)),
        )
        .await;
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (StatusCode::GONE, Some("pay_code_used"))
    );
    let (s, v) = app
        .call(
            &app.kiosk,
            Method::POST,
            "/api/v1/kiosk/pay-codes/redeem",
            Some(redeem("nope")),
        )
        .await;
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (StatusCode::NOT_FOUND, Some("unknown_pay_code"))
    );
    let old = backend::crypto::random_token();
    let now = backend::state::now_ms();
    app.store
        .create_pay_code(
            app.staff_id,
            &backend::crypto::token_hash(&old),
            now - 600_000,
            now - 1,
        )
        .await
        .expect("old code");
    let (s, v) = app
        .call(
            &app.kiosk,
            Method::POST,
            "/api/v1/kiosk/pay-codes/redeem",
            Some(redeem(&old)),
        )
        .await;
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (StatusCode::GONE, Some("pay_code_expired"))
    );
    // Two kiosks scanning one code at the same moment: exactly one wins.
    let (_, c2) = app
        .call(&app.staff, Method::POST, "/api/v1/me/pay-codes", None)
        .await;
    let code2 = c2["code"].as_str().expect("code").to_string();
    let app = Arc::new(app);
    let mut tasks = Vec::new();
    for _ in 0..10 {
        let (app, code2) = (app.clone(), code2.clone());
        tasks.push(tokio::spawn(async move {
            app.call(
                &app.kiosk,
                Method::POST,
                "/api/v1/kiosk/pay-codes/redeem",
                Some(json!({"code": code2})),
            )
            .await
            .0
        }));
    }
    let mut ok = 0;
    for t in tasks {
        if t.await.expect("task") == StatusCode::OK {
            ok += 1;
        }
    }
    assert_eq!(ok, 1);

    // The balance snapshot for offline decisions, paged one person at a time.
    app.top_up_via_store(app.staff_id, 1234).await;
    let other = app
        .store
        .create_staff(
            store::NewStaff {
                employee_no: "S9".into(),
                name: "Nine".into(),
                department: "D".into(),
                category: "regular".into(),
            },
            &store::Actor::System("t"),
        )
        .await
        .expect("staff");
    app.store
        .offboard_staff(other.id, 0, &store::Actor::System("t"))
        .await
        .expect("offboard");
    let (mut since, mut seen) = (0, Vec::new());
    loop {
        let (s, v) = app
            .call(
                &app.kiosk,
                Method::GET,
                &format!("/api/v1/kiosk/balances?since={since}&limit=1"),
                None,
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{v}");
        for b in v["balances"].as_array().expect("balances") {
            seen.push((
                b["staff_id"].as_i64().expect("id"),
                b["available"].as_str().expect("available").to_string(),
                b["active"].as_bool().expect("active"),
            ));
        }
        since = v["next_since"].as_i64().expect("next");
        if v["more"] == false {
            break;
        }
    }
    assert_eq!(since, 0, "after the last page the snapshot starts over");
    assert_eq!(
        seen,
        vec![
            (app.staff_id, "12.34".to_string(), true),
            (other.id, "0.00".to_string(), false)
        ]
    );

    // Waste statistics: nothing yet, then the person's and the canteen's averages.
    let (s, v) = app
        .call(
            &app.kiosk,
            Method::GET,
            &format!("/api/v1/kiosk/waste-stats?staff_id={}", app.staff_id),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    assert!(
        v["person_average_g"].is_null() && v["canteen_average_g"].is_null(),
        "{v}"
    );
    for (key, staff, gross) in [
        ("a", Some(app.staff_id), 600),
        ("b", Some(app.staff_id), 700),
        ("c", None, 480),
    ] {
        let w = json!({"idempotency_key": key, "charge_id": null, "staff_id": staff, "gross_grams": gross, "tare_grams": 480,
                       "dish": null, "category": null, "measured_at": lunch_today()});
        let (s, _) = app
            .call(&app.kiosk, Method::POST, "/api/v1/kiosk/waste", Some(w))
            .await;
        assert_eq!(s, StatusCode::OK);
    }
    let (_, v) = app
        .call(
            &app.kiosk,
            Method::GET,
            &format!("/api/v1/kiosk/waste-stats?staff_id={}", app.staff_id),
            None,
        )
        .await;
    assert_eq!(v["person_average_g"].as_f64(), Some(170.0), "{v}");
    let avg = v["canteen_average_g"].as_f64().expect("canteen average");
    assert!((avg - 340.0 / 3.0).abs() < 1e-9, "{v}");
});
