//! Test harness for the HTTP application: builds the real router in-process on a fresh SQLite
//! file or a fresh PostgreSQL database, creates one caller of each role, and sends requests
//! through `tower::ServiceExt::oneshot` (no sockets needed). PostgreSQL comes from
//! `CLEANPLATE_TEST_POSTGRES_URL`; without it the PostgreSQL variants fail with instructions,
//! unless `CLEANPLATE_SKIP_POSTGRES=1` skips them explicitly.
#![allow(dead_code)]

pub mod pages;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use axum::Router;
use backend::config::Config;
use backend::state::AppState;
use serde_json::Value;
use std::process::{Command, Stdio};
use std::sync::Arc;
use store::{Actor, NewSession, NewStaff, NewUser, Role, Store};
use tower::ServiceExt;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Db {
    Sqlite,
    Postgres,
}

/// Runs `$body` (an async block using `app`) once per database, as two test functions.
#[macro_export]
macro_rules! both_dbs {
    ($name:ident, |$app:ident| $body:block) => {
        mod $name {
            use super::*;
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn sqlite() {
                let Some($app) = common::TestApp::new(common::Db::Sqlite).await else {
                    return;
                };
                $body
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn postgres() {
                let Some($app) = common::TestApp::new(common::Db::Postgres).await else {
                    return;
                };
                $body
            }
        }
    };
}

pub enum Guard {
    Sqlite(tempfile::TempDir),
    Postgres { url: String, name: String },
}

impl Drop for Guard {
    fn drop(&mut self) {
        if let Guard::Postgres { url, name } = self {
            let (url, name) = (url.clone(), name.clone());
            // Dropping needs async; do it on a throwaway runtime in its own thread.
            let _ = std::thread::spawn(move || {
                if let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    let _ = rt.block_on(store_postgres::drop_database(&url, &name));
                }
            })
            .join();
        }
    }
}

/// An authenticated caller.
#[derive(Clone, Debug)]
pub enum Caller {
    Anonymous,
    Kiosk(String),
    /// session token, CSRF token
    Person(String, String),
}

impl Caller {
    /// `b` with this caller's credentials: a kiosk's bearer token, or a person's session
    /// cookie with its CSRF header.
    pub fn authorize(&self, b: axum::http::request::Builder) -> axum::http::request::Builder {
        match self {
            Caller::Anonymous => b,
            Caller::Kiosk(t) => b.header("authorization", format!("Bearer {t}")),
            Caller::Person(t, csrf) => b
                .header("cookie", format!("cp_session={t}"))
                .header("x-csrf-token", csrf),
        }
    }
}

pub struct TestApp {
    pub router: Router,
    pub state: AppState,
    pub store: Arc<dyn Store>,
    pub canteen: i64,
    pub manager: Caller,
    pub auditor: Caller,
    pub staff: Caller,
    pub staff_id: i64,
    pub kiosk: Caller,
    pub kiosk_id: i64,
    pub db: Db,
    _guard: Guard,
    _data: tempfile::TempDir,
}

pub const GATEWAY_SECRET: &str = "test-gateway-secret";

pub fn test_config() -> Config {
    Config {
        dev_mode: true,
        face_key_hex: "11".repeat(32),
        audit_key_hex: "22".repeat(32),
        gateway_secret: GATEWAY_SECRET.into(),
        login_attempts_per_minute: 5,
        public_base_url: "http://backend.test".into(),
        ..Config::default()
    }
}

pub fn pg_url_or_skip() -> Option<String> {
    match std::env::var("CLEANPLATE_TEST_POSTGRES_URL") {
        Ok(u) if !u.is_empty() => Some(u),
        _ if std::env::var("CLEANPLATE_SKIP_POSTGRES").as_deref() == Ok("1") => {
            eprintln!("skipped: PostgreSQL tests skipped because CLEANPLATE_SKIP_POSTGRES=1");
            None
        }
        _ => panic!(
            "CLEANPLATE_TEST_POSTGRES_URL is not set: run `scripts/postgres.sh` and export the URL it prints \
             (or set CLEANPLATE_SKIP_POSTGRES=1 to skip PostgreSQL tests explicitly)"
        ),
    }
}

impl TestApp {
    pub async fn new(db: Db) -> Option<TestApp> {
        Self::with_config(db, |_| {}).await
    }

