//! Charges under load: two hundred at once never overdraw or pass the daily cap, a replayed key charges once, a key reused with another body conflicts (batched and settled alone).

use super::*;

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
