//! The allowed/denied matrix: every route in the OpenAPI document, called by every role
//! (anonymous, kiosk, staff, manager, auditor), on both databases. A denied call must answer 401
//! (no credentials) or 403 (wrong role); an allowed call must get past authorisation (any other
//! status: 200, 404 for the dummy ids, 400/422 for the dummy bodies). The expected matrix is
//! written out below, and a documented route missing from it fails the test, so new routes
//! cannot escape the check.

mod common;

use axum::http::{Method, StatusCode};
use common::Caller;

const A: u8 = 1; // anonymous
const K: u8 = 2; // kiosk
const S: u8 = 4; // staff
const M: u8 = 8; // manager
const U: u8 = 16; // auditor
const ALL: u8 = A | K | S | M | U;
/// Public in terms of roles, but authenticated by a payment-gateway signature: every role
/// without one is refused with 401.
const SIGNED: u8 = 0xFF;

const MATRIX: &[(&str, &str, u8)] = &[
    ("post", "/api/v1/auth/login", ALL),
    ("post", "/api/v1/auth/logout", S | M | U),
    ("get", "/api/v1/me", K | S | M | U),
    ("post", "/api/v1/kiosk/enrol", ALL),
    ("get", "/api/v1/kiosk/me", K),
    ("post", "/api/v1/kiosk/charges", K),
    ("post", "/api/v1/kiosk/charges/void", K),
    ("post", "/api/v1/kiosk/waste", K),
    ("get", "/api/v1/kiosk/gallery", K),
    ("post", "/api/v1/kiosk/pay-codes/redeem", K),
    ("get", "/api/v1/kiosk/waste-stats", K),
    ("get", "/api/v1/kiosk/balances", K),
    ("get", "/api/v1/canteens", M | U),
    ("post", "/api/v1/canteens", M),
    ("get", "/api/v1/canteens/{id}", M | U | K),
    ("patch", "/api/v1/canteens/{id}", M),
    ("put", "/api/v1/canteens/{id}/meal-windows/{meal}", M),
    ("put", "/api/v1/canteens/{id}/prices", M),
    ("get", "/api/v1/subsidy-rules", M | U),
    ("put", "/api/v1/subsidy-rules/{category}", M),
    ("post", "/api/v1/subsidies/grant", M),
    ("get", "/api/v1/staff", M | U),
    ("post", "/api/v1/staff", M),
    ("get", "/api/v1/staff/{id}", M | U),
    ("patch", "/api/v1/staff/{id}", M),
    ("get", "/api/v1/staff/{id}/balance", M | U),
    ("get", "/api/v1/staff/{id}/statement", M | U),
    ("post", "/api/v1/staff/{id}/offboard", M),
    ("post", "/api/v1/users", M),
    ("post", "/api/v1/kiosks/enrolment-codes", M),
    ("get", "/api/v1/kiosks", M | U),
    ("post", "/api/v1/kiosks/{id}/revoke", M),
    ("get", "/api/v1/charges", M | U),
    ("get", "/api/v1/charges/{id}", M | U),
    ("post", "/api/v1/charges/{id}/reverse", M),
    ("post", "/api/v1/charges/{id}/resolve", M),
    ("get", "/api/v1/refunds", M | U),
    ("post", "/api/v1/refunds/{id}/decide", M),
    ("get", "/api/v1/topups", M | U),
    ("post", "/api/v1/topups/{order_no}/reconcile", M),
    ("post", "/api/v1/payments/sandbox/notify", SIGNED),
    ("get", "/sandbox/pay/{order_no}", ALL),
    ("post", "/sandbox/pay/{order_no}", ALL),
    ("get", "/api/v1/waste", M | U),
    ("get", "/api/v1/staff/{id}/consent", M | U),
    ("put", "/api/v1/staff/{id}/consent", M),
    ("get", "/api/v1/staff/{id}/templates", M | U),
    ("post", "/api/v1/staff/{id}/templates", M),
    ("post", "/api/v1/staff/{id}/face-photos", M),
    ("delete", "/api/v1/templates/{id}", M),
    ("get", "/api/v1/me/balance", S),
    ("get", "/api/v1/me/statement", S),
    ("get", "/api/v1/me/charges", S),
    ("get", "/api/v1/me/refunds", S),
    ("post", "/api/v1/me/refunds", S),
    ("post", "/api/v1/me/topups", S),
    ("get", "/api/v1/me/topups", S),
    ("get", "/api/v1/me/consent", S),
    ("put", "/api/v1/me/consent", S),
    ("get", "/api/v1/me/templates", S),
    ("delete", "/api/v1/me/templates/{id}", S),
    ("post", "/api/v1/me/pay-codes", S),
    ("get", "/api/v1/audit", M | U),
    ("get", "/api/v1/check", M | U),
    ("get", "/health", ALL),
    ("get", "/api/openapi.json", ALL),
];

