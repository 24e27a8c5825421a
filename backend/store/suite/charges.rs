//! Offline charges (their own meal period, exceptions) and kiosks voiding their own recent charges.

use super::*;

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