    /// As [`TestApp::new`], with the test configuration changed by `edit` first.
    pub async fn with_config(db: Db, edit: impl FnOnce(&mut Config)) -> Option<TestApp> {
        let mut cfg = test_config();
        // Each app its own data folder (the audit anchors are written there).
        let data = tempfile::tempdir().expect("data dir");
        cfg.data_dir = data.path().to_path_buf();
        edit(&mut cfg);
        let (store, guard): (Arc<dyn Store>, Guard) = match db {
            Db::Sqlite => {
                let dir = tempfile::tempdir().expect("temp dir");
                cfg.database_url = format!("sqlite://{}", dir.path().join("t.db").display());
                (
                    backend::open_store(&cfg).await.expect("open sqlite"),
                    Guard::Sqlite(dir),
                )
            }
            Db::Postgres => {
                let url = pg_url_or_skip()?;
                let name = store_postgres::create_scratch_database(&url, "cphttp")
                    .await
                    .expect("create database");
                let s = store_postgres::PostgresStore::connect_database(
                    &url,
                    &name,
                    &Default::default(),
                )
                .await
                .expect("connect");
                (Arc::new(s), Guard::Postgres { url, name })
            }
        };
        store.migrate().await.expect("migrate");
        let mut state = backend::build_state(store.clone(), cfg).expect("state");
        // Charges are judged at the server's clock: pin it to a lunch time so the tests' meals
        // are lunches whatever hour they run at.
        state.clock = backend::state::Clock::pinned(lunch_today_ms());
        let router = backend::api::router(state.clone());
        let sys = Actor::System("test");
        let canteen = store
            .create_canteen(
                store::NewCanteen {
                    name: "T".into(),
                    utc_offset_minutes: 480,
                    per_transaction_cap: None,
                    daily_cap: None,
                },
                &sys,
            )
            .await
            .expect("canteen");
        for (meal, s, e) in [
            (ledger::MealKind::Breakfast, 390, 570),
            (ledger::MealKind::Lunch, 660, 810),
            (ledger::MealKind::Dinner, 1020, 1170),
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
            store
                .set_price(
                    store::Price {
                        canteen_id: canteen.id,
                        category: "regular".into(),
                        meal,
                        price: ledger::Fen(1500),
                    },
                    &sys,
                )
                .await
                .expect("price");
        }
        let person = store
            .create_staff(
                NewStaff {
                    employee_no: "S1".into(),
                    name: "Staff One".into(),
                    department: "D".into(),
                    category: "regular".into(),
                },
                &sys,
            )
            .await
            .expect("staff");
        let mut app = TestApp {
            router,
            state,
            store: store.clone(),
            canteen: canteen.id,
            manager: Caller::Anonymous,
            auditor: Caller::Anonymous,
            staff: Caller::Anonymous,
            staff_id: person.id,
            kiosk: Caller::Anonymous,
            kiosk_id: 0,
            db,
            _guard: guard,
            _data: data,
        };
        app.manager = app.person("boss", Role::Manager, None).await;
        app.auditor = app.person("eye", Role::Auditor, None).await;
        app.staff = app.person("s1", Role::Staff, Some(person.id)).await;
        let (kid, token) = app.enrol_kiosk(&app.manager.clone()).await;
        app.kiosk = Caller::Kiosk(token);
        app.kiosk_id = kid;
        Some(app)
    }

    /// A user with a real password ("password-of-<name>") and a session made directly in the
    /// store (logging in through the API is tested separately and is rate-limited).
    pub async fn person(&self, name: &str, role: Role, staff_id: Option<i64>) -> Caller {
        let hash = backend::crypto::hash_password(&format!("password-of-{name}")).expect("hash");
        let u = self
            .store
            .create_user(
                NewUser {
                    username: name.into(),
                    password_hash: hash,
                    role,
                    staff_id,
                },
                &Actor::System("test"),
            )
            .await
            .expect("user");
        self.session_for(u.id).await
    }

    pub async fn session_for(&self, user_id: i64) -> Caller {
        let token = backend::crypto::random_token();
        let csrf = backend::crypto::random_token();
        let now = backend::state::now_ms();
        self.store
            .create_session(NewSession {
                token_hash: backend::crypto::token_hash(&token),
                user_id,
                csrf_token: csrf.clone(),
                created_ms: now,
                expires_ms: now + 3_600_000,
            })
            .await
            .expect("session");
        Caller::Person(token, csrf)
    }

