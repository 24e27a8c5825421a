//! HTTP request bodies (and path segments) as the backend receives them: the real axum
//! application (`backend::api::router`) on a SQLite file, called in-process through
//! `tower::ServiceExt::oneshot` with a kiosk's, a manager's or a staff member's credentials.
//! Whatever arrives, the answer is a status below 500 with the API's JSON error shape (a 500
//! means a handler met input it did not validate; a 503 would be the database being busy,
//! which one caller at a time cannot cause), and no handler panics.
//!
//! The application is built once per fuzzing process and keeps its database between inputs
//! (charges, staff and codes pile up, as on a real server); a finding is replayed on a fresh
//! one.

use std::sync::OnceLock;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use tower::ServiceExt;

struct App {
    rt: tokio::runtime::Runtime,
    router: axum::Router,
    kiosk: String,
    manager: (String, String),
    staff: (String, String),
    staff_id: i64,
    canteen: i64,
    _dir: tempfile::TempDir,
}

/// Routes that take a body, with their method; `{id}` and `{staff}` are filled with real ids,
/// `{x}` with bytes of the input (up to its first newline).
const ROUTES: &[(&str, &str)] = &[
    ("POST", "/api/v1/kiosk/charges"),
    ("POST", "/api/v1/kiosk/charges/void"),
    ("POST", "/api/v1/kiosk/waste"),
    ("POST", "/api/v1/kiosk/pay-codes/redeem"),
    ("POST", "/api/v1/kiosk/enrol"),
    ("POST", "/api/v1/auth/login"),
    ("POST", "/api/v1/canteens"),
    ("PATCH", "/api/v1/canteens/{id}"),
    ("PUT", "/api/v1/canteens/{id}/meal-windows/{x}"),
    ("PUT", "/api/v1/canteens/{id}/prices"),
    ("PUT", "/api/v1/subsidy-rules/{x}"),
    ("POST", "/api/v1/subsidies/grant"),
    ("POST", "/api/v1/staff"),
    ("PATCH", "/api/v1/staff/{staff}"),
    ("POST", "/api/v1/staff/{staff}/offboard"),
    ("POST", "/api/v1/users"),
    ("POST", "/api/v1/kiosks/enrolment-codes"),
    ("POST", "/api/v1/charges/{x}/reverse"),
    ("POST", "/api/v1/charges/{x}/resolve"),
    ("POST", "/api/v1/refunds/{x}/decide"),
    ("POST", "/api/v1/me/refunds"),
    ("POST", "/api/v1/me/topups"),
    ("PUT", "/api/v1/me/consent"),
    ("PUT", "/api/v1/staff/{staff}/consent"),
    ("POST", "/api/v1/staff/{staff}/templates"),
    ("POST", "/api/v1/payments/sandbox/notify"),
    ("POST", "/sandbox/pay/{x}"),
    ("GET", "/api/v1/charges?{x}"),
    ("GET", "/api/v1/staff/{staff}/statement?{x}"),
    ("GET", "/api/v1/kiosk/gallery?{x}"),
    ("GET", "/api/v1/kiosk/balances?{x}"),
    ("GET", "/api/v1/audit?{x}"),
    ("GET", "/api/v1/waste?{x}"),
    ("GET", "/api/v1/staff/{x}"),
];

fn app() -> &'static App {
    static APP: OnceLock<App> = OnceLock::new();
    APP.get_or_init(|| {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let dir = tempfile::tempdir().expect("temp dir");
        let built = rt.block_on(build(&dir));
        let (router, kiosk, manager, staff, staff_id, canteen) = built;
        App {
            rt,
            router,
            kiosk,
            manager,
            staff,
            staff_id,
            canteen,
            _dir: dir,
        }
    })
}

type Built = (
    axum::Router,
    String,
    (String, String),
    (String, String),
    i64,
    i64,
);

