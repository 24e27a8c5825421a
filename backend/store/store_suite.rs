//! Store tests shared by `store-sqlite` and `store-postgres`: each database crate's
//! `tests/store.rs` defines `TestDb` and `async fn fresh() -> Option<TestDb>` (a brand-new,
//! migrated database) and declares this file as its module `suite`, so both databases run exactly
//! the same assertions. `fresh()` returns `None` only when PostgreSQL tests are explicitly skipped
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

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn charge_then_check() {
    let Some(db) = fresh().await else { return };
    let f = fixture(&db, Some(6000)).await;
    let p = f.person("E1", 10_000).await;
    let r = f.store.charge(f.cmd("k1", p, LUNCH)).await.unwrap();
    assert_eq!(r.outcome, ChargeOutcome::Accepted);
    assert_eq!(
        (r.amount, r.cash, r.subsidy, r.cash_balance),
        (Fen(1500), Fen(1500), Fen(0), Fen(8500))
    );
    assert_eq!(r.meal, Some(MealKind::Lunch));
    assert_eq!(r.local_date.as_deref(), Some("2026-11-26"));
    // Second lunch the same day: refused online.
    let r2 = f
        .store
        .charge(f.cmd("k2", p, LUNCH + 60_000))
        .await
        .unwrap();
    assert_eq!(
        (r2.outcome, r2.reason.as_deref()),
        (ChargeOutcome::Declined, Some("meal_already_taken"))
    );
    // Dinner is fine.
    let r3 = f
        .store
        .charge(f.cmd("k3", p, LUNCH + 6 * 3600 * 1000))
        .await
        .unwrap();
    assert_eq!(
        (r3.outcome, r3.meal),
        (ChargeOutcome::Accepted, Some(MealKind::Dinner))
    );
    // Outside any window.
    let r4 = f
        .store
        .charge(f.cmd("k4", p, LUNCH + 3 * 3600 * 1000))
        .await
        .unwrap();
    assert_eq!(r4.reason.as_deref(), Some("outside_meal_period"));
    assert_eq!(f.store.balances(p).await.unwrap().cash, Fen(7000));
    f.assert_check_ok().await;
    db.teardown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_hundred_concurrent_charges_never_overdraw() {
    two_hundred_concurrent_charges_never_overdraw_case(Batching::Queued).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_hundred_concurrent_charges_never_overdraw_settled_alone() {
    two_hundred_concurrent_charges_never_overdraw_case(Batching::Alone).await;
}

async fn two_hundred_concurrent_charges_never_overdraw_case(batching: Batching) {
    let Some(db) = fresh().await else { return };
    let f = Arc::new(fixture_on(db.instance(batching).await, Some(1_000_000)).await);
    let p = f.person("E1", 10_000).await;
    // A manager allowed unlimited meals: only the balance can stop charges now.
    f.store
        .update_staff(
            p,
            StaffUpdate {
                meals_per_period: Some(1000),
                ..Default::default()
            },
            &ADMIN,
        )
        .await
        .unwrap();
    let mut tasks = Vec::new();
    for i in 0..200 {
        let f = f.clone();
        tasks.push(tokio::spawn(async move {
            f.store.charge(f.cmd(&format!("c{i}"), p, LUNCH + i)).await
        }));
    }
    let mut accepted = Vec::new();
    for t in tasks {
        let r = t.await.unwrap().unwrap();
        match r.outcome {
            ChargeOutcome::Accepted => accepted.push(r.charge_id.unwrap()),
            ChargeOutcome::Declined => assert_eq!(r.reason.as_deref(), Some("insufficient_funds")),
            ChargeOutcome::Exception => panic!("online charges never become exceptions"),
        }
    }
    // 10000 fen at 1500 a meal: exactly 6 meals, 1000 fen left.
    assert_eq!(accepted.len(), 6);
    assert_eq!(f.store.balances(p).await.unwrap().cash, Fen(1000));
    let charges = f
        .store
        .list_charges(ChargeFilter {
            staff_id: Some(p),
            limit: 1000,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(charges.len(), 6);
    let mut ids: Vec<i64> = charges.iter().map(|c| c.id).collect();
    ids.sort();
    accepted.sort();
    assert_eq!(
        ids, accepted,
        "every accepted charge is in the journal exactly once"
    );
    let mut entries: Vec<i64> = charges.iter().map(|c| c.entry_id.unwrap()).collect();
    entries.dedup();
    assert_eq!(entries.len(), 6);
    f.assert_check_ok().await;
    db.teardown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_hundred_concurrent_charges_respect_daily_cap() {
    two_hundred_concurrent_charges_respect_daily_cap_case(Batching::Queued).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_hundred_concurrent_charges_respect_daily_cap_settled_alone() {
    two_hundred_concurrent_charges_respect_daily_cap_case(Batching::Alone).await;
}

async fn two_hundred_concurrent_charges_respect_daily_cap_case(batching: Batching) {
    let Some(db) = fresh().await else { return };
    let f = Arc::new(fixture_on(db.instance(batching).await, Some(30_000)).await);
    let p = f.person("E1", 1_000_000).await;
    f.store
        .update_staff(
            p,
            StaffUpdate {
                meals_per_period: Some(1000),
                ..Default::default()
            },
            &ADMIN,
        )
        .await
        .unwrap();
    let mut tasks = Vec::new();
    for i in 0..200 {
        let f = f.clone();
        tasks.push(tokio::spawn(async move {
            f.store.charge(f.cmd(&format!("c{i}"), p, LUNCH + i)).await
        }));
    }
    let mut n = 0;
    for t in tasks {
        let r = t.await.unwrap().unwrap();
        if r.outcome == ChargeOutcome::Accepted {
            n += 1;
        } else {
            assert_eq!(r.reason.as_deref(), Some("daily_cap_exceeded"));
        }
    }
    assert_eq!(n, 20, "30000 fen cap / 1500 per meal");
    assert_eq!(
        f.store.balances(p).await.unwrap().cash,
        Fen(1_000_000 - 30_000)
    );
    f.assert_check_ok().await;
    db.teardown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn replayed_hundred_times_charges_once() {
    replayed_hundred_times_charges_once_case(Batching::Queued).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn replayed_hundred_times_charges_once_settled_alone() {
    replayed_hundred_times_charges_once_case(Batching::Alone).await;
}

async fn replayed_hundred_times_charges_once_case(batching: Batching) {
    let Some(db) = fresh().await else { return };
    let f = Arc::new(fixture_on(db.instance(batching).await, None).await);
    let p = f.person("E1", 10_000).await;
    let mut tasks = Vec::new();
    for _ in 0..100 {
        let f = f.clone();
        tasks.push(tokio::spawn(async move {
            f.store.charge(f.cmd("same-key", p, LUNCH)).await
        }));
    }
    let mut results = Vec::new();
    for t in tasks {
        results.push(t.await.unwrap().unwrap());
    }
    let firsts = results.iter().filter(|r| !r.replayed).count();
    assert_eq!(firsts, 1, "exactly one request did the work");
    let id = results[0].charge_id;
    for r in &results {
        assert_eq!(r.outcome, ChargeOutcome::Accepted);
        assert_eq!(r.charge_id, id);
        assert_eq!(r.cash_balance, Fen(8500), "replays return the first result");
    }
    // And sequential replays later.
    for _ in 0..10 {
        let r = f.store.charge(f.cmd("same-key", p, LUNCH)).await.unwrap();
        assert!(r.replayed);
        assert_eq!(r.charge_id, id);
    }
    assert_eq!(f.store.balances(p).await.unwrap().cash, Fen(8500));
    let charges = f
        .store
        .list_charges(ChargeFilter {
            staff_id: Some(p),
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(charges.len(), 1);
    f.assert_check_ok().await;
    db.teardown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn same_key_different_body_conflicts() {
    same_key_different_body_conflicts_case(Batching::Queued).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn same_key_different_body_conflicts_settled_alone() {
    same_key_different_body_conflicts_case(Batching::Alone).await;
}

async fn same_key_different_body_conflicts_case(batching: Batching) {
    let Some(db) = fresh().await else { return };
    let f = fixture_on(db.instance(batching).await, None).await;
    let p = f.person("E1", 10_000).await;
    f.store.charge(f.cmd("k", p, LUNCH)).await.unwrap();
    let mut other = f.cmd("k", p, LUNCH);
    other.request_hash = "a different body".into();
    match f.store.charge(other).await {
        Err(StoreError::Conflict {
            code: "idempotency_key_reused",
            ..
        }) => {}
        other => panic!("expected a conflict, got {other:?}"),
    }
    // A declined request's key is also taken: replaying it returns the same refusal.
    let q = f.person("E2", 0).await;
    let r = f.store.charge(f.cmd("poor", q, LUNCH)).await.unwrap();
    assert_eq!(r.reason.as_deref(), Some("insufficient_funds"));
    f.top_up(q, 5000).await;
    let again = f.store.charge(f.cmd("poor", q, LUNCH)).await.unwrap();
    assert!(again.replayed);
    assert_eq!(again.outcome, ChargeOutcome::Declined);
    f.assert_check_ok().await;
    db.teardown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn offline_charges_apply_their_own_period_and_become_exceptions() {
    let Some(db) = fresh().await else { return };
    let f = fixture(&db, None).await;
    let p = f.person("E1", 2000).await;
    // Served at lunch, uploaded at 18:00 (during dinner): still a lunch.
    let mut c = f.cmd("off1", p, LUNCH);
    c.offline = true;
    c.received_ms = LUNCH + 6 * 3600 * 1000;
    let r = f.store.charge(c).await.unwrap();
    assert_eq!(
        (r.outcome, r.meal),
        (ChargeOutcome::Accepted, Some(MealKind::Lunch))
    );
    // A second offline lunch that day, and no money left: an exception, not lost.
    let mut c2 = f.cmd("off2", p, LUNCH + 5 * 60_000);
    c2.offline = true;
    let r2 = f.store.charge(c2).await.unwrap();
    assert_eq!(r2.outcome, ChargeOutcome::Exception);
    assert_eq!(r2.reason.as_deref(), Some("meal_already_taken"));
    let ex = f
        .store
        .list_charges(ChargeFilter {
            status: Some(ChargeStatus::Exception),
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(ex.len(), 1);
    // Collecting needs money; after a top-up it works; collecting twice does not.
    let err = f
        .store
        .resolve_exception(ex[0].id, true, LUNCH, &ADMIN)
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::Invalid {
                code: "insufficient_funds",
                ..
            }
        ),
        "{err:?}"
    );
    f.top_up(p, 1000).await;
    let done = f
        .store
        .resolve_exception(ex[0].id, true, LUNCH, &ADMIN)
        .await
        .unwrap();
    assert_eq!(done.status, ChargeStatus::Accepted);
    assert!(f
        .store
        .resolve_exception(ex[0].id, true, LUNCH, &ADMIN)
        .await
        .is_err());
    assert_eq!(f.store.balances(p).await.unwrap().cash, Fen(0));
    // Waiving another exception posts nothing.
    let mut c3 = f.cmd("off3", p, LUNCH + 6 * 3600 * 1000);
    c3.offline = true;
    let r3 = f.store.charge(c3).await.unwrap();
    assert_eq!(r3.outcome, ChargeOutcome::Exception);
    let w = f
        .store
        .resolve_exception(r3.charge_id.unwrap(), false, LUNCH, &ADMIN)
        .await
        .unwrap();
    assert_eq!(w.status, ChargeStatus::Waived);
    f.assert_check_ok().await;
    db.teardown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn gateway_notifications_credit_exactly_once() {
    let Some(db) = fresh().await else { return };
    let f = Arc::new(fixture(&db, None).await);
    let p = f.person("E1", 0).await;
    let new = |n: &str, a: i64| NewPaymentOrder {
        order_no: n.into(),
        staff_id: p,
        amount: Fen(a),
        provider: "sandbox".into(),
        now_ms: LUNCH,
    };
    f.store
        .create_payment_order(new("O1", 5000), &ADMIN)
        .await
        .unwrap();
    // 50 duplicate notifications at once.
    let mut tasks = Vec::new();
    for _ in 0..50 {
        let f = f.clone();
        tasks.push(tokio::spawn(async move {
            f.store
                .credit_payment("O1", "tx1", Fen(5000), "{}", LUNCH)
                .await
        }));
    }
    let mut credited = 0;
    for t in tasks {
        match t.await.unwrap().unwrap() {
            CreditOutcome::Credited => credited += 1,
            CreditOutcome::AlreadyCredited => {}
            o => panic!("unexpected {o:?}"),
        }
    }
    assert_eq!(credited, 1);
    // Late duplicate, a day later.
    assert_eq!(
        f.store
            .credit_payment("O1", "tx1", Fen(5000), "{}", LUNCH + DAY_MS)
            .await
            .unwrap(),
        CreditOutcome::AlreadyCredited
    );
    // Wrong amount: nothing credited, order stays open, a correct one later still credits once.
    f.store
        .create_payment_order(new("O2", 3000), &ADMIN)
        .await
        .unwrap();
    assert_eq!(
        f.store
            .credit_payment("O2", "tx2", Fen(30000), "{}", LUNCH)
            .await
            .unwrap(),
        CreditOutcome::AmountMismatch
    );
    assert_eq!(
        f.store.get_payment_order("O2").await.unwrap().status,
        OrderStatus::Created
    );
    assert_eq!(
        f.store
            .credit_payment("O2", "tx2", Fen(3000), "{}", LUNCH)
            .await
            .unwrap(),
        CreditOutcome::Credited
    );
    // Unknown order.
    assert_eq!(
        f.store
            .credit_payment("nope", "tx3", Fen(1), "{}", LUNCH)
            .await
            .unwrap(),
        CreditOutcome::UnknownOrder
    );
    assert_eq!(f.store.balances(p).await.unwrap().cash, Fen(8000));
    f.assert_check_ok().await;
    db.teardown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn refunds_reversals_and_offboarding() {
    let Some(db) = fresh().await else { return };
    let f = fixture(&db, None).await;
    let p = f.person("E1", 10_000).await;
    let q = f.person("E2", 10_000).await;
    f.store
        .set_subsidy_rule(
            SubsidyRule {
                category: "regular".into(),
                amount: Fen(1000),
                expires: true,
            },
            &ADMIN,
        )
        .await
        .unwrap();
    let g = f
        .store
        .grant_subsidies("2026-11", LUNCH, &ADMIN)
        .await
        .unwrap();
    assert_eq!((g.people, g.granted), (2, Fen(2000)));
    let again = f
        .store
        .grant_subsidies("2026-11", LUNCH, &ADMIN)
        .await
        .unwrap();
    assert_eq!(
        (again.people, again.skipped),
        (0, 2),
        "granting a period twice is a no-op"
    );

    // Subsidy first: 1000 subsidy + 500 cash.
    let r = f.store.charge(f.cmd("a", p, LUNCH)).await.unwrap();
    assert_eq!((r.subsidy, r.cash), (Fen(1000), Fen(500)));
    let cid = r.charge_id.unwrap();
    // Manager reversal restores both parts, once.
    let rf = f
        .store
        .reverse_charge(cid, "wrong person", LUNCH, &ADMIN)
        .await
        .unwrap();
    assert_eq!(rf.status, RefundStatus::Approved);
    let b = f.store.balances(p).await.unwrap();
    assert_eq!((b.cash, b.subsidy), (Fen(10_000), Fen(1000)));
    assert!(f
        .store
        .reverse_charge(cid, "again", LUNCH, &ADMIN)
        .await
        .is_err());
    // The refunded lunch no longer counts: a new lunch is allowed.
    let r2 = f.store.charge(f.cmd("b", p, LUNCH + 1000)).await.unwrap();
    assert_eq!(r2.outcome, ChargeOutcome::Accepted);

    // Staff request: only own charges, once, then approved.
    let c2 = r2.charge_id.unwrap();
    assert!(matches!(
        f.store
            .request_refund(c2, q, "not mine", LUNCH, &ADMIN)
            .await,
        Err(StoreError::NotFound(_))
    ));
    let req = f
        .store
        .request_refund(c2, p, "cold soup", LUNCH + 1000, &ADMIN)
        .await
        .unwrap();
    assert!(matches!(
        f.store
            .request_refund(c2, p, "twice", LUNCH + 2000, &ADMIN)
            .await,
        Err(StoreError::Conflict { .. })
    ));
    let ok = f
        .store
        .decide_refund(req.id, true, LUNCH + 3000, &ADMIN)
        .await
        .unwrap();
    assert_eq!(ok.status, RefundStatus::Approved);
    assert!(
        f.store
            .decide_refund(req.id, true, LUNCH + 3000, &ADMIN)
            .await
            .is_err(),
        "decided once"
    );
    assert_eq!(
        f.store.get_charge(c2).await.unwrap().status,
        ChargeStatus::Refunded
    );
    // Too late for a staff request after the window.
    let r3 = f.store.charge(f.cmd("c", p, LUNCH + 2000)).await.unwrap();
    assert!(f
        .store
        .request_refund(r3.charge_id.unwrap(), p, "late", LUNCH + 8 * DAY_MS, &ADMIN)
        .await
        .is_err());
    // A rejected request leaves the charge standing.
    let r4 = f.store.charge(f.cmd("d", q, LUNCH)).await.unwrap();
    let req4 = f
        .store
        .request_refund(r4.charge_id.unwrap(), q, "meh", LUNCH, &ADMIN)
        .await
        .unwrap();
    assert_eq!(
        f.store
            .decide_refund(req4.id, false, LUNCH, &ADMIN)
            .await
            .unwrap()
            .status,
        RefundStatus::Rejected
    );

    // Leaving: cash paid out, subsidy returned, inactive, no more charges, only once.
    let before = f.store.balances(p).await.unwrap();
    let o = f
        .store
        .offboard_staff(p, LUNCH + DAY_MS, &ADMIN)
        .await
        .unwrap();
    assert_eq!(
        (o.cash_paid_out, o.subsidy_returned),
        (before.cash, before.subsidy)
    );
    let after = f.store.balances(p).await.unwrap();
    assert_eq!((after.cash, after.subsidy), (Fen(0), Fen(0)));
    assert!(!f.store.get_staff(p).await.unwrap().active);
    assert!(f
        .store
        .offboard_staff(p, LUNCH + DAY_MS, &ADMIN)
        .await
        .is_err());
    let r5 = f.store.charge(f.cmd("e", p, LUNCH + DAY_MS)).await.unwrap();
    assert_eq!(r5.reason.as_deref(), Some("staff_inactive"));

    // Next period: leftover subsidy of q expires, new grant arrives.
    let g2 = f
        .store
        .grant_subsidies("2026-12", LUNCH + 10 * DAY_MS, &ADMIN)
        .await
        .unwrap();
    assert_eq!(g2.people, 1);
    assert_eq!(f.store.balances(q).await.unwrap().subsidy, Fen(1000));
    f.assert_check_ok().await;
    db.teardown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kiosk_voids_its_own_recent_charges_once() {
    let Some(db) = fresh().await else { return };
    let f = Arc::new(fixture(&db, None).await);
    let p = f.person("E1", 10_000).await;
    let q = f.person("E2", 10_000).await;
    let broke = f.person("E3", 0).await;
    f.store
        .set_subsidy_rule(
            SubsidyRule {
                category: "regular".into(),
                amount: Fen(1000),
                expires: true,
            },
            &ADMIN,
        )
        .await
        .unwrap();
    f.store
        .grant_subsidies("2026-11", LUNCH, &ADMIN)
        .await
        .unwrap();
    let reversals = |staff: i64| {
        let f = f.clone();
        async move {
            f.store
                .statement(staff, 1000)
                .await
                .unwrap()
                .iter()
                .filter(|l| l.kind == "reversal")
                .count()
        }
    };

    // Accepted (subsidy 1000 + cash 500), then voided: both parts come back exactly.
    let r = f.store.charge(f.cmd("a", p, LUNCH)).await.unwrap();
    assert_eq!((r.subsidy, r.cash), (Fen(1000), Fen(500)));
    let cid = r.charge_id.unwrap();
    let v = f
        .store
        .void_kiosk_charge(f.kiosk, "a", "refused_offline_not_served", LUNCH + 60_000)
        .await
        .unwrap();
    assert!(!v.already_void);
    assert_eq!(
        (v.charge.id, v.refund.charge_id, v.refund.amount),
        (cid, cid, Fen(1500))
    );
    assert_eq!(v.refund.status, RefundStatus::Approved);
    assert!(
        v.refund.reason.contains("refused_offline_not_served") && v.refund.reason.contains("kiosk"),
        "{}",
        v.refund.reason
    );
    let b = f.store.balances(p).await.unwrap();
    assert_eq!((b.cash, b.subsidy), (Fen(10_000), Fen(1000)));
    assert_eq!(
        f.store.get_charge(cid).await.unwrap().status,
        ChargeStatus::Refunded
    );
    assert_eq!(reversals(p).await, 1);
    let audit = f.store.list_audit(0, 10_000).await.unwrap();
    let voids: Vec<_> = audit.iter().filter(|a| a.action == "charge.void").collect();
    assert_eq!(voids.len(), 1);
    assert_eq!(voids[0].actor, format!("kiosk:{}", f.kiosk));

    // Voiding again answers the same reversal and posts nothing.
    let again = f
        .store
        .void_kiosk_charge(f.kiosk, "a", "again", LUNCH + 120_000)
        .await
        .unwrap();
    assert!(again.already_void);
    assert_eq!(again.refund.id, v.refund.id);
    assert_eq!(reversals(p).await, 1);
    assert_eq!(f.store.balances(p).await.unwrap().cash, Fen(10_000));

    // Twenty kiosks' worth of retries at once: exactly one reversal.
    let r = f.store.charge(f.cmd("b", q, LUNCH)).await.unwrap();
    assert_eq!(r.outcome, ChargeOutcome::Accepted);
    let mut tasks = Vec::new();
    for _ in 0..20 {
        let f = f.clone();
        tasks.push(tokio::spawn(async move {
            f.store
                .void_kiosk_charge(f.kiosk, "b", "not served", LUNCH + 60_000)
                .await
        }));
    }
    let mut fresh_voids = 0;
    let mut refund_ids = std::collections::HashSet::new();
    for t in tasks {
        let v = t.await.unwrap().unwrap();
        fresh_voids += usize::from(!v.already_void);
        refund_ids.insert(v.refund.id);
    }
    assert_eq!((fresh_voids, refund_ids.len()), (1, 1));
    assert_eq!(reversals(q).await, 1);
    let b = f.store.balances(q).await.unwrap();
    assert_eq!((b.cash, b.subsidy), (Fen(10_000), Fen(1000)));

    // A declined charge leaves no charge row (only its idempotency record), so there is nothing
    // the key could name: not found, the same answer as a key never sent.
    let d = f
        .store
        .charge(f.cmd("declined", broke, LUNCH))
        .await
        .unwrap();
    assert_eq!(d.outcome, ChargeOutcome::Declined);
    assert!(matches!(
        f.store
            .void_kiosk_charge(f.kiosk, "declined", "x", LUNCH)
            .await,
        Err(StoreError::NotFound("charge"))
    ));
    assert!(matches!(
        f.store
            .void_kiosk_charge(f.kiosk, "never-sent", "x", LUNCH)
            .await,
        Err(StoreError::NotFound("charge"))
    ));

    // Exceptions and waived charges took no money.
    let mut off = f.cmd("exc", broke, LUNCH);
    off.offline = true;
    let e = f.store.charge(off).await.unwrap();
    assert_eq!(e.outcome, ChargeOutcome::Exception);
    let err = f
        .store
        .void_kiosk_charge(f.kiosk, "exc", "x", LUNCH)
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::Conflict {
                code: "nothing_to_void",
                ..
            }
        ),
        "{err:?}"
    );
    f.store
        .resolve_exception(e.charge_id.unwrap(), false, LUNCH, &ADMIN)
        .await
        .unwrap();
    let err = f
        .store
        .void_kiosk_charge(f.kiosk, "exc", "x", LUNCH)
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::Conflict {
                code: "nothing_to_void",
                ..
            }
        ),
        "{err:?}"
    );

    // Keys are per kiosk: another kiosk cannot void this kiosk's charge.
    let r = f
        .store
        .charge(f.cmd("c", p, LUNCH + 6 * 3600 * 1000))
        .await
        .unwrap();
    assert_eq!(r.outcome, ChargeOutcome::Accepted);
    f.store
        .create_enrolment_code(f.canteen, "codehash-2", LUNCH + DAY_MS, &ADMIN)
        .await
        .unwrap();
    let other = f
        .store
        .redeem_enrolment_code("codehash-2", "kiosk-2", "tokenhash-2", LUNCH)
        .await
        .unwrap();
    assert!(matches!(
        f.store.void_kiosk_charge(other.id, "c", "x", LUNCH).await,
        Err(StoreError::NotFound("charge"))
    ));

    // Older than the window: a manager's matter, the charge stands.
    let err = f
        .store
        .void_kiosk_charge(f.kiosk, "c", "x", LUNCH + 8 * DAY_MS)
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::Conflict {
                code: "void_too_late",
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(
        f.store
            .get_charge(r.charge_id.unwrap())
            .await
            .unwrap()
            .status,
        ChargeStatus::Accepted
    );
    // Within it (the last day still counts), it is voided.
    assert!(
        !f.store
            .void_kiosk_charge(f.kiosk, "c", "x", LUNCH + 6 * 3600 * 1000 + 7 * DAY_MS)
            .await
            .unwrap()
            .already_void
    );
    f.assert_check_ok().await;
    db.teardown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn face_templates_need_consent_and_sync_with_tombstones() {
    let Some(db) = fresh().await else { return };
    let f = fixture(&db, None).await;
    let p = f.person("E1", 0).await;
    let q = f.person("E2", 0).await;
    let sealed = || SealedTemplate {
        nonce: vec![1; 12],
        ciphertext: vec![9; 40],
    };
    let err = f
        .store
        .add_template(p, sealed(), LUNCH, &ADMIN)
        .await
        .unwrap_err();
    assert!(matches!(
        err,
        StoreError::Invalid {
            code: "consent_required",
            ..
        }
    ));
    f.store.set_consent(p, true, LUNCH, &ADMIN).await.unwrap();
    f.store.set_consent(q, true, LUNCH, &ADMIN).await.unwrap();
    let t1 = f
        .store
        .add_template(p, sealed(), LUNCH, &ADMIN)
        .await
        .unwrap();
    let t2 = f
        .store
        .add_template(p, sealed(), LUNCH, &ADMIN)
        .await
        .unwrap();
    let t3 = f
        .store
        .add_template(q, sealed(), LUNCH, &ADMIN)
        .await
        .unwrap();
    let page = f.store.gallery_changes(0, 100).await.unwrap();
    assert_eq!(page.changes.len(), 3);
    let since = page.current_version;
    // Delete one, withdraw consent for the other person: only those changes come back.
    f.store.delete_template(t1.id, LUNCH, &ADMIN).await.unwrap();
    f.store.set_consent(q, false, LUNCH, &ADMIN).await.unwrap();
    let page2 = f.store.gallery_changes(since, 100).await.unwrap();
    let ids: Vec<(i64, bool)> = page2
        .changes
        .iter()
        .map(|c| (c.template_id, c.sealed.is_none()))
        .collect();
    assert_eq!(ids, vec![(t1.id, true), (t3.id, true)]);
    assert_eq!(
        f.store
            .list_templates(p)
            .await
            .unwrap()
            .iter()
            .map(|t| t.id)
            .collect::<Vec<_>>(),
        vec![t2.id]
    );
    assert!(f.store.list_templates(q).await.unwrap().is_empty());
    assert!(
        f.store
            .add_template(q, sealed(), LUNCH, &ADMIN)
            .await
            .is_err(),
        "consent withdrawn"
    );
    // Paging: limit 1 walks every change in version order.
    let mut since = 0;
    let mut seen = 0;
    loop {
        let pg = f.store.gallery_changes(since, 1).await.unwrap();
        if pg.changes.is_empty() {
            break;
        }
        assert!(pg.changes[0].version > since);
        since = pg.changes[0].version;
        seen += 1;
    }
    assert_eq!(seen, 3, "three templates, each at its latest version");
    let audit = f.store.list_audit(0, 10_000).await.unwrap();
    assert!(audit.iter().any(|a| a.action == "face.template_deleted"));
    assert!(audit.iter().any(|a| a.action == "face.consent_withdrawn"));
    f.assert_check_ok().await;
    db.teardown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn waste_records_are_idempotent_and_validated() {
    let Some(db) = fresh().await else { return };
    let f = fixture(&db, None).await;
    let p = f.person("E1", 5000).await;
    let c = f.store.charge(f.cmd("k", p, LUNCH)).await.unwrap();
    let cmd = |key: &str, gross: i64| WasteCommand {
        kiosk_id: f.kiosk,
        idempotency_key: key.into(),
        request_hash: format!("{key}-{gross}"),
        staff_id: None,
        charge_id: c.charge_id,
        gross_grams: gross,
        tare_grams: 480,
        dish: Some("rice".into()),
        category: None,
        measured_at_ms: LUNCH,
        received_ms: LUNCH,
    };
    let w = f.store.record_waste(cmd("w1", 612)).await.unwrap();
    assert_eq!((w.net_grams, w.staff_id), (132, Some(p)));
    let again = f.store.record_waste(cmd("w1", 612)).await.unwrap();
    assert!(again.replayed);
    assert_eq!(again.id, w.id);
    assert!(matches!(
        f.store.record_waste(cmd("w1", 700)).await,
        Err(StoreError::Conflict { .. })
    ));
    assert!(matches!(
        f.store.record_waste(cmd("w2", 100)).await,
        Err(StoreError::Invalid {
            code: "bad_weight",
            ..
        })
    ));
    assert_eq!(f.store.list_waste(Some(p), 10).await.unwrap().len(), 1);
    // From a return station that never saw the charge: linked by person, day and meal.
    let mut other = cmd("w3", 600);
    other.charge_id = None;
    other.staff_id = Some(p);
    let linked = f.store.record_waste(other).await.unwrap();
    assert_eq!(linked.charge_id, c.charge_id);
    // No charge at dinner: stays unlinked.
    let mut dinner = cmd("w4", 600);
    dinner.charge_id = None;
    dinner.staff_id = Some(p);
    dinner.measured_at_ms = LUNCH + 6 * 3600 * 1000;
    assert_eq!(f.store.record_waste(dinner).await.unwrap().charge_id, None);
    db.teardown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn check_detects_tampering() {
    let Some(db) = fresh().await else { return };
    let f = fixture(&db, None).await;
    let p = f.person("E1", 5000).await;
    f.store.charge(f.cmd("k", p, LUNCH)).await.unwrap();
    f.assert_check_ok().await;
    // Someone edits a posting behind the ledger's back.
    db.exec("UPDATE postings SET amount_fen = amount_fen + 1 WHERE (entry_id, account_id) IN (SELECT entry_id, account_id FROM postings ORDER BY entry_id, account_id LIMIT 1)").await;
    let r = f.store.check(LUNCH + DAY_MS * 400, 60_000).await.unwrap();
    assert!(
        r.problems.iter().any(|p| p.contains("do not sum to zero")),
        "{:?}",
        r.problems
    );
    db.exec("UPDATE postings SET amount_fen = amount_fen - 1 WHERE (entry_id, account_id) IN (SELECT entry_id, account_id FROM postings ORDER BY entry_id, account_id LIMIT 1)").await;
    f.assert_check_ok().await;
    // Someone rewrites history in the sealed audit log.
    db.exec("UPDATE audit_log SET detail = '{}' WHERE seq = 2")
        .await;
    let r = f.store.check(LUNCH + DAY_MS * 400, 60_000).await.unwrap();
    assert!(
        r.problems.iter().any(|p| p.contains("audit chain")),
        "{:?}",
        r.problems
    );
    db.teardown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn check_flags_stale_unsealed_audit_entries() {
    let Some(db) = fresh().await else { return };
    let f = fixture(&db, None).await;
    f.person("E1", 0).await;
    let now = LUNCH + DAY_MS * 400;
    let r = f.store.check(now, 60_000).await.unwrap();
    assert!(
        r.problems.iter().any(|p| p.contains("not sealed")),
        "{:?}",
        r.problems
    );
    assert!(r.audit_unsealed > 0);
    f.assert_check_ok().await;
    db.teardown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_sealers_build_one_chain() {
    let Some(db) = fresh().await else { return };
    let f = Arc::new(fixture(&db, None).await);
    let p = f.person("E1", 1_000_000).await;
    f.store
        .update_staff(
            p,
            StaffUpdate {
                meals_per_period: Some(1000),
                ..Default::default()
            },
            &ADMIN,
        )
        .await
        .unwrap();
    let mut tasks = Vec::new();
    for i in 0..40 {
        let f = f.clone();
        tasks.push(tokio::spawn(async move {
            f.store
                .charge(f.cmd(&format!("s{i}"), p, LUNCH + i))
                .await
                .unwrap();
            f.store.seal_audit(7).await.unwrap();
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    f.assert_check_ok().await;
    db.teardown().await;
}

// ---- double-entry invariants under random operation sequences, on the real database ----------

#[derive(Clone, Debug)]
enum Op {
    TopUp(usize, i64),
    Charge(usize, u8, bool),
    Reverse(usize),
    Grant,
    Offboard(usize),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0usize..3, 1i64..5000).prop_map(|(p, a)| Op::TopUp(p, a)),
        (0usize..3, 0u8..3, any::<bool>()).prop_map(|(p, m, off)| Op::Charge(p, m, off)),
        (0usize..50).prop_map(Op::Reverse),
        Just(Op::Grant),
        (0usize..3).prop_map(Op::Offboard),
    ]
}

async fn run_ops(ops: Vec<Op>) {
    let Some(db) = fresh().await else { return };
    let f = fixture(&db, Some(4000)).await;
    f.store
        .set_subsidy_rule(
            SubsidyRule {
                category: "regular".into(),
                amount: Fen(700),
                expires: true,
            },
            &ADMIN,
        )
        .await
        .unwrap();
    let mut people = Vec::new();
    for i in 0..3 {
        people.push(f.person(&format!("P{i}"), 0).await);
    }
    let mut model_cash = [0i64; 3];
    let mut n = 0;
    let mut period = 0;
    for op in ops {
        n += 1;
        match op {
            Op::TopUp(i, a) => {
                if f.store.get_staff(people[i]).await.unwrap().active {
                    f.top_up(people[i], a).await;
                    model_cash[i] += a;
                }
            }
            Op::Charge(i, meal, offline) => {
                let at =
                    LUNCH + [-(4 * 3600 * 1000 + 20 * 60_000), 0, 6 * 3600 * 1000][meal as usize];
                let mut c = f.cmd(&format!("op{n}"), people[i], at);
                c.offline = offline;
                let r = f.store.charge(c).await.unwrap();
                if r.outcome == ChargeOutcome::Accepted {
                    model_cash[i] -= r.cash.0;
                }
            }
            Op::Reverse(k) => {
                let cs = f
                    .store
                    .list_charges(ChargeFilter {
                        status: Some(ChargeStatus::Accepted),
                        limit: 1000,
                        ..Default::default()
                    })
                    .await
                    .unwrap();
                if !cs.is_empty() {
                    let c = &cs[k % cs.len()];
                    f.store
                        .reverse_charge(c.id, "prop", LUNCH, &ADMIN)
                        .await
                        .unwrap();
                    let i = people.iter().position(|p| *p == c.staff_id).unwrap();
                    model_cash[i] += c.cash.0;
                }
            }
            Op::Grant => {
                period += 1;
                f.store
                    .grant_subsidies(&format!("2027-{:02}", (period % 12) + 1), LUNCH, &ADMIN)
                    .await
                    .unwrap();
            }
            Op::Offboard(i) => {
                if f.store.get_staff(people[i]).await.unwrap().active {
                    f.store
                        .offboard_staff(people[i], LUNCH, &ADMIN)
                        .await
                        .unwrap();
                    model_cash[i] = 0;
                }
            }
        }
        for (i, p) in people.iter().enumerate() {
            let b = f.store.balances(*p).await.unwrap();
            assert!(b.cash.0 >= 0 && b.subsidy.0 >= 0);
            assert_eq!(b.cash.0, model_cash[i], "cash of person {i} after {n} ops");
        }
    }
    f.assert_check_ok().await;
    db.teardown().await;
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 12, ..ProptestConfig::default() })]
    #[test]
    fn double_entry_invariants_hold_on_the_database(ops in prop::collection::vec(op(), 1..40)) {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        rt.block_on(run_ops(ops));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn expired_sessions_are_purged() {
    let Some(db) = fresh().await else { return };
    let f = fixture(&db, None).await;
    let u = f
        .store
        .create_user(
            NewUser {
                username: "m".into(),
                password_hash: "x".into(),
                role: Role::Manager,
                staff_id: None,
            },
            &ADMIN,
        )
        .await
        .unwrap();
    for (t, exp) in [("old", LUNCH - 1), ("live", LUNCH + DAY_MS)] {
        f.store
            .create_session(NewSession {
                token_hash: t.into(),
                user_id: u.id,
                csrf_token: "c".into(),
                created_ms: 0,
                expires_ms: exp,
            })
            .await
            .unwrap();
    }
    assert!(f
        .store
        .rate_limit_hit("k", LUNCH - 2 * DAY_MS, 60_000, 5)
        .await
        .unwrap());
    assert_eq!(f.store.purge_expired(LUNCH).await.unwrap(), 2);
    assert!(f.store.session("live", LUNCH).await.unwrap().is_some());
    assert!(
        f.store.session("old", 0).await.unwrap().is_none(),
        "the expired session row is gone"
    );
    db.teardown().await;
}

// ---- group commit: what one batch of charges does (see backend/store/sql/batch.rs) ----------

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn batch_mixes_accepts_declines_and_exceptions() {
    let Some(db) = fresh().await else { return };
    let f = fixture(&db, Some(3000)).await;
    let rich = f.person("E1", 10_000).await;
    let poor = f.person("E2", 1000).await;
    let capped = f.person("E3", 100_000).await;
    f.store
        .update_staff(
            capped,
            StaffUpdate {
                meals_per_period: Some(10),
                ..Default::default()
            },
            &ADMIN,
        )
        .await
        .unwrap();
    let dinner = LUNCH + 6 * 3600 * 1000;
    let mut offline = f.cmd("off", poor, LUNCH + 5);
    offline.offline = true;
    let cmds = vec![
        f.cmd("a1", rich, LUNCH),
        f.cmd("a2", rich, LUNCH + 1),
        f.cmd("p1", poor, LUNCH + 2),
        f.cmd("c1", capped, LUNCH + 3),
        f.cmd("c2", capped, LUNCH + 4),
        f.cmd("c3", capped, LUNCH + 5),
        offline,
        f.cmd("ghost", 987_654, LUNCH),
        f.cmd("d1", rich, dinner),
    ];
    let out = db
        .raw
        .charge_batch(cmds.clone())
        .await
        .expect("the batch commits");
    assert_eq!(out.len(), cmds.len());
    let view = |r: &store::Result<ChargeResult>| match r {
        Ok(r) => (
            format!("{:?}", r.outcome),
            r.reason.clone(),
            r.cash_balance.0,
        ),
        Err(e) => (format!("error {e:?}"), None, -1),
    };
    let got: Vec<_> = out.iter().map(view).collect();
    let want = vec![
        ("Accepted".to_string(), None, 8500),
        (
            "Declined".to_string(),
            Some("meal_already_taken".to_string()),
            8500,
        ),
        (
            "Declined".to_string(),
            Some("insufficient_funds".to_string()),
            1000,
        ),
        ("Accepted".to_string(), None, 98_500),
        ("Accepted".to_string(), None, 97_000),
        (
            "Declined".to_string(),
            Some("daily_cap_exceeded".to_string()),
            97_000,
        ),
        (
            "Exception".to_string(),
            Some("insufficient_funds".to_string()),
            1000,
        ),
        (
            format!("error {:?}", StoreError::NotFound("staff")),
            None,
            -1,
        ),
        ("Accepted".to_string(), None, 7000),
    ];
    assert_eq!(
        got, want,
        "each charge decided in arrival order against the state the earlier ones left"
    );
    // The database agrees with the answers.
    assert_eq!(f.store.balances(rich).await.unwrap().cash, Fen(7000));
    assert_eq!(f.store.balances(capped).await.unwrap().cash, Fen(97_000));
    assert_eq!(f.store.balances(poor).await.unwrap().cash, Fen(1000));
    let all = f
        .store
        .list_charges(ChargeFilter {
            limit: 100,
            ..Default::default()
        })
        .await
        .unwrap();
    let mut rows: Vec<(String, ChargeStatus)> = all
        .iter()
        .map(|c| (c.idempotency_key.clone(), c.status))
        .collect();
    rows.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(
        rows,
        vec![
            ("a1".into(), ChargeStatus::Accepted),
            ("c1".into(), ChargeStatus::Accepted),
            ("c2".into(), ChargeStatus::Accepted),
            ("d1".into(), ChargeStatus::Accepted),
            ("off".into(), ChargeStatus::Exception),
        ]
    );
    for (cmd, first) in cmds.iter().zip(&out) {
        let charge_id = first.as_ref().ok().and_then(|r| r.charge_id);
        if let Some(id) = charge_id {
            assert_eq!(
                f.store.get_charge(id).await.unwrap().idempotency_key,
                cmd.idempotency_key,
                "answered id is the stored charge"
            );
        }
        // Every key now replays its first answer, one by one.
        match (first, f.store.charge(cmd.clone()).await) {
            (Ok(a), Ok(b)) => {
                assert!(b.replayed, "{} replays", cmd.idempotency_key);
                assert_eq!(
                    ChargeResult {
                        replayed: true,
                        ..a.clone()
                    },
                    b
                );
            }
            (Err(StoreError::NotFound(_)), Err(StoreError::NotFound(_))) => {}
            (a, b) => panic!("{}: first {a:?}, replay {b:?}", cmd.idempotency_key),
        }
    }
    f.assert_check_ok().await;
    db.teardown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn batch_with_the_same_key_twice_charges_once() {
    let Some(db) = fresh().await else { return };
    let f = fixture(&db, None).await;
    let p = f.person("E1", 10_000).await;
    let q = f.person("E2", 10_000).await;
    let broke = f.person("E3", 0).await;
    let before = f.store.charge(f.cmd("old", q, LUNCH)).await.unwrap();
    let mut old_other_body = f.cmd("old", q, LUNCH);
    old_other_body.request_hash = "another body".into();
    let mut k2_other_body = f.cmd("k2", broke, LUNCH);
    k2_other_body.request_hash = "another body".into();
    let cmds = vec![
        f.cmd("k1", p, LUNCH),
        f.cmd("k2", broke, LUNCH),
        f.cmd("k1", p, LUNCH),
        old_other_body,
        f.cmd("old", q, LUNCH),
        k2_other_body,
        f.cmd("k2", broke, LUNCH),
    ];
    let out = db.raw.charge_batch(cmds).await.expect("the batch commits");
    let first = out[0].as_ref().unwrap();
    assert_eq!(
        (first.outcome, first.replayed, first.cash_balance),
        (ChargeOutcome::Accepted, false, Fen(8500))
    );
    let again = out[2].as_ref().unwrap();
    assert!(again.replayed, "the second k1 of the batch is a replay");
    assert_eq!(
        ChargeResult {
            replayed: false,
            ..again.clone()
        },
        *first,
        "and answers what the first did"
    );
    assert!(
        matches!(
            out[3],
            Err(StoreError::Conflict {
                code: "idempotency_key_reused",
                ..
            })
        ),
        "{:?}",
        out[3]
    );
    let old = out[4].as_ref().unwrap();
    assert!(old.replayed);
    assert_eq!(old.charge_id, before.charge_id);
    let declined = out[1].as_ref().unwrap();
    assert_eq!(
        (declined.outcome, declined.reason.as_deref()),
        (ChargeOutcome::Declined, Some("insufficient_funds"))
    );
    assert!(
        matches!(
            out[5],
            Err(StoreError::Conflict {
                code: "idempotency_key_reused",
                ..
            })
        ),
        "{:?}",
        out[5]
    );
    let declined_again = out[6].as_ref().unwrap();
    assert!(declined_again.replayed);
    assert_eq!(declined_again.outcome, ChargeOutcome::Declined);
    // One charge for p, once.
    assert_eq!(f.store.balances(p).await.unwrap().cash, Fen(8500));
    let charges = f
        .store
        .list_charges(ChargeFilter {
            staff_id: Some(p),
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(charges.len(), 1);
    assert_eq!(Some(charges[0].id), first.charge_id);
    f.assert_check_ok().await;
    db.teardown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn batch_database_error_fails_every_charge_and_commits_nothing() {
    let Some(db) = fresh().await else { return };
    let f = Arc::new(fixture(&db, None).await);
    let p = f.person("E1", 10_000).await;
    let q = f.person("E2", 10_000).await;
    let b = f.person("E3", 1_000_000).await;
    for s in [p, q, b] {
        f.store
            .update_staff(
                s,
                StaffUpdate {
                    meals_per_period: Some(1000),
                    ..Default::default()
                },
                &ADMIN,
            )
            .await
            .unwrap();
    }
    db.inject_charge_failure().await;
    // A known batch: the failing charge takes the others down with it, and none is committed.
    let cmds = vec![
        f.cmd("ok1", p, LUNCH),
        f.cmd("boom", b, LUNCH),
        f.cmd("ok2", q, LUNCH),
    ];
    match db.raw.charge_batch(cmds.clone()).await {
        Err(StoreError::Database(_)) => {}
        other => panic!("expected the whole batch to fail with a database error, got {other:?}"),
    }
    assert_eq!(f.store.balances(p).await.unwrap().cash, Fen(10_000));
    assert_eq!(f.store.balances(q).await.unwrap().cash, Fen(10_000));
    assert!(f
        .store
        .list_charges(ChargeFilter {
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap()
        .is_empty());

    // Through the queue, concurrently: every caller gets its own result or its batch's error.
    let mut tasks = Vec::new();
    for i in 0..60i64 {
        let f = f.clone();
        let cmd = match i % 5 {
            0 => f.cmd(&format!("boom{i}"), b, LUNCH + i),
            1 | 2 => f.cmd(&format!("p{i}"), p, LUNCH + i),
            _ => f.cmd(&format!("q{i}"), q, LUNCH + i),
        };
        tasks.push(tokio::spawn(async move {
            (cmd.clone(), f.store.charge(cmd).await)
        }));
    }
    let mut answered = Vec::new();
    for t in tasks {
        answered.push(t.await.unwrap());
    }
    for (cmd, r) in &answered {
        if cmd.idempotency_key.starts_with("boom") {
            assert!(
                matches!(r, Err(StoreError::Database(_))),
                "{}: {r:?}",
                cmd.idempotency_key
            );
        } else if let Err(e) = r {
            assert!(
                matches!(e, StoreError::Database(_)),
                "{}: {e:?}",
                cmd.idempotency_key
            );
        }
    }
    db.remove_charge_failure().await;
    // An answered charge is committed (its retry is a replay); a refused one left nothing behind
    // (its retry is the first real attempt).
    for (cmd, first) in answered {
        let retry = f.store.charge(cmd.clone()).await.unwrap();
        match first {
            Ok(a) => assert_eq!(
                retry,
                ChargeResult {
                    replayed: true,
                    ..a
                },
                "{}",
                cmd.idempotency_key
            ),
            Err(_) => assert!(
                !retry.replayed,
                "{} was refused, so nothing of it may be stored",
                cmd.idempotency_key
            ),
        }
    }
    // And money adds up: 10000 at 1500 a meal is 6 meals each for p and q.
    assert_eq!(f.store.balances(p).await.unwrap().cash, Fen(1000));
    assert_eq!(f.store.balances(q).await.unwrap().cash, Fen(1000));
    f.assert_check_ok().await;
    db.teardown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_instances_batching_concurrently_keep_every_invariant() {
    two_instances_batching_concurrently_keep_every_invariant_case(Batching::Queued).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_instances_batching_concurrently_keep_every_invariant_settled_alone() {
    two_instances_batching_concurrently_keep_every_invariant_case(Batching::Alone).await;
}

async fn two_instances_batching_concurrently_keep_every_invariant_case(batching: Batching) {
    let Some(db) = fresh().await else { return };
    let f = Arc::new(fixture_on(db.instance(batching).await, Some(30_000)).await);
    let other = db.another_instance(batching).await;
    let short = f.person("E1", 10_000).await;
    let capped = f.person("E2", 1_000_000).await;
    let replayed = f.person("E3", 1_000_000).await;
    let (left, right) = (
        f.person("E4", 1_000_000).await,
        f.person("E5", 1_000_000).await,
    );
    for s in [short, capped, replayed, left, right] {
        f.store
            .update_staff(
                s,
                StaffUpdate {
                    meals_per_period: Some(1000),
                    ..Default::default()
                },
                &ADMIN,
            )
            .await
            .unwrap();
    }
    let stores = [f.store.clone(), other.clone()];
    let mut tasks = Vec::new();
    for i in 0..240i64 {
        let store = stores[(i % 2) as usize].clone();
        let cmd = match i % 6 {
            0 | 1 => f.cmd(&format!("s{i}"), short, LUNCH + i),
            2 | 3 => f.cmd(&format!("c{i}"), capped, LUNCH + i),
            _ => f.cmd("shared", replayed, LUNCH),
        };
        tasks.push(tokio::spawn(async move {
            (cmd.staff_id, store.charge(cmd).await.unwrap())
        }));
    }
    // The same key for two different people at once on the two instances: one wins, the other
    // is a key conflict (these batches lose a unique-index race and are redone charge by charge).
    for i in 0..20i64 {
        let (a, b) = (
            f.cmd(&format!("race{i}"), left, LUNCH + i),
            f.cmd(&format!("race{i}"), right, LUNCH + i),
        );
        let (sa, sb) = (stores[0].clone(), stores[1].clone());
        tasks.push(tokio::spawn(async move {
            let (ra, rb) = tokio::join!(sa.charge(a), sb.charge(b));
            let ok = [&ra, &rb].iter().filter(|r| r.is_ok()).count();
            let conflicts = [&ra, &rb]
                .iter()
                .filter(|r| {
                    matches!(
                        r,
                        Err(StoreError::Conflict {
                            code: "idempotency_key_reused",
                            ..
                        })
                    )
                })
                .count();
            assert_eq!((ok, conflicts), (1, 1), "race{i}: {ra:?} / {rb:?}");
            (0, ra.or(rb).unwrap())
        }));
    }
    let (mut n_short, mut n_capped, mut firsts, mut shared_ids) =
        (0, 0, 0, std::collections::BTreeSet::new());
    for t in tasks {
        let (staff, r) = t.await.unwrap();
        if staff == replayed {
            assert_eq!(r.outcome, ChargeOutcome::Accepted);
            firsts += usize::from(!r.replayed);
            shared_ids.insert(r.charge_id);
        } else if r.outcome == ChargeOutcome::Accepted {
            n_short += usize::from(staff == short);
            n_capped += usize::from(staff == capped);
        } else if staff == short {
            assert_eq!(r.reason.as_deref(), Some("insufficient_funds"));
        } else if staff == capped {
            assert_eq!(r.reason.as_deref(), Some("daily_cap_exceeded"));
        }
    }
    assert_eq!(
        n_short, 6,
        "10000 fen at 1500 a meal, whichever instance took them"
    );
    assert_eq!(n_capped, 20, "30000 fen daily cap at 1500 a meal");
    assert_eq!(
        (firsts, shared_ids.len()),
        (1, 1),
        "one key on two instances charges once"
    );
    assert_eq!(f.store.balances(short).await.unwrap().cash, Fen(1000));
    assert_eq!(
        other.balances(capped).await.unwrap().cash,
        Fen(1_000_000 - 30_000)
    );
    let raced = f
        .store
        .list_charges(ChargeFilter {
            limit: 1000,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(
        raced
            .iter()
            .filter(|c| c.idempotency_key.starts_with("race"))
            .count(),
        20
    );
    f.assert_check_ok().await;
    db.teardown().await;
}

/// The code and message of a conflict, or a panic naming what came instead.
fn conflict<T: std::fmt::Debug>(r: store::Result<T>) -> (&'static str, String) {
    match r {
        Err(StoreError::Conflict { code, message }) => (code, message),
        other => panic!("expected a conflict, got {other:?}"),
    }
}

#[tokio::test]
async fn constraint_violations_answer_stable_codes_in_our_words() {
    let Some(db) = fresh().await else { return };
    let f = fixture(&db, None).await;
    let s = &f.store;
    let mut seen = Vec::new();
    seen.push(conflict(
        s.create_canteen(
            NewCanteen {
                name: "North".into(),
                utc_offset_minutes: 480,
                per_transaction_cap: None,
                daily_cap: None,
            },
            &ADMIN,
        )
        .await,
    ));
    let p = f.person("E1", 3000).await;
    seen.push(conflict(
        s.create_staff(
            NewStaff {
                employee_no: "E1".into(),
                name: "Again".into(),
                department: "R&D".into(),
                category: "regular".into(),
            },
            &ADMIN,
        )
        .await,
    ));
    let user = NewUser {
        username: "boss".into(),
        password_hash: "x".into(),
        role: Role::Manager,
        staff_id: None,
    };
    s.create_user(user.clone(), &ADMIN).await.unwrap();
    seen.push(conflict(s.create_user(user, &ADMIN).await));
    let order = NewPaymentOrder {
        order_no: "O-1".into(),
        staff_id: p,
        amount: Fen(100),
        provider: "sandbox".into(),
        now_ms: LUNCH,
    };
    s.create_payment_order(order.clone(), &ADMIN).await.unwrap();
    seen.push(conflict(s.create_payment_order(order, &ADMIN).await));
    let r = s.charge(f.cmd("k1", p, LUNCH)).await.unwrap();
    let charge = r.charge_id.expect("accepted");
    s.request_refund(charge, p, "cold", LUNCH, &ADMIN)
        .await
        .unwrap();
    seen.push(conflict(
        s.request_refund(charge, p, "still cold", LUNCH, &ADMIN)
            .await,
    ));
    s.offboard_staff(p, LUNCH, &ADMIN).await.unwrap();
    seen.push(conflict(s.offboard_staff(p, LUNCH, &ADMIN).await));
    let codes: Vec<&str> = seen.iter().map(|(c, _)| *c).collect();
    assert_eq!(
        codes,
        [
            "duplicate_canteen_name",
            "employee_no_taken",
            "username_taken",
            "duplicate_order_no",
            "refund_exists",
            "already_offboarded"
        ]
    );
    for (code, message) in &seen {
        let lower = message.to_lowercase();
        assert!(
            ![
                "unique",
                "constraint",
                "violates",
                "key (",
                "sqlite",
                "duplicate key"
            ]
            .iter()
            .any(|w| lower.contains(w)),
            "{code}: database text reached the message: {message}"
        );
    }
    db.teardown().await;
}

/// A fixture with one accepted charge (key "k", 15.00 from cash), sealed, check clean.
async fn sealed_charge(db: &TestDb) -> (Fixture, i64) {
    let f = fixture(db, None).await;
    let p = f.person("E1", 5000).await;
    let r = f.store.charge(f.cmd("k", p, LUNCH)).await.unwrap();
    assert_eq!(r.outcome, ChargeOutcome::Accepted);
    f.assert_check_ok().await;
    (f, p)
}

async fn problems_after_tampering(f: &Fixture) -> Vec<String> {
    f.store
        .check(LUNCH + DAY_MS * 400, 60_000)
        .await
        .unwrap()
        .problems
}

fn has(problems: &[String], needle: &str) -> bool {
    problems.iter().any(|p| p.contains(needle))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn check_catches_a_charge_rewritten_with_its_postings_and_balance() {
    let Some(db) = fresh().await else { return };
    let (f, p) = sealed_charge(&db).await;
    // 15.00 becomes 16.00 everywhere the old check looked: charge, postings, cached balance.
    db.exec("UPDATE postings SET amount_fen = amount_fen - 100 WHERE entry_id = (SELECT entry_id FROM charges WHERE idempotency_key = 'k') AND account_id IN (SELECT id FROM book_accounts WHERE kind = 'cash')").await;
    db.exec("UPDATE postings SET amount_fen = amount_fen + 100 WHERE entry_id = (SELECT entry_id FROM charges WHERE idempotency_key = 'k') AND account_id IN (SELECT id FROM book_accounts WHERE kind = 'revenue')").await;
    db.exec("UPDATE charges SET amount_fen = amount_fen + 100, cash_fen = cash_fen + 100 WHERE idempotency_key = 'k'").await;
    db.exec_composed(format!(
        "UPDATE book_accounts SET balance_fen = balance_fen - 100 WHERE kind = 'cash' AND staff_id = {p}"
    ))
    .await;
    let problems = problems_after_tampering(&f).await;
    assert!(has(&problems, "differs from their seal"), "{problems:?}");
    assert_eq!(problems.len(), 1, "only the seal can tell: {problems:?}");
    db.teardown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn check_catches_a_charge_deleted_with_everything_but_its_audit_entry() {
    let Some(db) = fresh().await else { return };
    let (f, p) = sealed_charge(&db).await;
    db.exec("CREATE TABLE gone AS SELECT id AS charge_id, entry_id FROM charges WHERE idempotency_key = 'k'").await;
    db.exec("DELETE FROM idempotency WHERE key = 'k'").await;
    db.exec("DELETE FROM charges WHERE idempotency_key = 'k'")
        .await;
    db.exec("DELETE FROM postings WHERE entry_id IN (SELECT entry_id FROM gone)")
        .await;
    db.exec("DELETE FROM journal_entries WHERE id IN (SELECT entry_id FROM gone)")
        .await;
    db.exec_composed(format!(
        "UPDATE book_accounts SET balance_fen = balance_fen + 1500 WHERE kind = 'cash' AND staff_id = {p}"
    ))
    .await;
    db.exec("DROP TABLE gone").await;
    let problems = problems_after_tampering(&f).await;
    assert!(
        has(&problems, "sealed journal entries that are gone"),
        "{problems:?}"
    );
    assert!(
        has(&problems, "charges the sealed audit log records"),
        "{problems:?}"
    );
    db.teardown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn check_catches_an_entry_whose_memo_or_time_changed() {
    let Some(db) = fresh().await else { return };
    let (f, _) = sealed_charge(&db).await;
    db.exec("UPDATE journal_entries SET memo = 'nothing to see' WHERE id = (SELECT entry_id FROM charges WHERE idempotency_key = 'k')").await;
    assert!(has(
        &problems_after_tampering(&f).await,
        "differs from their seal"
    ));
    db.exec("UPDATE journal_entries SET memo = (SELECT memo FROM journal_entries WHERE id = (SELECT entry_id FROM charges WHERE idempotency_key = 'k')), created_at = created_at - 86400000 WHERE id = (SELECT entry_id FROM charges WHERE idempotency_key = 'k')").await;
    assert!(has(
        &problems_after_tampering(&f).await,
        "differs from their seal"
    ));
    db.teardown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn check_catches_an_audit_chain_rebuilt_without_the_key() {
    let Some(db) = fresh().await else { return };
    let (f, _) = sealed_charge(&db).await;
    // Edit the second sealed entry and rebuild every later hash, as an attacker with the
    // database but not the key would: with a key of their own.
    let rows = f.store.list_audit(0, 10_000).await.unwrap();
    let mut sealed: Vec<_> = rows.into_iter().filter(|r| r.seq.is_some()).collect();
    sealed.sort_by_key(|r| r.seq);
    assert!(sealed.len() >= 3, "a few sealed entries");
    let guess = store::AuditKey::new([1; 32]);
    let mut prev = sealed[0].hash.clone().unwrap();
    for (i, r) in sealed.iter().enumerate().skip(1) {
        let detail = if i == 1 {
            "{}".to_string()
        } else {
            r.detail.clone()
        };
        let seq = r.seq.unwrap();
        let h = store::audit_hash(
            &guess, &prev, seq, r.id, r.at_ms, &r.actor, &r.action, &detail,
        );
        db.exec_composed(format!(
            "UPDATE audit_log SET detail = '{}', prev_hash = '{prev}', hash = '{h}' WHERE seq = {seq}",
            detail.replace('\'', "''")
        ))
        .await;
        prev = h;
    }
    let problems = problems_after_tampering(&f).await;
    assert!(has(&problems, "audit chain"), "{problems:?}");
    db.teardown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn dashboard_figures_cut_days_at_the_canteens_midnight() {
    let Some(db) = fresh().await else { return };
    let f = fixture(&db, None).await;
    let p = f.person("D1", 10_000).await;
    let first = f.store.charge(f.cmd("d1", p, LUNCH)).await.unwrap();
    let second = f
        .store
        .charge(f.cmd("d2", p, LUNCH + DAY_MS))
        .await
        .unwrap();
    assert_eq!(first.outcome, ChargeOutcome::Accepted);
    assert_eq!(second.outcome, ChargeOutcome::Accepted);
    let minute = 60_000;
    // LUNCH is 12:10 in UTC+8: 11 h 49 min later is 23:59 the same day, 11 h 51 min the next.
    for (key, at, net) in [
        ("w1", LUNCH + 20 * minute, 10),
        ("w2", LUNCH + (11 * 60 + 49) * minute, 300),
        ("w3", LUNCH + (11 * 60 + 51) * minute, 20),
        ("w4", LUNCH + DAY_MS + 20 * minute, 150),
    ] {
        f.store
            .record_waste(WasteCommand {
                kiosk_id: f.kiosk,
                idempotency_key: key.into(),
                request_hash: key.into(),
                staff_id: Some(p),
                charge_id: None,
                gross_grams: 400 + net,
                tare_grams: 400,
                dish: None,
                category: None,
                measured_at_ms: at,
                received_ms: at,
            })
            .await
            .unwrap();
    }
    let offset_ms = 480 * 60_000;
    let day0 = (LUNCH + offset_ms).div_euclid(DAY_MS);
    let q = DashboardQuery {
        from_ms: day0 * DAY_MS - offset_ms,
        to_ms: (day0 + 2) * DAY_MS - offset_ms,
        utc_offset_minutes: 480,
        clean_plate_max_grams: 20,
    };
    let d = f.store.dashboard_figures(q).await.unwrap();
    assert_eq!(
        d.meals,
        vec![
            MealDay {
                day: day0,
                meal: Some(MealKind::Lunch),
                meals: 1,
                revenue: first.amount,
                subsidy: first.subsidy,
            },
            MealDay {
                day: day0 + 1,
                meal: Some(MealKind::Lunch),
                meals: 1,
                revenue: second.amount,
                subsidy: second.subsidy,
            },
        ]
    );
    assert_eq!(
        d.top_ups,
        vec![MoneyDay {
            day: day0,
            count: 1,
            amount: Fen(10_000)
        }]
    );
    assert!(d.refunds.is_empty());
    assert_eq!(
        d.waste,
        vec![
            WasteDay {
                day: day0,
                plates: 2,
                grams: 310,
                clean_plates: 1
            },
            WasteDay {
                day: day0 + 1,
                plates: 2,
                grams: 170,
                clean_plates: 1
            },
        ]
    );
    // A window of the first day only.
    let one = f
        .store
        .dashboard_figures(DashboardQuery {
            to_ms: (day0 + 1) * DAY_MS - offset_ms,
            ..q
        })
        .await
        .unwrap();
    assert_eq!((one.meals.len(), one.waste.len()), (1, 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn journal_pages_are_whole_entries_of_the_filtered_person() {
    let Some(db) = fresh().await else { return };
    let f = fixture(&db, None).await;
    let p = f.person("J1", 10_000).await;
    let other = f.person("J2", 5_000).await;
    let c1 = f.store.charge(f.cmd("j1", p, LUNCH)).await.unwrap();
    f.store.charge(f.cmd("j2", other, LUNCH)).await.unwrap();
    let c2 = f
        .store
        .charge(f.cmd("j3", p, LUNCH + DAY_MS))
        .await
        .unwrap();
    let all = JournalFilter {
        from_ms: 0,
        to_ms: LUNCH + 10 * DAY_MS,
        employee_no: Some("J1".into()),
        kind: None,
        before_entry_id: None,
        limit: 2,
    };
    let page = f.store.journal_page(all.clone()).await.unwrap();
    assert_eq!(page.len(), 2);
    assert!(page.iter().all(|l| l.staff_id == p && l.kind == "charge"));
    assert_eq!(
        page[0].cash_delta.0 + page[0].subsidy_delta.0,
        -c2.amount.0,
        "newest first"
    );
    assert_eq!(page[1].cash_delta.0 + page[1].subsidy_delta.0, -c1.amount.0);
    let rest = f
        .store
        .journal_page(JournalFilter {
            before_entry_id: Some(page[1].entry_id),
            ..all.clone()
        })
        .await
        .unwrap();
    assert_eq!(rest.len(), 1);
    assert_eq!(
        (rest[0].kind.as_str(), rest[0].cash_delta),
        ("top_up", Fen(10_000))
    );
    // By kind, everyone: two top-ups.
    let top_ups = f
        .store
        .journal_page(JournalFilter {
            employee_no: None,
            kind: Some("top_up".into()),
            limit: 100,
            ..all.clone()
        })
        .await
        .unwrap();
    assert_eq!(top_ups.len(), 2);
    assert_eq!(top_ups[0].employee_no, "J2");
    // A window that ends before everything: nothing.
    let none = f
        .store
        .journal_page(JournalFilter {
            to_ms: LUNCH - DAY_MS,
            ..all
        })
        .await
        .unwrap();
    assert!(none.is_empty());
}
