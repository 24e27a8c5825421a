//! Session expiry, constraint violations answered with stable codes in our words, staff
//! imports and search, and one-time sign-in codes.

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

fn person(no: &str, name: &str) -> NewStaff {
    NewStaff {
        employee_no: no.into(),
        name: name.into(),
        department: "Dept".into(),
        category: "regular".into(),
    }
}

#[tokio::test]
async fn an_import_is_all_or_nothing_and_search_takes_text_literally() {
    let Some(db) = fresh().await else { return };
    let f = fixture(&db, None).await;
    let s = &f.store;
    s.create_staff(person("A1", "Existing"), &ADMIN)
        .await
        .unwrap();
    let before = s.list_staff(0, 1000).await.unwrap().len();
    // The third person's number is taken: the first two are not left behind.
    let r = s
        .import_staff(
            vec![
                person("B1", "One"),
                person("B2", "Two"),
                person("A1", "Three"),
            ],
            &ADMIN,
        )
        .await;
    assert_eq!(conflict(r).0, "employee_no_taken");
    assert_eq!(s.list_staff(0, 1000).await.unwrap().len(), before);
    let made = s
        .import_staff(vec![person("B1", "One 50%"), person("B2", "Two_x")], &ADMIN)
        .await
        .unwrap();
    assert_eq!(made.len(), 2);
    let find = |text: &str, all: bool| {
        let s = s.clone();
        let text = text.to_string();
        async move {
            s.find_staff(StaffSearch {
                text,
                include_inactive: all,
                after_employee_no: String::new(),
                limit: 10,
            })
            .await
            .unwrap()
            .into_iter()
            .map(|p| p.employee_no)
            .collect::<Vec<_>>()
        }
    };
    assert_eq!(find("50%", false).await, vec!["B1"]);
    assert_eq!(find("%", false).await, vec!["B1"], "% is a character");
    assert_eq!(find("o_x", false).await, vec!["B2"], "_ is a character");
    assert_eq!(find("b", false).await, vec!["B1", "B2"], "case-insensitive");
    s.update_staff(
        made[0].id,
        StaffUpdate {
            active: Some(false),
            ..Default::default()
        },
        &ADMIN,
    )
    .await
    .unwrap();
    assert_eq!(find("b", false).await, vec!["B2"]);
    assert_eq!(find("b", true).await, vec!["B1", "B2"]);
    // Pages continue after the last employee number.
    let page = s
        .find_staff(StaffSearch {
            text: "b".into(),
            include_inactive: true,
            after_employee_no: "B1".into(),
            limit: 10,
        })
        .await
        .unwrap();
    assert_eq!(page.len(), 1);
    db.teardown().await;
}

#[tokio::test]
async fn a_sign_in_code_resets_the_login_and_a_new_password_ends_other_sessions() {
    let Some(db) = fresh().await else { return };
    let f = fixture(&db, None).await;
    let s = &f.store;
    let p = s.create_staff(person("C1", "Coder"), &ADMIN).await.unwrap();
    assert!(s.user_for_staff(p.id).await.unwrap().is_none());
    let u = s
        .issue_sign_in_code(p.id, "hash-1", LUNCH + DAY_MS, &ADMIN)
        .await
        .unwrap();
    assert_eq!(
        (u.username.as_str(), u.role, u.one_time_until_ms),
        ("C1", Role::Staff, Some(LUNCH + DAY_MS))
    );
    assert!(u.must_set_password());
    let session = |token: &'static str| NewSession {
        token_hash: token.into(),
        user_id: u.id,
        csrf_token: "c".into(),
        created_ms: LUNCH,
        expires_ms: LUNCH + DAY_MS,
    };
    for t in ["first", "second"] {
        s.create_session(session(t)).await.unwrap();
    }
    s.set_own_password(u.id, "hash-2", "first", &ADMIN)
        .await
        .unwrap();
    let now = s.user_for_staff(p.id).await.unwrap().unwrap();
    assert_eq!(
        (now.password_hash.as_str(), now.one_time_until_ms),
        ("hash-2", None)
    );
    assert!(s.session("first", LUNCH).await.unwrap().is_some());
    assert!(s.session("second", LUNCH).await.unwrap().is_none());
    // A second code replaces the same login (one per person) and ends its sessions.
    let again = s
        .issue_sign_in_code(p.id, "hash-3", LUNCH + DAY_MS, &ADMIN)
        .await
        .unwrap();
    assert_eq!(again.id, u.id);
    assert!(s.session("first", LUNCH).await.unwrap().is_none());
    // Nobody else may take the person's login.
    let r = s
        .create_user(
            NewUser {
                username: "other-name".into(),
                password_hash: "x".into(),
                role: Role::Staff,
                staff_id: Some(p.id),
            },
            &ADMIN,
        )
        .await;
    assert_eq!(conflict(r).0, "login_exists");
    // A person who left gets no code.
    s.offboard_staff(p.id, LUNCH, &ADMIN).await.unwrap();
    assert!(s.left_at(p.id).await.unwrap().is_some());
    assert_eq!(
        conflict(
            s.issue_sign_in_code(p.id, "h", LUNCH + DAY_MS, &ADMIN)
                .await
        )
        .0,
        "staff_inactive"
    );
    db.teardown().await;
}
