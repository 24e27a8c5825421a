//! The audit page's reads and the inspection export's pages: the audit log newest first in
//! keyset pages, each kind of record by its own time over a range, paged without loss or
//! repetition, and `check` naming the first broken audit entry.

use super::*;

async fn all_pages<T, F, Fut>(limit: i64, key: impl Fn(&T) -> i64, fetch: F) -> Vec<T>
where
    F: Fn(ExportRange) -> Fut,
    Fut: std::future::Future<Output = Result<Vec<T>>>,
{
    let mut out = Vec::new();
    let mut after = 0;
    loop {
        let page = fetch(ExportRange {
            from_ms: LUNCH - 3_600_000,
            to_ms: LUNCH + 3_600_000,
            after_id: after,
            limit,
        })
        .await
        .unwrap();
        let Some(last) = page.last() else { break };
        after = key(last);
        out.extend(page);
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn export_pages_hold_each_kind_in_the_range_once() {
    let Some(db) = fresh().await else { return };
    let f = fixture(&db, None).await;
    // Top-ups credited at LUNCH (one per person), charges the day before, at lunch and the
    // day after; a reversal and a staff refund request of lunch's charges; three weighings.
    let a = f.person("E1", 10_000).await;
    let b = f.person("=cmd|' /C calc'!A0", 10_000).await;
    let mut lunch_charges = Vec::new();
    for (i, at) in [LUNCH - DAY_MS, LUNCH, LUNCH + 60_000, LUNCH + DAY_MS]
        .into_iter()
        .enumerate()
    {
        let who = if i % 2 == 0 { a } else { b };
        let c = f
            .store
            .charge(f.cmd(&format!("k{i}"), who, at))
            .await
            .unwrap();
        if (LUNCH..LUNCH + DAY_MS).contains(&at) {
            lunch_charges.push((c.charge_id.expect("charged"), who));
        }
    }
    f.store
        .reverse_charge(lunch_charges[0].0, "wrong plate", LUNCH + 1000, &ADMIN)
        .await
        .unwrap();
    f.store
        .request_refund(
            lunch_charges[1].0,
            lunch_charges[1].1,
            "cold",
            LUNCH + 2000,
            &ADMIN,
        )
        .await
        .unwrap();
    for (i, (at, staff)) in [
        (LUNCH, Some(a)),
        (LUNCH + 5, None),
        (LUNCH - DAY_MS, Some(b)),
    ]
    .into_iter()
    .enumerate()
    {
        f.store
            .record_waste(WasteCommand {
                kiosk_id: f.kiosk,
                idempotency_key: format!("w{i}"),
                request_hash: format!("w{i}"),
                staff_id: staff,
                charge_id: None,
                gross_grams: 600,
                tare_grams: 480,
                dish: None,
                category: None,
                measured_at_ms: at,
                received_ms: at,
            })
            .await
            .unwrap();
    }
    for limit in [1, 1000] {
        let s = &f.store;
        let charges = all_pages(
            limit,
            |c: &ExportCharge| c.charge.id,
            |r| s.export_charges(r),
        )
        .await;
        assert_eq!(
            charges.iter().map(|c| c.charge.id).collect::<Vec<_>>(),
            lunch_charges.iter().map(|c| c.0).collect::<Vec<_>>()
        );
        assert_eq!(charges[0].person.name, "P =cmd|' /C calc'!A0");
        assert_eq!(charges[1].person.department, "R&D");
        let refunds = all_pages(
            limit,
            |r: &ExportRefund| r.refund.id,
            |r| s.export_refunds(r),
        )
        .await;
        assert_eq!(refunds.len(), 2);
        assert_eq!(refunds[0].refund.kind, "manager_reversal");
        assert_eq!(refunds[1].refund.status, RefundStatus::Requested);
        let top_ups = all_pages(
            limit,
            |t: &ExportTopUp| t.order.entry_id.unwrap_or(0),
            |r| s.export_top_ups(r),
        )
        .await;
        assert_eq!(top_ups.len(), 2);
        assert_eq!(top_ups[0].person.employee_no, "E1");
        let waste = all_pages(limit, |w: &ExportWaste| w.waste.id, |r| s.export_waste(r)).await;
        assert_eq!(waste.len(), 2);
        assert_eq!(
            waste[0].person.as_ref().map(|p| p.employee_no.as_str()),
            Some("E1")
        );
        assert_eq!(waste[1].person, None);
    }
    f.assert_check_ok().await;
    db.teardown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn audit_pages_run_newest_first_and_check_names_the_first_break() {
    let Some(db) = fresh().await else { return };
    let f = fixture(&db, None).await;
    for i in 0..5 {
        f.person(&format!("E{i}"), 0).await;
    }
    f.store.seal_audit(1_000_000).await.unwrap();
    let newest = f.store.audit_page(None, 3).await.unwrap();
    assert_eq!(newest.len(), 3);
    assert!(newest.windows(2).all(|w| w[0].id > w[1].id));
    let rest = f
        .store
        .audit_page(newest.last().map(|e| e.id), 10_000)
        .await
        .unwrap();
    let all = f.store.list_audit(0, 10_000).await.unwrap();
    assert_eq!(newest.len() + rest.len(), all.len());
    assert_eq!(rest.first().map(|e| e.id), newest.last().map(|e| e.id - 1));
    let r = f.store.check(LUNCH + DAY_MS * 400, 60_000).await.unwrap();
    assert!(r.ok(), "{:?}", r.problems);
    assert_eq!(r.audit_break, None);
    assert_eq!(r.audit_verified_head, f.store.audit_head().await.unwrap());
    assert_eq!(r.audit_sealed, all.len() as i64);
    // The third sealed entry is edited, and the sixth: the third is the one named.
    db.exec("UPDATE audit_log SET detail = '{}' WHERE seq IN (3, 6)")
        .await;
    let r = f.store.check(LUNCH + DAY_MS * 400, 60_000).await.unwrap();
    let broken = r.audit_break.expect("a break");
    assert_eq!(broken.seq, 3);
    assert!(
        broken.problem.contains("changed after it was sealed"),
        "{}",
        broken.problem
    );
    assert_eq!(r.audit_sealed, 2);
    assert_eq!(r.audit_verified_head.map(|h| h.0), Some(2));
    db.teardown().await;
}
