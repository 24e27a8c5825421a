//! The web pages (crate `web`) as mounted by the server, at the HTTP level (no browser): sign-in
//! with its CSRF cookie, the API's sessions reused, forged CSRF tokens refused, roles kept
//! apart, another person's data out of reach, HTML in names escaped, the dashboard's figures.
//! The browser tests are in `backend/web/tests/browser.rs`.

mod common;

use axum::http::{header, Method, StatusCode};
use common::pages::*;
use common::{lunch_today, Caller};
use serde_json::json;

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
    // Six charts, each an accessible image with a title and its values as a table.
    assert_eq!(page.matches("<svg class=\"chart\"").count(), 6);
    assert_eq!(page.matches("role=\"img\"").count(), 6);
    assert_eq!(page.matches("<table>").count(), 6);
    // Waste by meal period: the plate belongs to the lunch it was weighed against.
    let meals = page
        .split("id=\"chart-meal-waste\"")
        .nth(1)
        .and_then(|c| c.split("</figure>").next())
        .expect("the meal-period chart");
    assert!(
        meals.contains("<th scope=\"row\">午餐</th><td>1</td><td>12 克</td><td>100%</td>"),
        "{meals}"
    );
    // Waste by department: the plate is the charge's person's, in their department.
    let department = app.store.get_staff(app.staff_id).await.unwrap().department;
    let table = page
        .split("id=\"chart-departments\"")
        .nth(1)
        .and_then(|c| c.split("</figure>").next())
        .expect("the department chart");
    assert!(
        table.contains(&format!(
            "<th scope=\"row\">{department}</th><td>1</td><td>12 克</td>"
        )),
        "{table}"
    );
    // A target set on the settings page is drawn beside the month's waste.
    assert!(!page.contains("目标 "));
    let canteen = app.store.list_canteens().await.unwrap()[0].clone();
    let (s, _, _) = app
        .raw(post_form(
            &format!("/manage/settings/canteens/{}", canteen.id),
            &cookies(&app.manager),
            &[
                ("csrf", &csrf(&app.manager)),
                ("name", &canteen.name),
                ("utc_offset_minutes", "480"),
                ("per_transaction_cap", ""),
                ("daily_cap", ""),
                ("waste_target_grams", "60"),
            ],
        ))
        .await;
    assert_eq!(s, StatusCode::SEE_OTHER);
    let (_, _, body) = app.raw(get("/manage", &cookies(&app.manager))).await;
    assert!(text(&body).contains("目标 60 g"));
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
    // The XLSX export: the same lines; a name that looks like a formula is a text cell.
    let (s, h, body) = app.raw(get("/manage/journal.xlsx?person=S1", &boss)).await;
    assert_eq!(s, StatusCode::OK);
    assert!(h[header::CONTENT_DISPOSITION]
        .to_str()
        .unwrap()
        .ends_with(".xlsx\""));
    let sheet = first_sheet(&body);
    assert_eq!(sheet.len(), statement.len() + 1, "a header and the lines");
    for (row, line) in sheet.iter().skip(1).zip(&statement) {
        assert_eq!(row[0], calamine::Data::Float(line.entry_id as f64));
        let total = (line.cash_delta.0 + line.subsidy_delta.0) as f64 / 100.0;
        assert_eq!(row[7], calamine::Data::Float(total));
    }
    let (_, _, body) = app
        .raw(get("/manage/journal.xlsx?kind=top_up", &boss))
        .await;
    let sheet = first_sheet(&body);
    assert!(sheet.iter().any(
        |r| r[4] == calamine::Data::String("=cmd|' /C calc'!A0".into())
            && r[3] == calamine::Data::String("=1+2".into())
    ));
    // Staff have no journal.
    let (s, _, _) = app
        .raw(get("/manage/journal.csv", &cookies(&app.staff)))
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
});

