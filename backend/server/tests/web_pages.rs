//! The web pages (crate `web`) as mounted by the server, at the HTTP level (no browser): sign-in
//! with its CSRF cookie, the API's sessions reused, forged CSRF tokens refused, roles kept
//! apart, another person's data out of reach, HTML in names escaped, the dashboard's figures.
//! The browser tests are in `backend/web/tests/browser.rs`.

mod common;

use axum::body::Body;
use axum::http::{header, Method, Request, StatusCode};
use common::{lunch_today, Caller};
use serde_json::json;

fn cookies(c: &Caller) -> String {
    match c {
        Caller::Person(token, _) => format!("cp_session={token}"),
        _ => String::new(),
    }
}

fn csrf(c: &Caller) -> String {
    match c {
        Caller::Person(_, csrf) => csrf.clone(),
        _ => String::new(),
    }
}

fn get(path: &str, cookie: &str) -> Request<Body> {
    Request::builder()
        .uri(path)
        .header(header::COOKIE, cookie)
        .body(Body::empty())
        .expect("request")
}

fn post_form(path: &str, cookie: &str, form: &[(&str, &str)]) -> Request<Body> {
    let body: Vec<String> = form
        .iter()
        .map(|(k, v)| format!("{k}={}", urlencode(v)))
        .collect();
    Request::builder()
        .method(Method::POST)
        .uri(path)
        .header(header::COOKIE, cookie)
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Body::from(body.join("&")))
        .expect("request")
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn set_cookie_value(h: &axum::http::HeaderMap, name: &str) -> Option<String> {
    h.get_all(header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter_map(|v| v.split(';').next())
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_string())
}

fn location(h: &axum::http::HeaderMap) -> String {
    h.get(header::LOCATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string()
}

both_dbs!(
    sign_in_form_needs_its_csrf_cookie_and_opens_an_api_session,
    |app| {
        // A stranger is sent to the sign-in form, which comes back to the page afterwards.
        let (s, h, _) = app.raw(get("/manage", "")).await;
        assert_eq!(s, StatusCode::SEE_OTHER);
        assert_eq!(location(&h), "/login?next=/manage");
        let (s, h, body) = app.raw(get("/login?next=/manage", "")).await;
        assert_eq!(s, StatusCode::OK);
        let page = text(&body);
        assert!(page.contains("<html lang=\"zh-CN\">"), "zh-CN by default");
        assert!(page.contains("登录"));
        let token = set_cookie_value(&h, "cp_login_csrf").expect("form cookie");
        assert!(page.contains(&format!("value=\"{token}\"")));
        let form_cookie = format!("cp_login_csrf={token}");
        // A forged token: refused, no session.
        let (s, h, body) = app
            .raw(post_form(
                "/login",
                &form_cookie,
                &[
                    ("csrf", "forged"),
                    ("username", "boss"),
                    ("password", "password-of-boss"),
                ],
            ))
            .await;
        assert_eq!(s, StatusCode::FORBIDDEN, "{}", text(&body));
        assert!(set_cookie_value(&h, "cp_session").is_none());
        // A wrong password: the form again with the message.
        let (s, _, body) = app
            .raw(post_form(
                "/login",
                &form_cookie,
                &[("csrf", &token), ("username", "boss"), ("password", "nope")],
            ))
            .await;
        assert_eq!(s, StatusCode::UNAUTHORIZED);
        assert!(text(&body).contains("用户名或密码不正确"));
        // The right one: a session cookie the JSON API accepts too.
        let (s, h, _) = app
            .raw(post_form(
                "/login",
                &form_cookie,
                &[
                    ("csrf", &token),
                    ("username", "boss"),
                    ("password", "password-of-boss"),
                    ("next", "/manage"),
                ],
            ))
            .await;
        assert_eq!(s, StatusCode::SEE_OTHER);
        assert_eq!(location(&h), "/manage");
        let session = set_cookie_value(&h, "cp_session").expect("session cookie");
        let (s, _, body) = app
            .raw(get("/api/v1/me", &format!("cp_session={session}")))
            .await;
        assert_eq!(s, StatusCode::OK);
        assert!(text(&body).contains("\"manager\""));
        // An outside address in `next` is ignored.
        let (_, h, _) = app
            .raw(post_form(
                "/login",
                &form_cookie,
                &[
                    ("csrf", &token),
                    ("username", "s1"),
                    ("password", "password-of-s1"),
                    ("next", "//evil.example/"),
                ],
            ))
            .await;
        assert_eq!(location(&h), "/me");
    }
);

both_dbs!(forged_csrf_on_a_page_form_is_refused, |app| {
    let cookie = cookies(&app.manager);
    let (s, _, body) = app
        .raw(post_form("/logout", &cookie, &[("csrf", "forged")]))
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    assert!(text(&body).contains("<html"), "an HTML page, not JSON");
    // Nothing happened: the session still works.
    let (s, _, _) = app.raw(get("/manage", &cookie)).await;
    assert_eq!(s, StatusCode::OK);
    // The right token signs out, and the session is gone for the API as well.
    let (s, _, _) = app
        .raw(post_form(
            "/logout",
            &cookie,
            &[("csrf", &csrf(&app.manager))],
        ))
        .await;
    assert_eq!(s, StatusCode::SEE_OTHER);
    let (s, _, _) = app.raw(get("/api/v1/me", &cookie)).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
});

both_dbs!(roles_keep_to_their_pages, |app| {
    let (s, _, _) = app.raw(get("/manage", &cookies(&app.staff))).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (s, _, _) = app.raw(get("/manage", &cookies(&app.auditor))).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    // The API's JSON errors are untouched by the pages being mounted.
    let (s, v) = app
        .call(&Caller::Anonymous, Method::GET, "/api/v1/nope", None)
        .await;
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (StatusCode::NOT_FOUND, Some("not_found"))
    );
});