    pub async fn enrol_kiosk(&self, manager: &Caller) -> (i64, String) {
        let (s, code) = self
            .call(
                manager,
                Method::POST,
                "/api/v1/kiosks/enrolment-codes",
                Some(serde_json::json!({"canteen_id": self.canteen})),
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{code}");
        let (s, k) = self
            .call(
                &Caller::Anonymous,
                Method::POST,
                "/api/v1/kiosk/enrol",
                Some(serde_json::json!({"code": code["code"], "name": "k"})),
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{k}");
        (
            k["kiosk_id"].as_i64().expect("kiosk id"),
            k["device_token"].as_str().expect("token").to_string(),
        )
    }

    pub async fn raw(&self, req: Request<Body>) -> (StatusCode, axum::http::HeaderMap, Vec<u8>) {
        let resp = self
            .router
            .clone()
            .oneshot(req)
            .await
            .expect("router never fails");
        let status = resp.status();
        let headers = resp.headers().clone();
        let body = axum::body::to_bytes(resp.into_body(), 16 * 1024 * 1024)
            .await
            .expect("body");
        (status, headers, body.to_vec())
    }

    pub fn request(
        &self,
        who: &Caller,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> Request<Body> {
        let b = who.authorize(Request::builder().method(method).uri(path));
        match body {
            Some(v) => b
                .header("content-type", "application/json")
                .body(Body::from(v.to_string())),
            None => b.body(Body::empty()),
        }
        .expect("request")
    }

    pub async fn call(
        &self,
        who: &Caller,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let (s, _, bytes) = self.raw(self.request(who, method, path, body)).await;
        let v = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or(Value::String(String::from_utf8_lossy(&bytes).into()))
        };
        (s, v)
    }

    pub async fn top_up_via_store(&self, staff_id: i64, fen: i64) {
        let no = format!("seed-{staff_id}-{}", backend::crypto::random_token());
        self.store
            .create_payment_order(
                store::NewPaymentOrder {
                    order_no: no.clone(),
                    staff_id,
                    amount: ledger::Fen(fen),
                    provider: "sandbox".into(),
                    now_ms: 0,
                },
                &Actor::System("test"),
            )
            .await
            .expect("order");
        self.store
            .credit_payment(&no, "t", ledger::Fen(fen), "{}", 0)
            .await
            .expect("credit");
    }

    pub async fn check_ok(&self) {
        while self.store.seal_audit(10_000).await.expect("seal") == 10_000 {}
        let r = self
            .store
            .check(backend::state::now_ms(), 60_000)
            .await
            .expect("check");
        assert!(r.ok(), "backend check failed: {:#?}", r.problems);
    }
}

/// The most recent lunch time (12:10 in UTC+8) that is not in the future. Charges from the
/// future are refused, so "today's lunch" is yesterday's before 12:10 local.
fn lunch_today_time() -> time::OffsetDateTime {
    let now = time::OffsetDateTime::now_utc()
        .to_offset(time::UtcOffset::from_hms(8, 0, 0).expect("offset"));
    let t = now.replace_time(time::Time::from_hms(12, 10, 0).expect("time"));
    if t > now {
        t - time::Duration::days(1)
    } else {
        t
    }
}

/// [`lunch_today_time`] as RFC 3339.
pub fn lunch_today() -> String {
    lunch_today_time()
        .format(&time::format_description::well_known::Rfc3339)
        .expect("format")
}

/// [`lunch_today_time`] in milliseconds since the epoch (the test apps' pinned clock).
pub fn lunch_today_ms() -> i64 {
    (lunch_today_time().unix_timestamp_nanos() / 1_000_000) as i64
}

/// A real `backend serve` process (see `backend-harness`).
pub type Server = backend_harness::Served;

/// Starts `backend serve` on a free port (dev mode, data in `data_dir`, the database at `url`)
/// and waits until it listens.
pub fn spawn_server(url: &str, data_dir: &std::path::Path) -> Server {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_backend"));
    cmd.args(["serve", "--listen", "127.0.0.1:0", "--database-url", url])
        .env("CLEANPLATE_DEV_MODE", "true")
        .env("CLEANPLATE_DATA_DIR", data_dir)
        .env("CLEANPLATE_SEALER_INTERVAL_MS", "100")
        .env("RUST_LOG", "warn")
        .stderr(Stdio::inherit());
    backend_harness::start(cmd, std::time::Duration::from_secs(60)).expect("backend serve")
}

impl TestApp {
    /// Runs SQL on the app's database behind the store's back, as someone with database access
    /// would (the tamper tests). The statements are the tests' own.
    pub async fn exec_sql(&self, sql: String) {
        use sqlx::Connection;
        match &self._guard {
            Guard::Sqlite(_) => {
                let mut c = sqlx::SqliteConnection::connect(&self.state.cfg.database_url())
                    .await
                    .expect("sqlite");
                sqlx::query(sqlx::AssertSqlSafe(sql))
                    .execute(&mut c)
                    .await
                    .expect("raw SQL");
            }
            Guard::Postgres { url, name } => {
                let opts = <sqlx::postgres::PgConnectOptions as std::str::FromStr>::from_str(url)
                    .expect("postgres url")
                    .database(name);
                let mut c = sqlx::PgConnection::connect_with(&opts)
                    .await
                    .expect("postgres");
                sqlx::query(sqlx::AssertSqlSafe(sql))
                    .execute(&mut c)
                    .await
                    .expect("raw SQL");
            }
        }
    }
}