both_dbs!(
    journal_filters_by_department_and_kiosk_and_lists_plates,
    |app| {
        let other = app
            .store
            .create_staff(
                store::NewStaff {
                    employee_no: "S7".into(),
                    name: "Other Dept".into(),
                    department: "Finance".into(),
                    category: "regular".into(),
                },
                &store::Actor::System("test"),
            )
            .await
            .expect("a person of Finance")
            .id;
        top_up_at_lunch(&app, other, "o-1", 700).await;
        top_up_at_lunch(&app, app.staff_id, "m-1", 5_000).await;
        let (s, c) = app
        .call(
            &app.kiosk,
            Method::POST,
            "/api/v1/kiosk/charges",
            Some(json!({"idempotency_key": "k-1", "staff_id": app.staff_id, "kiosk_time": lunch_today()})),
        )
        .await;
        assert_eq!(s, StatusCode::OK, "{c}");
        let w = json!({"idempotency_key": "kw-1", "charge_id": c["charge_id"], "staff_id": null, "gross_grams": 515,
                   "tare_grams": 480, "dish": "rice", "category": null, "measured_at": lunch_today()});
        let (s, v) = app
            .call(&app.kiosk, Method::POST, "/api/v1/kiosk/waste", Some(w))
            .await;
        assert_eq!(s, StatusCode::OK, "{v}");
        let boss = cookies(&app.manager);
        let kiosk = app.store.list_kiosks().await.unwrap()[0].id;
        let mine = app.store.get_staff(app.staff_id).await.unwrap().department;
        assert_ne!(mine, "Finance");
        // The filter offers the departments and kiosks there are.
        let (s, _, body) = app.raw(get("/manage/journal", &boss)).await;
        assert_eq!(s, StatusCode::OK);
        let page = text(&body);
        assert!(
            page.contains("<option value=\"Finance\">Finance</option>"),
            "{page}"
        );
        assert!(page.contains(&format!("<option value=\"{kiosk}\">")));
        // A department: only its people's lines.
        let (_, _, body) = app
            .raw(get("/manage/journal?department=Finance", &boss))
            .await;
        let page = text(&body);
        assert_eq!(page.matches("<tr><td>").count(), 1, "{page}");
        assert!(page.contains("Other Dept") && page.contains("¥7.00"));
        // A kiosk: the charge made there, not the top-ups.
        let (_, _, body) = app
            .raw(get(&format!("/manage/journal?kiosk={kiosk}"), &boss))
            .await;
        let page = text(&body);
        assert_eq!(page.matches("<tr><td>").count(), 1, "{page}");
        assert!(page.contains("-¥15.00"));
        let (s, _, _) = app.raw(get("/manage/journal?kiosk=first", &boss)).await;
        assert_eq!(s, StatusCode::BAD_REQUEST);
        // Plate waste: the weighed plate, its person taken from the charge.
        let (_, _, body) = app.raw(get("/manage/journal?kind=waste", &boss)).await;
        let page = text(&body);
        let table = page
            .split("<table id=\"waste\">")
            .nth(1)
            .expect("the plates' table");
        assert_eq!(table.matches("<tr><td>").count(), 1, "{table}");
        assert!(table.contains("35 克") && table.contains("rice") && table.contains(&mine));
        let (_, _, body) = app
            .raw(get("/manage/journal?kind=waste&department=Finance", &boss))
            .await;
        assert!(!text(&body).contains("<table id=\"waste\">"));
        // Its exports hold exactly those plates.
        let (s, h, body) = app.raw(get("/manage/journal.csv?kind=waste", &boss)).await;
        assert_eq!(s, StatusCode::OK);
        assert!(h[header::CONTENT_DISPOSITION]
            .to_str()
            .unwrap()
            .contains("waste-"));
        let csv = text(&body);
        let rows: Vec<&str> = csv.lines().skip(1).collect();
        assert_eq!(rows.len(), 1, "{csv}");
        assert!(rows[0].ends_with(",35,rice"), "{}", rows[0]);
        let (_, _, body) = app.raw(get("/manage/journal.xlsx?kind=waste", &boss)).await;
        let sheet = first_sheet(&body);
        assert_eq!(sheet.len(), 2);
        assert_eq!(sheet[1][6], calamine::Data::Float(35.0));
        assert_eq!(sheet[1][5], calamine::Data::String(mine));
    }
);

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

/// The cells of an XLSX file's first sheet, row by row.
fn first_sheet(bytes: &[u8]) -> Vec<Vec<calamine::Data>> {
    use calamine::Reader;
    let mut book = calamine::Xlsx::new(std::io::Cursor::new(bytes.to_vec())).expect("an XLSX file");
    let name = book.sheet_names()[0].clone();
    let range = book.worksheet_range(&name).expect("the first sheet");
    range.rows().map(|r| r.to_vec()).collect()
}

/// An XLSX workbook of these rows (the first is the header), as a spreadsheet program saves it.
fn xlsx(rows: &[&[&str]]) -> Vec<u8> {
    let mut book = rust_xlsxwriter::Workbook::new();
    let sheet = book.add_worksheet();
    for (r, row) in rows.iter().enumerate() {
        for (c, cell) in row.iter().enumerate() {
            // A number typed into a cell is stored as a number, as Excel would.
            match cell.parse::<f64>() {
                Ok(n) => sheet.write_number(r as u32, c as u16, n),
                Err(_) => sheet.write_string(r as u32, c as u16, *cell),
            }
            .expect("cell");
        }
    }
    book.save_to_buffer().expect("xlsx")
}

async fn staff_count(app: &common::TestApp) -> usize {
    app.store.list_staff(0, 1000).await.expect("staff").len()
}

