//! Money in and out: gateway notifications credit exactly once; refunds, reversals and offboarding.

use super::*;

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
