//! What the web pages read: the dashboard's per-day figures (days cut at the canteen's
//! midnight) and journal pages (whole entries, filtered, newest first).

use super::*;

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
        ..Default::default()
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

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn journal_and_plates_filter_by_department_and_kiosk() {
    let Some(db) = fresh().await else { return };
    let f = fixture(&db, None).await;
    let rd = f.person("K1", 10_000).await;
    let finance = f
        .store
        .create_staff(
            NewStaff {
                employee_no: "K2".into(),
                name: "P K2".into(),
                department: "Finance".into(),
                category: "regular".into(),
            },
            &ADMIN,
        )
        .await
        .unwrap()
        .id;
    f.top_up(finance, 10_000).await;
    let rd_charge = f.store.charge(f.cmd("k1", rd, LUNCH)).await.unwrap();
    let fin_charge = f.store.charge(f.cmd("k2", finance, LUNCH)).await.unwrap();
    assert_eq!(
        f.store.departments().await.unwrap(),
        vec!["Finance".to_string(), "R&D".to_string()]
    );
    let all = JournalFilter {
        from_ms: 0,
        to_ms: LUNCH + DAY_MS,
        limit: 100,
        ..Default::default()
    };
    // A department: its people's entries only (their top-up and meal), no one else's lines.
    let finance_lines = f
        .store
        .journal_page(JournalFilter {
            department: Some("Finance".into()),
            ..all.clone()
        })
        .await
        .unwrap();
    assert_eq!(finance_lines.len(), 2, "{finance_lines:?}");
    assert!(finance_lines.iter().all(|l| l.staff_id == finance));
    // A kiosk: the charges made there, not the top-ups.
    let at_kiosk = f
        .store
        .journal_page(JournalFilter {
            kiosk_id: Some(f.kiosk),
            ..all.clone()
        })
        .await
        .unwrap();
    assert_eq!(at_kiosk.len(), 2);
    assert!(at_kiosk.iter().all(|l| l.kind == "charge"));
    let elsewhere = f
        .store
        .journal_page(JournalFilter {
            kiosk_id: Some(f.kiosk + 1000),
            ..all.clone()
        })
        .await
        .unwrap();
    assert!(elsewhere.is_empty());
    // Plates: one weighed against the R&D person's charge (no person on the record), one of
    // the Finance person, one of no one.
    for (key, staff, charge, net) in [
        ("p1", None, rd_charge.charge_id, 40),
        ("p2", Some(finance), None, 10),
        ("p3", None, None, 90),
    ] {
        f.store
            .record_waste(WasteCommand {
                kiosk_id: f.kiosk,
                idempotency_key: key.into(),
                request_hash: key.into(),
                staff_id: staff,
                charge_id: charge,
                gross_grams: 400 + net,
                tare_grams: 400,
                dish: Some("rice".into()),
                category: None,
                measured_at_ms: LUNCH + 60_000,
                received_ms: LUNCH + 60_000,
            })
            .await
            .unwrap();
    }
    let plates = WasteFilter {
        from_ms: 0,
        to_ms: LUNCH + DAY_MS,
        limit: 2,
        ..Default::default()
    };
    let page = f.store.waste_page(plates.clone()).await.unwrap();
    assert_eq!(page.len(), 2, "pages of two");
    assert_eq!((page[0].net_grams, page[0].person.is_none()), (90, true));
    assert_eq!(
        page[1].person.as_ref().map(|p| p.department.as_str()),
        Some("Finance")
    );
    let rest = f
        .store
        .waste_page(WasteFilter {
            before: Some((page[1].at_ms, page[1].id)),
            ..plates.clone()
        })
        .await
        .unwrap();
    assert_eq!(rest.len(), 1);
    let person = rest[0].person.as_ref().expect("the charge's person");
    assert_eq!((person.employee_no.as_str(), rest[0].net_grams), ("K1", 40));
    let rd_plates = f
        .store
        .waste_page(WasteFilter {
            department: Some("R&D".into()),
            limit: 100,
            ..plates.clone()
        })
        .await
        .unwrap();
    assert_eq!(rd_plates.len(), 1);
    let none = f
        .store
        .waste_page(WasteFilter {
            kiosk_id: Some(f.kiosk + 1000),
            limit: 100,
            ..plates
        })
        .await
        .unwrap();
    assert!(none.is_empty());
    // The dashboard groups the same plates: per department (most grams per plate first; the
    // plate of no one is in no department) and per meal period (the Finance person's plate was
    // tied to their lunch when it was weighed; the plate of no one has no period).
    let d = f
        .store
        .dashboard_figures(DashboardQuery {
            from_ms: 0,
            to_ms: LUNCH + DAY_MS,
            utc_offset_minutes: 480,
            clean_plate_max_grams: 20,
        })
        .await
        .unwrap();
    let group = |g: &str, plates, grams, clean_plates| WasteGroup {
        group: g.into(),
        plates,
        grams,
        clean_plates,
    };
    assert_eq!(
        d.waste_by_department,
        vec![group("R&D", 1, 40, 0), group("Finance", 1, 10, 1)]
    );
    assert_eq!(
        d.waste_by_meal,
        vec![group("lunch", 2, 50, 1), group("", 1, 90, 0)]
    );
    assert_eq!(fin_charge.outcome, ChargeOutcome::Accepted);
    f.assert_check_ok().await;
}