both_dbs!(manager_adds_edits_finds_and_offboards_a_person, |app| {
    let boss = cookies(&app.manager);
    let token = csrf(&app.manager);
    let before = staff_count(&app).await;
    // Each field under the API's rule: refused with the rule in words, nothing written.
    let (s, _, body) = app
        .raw(post_form(
            "/manage/staff",
            &boss,
            &[
                ("csrf", &token),
                ("employee_no", "E 77"),
                ("name", "王芳"),
                ("category", "regular"),
            ],
        ))
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(text(&body).contains("工号须为"), "{}", text(&body));
    assert!(
        text(&body).contains("value=\"王芳\""),
        "the form keeps what was typed"
    );
    // A forged token: nothing written either.
    let (s, _, _) = app
        .raw(post_form(
            "/manage/staff",
            &boss,
            &[
                ("csrf", "forged"),
                ("employee_no", "E77"),
                ("name", "王芳"),
                ("category", "regular"),
            ],
        ))
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    assert_eq!(staff_count(&app).await, before);
    let add = [
        ("csrf", token.as_str()),
        ("employee_no", "E77"),
        ("name", "王芳"),
        ("department", "办公室"),
        ("category", "regular"),
    ];
    let (s, h, _) = app.raw(post_form("/manage/staff", &boss, &add)).await;
    assert_eq!(s, StatusCode::SEE_OTHER);
    let id: i64 = location(&h)
        .trim_start_matches("/manage/staff/")
        .split('?')
        .next()
        .and_then(|n| n.parse().ok())
        .expect("the new person's page");
    // The same number again is refused in words.
    let (s, _, body) = app.raw(post_form("/manage/staff", &boss, &add)).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(text(&body).contains("该工号已存在"));
    // Found by part of the name or the department, case-insensitively by number.
    for q in ["%E7%8E%8B", "e77", "%E5%8A%9E%E5%85%AC"] {
        let (_, _, body) = app.raw(get(&format!("/manage/staff?q={q}"), &boss)).await;
        assert!(text(&body).contains("王芳"), "search {q}");
    }
    // A LIKE wildcard is a character, not "anything".
    let (_, _, body) = app.raw(get("/manage/staff?q=%25", &boss)).await;
    assert!(text(&body).contains("id=\"no-people\""));
    // Edited and deactivated: gone from the list unless asked for.
    let (s, h, _) = app
        .raw(post_form(
            &format!("/manage/staff/{id}"),
            &boss,
            &[
                ("csrf", &token),
                ("name", "王芳芳"),
                ("department", "财务处"),
                ("category", "regular"),
                ("meals_per_period", "2"),
            ],
        ))
        .await;
    assert_eq!(s, StatusCode::SEE_OTHER, "{h:?}");
    let s77 = app.store.get_staff(id).await.expect("person");
    assert_eq!(
        (
            s77.name.as_str(),
            s77.department.as_str(),
            s77.active,
            s77.meals_per_period
        ),
        ("王芳芳", "财务处", false, 2)
    );
    let (_, _, body) = app.raw(get("/manage/staff?q=E77", &boss)).await;
    assert!(!text(&body).contains("王芳芳"));
    let (_, _, body) = app.raw(get("/manage/staff?q=E77&all=1", &boss)).await;
    assert!(text(&body).contains("王芳芳"));
    // A bad edit changes nothing.
    let (s, _, _) = app
        .raw(post_form(
            &format!("/manage/staff/{id}"),
            &boss,
            &[
                ("csrf", &token),
                ("name", " "),
                ("category", "regular"),
                ("meals_per_period", "99"),
                ("active", "1"),
            ],
        ))
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(app.store.get_staff(id).await.unwrap().name, "王芳芳");
    // Offboarding: the page says what will happen, then pays out exactly the balance.
    app.store
        .update_staff(
            id,
            store::StaffUpdate {
                active: Some(true),
                ..Default::default()
            },
            &store::Actor::System("test"),
        )
        .await
        .unwrap();
    app.top_up_via_store(id, 12_345).await;
    let (s, _, body) = app
        .raw(get(&format!("/manage/staff/{id}/offboard"), &boss))
        .await;
    assert_eq!(s, StatusCode::OK);
    assert!(text(&body).contains("¥123.45"));
    let (s, _, body) = app
        .raw(post_form(
            &format!("/manage/staff/{id}/offboard"),
            &boss,
            &[("csrf", &token)],
        ))
        .await;
    assert_eq!(s, StatusCode::OK);
    assert!(text(&body).contains("id=\"offboarded\""));
    assert_eq!(app.store.balances(id).await.unwrap().cash.0, 0);
    let (_, _, body) = app.raw(get(&format!("/manage/staff/{id}"), &boss)).await;
    assert!(text(&body).contains("已离职"));
    assert!(!text(&body).contains("id=\"offboard-link\""));
    // Staff and auditors have no staff pages.
    for who in [&app.staff, &app.auditor] {
        let (s, _, _) = app.raw(get("/manage/staff", &cookies(who))).await;
        assert_eq!(s, StatusCode::FORBIDDEN);
    }
    app.check_ok().await;
});