fn concrete(path: &str) -> String {
    // Ids that do not exist, so allowed calls reach the handler but change nothing.
    path.replace("{id}", "999999")
        .replace("{meal}", "lunch")
        .replace("{category}", "nobody")
        .replace("{order_no}", "NO-SUCH-ORDER")
}

both_dbs!(every_route_with_every_role, |app| {
    let (status, doc) = app
        .call(&Caller::Anonymous, Method::GET, "/api/openapi.json", None)
        .await;
    assert_eq!(status, StatusCode::OK);
    let paths = doc["paths"]
        .as_object()
        .expect("paths in the OpenAPI document");
    let mut documented = Vec::new();
    for (path, item) in paths {
        for method in ["get", "post", "put", "patch", "delete"] {
            if item.get(method).is_some() {
                documented.push((method.to_string(), path.clone()));
            }
        }
    }
    for (m, p) in &documented {
        assert!(
            MATRIX.iter().any(|(mm, pp, _)| mm == m && pp == p),
            "route {m} {p} is not in the role matrix"
        );
    }
    assert_eq!(
        documented.len(),
        MATRIX.len(),
        "the matrix lists a route the API does not document"
    );
    // The roles the document states (its `x-roles` and `security`) are the ones the server
    // enforces: public routes name none, the others exactly the matrix's.
    for (method, path, allowed) in MATRIX {
        let op = &doc["paths"][*path][*method];
        let stated: Vec<&str> = op["x-roles"]
            .as_array()
            .unwrap_or_else(|| panic!("{method} {path} has no x-roles"))
            .iter()
            .filter_map(|r| r.as_str())
            .collect();
        let expected: Vec<&str> = if *allowed == ALL || *allowed == SIGNED {
            Vec::new()
        } else {
            [(K, "kiosk"), (S, "staff"), (M, "manager"), (U, "auditor")]
                .iter()
                .filter(|(bit, _)| allowed & bit != 0)
                .map(|(_, name)| *name)
                .collect()
        };
        let mut sorted = stated.clone();
        sorted.sort_unstable();
        let mut want = expected.clone();
        want.sort_unstable();
        assert_eq!(sorted, want, "{method} {path}: the document's roles");
        let security = op["security"].as_array().expect("security");
        assert_eq!(
            security.is_empty(),
            expected.is_empty(),
            "{method} {path}: security {security:?}"
        );
    }

    let callers = [
        (A, "anonymous", Caller::Anonymous),
        (K, "kiosk", app.kiosk.clone()),
        (S, "staff", app.staff.clone()),
        (M, "manager", app.manager.clone()),
        (U, "auditor", app.auditor.clone()),
    ];
    let mut checked = 0;
    for (method, path, allowed) in MATRIX {
        let m = Method::from_bytes(method.to_uppercase().as_bytes()).expect("method");
        let body = if matches!(*method, "post" | "put" | "patch") {
            Some(serde_json::json!({}))
        } else {
            None
        };
        for (bit, name, who) in &callers {
            // Logout really ends the session: give each logout its own.
            let who = if *path == "/api/v1/auth/logout" {
                match name {
                    &"staff" | &"manager" | &"auditor" => {
                        let role = match *name {
                            "staff" => store::Role::Staff,
                            "manager" => store::Role::Manager,
                            _ => store::Role::Auditor,
                        };
                        // One login per person: a staff login of its own needs a person of
                        // its own.
                        let staff_id = if role == store::Role::Staff {
                            let p = app
                                .store
                                .create_staff(
                                    store::NewStaff {
                                        employee_no: format!("L{checked}"),
                                        name: format!("Logout {checked}"),
                                        department: String::new(),
                                        category: "regular".into(),
                                    },
                                    &store::Actor::System("test"),
                                )
                                .await
                                .expect("person");
                            Some(p.id)
                        } else {
                            None
                        };
                        let u = app
                            .store
                            .create_user(
                                store::NewUser {
                                    username: format!("logout-{name}-{}", checked),
                                    password_hash: "x".into(),
                                    role,
                                    staff_id,
                                },
                                &store::Actor::System("test"),
                            )
                            .await
                            .expect("user");
                        app.session_for(u.id).await
                    }
                    _ => who.clone(),
                }
            } else {
                who.clone()
            };
            let (status, resp) = app
                .call(&who, m.clone(), &concrete(path), body.clone())
                .await;
            let denied = status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN;
            if *allowed == SIGNED {
                assert_eq!(
                    status,
                    StatusCode::UNAUTHORIZED,
                    "{method} {path} as {name} without a signature: {resp}"
                );
            } else if allowed & bit != 0 {
                assert!(
                    !denied,
                    "{method} {path} should be allowed for {name}, got {status}: {resp}"
                );
                assert_ne!(
                    status,
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "{method} {path} as {name}: {resp}"
                );
            } else {
                let want = if *bit == A {
                    StatusCode::UNAUTHORIZED
                } else {
                    StatusCode::FORBIDDEN
                };
                assert_eq!(
                    status, want,
                    "{method} {path} should be denied for {name}: {resp}"
                );
                assert!(
                    resp["error"]["code"].is_string(),
                    "denials carry the JSON error shape: {resp}"
                );
            }
            checked += 1;
        }
    }
    assert_eq!(checked, MATRIX.len() * 5);
});

