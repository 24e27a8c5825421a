//! Crash safety: a real `backend serve` process takes a stream of charges from concurrent
//! clients and is killed with SIGKILL in the middle. After a restart, every charge that was
//! acknowledged is present exactly once (replaying its request returns the same charge), no
//! charge is doubled, balances equal the journal, and `backend check` exits 0. Runs on SQLite
//! and PostgreSQL.

mod common;

use common::{spawn_server, Db};
use std::collections::HashMap;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use store::Actor;

const TOKEN: &str = "kill9-kiosk-token";

fn body(key: &str, staff: i64) -> serde_json::Value {
    serde_json::json!({"idempotency_key": key, "staff_id": staff, "kiosk_time": common::lunch_today(), "amount": "1.00"})
}

async fn scenario(db: Db) {
    let dir = tempfile::tempdir().expect("temp dir");
    let (url, pg) = match db {
        Db::Sqlite => (
            format!("sqlite://{}", dir.path().join("k.db").display()),
            None,
        ),
        Db::Postgres => {
            let Some(admin) = common::pg_url_or_skip() else {
                return;
            };
            let name = store_postgres::create_scratch_database(&admin, "cpkill")
                .await
                .expect("db");
            let opts: Vec<&str> = admin.splitn(2, '?').collect();
            // Same server, scratch database: swap the path of the URL.
            let base = opts[0].rsplit_once('/').map(|(b, _)| b).unwrap_or(opts[0]);
            let url = match opts.get(1) {
                Some(q) => format!("{base}/{name}?{q}"),
                None => format!("{base}/{name}"),
            };
            (url, Some((admin, name)))
        }
    };

    // Set-up through the store: a canteen, a person with plenty of money, a kiosk with a known token.
    let mut cfg = common::test_config();
    cfg.database_url = url.clone();
    let store = backend::open_store(&cfg).await.expect("open");
    store.migrate().await.expect("migrate");
    let sys = Actor::System("kill9");
    let c = store
        .create_canteen(
            store::NewCanteen {
                name: "K".into(),
                utc_offset_minutes: 480,
                per_transaction_cap: None,
                daily_cap: None,
            },
            &sys,
        )
        .await
        .expect("canteen");
    // Online charges are judged at the server's clock, so this canteen serves all day long
    // (the test may run at any hour).
    for (meal, start, end) in [
        (ledger::MealKind::Breakfast, 0, 480),
        (ledger::MealKind::Lunch, 480, 960),
        (ledger::MealKind::Dinner, 960, 1440),
    ] {
        store
            .set_meal_window(
                store::MealWindow {
                    canteen_id: c.id,
                    meal,
                    start_minute: start,
                    end_minute: end,
                },
                &sys,
            )
            .await
            .expect("window");
    }
    let p = store
        .create_staff(
            store::NewStaff {
                employee_no: "K1".into(),
                name: "K".into(),
                department: "D".into(),
                category: "regular".into(),
            },
            &sys,
        )
        .await
        .expect("staff");
    store
        .update_staff(
            p.id,
            store::StaffUpdate {
                meals_per_period: Some(1_000_000),
                ..Default::default()
            },
            &sys,
        )
        .await
        .expect("allow");
    store
        .create_payment_order(
            store::NewPaymentOrder {
                order_no: "K-SEED".into(),
                staff_id: p.id,
                amount: ledger::Fen(100_000_000),
                provider: "sandbox".into(),
                now_ms: 0,
            },
            &sys,
        )
        .await
        .expect("order");
    store
        .credit_payment("K-SEED", "t", ledger::Fen(100_000_000), "{}", 0)
        .await
        .expect("credit");
    store
        .create_enrolment_code(c.id, "kill9-code", i64::MAX / 2, &sys)
        .await
        .expect("code");
    store
        .redeem_enrolment_code("kill9-code", "k", &backend::crypto::token_hash(TOKEN), 0)
        .await
        .expect("kiosk");
    drop(store);

    let mut server = spawn_server(&url, dir.path());
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client");
    // key -> Some(charge id) when acknowledged, None when the answer was lost.
    let outcomes: Arc<Mutex<HashMap<String, Option<i64>>>> = Arc::default();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut clients = Vec::new();
    for c in 0..8 {
        let (http, addr, outcomes, stop) = (
            http.clone(),
            server.addr.clone(),
            outcomes.clone(),
            stop.clone(),
        );
        clients.push(tokio::spawn(async move {
            for i in 0..100_000 {
                if stop.load(std::sync::atomic::Ordering::Relaxed) {
                    break;
                }
                let key = format!("c{c}-{i}");
                let r = http
                    .post(format!("http://{addr}/api/v1/kiosk/charges"))
                    .bearer_auth(TOKEN)
                    .json(&body(&key, p.id))
                    .send()
                    .await;
                let ack = match r {
                    Ok(resp) if resp.status().is_success() => {
                        let v: serde_json::Value = resp.json().await.unwrap_or_default();
                        assert_eq!(v["status"], "accepted", "{v}");
                        v["charge_id"].as_i64()
                    }
                    _ => None,
                };
                outcomes.lock().expect("lock").insert(key, ack);
                if ack.is_none() {
                    break; // the server is gone
                }
            }
        }));
    }
    // Let a few hundred charges through, then SIGKILL mid-stream.
    loop {
        tokio::time::sleep(Duration::from_millis(20)).await;
        let acked = outcomes
            .lock()
            .expect("lock")
            .values()
            .filter(|v| v.is_some())
            .count();
        if acked >= 300 {
            break;
        }
    }
    server.child.kill().expect("SIGKILL");
    server.child.wait().expect("reap");
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for c in clients {
        c.await.expect("client task");
    }
    let outcomes = outcomes.lock().expect("lock").clone();
    let acked: Vec<(&String, i64)> = outcomes
        .iter()
        .filter_map(|(k, v)| v.map(|id| (k, id)))
        .collect();
    assert!(acked.len() >= 300);

    // Restart and replay every request we sent.
    let mut server = spawn_server(&url, dir.path());
    let mut final_ids = HashMap::new();
    for (key, ack) in &outcomes {
        let resp = http
            .post(format!("http://{}/api/v1/kiosk/charges", server.addr))
            .bearer_auth(TOKEN)
            .json(&body(key, p.id))
            .send()
            .await
            .expect("restarted server answers");
        assert!(resp.status().is_success());
        let v: serde_json::Value = resp.json().await.expect("json");
        let id = v["charge_id"].as_i64().expect("charge id");
        if let Some(acked_id) = ack {
            assert_eq!(
                v["replayed"], true,
                "acknowledged charge {key} must be found, not redone"
            );
            assert_eq!(id, *acked_id, "acknowledged charge {key} keeps its id");
        }
        final_ids.insert(key.clone(), id);
    }
    let store = backend::open_store(&cfg).await.expect("reopen");
    let charges = store
        .list_charges(store::ChargeFilter {
            staff_id: Some(p.id),
            limit: 100_000,
            ..Default::default()
        })
        .await
        .expect("charges");
    assert_eq!(
        charges.len(),
        outcomes.len(),
        "one charge per request, none doubled, none lost"
    );
    let mut ids: Vec<i64> = final_ids.values().copied().collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), outcomes.len());
    let bal = store.balances(p.id).await.expect("balance");
    assert_eq!(bal.cash.0, 100_000_000 - 100 * outcomes.len() as i64);

    // The restarted server seals what the killed one left; then `backend check` must pass.
    let mut passed = false;
    for _ in 0..50 {
        let out = Command::new(env!("CARGO_BIN_EXE_backend"))
            .args(["check", "--database-url", &url])
            .env("CLEANPLATE_DATA_DIR", dir.path())
            .env("CLEANPLATE_UNSEALED_GRACE_SECONDS", "1")
            .output()
            .expect("run backend check");
        if out.status.success() {
            passed = true;
            break;
        }
        eprintln!(
            "check not yet passing: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    server.kill();
    assert!(passed, "`backend check` passes after the crash and restart");
    if db == Db::Sqlite {
        // And `backend check` notices when someone edits money behind the ledger's back.
        let raw = store_sqlite::SqliteStore::connect(&url, &Default::default())
            .await
            .expect("raw");
        sqlx::query("UPDATE book_accounts SET balance_fen = balance_fen + 1 WHERE staff_id IS NOT NULL AND kind = 'cash'")
            .execute(raw.pool())
            .await
            .expect("tamper");
        let out = Command::new(env!("CARGO_BIN_EXE_backend"))
            .args(["check", "--database-url", &url])
            .env("CLEANPLATE_DATA_DIR", dir.path())
            .output()
            .expect("run backend check");
        let report = String::from_utf8_lossy(&out.stdout);
        assert_eq!(
            out.status.code(),
            Some(1),
            "check must fail on a tampered balance: {report}"
        );
        assert!(report.contains("cached balance differs"), "{report}");
    }
    if let Some((admin, name)) = pg {
        drop(store);
        store_postgres::drop_database(&admin, &name)
            .await
            .expect("drop");
    }
    eprintln!(
        "kill -9 on {db:?}: {} requests, {} acknowledged before the kill",
        outcomes.len(),
        acked.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kill9_sqlite() {
    scenario(Db::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kill9_postgres() {
    scenario(Db::Postgres).await;
}