/// Signs in through the form (with its CSRF cookie); answers the status, the redirect and the
/// new session cookie.
async fn sign_in(
    app: &common::TestApp,
    user: &str,
    password: &str,
) -> (StatusCode, String, Option<String>) {
    let (_, h, _) = app.raw(get("/login", "")).await;
    let token = set_cookie_value(&h, "cp_login_csrf").expect("form cookie");
    let (s, h, _) = app
        .raw(post_form(
            "/login",
            &format!("cp_login_csrf={token}"),
            &[("csrf", &token), ("username", user), ("password", password)],
        ))
        .await;
    (
        s,
        location(&h),
        set_cookie_value(&h, "cp_session").map(|v| format!("cp_session={v}")),
    )
}

both_dbs!(a_one_time_code_opens_only_the_password_form, |app| {
    let boss = cookies(&app.manager);
    let s = app
        .store
        .create_staff(
            store::NewStaff {
                employee_no: "N100".into(),
                name: "New Person".into(),
                department: "D".into(),
                category: "regular".into(),
            },
            &store::Actor::System("test"),
        )
        .await
        .unwrap();
    let (_, _, body) = app
        .raw(get(&format!("/manage/staff/{}", s.id), &boss))
        .await;
    assert!(text(&body).contains("尚未开通登录"));
    let (st, _, body) = app
        .raw(post_form(
            &format!("/manage/staff/{}/sign-in-code", s.id),
            &boss,
            &[("csrf", &csrf(&app.manager))],
        ))
        .await;
    assert_eq!(st, StatusCode::OK);
    let page = text(&body);
    let code = page
        .split("id=\"code\">")
        .nth(1)
        .and_then(|r| r.split('<').next())
        .expect("the code, shown once")
        .to_string();
    assert_eq!(code.len(), 12);
    let (_, _, body) = app
        .raw(get(&format!("/manage/staff/{}", s.id), &boss))
        .await;
    assert!(!text(&body).contains(&code), "shown only once");
    assert!(text(&body).contains("等待本人首次登录"));
    // First sign-in with the code: every page leads to the password form, the API refuses.
    let (st, to, session) = sign_in(&app, "N100", &code).await;
    assert_eq!((st, to.as_str()), (StatusCode::SEE_OTHER, "/me"));
    let session = session.expect("a session");
    let (st, h, _) = app.raw(get("/me", &session)).await;
    assert_eq!(
        (st, location(&h).as_str()),
        (StatusCode::SEE_OTHER, "/me/password")
    );
    let (st, _, _) = app.raw(get("/api/v1/me/balance", &session)).await;
    assert_eq!(st, StatusCode::FORBIDDEN);
    let (st, _, body) = app.raw(get("/me/password", &session)).await;
    assert_eq!(st, StatusCode::OK);
    assert!(text(&body).contains("欢迎"));
    let user = app.store.user_for_staff(s.id).await.unwrap().unwrap();
    let session_csrf = {
        let hash = backend::crypto::token_hash(session.trim_start_matches("cp_session="));
        app.store
            .session(&hash, backend::state::now_ms())
            .await
            .unwrap()
            .unwrap()
            .csrf_token
    };
    // The password's rule and the repeat are checked; nothing changes until both hold.
    for (pw, again, why) in [
        ("short", "short", "10-128"),
        ("long-enough-pass", "long-enough-typo", "不一致"),
    ] {
        let (st, _, body) = app
            .raw(post_form(
                "/me/password",
                &session,
                &[("csrf", &session_csrf), ("password", pw), ("repeat", again)],
            ))
            .await;
        assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(text(&body).contains(why), "{}", text(&body));
    }
    assert!(app
        .store
        .user_for_staff(s.id)
        .await
        .unwrap()
        .unwrap()
        .must_set_password());
    let (st, h, _) = app
        .raw(post_form(
            "/me/password",
            &session,
            &[
                ("csrf", &session_csrf),
                ("password", "my own secret 1"),
                ("repeat", "my own secret 1"),
            ],
        ))
        .await;
    assert_eq!(st, StatusCode::SEE_OTHER);
    assert!(location(&h).starts_with("/me"));
    // The same session goes on, now everywhere; the code is spent; the password works.
    let (st, _, _) = app.raw(get("/me", &session)).await;
    assert_eq!(st, StatusCode::OK);
    let (st, _, _) = app.raw(get("/api/v1/me/balance", &session)).await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(
        sign_in(&app, "N100", &code).await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        sign_in(&app, "N100", "my own secret 1").await.0,
        StatusCode::SEE_OTHER
    );
    // A reset ends every session, and an expired code does not open one.
    let hash = backend::crypto::hash_password("EXPIREDCODE1").unwrap();
    app.store
        .issue_sign_in_code(
            s.id,
            &hash,
            backend::state::now_ms() - 1,
            &store::Actor::System("test"),
        )
        .await
        .unwrap();
    let (st, _, _) = app.raw(get("/me", &session)).await;
    assert_eq!(st, StatusCode::SEE_OTHER, "signed out by the reset");
    assert_eq!(
        sign_in(&app, "N100", "EXPIREDCODE1").await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        user.username, "N100",
        "staff sign in with their employee number"
    );
    // Managers' pages refuse a staff session's forms; a code for an inactive person is refused.
    app.store
        .update_staff(
            s.id,
            store::StaffUpdate {
                active: Some(false),
                ..Default::default()
            },
            &store::Actor::System("test"),
        )
        .await
        .unwrap();
    let (st, _, _) = app
        .raw(post_form(
            &format!("/manage/staff/{}/sign-in-code", s.id),
            &boss,
            &[("csrf", &csrf(&app.manager))],
        ))
        .await;
    assert_eq!(st, StatusCode::CONFLICT);
});