both_dbs!(csrf_and_session_rules, |app| {
    let Caller::Person(token, _) = app.manager.clone() else {
        panic!("manager is a person")
    };
    // A state-changing request with the cookie but without the CSRF header is refused.
    let forged = Caller::Person(token.clone(), "wrong".into());
    let (s, v) = app
        .call(
            &forged,
            Method::POST,
            "/api/v1/staff",
            Some(serde_json::json!({"employee_no":"Z","name":"Z","category":"regular"})),
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{v}");
    // Reads do not need it.
    let (s, _) = app.call(&forged, Method::GET, "/api/v1/staff", None).await;
    assert_eq!(s, StatusCode::OK);
    // A made-up session is nobody.
    let (s, _) = app
        .call(
            &Caller::Person("nope".into(), "nope".into()),
            Method::GET,
            "/api/v1/staff",
            None,
        )
        .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    // A revoked kiosk token stops working at once on this instance.
    let (s, _) = app
        .call(
            &app.manager,
            Method::POST,
            &format!("/api/v1/kiosks/{}/revoke", app.kiosk_id),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let (s, _) = app
        .call(&app.kiosk, Method::GET, "/api/v1/kiosk/me", None)
        .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
});

both_dbs!(every_error_is_json, |app| {
    for (who, path, status, code) in [
        (
            &app.manager,
            "/api/v1/staff/not-a-number",
            StatusCode::BAD_REQUEST,
            "bad_path",
        ),
        (
            &app.manager,
            "/api/v1/charges?limit=many",
            StatusCode::BAD_REQUEST,
            "bad_query",
        ),
        (
            &app.manager,
            "/api/v1/no/such/route",
            StatusCode::NOT_FOUND,
            "not_found",
        ),
        (
            &app.manager,
            "/api/v1/staff/424242",
            StatusCode::NOT_FOUND,
            "not_found",
        ),
        (
            &Caller::Anonymous,
            "/api/v1/staff",
            StatusCode::UNAUTHORIZED,
            "unauthorized",
        ),
    ] {
        let (s, v) = app.call(who, Method::GET, path, None).await;
        assert_eq!(
            (s, v["error"]["code"].as_str()),
            (status, Some(code)),
            "{path}: {v}"
        );
        assert!(
            v["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty()),
            "{path}: {v}"
        );
    }
});

both_dbs!(login_logout_and_rate_limit, |app| {
    let login = |u: &str, p: &str| serde_json::json!({"username": u, "password": p});
    let (s, _, _) = app
        .raw(app.request(
            &Caller::Anonymous,
            Method::POST,
            "/api/v1/auth/login",
            Some(login("boss", "wrong")),
        ))
        .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    let (s, h, body) = app
        .raw(app.request(
            &Caller::Anonymous,
            Method::POST,
            "/api/v1/auth/login",
            Some(login("boss", "password-of-boss")),
        ))
        .await;
    assert_eq!(s, StatusCode::OK);
    let cookie = h
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .expect("cookie")
        .to_string();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    let token = cookie
        .split(';')
        .next()
        .and_then(|kv| kv.split_once('='))
        .map(|(_, v)| v.to_string())
        .expect("token");
    let v: serde_json::Value = serde_json::from_slice(&body).expect("json");
    let me = Caller::Person(token, v["csrf_token"].as_str().expect("csrf").into());
    let (s, who) = app.call(&me, Method::GET, "/api/v1/me", None).await;
    assert_eq!((s, who["role"].as_str()), (StatusCode::OK, Some("manager")));
    let (s, _) = app
        .call(&me, Method::POST, "/api/v1/auth/logout", None)
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (s, _) = app.call(&me, Method::GET, "/api/v1/me", None).await;
    assert_eq!(
        s,
        StatusCode::UNAUTHORIZED,
        "the session is gone after logout"
    );
    // 5 attempts per minute per username (test config), counted in the database.
    let mut last = StatusCode::OK;
    for _ in 0..6 {
        last = app
            .raw(app.request(
                &Caller::Anonymous,
                Method::POST,
                "/api/v1/auth/login",
                Some(login("boss", "wrong")),
            ))
            .await
            .0;
    }
    assert_eq!(last, StatusCode::TOO_MANY_REQUESTS);
});
