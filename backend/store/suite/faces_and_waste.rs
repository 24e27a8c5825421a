//! Face templates (consent, sync with tombstones) and plate-waste records.

use super::*;

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