both_dbs!(import_checks_every_row_before_writing_anything, |app| {
    let boss = cookies(&app.manager);
    let token = csrf(&app.manager);
    let before = staff_count(&app).await;
    // One bad row in an XLSX: reported with its row, column and why; nothing written.
    let bad = xlsx(&[
        &["工号", "姓名", "部门", "类别"],
        &["1001", "张三", "办公室", "regular"],
        &["E 1002", "李四", "办公室", "regular"],
        &["1003", "<script>alert(1)</script>", "信息中心", ""],
    ]);
    let (s, _, body) = app
        .raw(upload(
            "/manage/staff/import",
            &boss,
            &token,
            "staff.xlsx",
            &bad,
        ))
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    let page = text(&body);
    assert!(
        page.contains("<td class=\"num\">3</td><td>工号</td><td><code>E 1002</code></td>"),
        "{page}"
    );
    assert_eq!(page.matches("<td class=\"num\">").count(), 1, "one problem");
    assert!(page.contains("未导入任何人员"));
    assert_eq!(staff_count(&app).await, before);
    // Fixed: all three created at once; a number typed as a number is still "1001"; HTML in a
    // name is shown as text.
    let good = xlsx(&[
        &["工号", "姓名", "部门", "类别"],
        &["1001", "张三", "办公室", "regular"],
        &["E1002", "李四", "办公室", "regular"],
        &["1003", "<script>alert(1)</script>", "信息中心", ""],
    ]);
    let (s, _, body) = app
        .raw(upload(
            "/manage/staff/import",
            &boss,
            &token,
            "staff.xlsx",
            &good,
        ))
        .await;
    assert_eq!(s, StatusCode::OK, "{}", text(&body));
    let page = text(&body);
    assert!(page.contains("已导入: 3"), "{page}");
    assert!(!page.contains("<script>alert"));
    assert!(page.contains("&#60;script&#62;") || page.contains("&lt;script&gt;"));
    assert_eq!(staff_count(&app).await, before + 3);
    let found = app
        .store
        .find_staff(store::StaffSearch {
            text: "1003".into(),
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].category, "regular");
    // The same file again: every row is taken, nothing written.
    let (s, _, body) = app
        .raw(upload(
            "/manage/staff/import",
            &boss,
            &token,
            "staff.xlsx",
            &good,
        ))
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(text(&body).matches("该工号已存在").count(), 3);
    // A CSV with a repeated number and a formula name: the repeat names its first row.
    let csv = "工号,姓名\nF1,=cmd|' /C calc'!A0\nF2,B\nF2,C\n";
    let (s, _, body) = app
        .raw(upload(
            "/manage/staff/import",
            &boss,
            &token,
            "staff.csv",
            csv.as_bytes(),
        ))
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(text(&body).contains("首次出现在第 3"), "{}", text(&body));
    // A malformed XLSX and a file too large: clear words, nothing written.
    let (s, _, body) = app
        .raw(upload(
            "/manage/staff/import",
            &boss,
            &token,
            "broken.xlsx",
            b"PK\x03\x04 this is not really a workbook",
        ))
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        text(&body).contains("无法读取该 XLSX 文件"),
        "{}",
        text(&body)
    );
    let huge = vec![b'a'; 50 * 1024 * 1024];
    let (s, _, body) = app
        .raw(upload(
            "/manage/staff/import",
            &boss,
            &token,
            "huge.csv",
            &huge,
        ))
        .await;
    assert_eq!(s, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(text(&body).contains("文件太大"), "{}", text(&body));
    // A forged token: refused, nothing written.
    let one = "工号,姓名\nG1,G\n";
    let (s, _, _) = app
        .raw(upload(
            "/manage/staff/import",
            &boss,
            "forged",
            "g.csv",
            one.as_bytes(),
        ))
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    assert_eq!(staff_count(&app).await, before + 3);
    // Staff cannot import.
    let (s, _, _) = app
        .raw(upload(
            "/manage/staff/import",
            &cookies(&app.staff),
            &csrf(&app.staff),
            "g.csv",
            one.as_bytes(),
        ))
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    assert_eq!(staff_count(&app).await, before + 3);
    app.check_ok().await;
});

