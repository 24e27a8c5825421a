//! Store tests shared by `store-sqlite` and `store-postgres`: each database crate's
//! `tests/store.rs` defines `TestDb` and `async fn fresh() -> Option<TestDb>` (a brand-new,
//! migrated database) and declares this folder as its module `suite` (one file per area, the
//! fixture here), so both databases run exactly the same assertions. `fresh()` returns `None` only when PostgreSQL tests are explicitly skipped
//! (`CLEANPLATE_SKIP_POSTGRES=1`).

use super::{fresh, TestDb};
use ledger::refund::ChargeStatus;
use ledger::{Fen, MealKind};
use proptest::prelude::*;
use std::sync::Arc;
use store::*;

/// 2026-11-26 04:10 UTC = 12:10 in UTC+8: lunch.
const LUNCH: i64 = 1_795_666_200_000;
const DAY_MS: i64 = 24 * 3600 * 1000;
const ADMIN: Actor = Actor::System("test");

struct Fixture {
    store: Arc<dyn Store>,
    canteen: i64,
    kiosk: i64,
}

async fn fixture(db: &TestDb, daily_cap: Option<i64>) -> Fixture {
    fixture_on(db.store.clone(), daily_cap).await
}

/// How the concurrency tests charge: through the batch queue (the default), or every charge
/// settled alone (`max_batch = 1`: each charge a batch of one that waits for its wallet locks).
#[derive(Clone, Copy)]
enum Batching {
    Queued,
    Alone,
}

impl TestDb {
    /// The store a concurrency test charges through, and a second instance of the same kind.
    async fn instance(&self, batching: Batching) -> Arc<dyn Store> {
        match batching {
            Batching::Queued => self.store.clone(),
            Batching::Alone => self.unbatched_instance().await,
        }
    }

    async fn another_instance(&self, batching: Batching) -> Arc<dyn Store> {
        match batching {
            Batching::Queued => self.second_instance().await,
            Batching::Alone => self.unbatched_instance().await,
        }
    }
}

async fn fixture_on(store: Arc<dyn Store>, daily_cap: Option<i64>) -> Fixture {
    let c = store
        .create_canteen(
            NewCanteen {
                name: "North".into(),
                utc_offset_minutes: 480,
                per_transaction_cap: Some(Fen(5000)),
                daily_cap: daily_cap.map(Fen),
            },
            &ADMIN,
        )
        .await
        .unwrap();
    for (meal, s, e) in [
        (MealKind::Breakfast, 390, 570),
        (MealKind::Lunch, 660, 810),
        (MealKind::Dinner, 1020, 1170),
    ] {
        store
            .set_meal_window(
                MealWindow {
                    canteen_id: c.id,
                    meal,
                    start_minute: s,
                    end_minute: e,
                },
                &ADMIN,
            )
            .await
            .unwrap();
        store
            .set_price(
                Price {
                    canteen_id: c.id,
                    category: "regular".into(),
                    meal,
                    price: Fen(1500),
                },
                &ADMIN,
            )
            .await
            .unwrap();
    }
    store
        .create_enrolment_code(c.id, "codehash", LUNCH + DAY_MS * 365, &ADMIN)
        .await
        .unwrap();
    let k = store
        .redeem_enrolment_code("codehash", "kiosk-1", "tokenhash", LUNCH)
        .await
        .unwrap();
    Fixture {
        store,
        canteen: c.id,
        kiosk: k.id,
    }
}

impl Fixture {
    async fn person(&self, no: &str, cash: i64) -> i64 {
        let s = self
            .store
            .create_staff(
                NewStaff {
                    employee_no: no.into(),
                    name: format!("P {no}"),
                    department: "R&D".into(),
                    category: "regular".into(),
                },
                &ADMIN,
            )
            .await
            .unwrap();
        if cash > 0 {
            self.top_up(s.id, cash).await;
        }
        s.id
    }

    async fn top_up(&self, staff: i64, cash: i64) {
        let order_no = format!("T{staff}-{}", uuid_like());
        self.store
            .create_payment_order(
                NewPaymentOrder {
                    order_no: order_no.clone(),
                    staff_id: staff,
                    amount: Fen(cash),
                    provider: "sandbox".into(),
                    now_ms: LUNCH,
                },
                &ADMIN,
            )
            .await
            .unwrap();
        let o = self
            .store
            .credit_payment(&order_no, "txn", Fen(cash), "{}", LUNCH)
            .await
            .unwrap();
        assert_eq!(o, CreditOutcome::Credited);
    }

    fn cmd(&self, key: &str, staff: i64, at: i64) -> ChargeCommand {
        ChargeCommand {
            kiosk_id: self.kiosk,
            canteen_id: self.canteen,
            idempotency_key: key.into(),
            request_hash: format!("hash-{key}-{staff}-{at}"),
            staff_id: staff,
            kiosk_time_ms: at,
            received_ms: at,
            offline: false,
            offline_too_old: false,
            amount: None,
        }
    }

    async fn assert_check_ok(&self) {
        self.store.seal_audit(1_000_000).await.unwrap();
        let r = self
            .store
            .check(LUNCH + DAY_MS * 400, 60_000)
            .await
            .unwrap();
        assert!(r.ok(), "backend check failed: {:#?}", r.problems);
    }
}

fn uuid_like() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    format!(
        "{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

mod audit;
mod batch;
mod charges;
mod concurrency;
mod export;
mod faces_and_waste;
mod invariants;
mod money;
mod reports;
mod sessions_and_constraints;