/// A ¥50.00 top-up credited at the test's (pinned) lunch time.
async fn top_up_today(app: &common::TestApp) {
    let now = common::lunch_today_ms();
    app.store
        .create_payment_order(
            store::NewPaymentOrder {
                order_no: "today-1".into(),
                staff_id: app.staff_id,
                amount: ledger::Fen(5000),
                provider: "sandbox".into(),
                now_ms: now,
            },
            &store::Actor::System("test"),
        )
        .await
        .expect("order");
    app.store
        .credit_payment("today-1", "t", ledger::Fen(5000), "{}", now)
        .await
        .expect("credit");
}

both_dbs!(dashboard_shows_todays_meals_money_and_waste, |app| {
    top_up_today(&app).await;
    let (s, c) = app
        .call(
            &app.kiosk,
            Method::POST,
            "/api/v1/kiosk/charges",
            Some(json!({"idempotency_key": "d-1", "staff_id": app.staff_id, "kiosk_time": lunch_today()})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{c}");
    let w = json!({"idempotency_key": "dw-1", "charge_id": c["charge_id"], "staff_id": null, "gross_grams": 492,
                   "tare_grams": 480, "dish": null, "category": null, "measured_at": lunch_today()});
    let (s, v) = app
        .call(&app.kiosk, Method::POST, "/api/v1/kiosk/waste", Some(w))
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let (s, h, body) = app.raw(get("/manage", &cookies(&app.manager))).await;
    assert_eq!(s, StatusCode::OK);
    // Private pages are not cached and load nothing from elsewhere.
    assert_eq!(h[header::CACHE_CONTROL], "no-store");
    assert!(h[header::CONTENT_SECURITY_POLICY]
        .to_str()
        .unwrap()
        .starts_with("default-src 'self'"));
    let page = text(&body);
    assert!(
        !page.contains("http://") || !page.contains("src=\"http"),
        "no outside assets"
    );
    assert!(!page.contains("<script"), "no JavaScript needed");
    // One lunch at ¥15.00 today; the plate had 12 g left: clean.
    assert!(page.contains("¥15.00"), "{page}");
    assert!(page.contains("¥50.00"), "the top-up");
    assert!(page.contains("12 克"));
    assert!(page.contains("100%"));
    // Four charts, each an accessible image with a title and its values as a table.
    assert_eq!(page.matches("<svg class=\"chart\"").count(), 4);
    assert_eq!(page.matches("role=\"img\"").count(), 4);
    assert_eq!(page.matches("<table>").count(), 4);
    // English when asked, remembered by a cookie.
    let (s, h, _) = app.raw(get("/lang/en?back=/manage", "")).await;
    assert_eq!(
        (s, location(&h)),
        (StatusCode::SEE_OTHER, "/manage".to_string())
    );
    let lang = set_cookie_value(&h, "cp_lang").expect("language cookie");
    let (_, _, body) = app
        .raw(get(
            "/manage",
            &format!("{}; cp_lang={lang}", cookies(&app.manager)),
        ))
        .await;
    let page = text(&body);
    assert!(page.contains("<html lang=\"en\">"));
    assert!(page.contains("Meals served"));
    // The language switch never sends anyone off the site.
    let (_, h, _) = app.raw(get("/lang/en?back=//evil.example", "")).await;
    assert_eq!(location(&h), "/");
});

/// A staff member with a login (password "password-of-<user>") and their session.
async fn staff_with_login(
    app: &common::TestApp,
    no: &str,
    name: &str,
    user: &str,
) -> (i64, Caller) {
    let s = app
        .store
        .create_staff(
            store::NewStaff {
                employee_no: no.into(),
                name: name.into(),
                department: "D".into(),
                category: "regular".into(),
            },
            &store::Actor::System("test"),
        )
        .await
        .expect("staff");
    (s.id, app.person(user, store::Role::Staff, Some(s.id)).await)
}

/// Consent and one stored (sealed) template for a person; answers the template's id.
async fn enrolled(app: &common::TestApp, staff_id: i64) -> i64 {
    let sys = store::Actor::System("test");
    let now = common::lunch_today_ms();
    app.store
        .set_consent(staff_id, true, now, &sys)
        .await
        .expect("consent");
    app.store
        .add_template(
            staff_id,
            app.state
                .cipher
                .seal(staff_id, &[0.1f32; 128])
                .expect("seal"),
            now,
            &sys,
        )
        .await
        .expect("template")
        .id
}

fn live_templates(list: &[store::TemplateMeta]) -> usize {
    list.iter().filter(|t| !t.deleted).count()
}

both_dbs!(staff_page_shows_my_own_data_only, |app| {
    app.top_up_via_store(app.staff_id, 5000).await;
    let mine = enrolled(&app, app.staff_id).await;
    let (other_id, _) = staff_with_login(&app, "S2", "Other Person", "s2").await;
    let theirs = enrolled(&app, other_id).await;
    let me = cookies(&app.staff);
    let (s, _, body) = app.raw(get("/me", &me)).await;
    assert_eq!(s, StatusCode::OK);
    let page = text(&body);
    assert!(page.contains("Staff One"));
    assert!(page.contains("id=\"balance\">¥50.00<"), "{page}");
    assert!(!page.contains("Other Person"));
    assert!(page.contains(&format!("/me/templates/{mine}/delete")));
    assert!(!page.contains(&format!("/me/templates/{theirs}/delete")));
    // Another person's template id in the URL: not found, nothing deleted.
    let (s, _, _) = app
        .raw(post_form(
            &format!("/me/templates/{theirs}/delete"),
            &me,
            &[("csrf", &csrf(&app.staff))],
        ))
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert_eq!(
        live_templates(&app.store.list_templates(other_id).await.unwrap()),
        1
    );
    // A forged token on my own: refused, nothing deleted.
    let (s, _, _) = app
        .raw(post_form(
            &format!("/me/templates/{mine}/delete"),
            &me,
            &[("csrf", "forged")],
        ))
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    assert_eq!(
        live_templates(&app.store.list_templates(app.staff_id).await.unwrap()),
        1
    );
    // Managers have no staff page.
    let (s, _, _) = app.raw(get("/me", &cookies(&app.manager))).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
});

both_dbs!(html_in_a_staff_name_is_escaped, |app| {
    let (_, who) = staff_with_login(&app, "S3", "<script>alert('x')</script>&", "s3").await;
    let (s, _, body) = app.raw(get("/me", &cookies(&who))).await;
    assert_eq!(s, StatusCode::OK);
    let page = text(&body);
    assert!(!page.contains("<script>alert"), "{page}");
    assert!(
        page.contains("&#60;script&#62;") || page.contains("&lt;script&gt;"),
        "{page}"
    );
});

both_dbs!(
    withdrawing_consent_deletes_my_templates_for_the_kiosks,
    |app| {
        enrolled(&app, app.staff_id).await;
        let me = cookies(&app.staff);
        let (s, h, _) = app
            .raw(post_form(
                "/me/consent",
                &me,
                &[("csrf", &csrf(&app.staff)), ("granted", "false")],
            ))
            .await;
        assert_eq!(
            (s, location(&h)),
            (StatusCode::SEE_OTHER, "/me?done=withdrawn".to_string())
        );
        assert!(!app.store.consent(app.staff_id).await.unwrap().granted);
        assert_eq!(
            live_templates(&app.store.list_templates(app.staff_id).await.unwrap()),
            0
        );
        // The kiosks' gallery now holds only a tombstone for the person.
        let (s, g) = app
            .call(
                &app.kiosk,
                Method::GET,
                "/api/v1/kiosk/gallery?since=0",
                None,
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{g}");
        let mine: Vec<&serde_json::Value> = g["changes"]
            .as_array()
            .expect("changes")
            .iter()
            .filter(|c| c["staff_id"] == app.staff_id)
            .collect();
        assert!(!mine.is_empty(), "{g}");
        assert!(
            mine.iter()
                .all(|c| c["deleted"] == true && c["embedding"].is_null()),
            "{g}"
        );
        let (_, _, body) = app.raw(get("/me?done=withdrawn", &me)).await;
        assert!(text(&body).contains("已撤回同意"));
    }
);

both_dbs!(top_up_and_pay_code_forms, |app| {
    let me = cookies(&app.staff);
    let token = csrf(&app.staff);
    let (s, _, body) = app
        .raw(post_form(
            "/me/top-up",
            &me,
            &[("csrf", &token), ("amount", "abc")],
        ))
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(text(&body).contains("请输入 0.01 到 5000 之间的金额"));
    let (s, h, _) = app
        .raw(post_form(
            "/me/top-up",
            &me,
            &[("csrf", &token), ("amount", "100")],
        ))
        .await;
    assert_eq!(s, StatusCode::SEE_OTHER);
    let to = location(&h);
    assert!(to.contains("/sandbox/pay/CP"), "{to}");
    let orders = app
        .store
        .list_payment_orders(Some(app.staff_id), 10)
        .await
        .unwrap();
    assert_eq!(orders.len(), 1);
    assert_eq!(orders[0].amount, ledger::Fen(10_000));
    // Coming back before the payment lands: the page says so and refreshes itself.
    let (_, _, body) = app
        .raw(get(&format!("/me?topup={}", orders[0].order_no), &me))
        .await;
    let page = text(&body);
    assert!(page.contains("http-equiv=\"refresh\""));
    let (s, _, body) = app
        .raw(post_form("/me/pay-code", &me, &[("csrf", &token)]))
        .await;
    assert_eq!(s, StatusCode::OK);
    let page = text(&body);
    assert!(page.contains("<svg role=\"img\""), "{page}");
    assert!(page.contains("id=\"expires\""));
    let (s, _, _) = app
        .raw(post_form("/me/pay-code", &me, &[("csrf", "forged")]))
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
});

/// A top-up of `fen` credited at the test's lunch time, under its own order number.
async fn top_up_at_lunch(app: &common::TestApp, staff_id: i64, no: &str, fen: i64) {
    let now = common::lunch_today_ms();
    app.store
        .create_payment_order(
            store::NewPaymentOrder {
                order_no: no.into(),
                staff_id,
                amount: ledger::Fen(fen),
                provider: "sandbox".into(),
                now_ms: now,
            },
            &store::Actor::System("test"),
        )
        .await
        .expect("order");
    app.store
        .credit_payment(no, no, ledger::Fen(fen), "{}", now)
        .await
        .expect("credit");
}

both_dbs!(journal_filters_pages_and_exports_what_it_shows, |app| {
    let (evil, _) = staff_with_login(&app, "=1+2", "=cmd|' /C calc'!A0", "s9").await;
    top_up_at_lunch(&app, evil, "evil-1", 700).await;
    for i in 0..55 {
        top_up_at_lunch(&app, app.staff_id, &format!("t-{i}"), 100 + i).await;
    }
    let (s, c) = app
        .call(
            &app.kiosk,
            Method::POST,
            "/api/v1/kiosk/charges",
            Some(json!({"idempotency_key": "j-1", "staff_id": app.staff_id, "kiosk_time": lunch_today()})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{c}");
    let boss = cookies(&app.manager);
    // Page one: 50 entries, newest first (the charge), and a link to the next page.
    let (s, _, body) = app.raw(get("/manage/journal", &boss)).await;
    assert_eq!(s, StatusCode::OK);
    let page = text(&body);
    assert_eq!(page.matches("<tr><td>").count(), 50, "{page}");
    assert!(page.contains("-¥15.00"));
    let next = page
        .split("id=\"next-page\"")
        .next()
        .and_then(|h| h.rsplit("href=\"").next())
        .and_then(|h| h.split('"').next())
        .expect("a next page")
        .replace("&amp;", "&")
        .replace("&#38;", "&");
    let (_, _, body) = app.raw(get(&next, &boss)).await;
    assert_eq!(text(&body).matches("<tr><td>").count(), 57 - 50);
    // Filtered by kind and person.
    let (_, _, body) = app
        .raw(get("/manage/journal?kind=charge&person=S1", &boss))
        .await;
    assert_eq!(text(&body).matches("<tr><td>").count(), 1);
    let (s, _, _) = app.raw(get("/manage/journal?kind=nonsense", &boss)).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    // The export holds exactly the filter's lines, as the person's statement has them.
    let (s, h, body) = app.raw(get("/manage/journal.csv?person=S1", &boss)).await;
    assert_eq!(s, StatusCode::OK);
    assert!(h[header::CONTENT_TYPE]
        .to_str()
        .unwrap()
        .starts_with("text/csv"));
    let csv = text(&body);
    let rows: Vec<&str> = csv.lines().skip(1).collect();
    let statement = app.store.statement(app.staff_id, 1000).await.unwrap();
    assert_eq!(rows.len(), statement.len());
    for (row, line) in rows.iter().zip(&statement) {
        let cells: Vec<&str> = row.split(',').collect();
        assert_eq!(cells[0], line.entry_id.to_string());
        let total = line.cash_delta.0 + line.subsidy_delta.0;
        let yuan = format!(
            "{}{}.{:02}",
            if total < 0 { "-" } else { "" },
            total.abs() / 100,
            total.abs() % 100
        );
        assert_eq!(cells[7], yuan, "{row}");
    }
    // Formula injection: the person's number and name are text, not formulas.
    let (_, _, body) = app.raw(get("/manage/journal.csv?kind=top_up", &boss)).await;
    let csv = text(&body);
    let evil_row = csv
        .lines()
        .find(|l| l.contains("cmd|"))
        .expect("the row of the person with a formula name");
    assert!(
        evil_row.contains(",'=1+2,'=cmd|' /C calc'!A0,"),
        "{evil_row}"
    );
    assert!(!csv.contains(",=cmd"));
    // Staff have no journal.
    let (s, _, _) = app
        .raw(get("/manage/journal.csv", &cookies(&app.staff)))
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
});

both_dbs!(manager_approves_a_refund_request, |app| {
    app.top_up_via_store(app.staff_id, 5000).await;
    let (s, c) = app
        .call(
            &app.kiosk,
            Method::POST,
            "/api/v1/kiosk/charges",
            Some(json!({"idempotency_key": "r-1", "staff_id": app.staff_id, "kiosk_time": lunch_today()})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{c}");
    let (s, r) = app
        .call(
            &app.staff,
            Method::POST,
            "/api/v1/me/refunds",
            Some(json!({"charge_id": c["charge_id"], "reason": "<i>charged twice</i>"})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{r}");
    let id = r["id"].as_i64().expect("refund id");
    let boss = cookies(&app.manager);
    let (s, _, body) = app.raw(get("/manage/refunds", &boss)).await;
    assert_eq!(s, StatusCode::OK);
    let page = text(&body);
    assert!(
        page.contains("¥15.00") && page.contains("Staff One"),
        "{page}"
    );
    assert!(!page.contains("<i>charged"), "the reason is escaped");
    let path = format!("/manage/refunds/{id}/decide");
    // Staff cannot decide; a forged token decides nothing.
    let (s, _, _) = app
        .raw(post_form(
            &path,
            &cookies(&app.staff),
            &[("csrf", &csrf(&app.staff)), ("approve", "true")],
        ))
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (s, _, _) = app
        .raw(post_form(
            &path,
            &boss,
            &[("csrf", "forged"), ("approve", "true")],
        ))
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let waiting = app
        .store
        .list_refunds(Some(store::RefundStatus::Requested), None)
        .await
        .unwrap();
    assert_eq!(waiting.len(), 1);
    let (s, _, _) = app
        .raw(post_form(
            &path,
            &boss,
            &[("csrf", &csrf(&app.manager)), ("approve", "true")],
        ))
        .await;
    assert_eq!(s, StatusCode::SEE_OTHER);
    let b = app.store.balances(app.staff_id).await.unwrap();
    assert_eq!(b.cash.0 + b.subsidy.0, 5000, "the meal's money is back");
    let (_, _, body) = app.raw(get("/manage/refunds", &boss)).await;
    assert!(text(&body).contains("id=\"no-refunds\""));
    // Deciding twice is refused with a message, nothing changes.
    let (s, _, _) = app
        .raw(post_form(
            &path,
            &boss,
            &[("csrf", &csrf(&app.manager)), ("approve", "false")],
        ))
        .await;
    assert!(s.is_client_error(), "{s}");
    app.check_ok().await;
});

both_dbs!(staff_asks_for_a_refund_of_their_own_meal_only, |app| {
    app.top_up_via_store(app.staff_id, 5000).await;
    let (other, _) = staff_with_login(&app, "S5", "Someone Else", "s5").await;
    app.top_up_via_store(other, 5000).await;
    let mut charge_of = std::collections::HashMap::new();
    for (key, who) in [("m-1", app.staff_id), ("m-2", other)] {
        let (s, c) = app
            .call(
                &app.kiosk,
                Method::POST,
                "/api/v1/kiosk/charges",
                Some(json!({"idempotency_key": key, "staff_id": who, "kiosk_time": lunch_today()})),
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{c}");
        charge_of.insert(who, c["charge_id"].as_i64().expect("charge id").to_string());
    }
    let me = cookies(&app.staff);
    let token = csrf(&app.staff);
    let (_, _, body) = app.raw(get("/me", &me)).await;
    let page = text(&body);
    assert!(page.contains(&format!(
        "name=\"charge_id\" value=\"{}\"",
        charge_of[&app.staff_id]
    )));
    // Someone else's charge: not found, nothing asked.
    let (s, _, _) = app
        .raw(post_form(
            "/me/refunds",
            &me,
            &[
                ("csrf", &token),
                ("charge_id", &charge_of[&other]),
                ("reason", "mine?"),
            ],
        ))
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    // No reason: the page again with the message.
    let (s, _, body) = app
        .raw(post_form(
            "/me/refunds",
            &me,
            &[
                ("csrf", &token),
                ("charge_id", &charge_of[&app.staff_id]),
                ("reason", " "),
            ],
        ))
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(text(&body).contains("请填写退款原因"));
    assert!(app.store.list_refunds(None, None).await.unwrap().is_empty());
    let (s, h, _) = app
        .raw(post_form(
            "/me/refunds",
            &me,
            &[
                ("csrf", &token),
                ("charge_id", &charge_of[&app.staff_id]),
                ("reason", "cold soup"),
            ],
        ))
        .await;
    assert_eq!(
        (s, location(&h)),
        (StatusCode::SEE_OTHER, "/me?done=refund".to_string())
    );
    let asked = app.store.list_refunds(None, None).await.unwrap();
    assert_eq!(asked.len(), 1);
    assert_eq!(
        (asked[0].staff_id, asked[0].reason.as_str()),
        (app.staff_id, "cold soup")
    );
    let (_, _, body) = app.raw(get("/me?done=refund", &me)).await;
    let page = text(&body);
    assert!(page.contains("退款审核中"), "{page}");
    assert!(!page.contains(&format!(
        "name=\"charge_id\" value=\"{}\"",
        charge_of[&app.staff_id]
    )));
});