both_dbs!(money_desk_collects_waives_reverses_and_reconciles, |app| {
    let boss = cookies(&app.manager);
    let token = csrf(&app.manager);
    let charge = |key: &str, offline: bool| json!({"idempotency_key": key, "staff_id": app.staff_id, "kiosk_time": lunch_today(), "offline": offline});
    // Lunch paid, then a second lunch recorded offline: an exception (one meal per period).
    top_up_at_lunch(&app, app.staff_id, "desk-1", 5000).await;
    let (s, paid) = app
        .call(
            &app.kiosk,
            Method::POST,
            "/api/v1/kiosk/charges",
            Some(charge("d-1", false)),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{paid}");
    let (_, ex) = app
        .call(
            &app.kiosk,
            Method::POST,
            "/api/v1/kiosk/charges",
            Some(charge("d-2", true)),
        )
        .await;
    assert_eq!(ex["status"], "exception", "{ex}");
    let (s, _, body) = app.raw(get("/manage/money", &boss)).await;
    assert_eq!(s, StatusCode::OK);
    let page = text(&body);
    assert_eq!(
        page.split("id=\"exceptions\"")
            .nth(1)
            .and_then(|t| t.split("</table>").next())
            .unwrap_or("")
            .matches("<tr><td>")
            .count(),
        1
    );
    // Waived: nothing posted, gone from the list.
    let balance = app.store.balances(app.staff_id).await.unwrap();
    let ex_id = ex["charge_id"].as_i64().expect("charge id");
    let (s, h, _) = app
        .raw(post_form(
            &format!("/manage/money/exceptions/{ex_id}"),
            &boss,
            &[("csrf", &token), ("collect", "false")],
        ))
        .await;
    assert_eq!(
        (s, location(&h).as_str()),
        (StatusCode::SEE_OTHER, "/manage/money?done=waived")
    );
    assert_eq!(app.store.balances(app.staff_id).await.unwrap(), balance);
    assert_eq!(
        app.store.get_charge(ex_id).await.unwrap().status,
        ledger::refund::ChargeStatus::Waived
    );
    let (_, _, body) = app.raw(get("/manage/money?done=waived", &boss)).await;
    assert!(text(&body).contains("id=\"no-exceptions\""));
    assert!(text(&body).contains("已免单"));
    // A reversal needs a reason; with one, the money is back and the reason kept with it.
    let paid_id = paid["charge_id"].as_i64().expect("charge id");
    let reverse = format!("/manage/money/charges/{paid_id}/reverse");
    let (s, _, body) = app
        .raw(post_form(
            &reverse,
            &boss,
            &[("csrf", &token), ("reason", "  ")],
        ))
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(text(&body).contains("请填写冲正原因"));
    assert_eq!(app.store.balances(app.staff_id).await.unwrap(), balance);
    let (s, _, _) = app
        .raw(post_form(
            &reverse,
            &boss,
            &[("csrf", "forged"), ("reason", "双扣")],
        ))
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (s, _, _) = app
        .raw(post_form(
            &reverse,
            &boss,
            &[("csrf", &token), ("reason", "双扣")],
        ))
        .await;
    assert_eq!(s, StatusCode::SEE_OTHER);
    let after = app.store.balances(app.staff_id).await.unwrap();
    assert_eq!(
        after.cash.0 + after.subsidy.0,
        5000,
        "the whole charge is back"
    );
    let kept = app
        .store
        .list_refunds(None, Some(app.staff_id))
        .await
        .unwrap();
    assert!(
        kept.iter()
            .any(|r| r.charge_id == paid_id && r.kind == "manager_reversal" && r.reason == "双扣"),
        "{kept:?}"
    );
    // Twice is refused in words, nothing more returned.
    let (s, _, _) = app
        .raw(post_form(
            &reverse,
            &boss,
            &[("csrf", &token), ("reason", "双扣")],
        ))
        .await;
    assert!(s.is_client_error(), "{s}");
    assert_eq!(app.store.balances(app.staff_id).await.unwrap(), after);
    // An order unpaid for an hour needs a look; asking the provider says "not paid".
    app.store
        .create_payment_order(
            store::NewPaymentOrder {
                order_no: "stale-1".into(),
                staff_id: app.staff_id,
                amount: ledger::Fen(2000),
                provider: "sandbox".into(),
                now_ms: common::lunch_today_ms() - 3_600_000,
            },
            &store::Actor::System("test"),
        )
        .await
        .unwrap();
    let (_, _, body) = app.raw(get("/manage/money", &boss)).await;
    assert!(text(&body).contains("id=\"attention\""), "{}", text(&body));
    let (s, h, _) = app
        .raw(post_form(
            "/manage/money/topups/stale-1/check",
            &boss,
            &[("csrf", &token)],
        ))
        .await;
    assert_eq!(
        (s, location(&h).as_str()),
        (StatusCode::SEE_OTHER, "/manage/money?done=not_paid")
    );
    // Staff have no money desk.
    let (s, _, _) = app.raw(get("/manage/money", &cookies(&app.staff))).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    app.check_ok().await;
});

both_dbs!(settings_change_the_canteen_and_manage_kiosks, |app| {
    let boss = cookies(&app.manager);
    let token = csrf(&app.manager);
    let canteen = app.store.list_canteens().await.unwrap()[0].clone();
    let id = canteen.id;
    let (s, _, body) = app.raw(get("/manage/settings", &boss)).await;
    assert_eq!(s, StatusCode::OK);
    assert!(text(&body).contains(&canteen.name));
    // Refused in words, nothing changed: a time zone out of range, a cap with three decimals.
    for (offset, cap) in [("900", "10"), ("480", "1.234")] {
        let (s, _, body) = app
            .raw(post_form(
                &format!("/manage/settings/canteens/{id}"),
                &boss,
                &[
                    ("csrf", &token),
                    ("name", "New name"),
                    ("utc_offset_minutes", offset),
                    ("per_transaction_cap", cap),
                    ("daily_cap", ""),
                ],
            ))
            .await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(text(&body).contains("未做任何更改"));
    }
    assert_eq!(app.store.list_canteens().await.unwrap()[0], canteen);
    let (s, _, _) = app
        .raw(post_form(
            &format!("/manage/settings/canteens/{id}"),
            &boss,
            &[
                ("csrf", &token),
                ("name", "北区食堂"),
                ("utc_offset_minutes", "480"),
                ("per_transaction_cap", "30"),
                ("daily_cap", ""),
            ],
        ))
        .await;
    assert_eq!(s, StatusCode::SEE_OTHER);
    let now = app.store.list_canteens().await.unwrap()[0].clone();
    assert_eq!(
        (now.name.as_str(), now.per_transaction_cap, now.daily_cap),
        ("北区食堂", Some(ledger::Fen(3000)), None)
    );
    // A meal period: a nonsense time is refused; a good one is kept.
    let window = |start: &'static str, end: &'static str| {
        post_form(
            &format!("/manage/settings/canteens/{id}/windows"),
            &boss,
            &[
                ("csrf", &token),
                ("meal", "breakfast"),
                ("start", start),
                ("end", end),
            ],
        )
    };
    let (s, _, _) = app.raw(window("25:00", "26:00")).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    let (s, _, _) = app.raw(window("6:30", "9:00")).await;
    assert_eq!(s, StatusCode::SEE_OTHER);
    let cfg = app.store.canteen_config(id).await.unwrap();
    let b = cfg
        .windows
        .iter()
        .find(|w| w.meal == ledger::MealKind::Breakfast)
        .expect("breakfast");
    assert_eq!((b.start_minute, b.end_minute), (390, 540));
    // A price and a subsidy rule, then a month granted once only.
    let (s, _, _) = app
        .raw(post_form(
            &format!("/manage/settings/canteens/{id}/prices"),
            &boss,
            &[
                ("csrf", &token),
                ("category", "intern"),
                ("meal", "lunch"),
                ("price", "8.50"),
            ],
        ))
        .await;
    assert_eq!(s, StatusCode::SEE_OTHER);
    let cfg = app.store.canteen_config(id).await.unwrap();
    assert!(cfg.prices.iter().any(|p| p.category == "intern"
        && p.meal == ledger::MealKind::Lunch
        && p.price == ledger::Fen(850)));
    let (s, _, _) = app
        .raw(post_form(
            "/manage/settings/subsidies",
            &boss,
            &[
                ("csrf", &token),
                ("category", "regular"),
                ("amount", "100"),
                ("expires", "1"),
            ],
        ))
        .await;
    assert_eq!(s, StatusCode::SEE_OTHER);
    let grant = || {
        post_form(
            "/manage/settings/subsidies/grant",
            &boss,
            &[("csrf", &token), ("period", "2031-01")],
        )
    };
    let (s, _, body) = app.raw(grant()).await;
    assert_eq!(s, StatusCode::OK);
    assert!(text(&body).contains("已发放 2031-01"), "{}", text(&body));
    let subsidy = app.store.balances(app.staff_id).await.unwrap().subsidy;
    assert_eq!(subsidy, ledger::Fen(10_000));
    let (_, _, body) = app.raw(grant()).await;
    assert!(text(&body).contains("已发过 1"), "{}", text(&body));
    assert_eq!(
        app.store.balances(app.staff_id).await.unwrap().subsidy,
        subsidy
    );
    // A kiosk code shown once, used by a new kiosk, seen, then revoked.
    let (s, _, body) = app
        .raw(post_form(
            "/manage/settings/kiosks/code",
            &boss,
            &[("csrf", &token), ("canteen_id", &id.to_string())],
        ))
        .await;
    assert_eq!(s, StatusCode::OK);
    let code = text(&body)
        .split("id=\"kiosk-code\">")
        .nth(1)
        .and_then(|r| r.split('<').next())
        .expect("the code")
        .to_string();
    let (s, k) = app
        .call(
            &Caller::Anonymous,
            Method::POST,
            "/api/v1/kiosk/enrol",
            Some(json!({"code": code, "name": "Line 3"})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{k}");
    let kiosk = Caller::Kiosk(k["device_token"].as_str().unwrap().to_string());
    let (s, _) = app
        .call(&kiosk, Method::GET, "/api/v1/kiosk/gallery?since=0", None)
        .await;
    assert_eq!(s, StatusCode::OK);
    let kid = k["kiosk_id"].as_i64().expect("kiosk id");
    // "Last heard from" is written off the request's path: wait for it.
    let mut seen = None;
    for _ in 0..100 {
        seen = app
            .store
            .list_kiosks()
            .await
            .unwrap()
            .into_iter()
            .find(|k| k.id == kid)
            .and_then(|k| k.last_seen_ms);
        if seen.is_some() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(seen.is_some(), "the kiosk was heard from");
    let (_, _, body) = app.raw(get("/manage/settings", &boss)).await;
    assert!(text(&body).contains("Line 3"));
    let (s, _, _) = app
        .raw(post_form(
            &format!("/manage/settings/kiosks/{kid}/revoke"),
            &boss,
            &[("csrf", &token)],
        ))
        .await;
    assert_eq!(s, StatusCode::SEE_OTHER);
    let (s, _) = app
        .call(&kiosk, Method::GET, "/api/v1/kiosk/gallery?since=0", None)
        .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED, "revoked at once");
    // Forms with a forged token change nothing; staff have no settings.
    let (s, _, _) = app
        .raw(post_form(
            "/manage/settings/subsidies",
            &boss,
            &[
                ("csrf", "forged"),
                ("category", "regular"),
                ("amount", "999"),
            ],
        ))
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (s, _, _) = app.raw(get("/manage/settings", &cookies(&app.staff))).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    app.check_ok().await;
});

both_dbs!(
    staff_see_their_plate_waste_and_when_their_subsidy_expires,
    |app| {
        let me = cookies(&app.staff);
        // Nothing weighed yet: no chart.
        let (_, _, body) = app.raw(get("/me", &me)).await;
        assert!(!text(&body).contains("id=\"my-waste\""));
        // Three plates today and yesterday (one clean), and one of someone else's.
        let (other, _) = staff_with_login(&app, "S3", "Someone Else", "s3").await;
        let now = common::lunch_today_ms();
        for (i, (who, grams, at)) in [
            (app.staff_id, 80, now),
            (app.staff_id, 10, now - 86_400_000),
            (app.staff_id, 60, now - 86_400_000),
            (other, 500, now),
        ]
        .into_iter()
        .enumerate()
        {
            app.store
                .record_waste(store::WasteCommand {
                    kiosk_id: app.kiosk_id,
                    idempotency_key: format!("w-{i}"),
                    request_hash: format!("h-{i}"),
                    staff_id: Some(who),
                    charge_id: None,
                    gross_grams: 400 + grams,
                    tare_grams: 400,
                    dish: None,
                    category: None,
                    measured_at_ms: at,
                    received_ms: at,
                })
                .await
                .expect("waste");
        }
        let (_, _, body) = app.raw(get("/me", &me)).await;
        let page = text(&body);
        let card = page
            .split("id=\"my-waste\"")
            .nth(1)
            .and_then(|c| c.split("</section>").next())
            .expect("the plate-waste card");
        assert!(card.contains("称重餐盘 3"), "{card}");
        assert!(card.contains("光盘 1"), "{card}");
        assert!(card.contains("<svg"), "a chart");
        // Yesterday's two plates average 35 g, today's one 80 g (someone else's 500 g not counted).
        assert!(card.contains(">35<") || card.contains("35 g"), "{card}");
        assert!(!card.contains("500"), "{card}");
        // A subsidy that expires at the month's end says when.
        app.store
            .set_subsidy_rule(
                store::SubsidyRule {
                    category: "regular".into(),
                    amount: ledger::Fen(20_000),
                    expires: true,
                },
                &store::Actor::System("test"),
            )
            .await
            .unwrap();
        let period = ledger::subsidy::period_of(time::OffsetDateTime::now_utc().date());
        app.store
            .grant_subsidies(&period, now, &store::Actor::System("test"))
            .await
            .unwrap();
        let (_, _, body) = app.raw(get("/me", &me)).await;
        assert!(
            text(&body).contains("id=\"subsidy-expires\""),
            "{}",
            text(&body)
        );
    }
);
