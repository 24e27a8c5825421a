//! Group commit: what one batch of charges does, and two instances batching at once.

use super::*;

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