async fn build(dir: &tempfile::TempDir) -> Built {
    use store::{Actor, NewSession, NewStaff, NewUser, Role};
    let cfg = backend::config::Config {
        dev_mode: true,
        face_key_hex: "11".repeat(32),
        gateway_secret: "fuzz-gateway-secret".into(),
        // Rate limits would turn every later login into a 429 and hide the handler.
        login_attempts_per_minute: 1_000_000_000,
        public_base_url: "http://backend.test".into(),
        database_url: format!("sqlite://{}", dir.path().join("fuzz.db").display()),
        data_dir: dir.path().to_path_buf(),
        models_dir: Some(dir.path().join("no-models")),
        ..backend::config::Config::default()
    };
    let store = backend::open_store(&cfg).await.expect("open sqlite");
    store.migrate().await.expect("migrate");
    let state = backend::build_state(store.clone(), cfg).expect("state");
    let router = backend::api::router(state);
    let sys = Actor::System("fuzz");
    let canteen = store
        .create_canteen(
            store::NewCanteen {
                name: "F".into(),
                utc_offset_minutes: 480,
                per_transaction_cap: None,
                daily_cap: None,
            },
            &sys,
        )
        .await
        .expect("canteen");
    for (meal, s, e) in [
        (ledger::MealKind::Breakfast, 0, 480),
        (ledger::MealKind::Lunch, 480, 960),
        (ledger::MealKind::Dinner, 960, 1440),
    ] {
        store
            .set_meal_window(
                store::MealWindow {
                    canteen_id: canteen.id,
                    meal,
                    start_minute: s,
                    end_minute: e,
                },
                &sys,
            )
            .await
            .expect("window");
    }
    let person = store
        .create_staff(
            NewStaff {
                employee_no: "F1".into(),
                name: "Fuzz".into(),
                department: "D".into(),
                category: "regular".into(),
            },
            &sys,
        )
        .await
        .expect("staff");
    let session = |user_id: i64| {
        let store = store.clone();
        async move {
            let token = backend::crypto::random_token();
            let csrf = backend::crypto::random_token();
            store
                .create_session(NewSession {
                    token_hash: backend::crypto::token_hash(&token),
                    user_id,
                    csrf_token: csrf.clone(),
                    created_ms: 0,
                    expires_ms: i64::MAX / 2,
                })
                .await
                .expect("session");
            (token, csrf)
        }
    };
    let mut users = Vec::new();
    for (name, role, staff_id) in [
        ("boss", Role::Manager, None),
        ("f1", Role::Staff, Some(person.id)),
    ] {
        let u = store
            .create_user(
                NewUser {
                    username: name.into(),
                    password_hash: backend::crypto::hash_password("fuzz-password").expect("hash"),
                    role,
                    staff_id,
                },
                &sys,
            )
            .await
            .expect("user");
        users.push(session(u.id).await);
    }
    let token = "fuzz-kiosk-token";
    store
        .create_enrolment_code(canteen.id, "fuzz-code", i64::MAX / 2, &sys)
        .await
        .expect("code");
    store
        .redeem_enrolment_code("fuzz-code", "k", &backend::crypto::token_hash(token), 0)
        .await
        .expect("kiosk");
    let staff = users.pop().expect("staff session");
    let manager = users.pop().expect("manager session");
    (router, token.into(), manager, staff, person.id, canteen.id)
}

/// Input: byte 0 picks the route, byte 1 the caller and content type, then (for routes with
/// `{x}`) path or query bytes up to a newline, then the body.
pub fn http_bodies(data: &[u8]) {
    let [route, who, rest @ ..] = data else {
        return;
    };
    let app = app();
    let (method, template) = ROUTES[usize::from(*route) % ROUTES.len()];
    let (x, body) = if template.contains("{x}") {
        match rest.iter().position(|b| *b == b'\n') {
            Some(i) => (&rest[..i], &rest[i + 1..]),
            None => (rest, &[][..]),
        }
    } else {
        (&[][..], rest)
    };
    let Ok(x) = std::str::from_utf8(x) else {
        return;
    };
    let uri = template
        .replace("{id}", &app.canteen.to_string())
        .replace("{staff}", &app.staff_id.to_string())
        .replace("{x}", x);
    let mut req = Request::builder()
        .method(Method::from_bytes(method.as_bytes()).expect("method"))
        .uri(&uri);
    req = match who % 3 {
        0 => req.header("authorization", format!("Bearer {}", app.kiosk)),
        1 => req
            .header("cookie", format!("cp_session={}", app.manager.0))
            .header("x-csrf-token", &app.manager.1),
        _ => req
            .header("cookie", format!("cp_session={}", app.staff.0))
            .header("x-csrf-token", &app.staff.1),
    };
    req = match (who / 3) % 3 {
        0 => req.header("content-type", "application/json"),
        1 => req.header("content-type", "application/x-www-form-urlencoded"),
        _ => req,
    };
    // Bytes that are not a valid URI are refused by hyper before any handler sees them.
    let Ok(req) = req.body(Body::from(body.to_vec())) else {
        return;
    };
    let (status, bytes) = app.rt.block_on(async {
        let resp = app
            .router
            .clone()
            .oneshot(req)
            .await
            .expect("the router never fails");
        let status = resp.status();
        let bytes = axum::body::to_bytes(resp.into_body(), 16 * 1024 * 1024)
            .await
            .expect("body");
        (status, bytes)
    });
    assert!(
        status < StatusCode::INTERNAL_SERVER_ERROR,
        "{method} {uri}: {status} {}",
        String::from_utf8_lossy(&bytes)
    );
    if status.is_client_error() && status != StatusCode::METHOD_NOT_ALLOWED {
        let v: serde_json::Value = serde_json::from_slice(&bytes).unwrap_or_else(|e| {
            panic!(
                "{method} {uri}: {status} without the JSON error shape ({e}): {}",
                String::from_utf8_lossy(&bytes)
            )
        });
        assert!(v["error"]["code"].is_string(), "{method} {uri}: {v}");
    }
}
