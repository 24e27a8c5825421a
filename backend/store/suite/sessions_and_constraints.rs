//! Session expiry, and constraint violations answered with stable codes in our words.

use super::*;

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
