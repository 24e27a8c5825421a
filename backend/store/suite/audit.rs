//! `check` and the audit proof: tampering of every kind is found, stale unsealed entries flagged, concurrent sealers build one chain.

use super::*;

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
