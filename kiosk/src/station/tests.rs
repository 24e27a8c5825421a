//! The stations against a backend in memory: charges once per meal, offline decisions and
//! their later delivery, the lost-answer follow-ups, pay codes, and the return station's
//! pairing and averages.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use rust_decimal::Decimal;
use wire::{
    ChargeRequest, ChargeResponse, ChargeStatus, EnrolRequest, EnrolResponse, GalleryResponse,
    KioskInfo, PayCodeRedeemResponse, VoidChargeRequest, VoidChargeResponse, WasteRequest,
    WasteResponse, WasteStatsResponse,
};

use super::*;
use crate::api::BackendApi;
use crate::canteen::SettingsSource;
use crate::local_store::SnapshotBalance;
use crate::now_ms;

/// A backend in memory: applies each charge key once and answers replays with the
/// stored result (like the real one); can be switched off or lose answers.
#[derive(Default)]
struct Fake {
    down: AtomicBool,
    /// Apply the next N charges, then lose their answers.
    lose_answers: AtomicU32,
    /// First applications, in order.
    charges: Mutex<Vec<ChargeRequest>>,
    stored: Mutex<HashMap<String, ChargeResponse>>,
    wastes: Mutex<Vec<WasteRequest>>,
    balance_fen: Mutex<i64>,
    used_codes: Mutex<Vec<String>>,
    stats: Mutex<Option<WasteStatsResponse>>,
    /// Keys of the charges reversed by a void, in order.
    voided: Mutex<Vec<String>>,
}

impl BackendApi for Fake {
    fn enrol(&self, _: &EnrolRequest) -> Result<EnrolResponse, ApiError> {
        Err(ApiError::NotSupported("enrol"))
    }
    fn me(&self) -> Result<KioskInfo, ApiError> {
        Err(ApiError::NotSupported("me"))
    }
    fn charge(&self, req: &ChargeRequest) -> Result<ChargeResponse, ApiError> {
        if self.down.load(Ordering::SeqCst) {
            return Err(ApiError::NotSent("connection refused".into()));
        }
        let mut stored = self.stored.lock().unwrap();
        let resp = match stored.get(&req.idempotency_key) {
            Some(r) => ChargeResponse {
                replayed: true,
                ..r.clone()
            },
            None => {
                let mut c = self.charges.lock().unwrap();
                let mut bal = self.balance_fen.lock().unwrap();
                let ok = *bal >= 1500;
                c.push(req.clone());
                if ok {
                    *bal -= 1500;
                }
                let r = ChargeResponse {
                    status: if ok {
                        ChargeStatus::Accepted
                    } else if req.offline {
                        ChargeStatus::Exception
                    } else {
                        ChargeStatus::Declined
                    },
                    charge_id: (ok || req.offline).then_some(c.len() as i64),
                    reason: (!ok).then(|| "insufficient_funds".into()),
                    meal: Some(wire::Meal::Lunch),
                    local_date: None,
                    amount: Decimal::new(1500, 2),
                    subsidy_used: Decimal::ZERO,
                    cash_used: Decimal::new(1500, 2),
                    cash_balance: Decimal::new(*bal, 2),
                    subsidy_balance: Decimal::ZERO,
                    replayed: false,
                };
                stored.insert(req.idempotency_key.clone(), r.clone());
                r
            }
        };
        if self
            .lose_answers
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
        {
            return Err(ApiError::NoAnswer("timed out".into()));
        }
        Ok(resp)
    }
    fn waste(&self, req: &WasteRequest) -> Result<WasteResponse, ApiError> {
        if self.down.load(Ordering::SeqCst) {
            return Err(ApiError::NotSent("connection refused".into()));
        }
        let mut w = self.wastes.lock().unwrap();
        w.push(req.clone());
        Ok(WasteResponse {
            id: w.len() as i64,
            net_grams: req.gross_grams - req.tare_grams,
            replayed: false,
        })
    }
    fn void_charge(&self, req: &VoidChargeRequest) -> Result<VoidChargeResponse, ApiError> {
        if self.down.load(Ordering::SeqCst) {
            return Err(ApiError::NotSent("connection refused".into()));
        }
        let stored = self.stored.lock().unwrap();
        let Some(charge) = stored
            .get(&req.charge_key)
            .filter(|c| c.status == ChargeStatus::Accepted)
        else {
            return Err(ApiError::Status {
                status: 404,
                code: "not_found".into(),
                message: "no such charge".into(),
            });
        };
        let mut voided = self.voided.lock().unwrap();
        let already_void = voided.contains(&req.charge_key);
        if !already_void {
            voided.push(req.charge_key.clone());
            *self.balance_fen.lock().unwrap() += 1500;
        }
        Ok(VoidChargeResponse {
            charge_id: charge.charge_id.unwrap_or_default(),
            refund_id: voided.len() as i64,
            amount: charge.amount,
            already_void,
        })
    }
    fn gallery(&self, _: i64, _: i64) -> Result<GalleryResponse, ApiError> {
        Ok(GalleryResponse {
            next_since: 0,
            more: false,
            changes: vec![],
        })
    }
    fn redeem_pay_code(&self, code: &str) -> Result<PayCodeRedeemResponse, ApiError> {
        if self.down.load(Ordering::SeqCst) {
            return Err(ApiError::NotSent("connection refused".into()));
        }
        let Some(staff_id) = code.strip_prefix("PAY-").and_then(|s| s.parse().ok()) else {
            return Err(ApiError::Status {
                status: 404,
                code: "unknown_pay_code".into(),
                message: "no such pay code".into(),
            });
        };
        let mut used = self.used_codes.lock().unwrap();
        if used.iter().any(|c| c == code) {
            return Err(ApiError::Status {
                status: 410,
                code: "pay_code_used".into(),
                message: "this pay code was already used".into(),
            });
        }
        used.push(code.to_string());
        Ok(PayCodeRedeemResponse { staff_id })
    }
    fn waste_stats(&self, _: i64) -> Result<WasteStatsResponse, ApiError> {
        self.stats
            .lock()
            .unwrap()
            .clone()
            .ok_or(ApiError::NotSupported("waste statistics"))
    }
}

/// What the sync thread does each round: send the queue, report follow-ups.
fn sync_once(s: &mut Station) {
    let courier = s.courier.clone();
    let sent = courier.deliver(&mut s.store).unwrap();
    for e in sent.events {
        s.emit(e);
    }
}

fn station(mode: crate::config::Mode, fake: Arc<Fake>) -> (Station, Arc<Mutex<Vec<KioskEvent>>>) {
    let mut cfg = KioskConfig {
        mode,
        ..Default::default()
    };
    // Every minute of the day is in a meal, so the test runs at any hour.
    cfg.meal_windows = vec![
        crate::config::MealWindow {
            meal: wire::Meal::Breakfast,
            start: "00:00".into(),
            end: "08:00".into(),
        },
        crate::config::MealWindow {
            meal: wire::Meal::Lunch,
            start: "08:00".into(),
            end: "16:00".into(),
        },
        crate::config::MealWindow {
            meal: wire::Meal::Dinner,
            start: "16:00".into(),
            end: "24:00".into(),
        },
    ];
    let events = Arc::new(Mutex::new(Vec::new()));
    let ev = events.clone();
    let s = Station::new(
        cfg,
        Courier::new(fake),
        LocalStore::in_memory().unwrap(),
        Box::new(move |e| ev.lock().unwrap().push(e)),
    )
    .unwrap();
    (s, events)
}

fn kinds(events: &Mutex<Vec<KioskEvent>>) -> Vec<String> {
    events
        .lock()
        .unwrap()
        .iter()
        .map(|e| {
            serde_json::to_value(e).unwrap()["event"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect()
}

#[test]
fn online_charge_once_per_meal() {
    let fake = Arc::new(Fake::default());
    *fake.balance_fen.lock().unwrap() = 10_000;
    let (mut s, events) = station(crate::config::Mode::Pay, fake.clone());
    s.on_identified(7, Via::Face, Instant::now());
    s.on_identified(7, Via::Face, Instant::now());
    assert_eq!(fake.charges.lock().unwrap().len(), 1);
    assert_eq!(kinds(&events), ["online", "paid", "already_charged"]);
}

#[test]
fn offline_within_limit_then_synced_exactly_once_as_offline() {
    let fake = Arc::new(Fake::default());
    *fake.balance_fen.lock().unwrap() = 10_000;
    fake.down.store(true, Ordering::SeqCst);
    let (mut s, events) = station(crate::config::Mode::Pay, fake.clone());
    for staff in [1, 2, 3] {
        s.on_identified(staff, Via::Face, Instant::now());
    }
    assert!(fake.charges.lock().unwrap().is_empty());
    assert_eq!(s.store().counts().unwrap().pending, 3);
    assert!(events
        .lock()
        .unwrap()
        .iter()
        .all(|e| !matches!(e, KioskEvent::Paid { offline: false, .. })));
    fake.down.store(false, Ordering::SeqCst);
    s.on_identified(4, Via::Face, Instant::now());
    let charges = fake.charges.lock().unwrap();
    assert_eq!(
        charges.iter().map(|c| c.staff_id).collect::<Vec<_>>(),
        [1, 2, 3, 4],
        "in order, once each"
    );
    assert!(charges[..3].iter().all(|c| c.offline) && !charges[3].offline);
}

#[test]
fn offline_limit_and_cached_balance_refuse() {
    let fake = Arc::new(Fake::default());
    *fake.balance_fen.lock().unwrap() = 1_600;
    let (mut s, events) = station(crate::config::Mode::Pay, fake.clone());
    // Online charge teaches the kiosk that person 5 has 1.00 left.
    s.on_identified(5, Via::Face, Instant::now());
    fake.down.store(true, Ordering::SeqCst);
    // Person 6 is unknown to the cache: the offline limit (30.00 at 15.00 a meal) allows
    // two meals, but one meal per meal period is all they get anyway.
    s.on_identified(6, Via::Face, Instant::now());
    s.store.unmark_meal_for_test(6);
    s.on_identified(6, Via::Face, Instant::now());
    s.store.unmark_meal_for_test(6);
    s.on_identified(6, Via::Face, Instant::now());
    let ev = events.lock().unwrap();
    let declined: Vec<&str> = ev
        .iter()
        .filter_map(|e| match e {
            KioskEvent::Declined { reason, .. } => Some(reason.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(declined, ["offline_limit_reached"]);
    drop(ev);
    s.store.unmark_meal_for_test(5);
    s.on_identified(5, Via::Face, Instant::now());
    let ev = events.lock().unwrap();
    assert!(
        matches!(ev.last(), Some(KioskEvent::Declined { reason, .. }) if reason == "offline_insufficient_cached_balance")
    );
    assert_eq!(
        s.store.counts().unwrap().pending,
        2,
        "refused offline charges are withdrawn"
    );
}

#[test]
fn pay_codes_identify_or_are_refused() {
    let fake = Arc::new(Fake::default());
    *fake.balance_fen.lock().unwrap() = 10_000;
    let (mut s, events) = station(crate::config::Mode::Pay, fake.clone());
    s.on_pay_code("PAY-9", Instant::now());
    assert_eq!(fake.charges.lock().unwrap()[0].staff_id, 9);
    assert!(matches!(
        events.lock().unwrap().last(),
        Some(KioskEvent::Paid {
            staff_id: 9,
            via: Via::PayCode,
            offline: false,
            ..
        })
    ));
    let refusal = |events: &Mutex<Vec<KioskEvent>>| match events.lock().unwrap().last() {
        Some(KioskEvent::PayCodeRefused { reason, .. }) => reason.clone(),
        other => panic!("expected a refusal, got {other:?}"),
    };
    // Shown again (a screenshot): used up, no second charge.
    s.on_pay_code("PAY-9", Instant::now());
    assert_eq!(refusal(&events), "pay_code_used");
    s.on_pay_code("garbage", Instant::now());
    assert_eq!(refusal(&events), "unknown_pay_code");
    fake.down.store(true, Ordering::SeqCst);
    s.on_pay_code("PAY-10", Instant::now());
    assert_eq!(refusal(&events), "backend_unreachable");
    assert_eq!(fake.charges.lock().unwrap().len(), 1);
}

#[test]
fn both_mode_pays_first_and_weighs_the_tray_on_the_way_out() {
    let fake = Arc::new(Fake::default());
    *fake.balance_fen.lock().unwrap() = 10_000;
    let (mut s, _) = station(crate::config::Mode::Both, fake.clone());
    s.on_identified(3, Via::Face, Instant::now());
    s.on_identified(3, Via::Face, Instant::now());
    s.on_scale(ScaleEvent::Settled { gross_g: 700 });
    assert_eq!(fake.charges.lock().unwrap().len(), 1);
    assert_eq!(
        fake.wastes
            .lock()
            .unwrap()
            .iter()
            .map(|w| (w.staff_id, w.gross_grams))
            .collect::<Vec<_>>(),
        [(Some(3), 700)]
    );
    // Tray first, then the face: waste, no second charge.
    s.on_scale(ScaleEvent::Settled { gross_g: 600 });
    s.on_identified(4, Via::Face, Instant::now());
    assert_eq!(fake.charges.lock().unwrap().len(), 1);
    assert_eq!(fake.wastes.lock().unwrap().len(), 2);
}

#[test]
fn return_station_pairs_face_and_weighing_in_either_order() {
    let fake = Arc::new(Fake::default());
    let (mut s, events) = station(crate::config::Mode::Return, fake.clone());
    s.on_identified(3, Via::Face, Instant::now());
    s.on_scale(ScaleEvent::Settled { gross_g: 812 });
    s.on_scale(ScaleEvent::Settled { gross_g: 500 });
    s.on_identified(4, Via::Face, Instant::now());
    s.on_scale(ScaleEvent::Settled { gross_g: 100 });
    let w = fake.wastes.lock().unwrap();
    assert_eq!(
        w.iter()
            .map(|r| (r.staff_id, r.gross_grams, r.tare_grams))
            .collect::<Vec<_>>(),
        [(Some(3), 812, 350), (Some(4), 500, 350)]
    );
    assert!(
        fake.charges.lock().unwrap().is_empty(),
        "the return station does not charge"
    );
    let ev = events.lock().unwrap();
    assert!(ev.iter().any(|e| matches!(
        e,
        KioskEvent::WasteRecorded {
            net_g: 462,
            staff_id: Some(3),
            ..
        }
    )));
    assert!(
        ev.iter()
            .any(|e| matches!(e, KioskEvent::ScaleProblem { .. })),
        "below tare is reported"
    );
}

#[test]
fn a_tare_set_on_the_screen_is_what_the_next_plates_subtract_and_nonsense_is_refused() {
    let fake = Arc::new(Fake::default());
    let (mut s, events) = station(crate::config::Mode::Return, fake.clone());
    s.on_identified(3, Via::Face, Instant::now());
    s.on_scale(ScaleEvent::Settled { gross_g: 812 });
    s.set_tare(420);
    s.set_tare(-5);
    s.set_tare(25_000);
    assert_eq!(s.tare_g(), 420, "a refused tare leaves the last good one");
    s.on_identified(4, Via::Face, Instant::now());
    s.on_scale(ScaleEvent::Settled { gross_g: 500 });
    let w = fake.wastes.lock().unwrap();
    assert_eq!(
        w.iter()
            .map(|r| (r.staff_id, r.gross_grams, r.tare_grams))
            .collect::<Vec<_>>(),
        [(Some(3), 812, 350), (Some(4), 500, 420)]
    );
    let ev = events.lock().unwrap();
    assert!(ev
        .iter()
        .any(|e| matches!(e, KioskEvent::TareSet { tare_g: 420 })));
    assert_eq!(
        ev.iter()
            .filter(|e| matches!(e, KioskEvent::ScaleProblem { .. }))
            .count(),
        2,
        "each refused tare is said"
    );
}

#[test]
fn a_refused_diner_whose_lost_charge_was_accepted_gets_it_voided_exactly_once() {
    let fake = Arc::new(Fake::default());
    // Enough money: the backend accepts; the answer is lost, and with no offline
    // allowance the kiosk refuses the diner on its own.
    *fake.balance_fen.lock().unwrap() = 10_000;
    fake.lose_answers.store(1, Ordering::SeqCst);
    let (mut s, events) = station(crate::config::Mode::Pay, fake.clone());
    s.cfg.offline_limit = Decimal::ZERO;
    s.on_identified(7, Via::Face, Instant::now());
    assert!(
        matches!(events.lock().unwrap().last(), Some(KioskEvent::Declined { reason, .. }) if reason == "offline_limit_reached"),
        "{:?}",
        events.lock().unwrap().last()
    );
    let key = fake.charges.lock().unwrap()[0].idempotency_key.clone();
    assert_eq!(
        *fake.balance_fen.lock().unwrap(),
        8_500,
        "the backend took the money"
    );
    // The network is back: the resent charge learns "accepted", which queues a void in
    // the same transaction; the void goes out in the same drain.
    sync_once(&mut s);
    assert_eq!(*fake.voided.lock().unwrap(), std::slice::from_ref(&key));
    assert_eq!(
        *fake.balance_fen.lock().unwrap(),
        10_000,
        "the money is back"
    );
    let c = s.store.counts().unwrap();
    assert_eq!((c.pending, c.delivered, c.derived), (0, 2, 1));
    let ev = events.lock().unwrap().clone();
    assert!(ev.iter().any(
        |e| matches!(e, KioskEvent::UnservedChargeVoidQueued { charge_key, idempotency_key }
        if *charge_key == key && *idempotency_key == format!("{key}:void"))
    ));
    assert!(ev.iter().any(|e| matches!(e, KioskEvent::ChargeVoided { charge_key, already_void: false, .. } if *charge_key == key)));
    // More drains change nothing: one charge, one void.
    sync_once(&mut s);
    assert_eq!(fake.voided.lock().unwrap().len(), 1);
    assert_eq!(fake.charges.lock().unwrap().len(), 1);
}

#[test]
fn a_refused_diner_whose_lost_charge_was_declined_needs_no_void() {
    let fake = Arc::new(Fake::default());
    *fake.balance_fen.lock().unwrap() = 1_000;
    fake.lose_answers.store(1, Ordering::SeqCst);
    let (mut s, _events) = station(crate::config::Mode::Pay, fake.clone());
    s.cfg.offline_limit = Decimal::ZERO;
    s.on_identified(7, Via::Face, Instant::now());
    sync_once(&mut s);
    sync_once(&mut s);
    assert!(fake.voided.lock().unwrap().is_empty());
    let c = s.store.counts().unwrap();
    assert_eq!((c.pending, c.delivered, c.derived), (0, 1, 0));
}

#[test]
fn a_served_meal_whose_lost_answer_was_a_decline_is_charged_offline_exactly_once() {
    let fake = Arc::new(Fake::default());
    // 10.00 left: the backend declines a 15.00 meal, but the kiosk has never heard of
    // this person, so the offline allowance lets it serve when the answer is lost.
    *fake.balance_fen.lock().unwrap() = 1_000;
    fake.lose_answers.store(1, Ordering::SeqCst);
    let (mut s, events) = station(crate::config::Mode::Pay, fake.clone());
    s.on_identified(7, Via::Face, Instant::now());
    let key = match events.lock().unwrap().last() {
        Some(KioskEvent::Paid {
            offline: true,
            idempotency_key,
            ..
        }) => idempotency_key.clone(),
        other => panic!("served within the offline allowance, got {other:?}"),
    };
    assert_eq!(
        s.store.counts().unwrap().pending,
        1,
        "the original is resent"
    );
    // The network is back: the identical request gets the stored decline, and a new
    // offline charge for the served meal goes out in the same drain.
    sync_once(&mut s);
    sync_once(&mut s);
    let charges = fake.charges.lock().unwrap().clone();
    assert_eq!(charges.len(), 2, "{charges:?}");
    assert_eq!(charges[0].idempotency_key, key);
    assert!(!charges[0].offline, "the original is never changed");
    assert_eq!(charges[1].idempotency_key, format!("{key}:served"));
    assert!(charges[1].offline);
    assert_eq!(
        (charges[1].staff_id, charges[1].kiosk_time),
        (charges[0].staff_id, charges[0].kiosk_time),
        "the same meal, at the time it was served"
    );
    assert_eq!(
        fake.stored.lock().unwrap()[&charges[1].idempotency_key].status,
        ChargeStatus::Exception
    );
    assert!(events.lock().unwrap().iter().any(|e| matches!(
        e,
        KioskEvent::ServedMealQueued { staff_id: 7, original_key, .. } if *original_key == key
    )));
    let c = s.store.counts().unwrap();
    assert_eq!((c.pending, c.delivered, c.derived), (0, 2, 1));
    // The meal stays taken here, and the allowance is settled by the exception's answer.
    s.on_identified(7, Via::Face, Instant::now());
    assert!(matches!(
        events.lock().unwrap().last(),
        Some(KioskEvent::AlreadyCharged { staff_id: 7, .. })
    ));
    assert_eq!(s.store.unsettled_offline_fen(7).unwrap(), 0);
}

#[test]
fn a_lost_answer_that_was_accepted_adds_nothing() {
    let fake = Arc::new(Fake::default());
    *fake.balance_fen.lock().unwrap() = 10_000;
    fake.lose_answers.store(1, Ordering::SeqCst);
    let (mut s, events) = station(crate::config::Mode::Pay, fake.clone());
    s.on_identified(7, Via::Face, Instant::now());
    assert!(matches!(
        events.lock().unwrap().last(),
        Some(KioskEvent::Paid { offline: true, .. })
    ));
    sync_once(&mut s);
    assert_eq!(fake.charges.lock().unwrap().len(), 1);
    let c = s.store.counts().unwrap();
    assert_eq!((c.pending, c.delivered, c.derived), (0, 1, 0));
    assert_eq!(s.store.unsettled_offline_fen(7).unwrap(), 0);
    assert_eq!(
        s.store.balance(7).unwrap().map(|b| b.available_fen),
        Some(8_500),
        "the stored answer's balance is learnt"
    );
}

#[test]
fn synced_balances_and_canteen_prices_drive_offline_decisions() {
    let fake = Arc::new(Fake::default());
    fake.down.store(true, Ordering::SeqCst);
    let (mut s, events) = station(crate::config::Mode::Pay, fake.clone());
    let mut settings = CanteenSettings::from_config(&s.cfg).unwrap();
    settings.source = SettingsSource::Backend;
    settings.canteen_id = Some(1);
    for meal in [wire::Meal::Breakfast, wire::Meal::Lunch, wire::Meal::Dinner] {
        settings.prices.push(wire::MealPrice {
            category: "regular".into(),
            meal,
            price: Decimal::new(1200, 2),
        });
        settings.prices.push(wire::MealPrice {
            category: "contractor".into(),
            meal,
            price: Decimal::new(2000, 2),
        });
    }
    s.set_canteen(settings);
    let snap = |staff_id, available_fen, active, category: &str| SnapshotBalance {
        staff_id,
        available_fen,
        version: 1,
        active,
        category: category.into(),
        name: format!("person {staff_id}"),
        department: String::new(),
    };
    s.store
        .apply_balance_snapshot(
            &[
                snap(1, 1_300, true, "regular"),
                snap(2, 1_300, true, "contractor"),
                snap(3, 50_000, false, "regular"),
            ],
            now_ms(),
        )
        .unwrap();
    for staff in [1, 2, 3, 4] {
        s.on_identified(staff, Via::Face, Instant::now());
    }
    let outcome: Vec<(i64, String)> = events
        .lock()
        .unwrap()
        .iter()
        .filter_map(|e| match e {
            KioskEvent::Paid {
                staff_id, amount, ..
            } => Some((
                *staff_id,
                format!("paid {}", amount.clone().unwrap_or_default()),
            )),
            KioskEvent::Declined {
                staff_id, reason, ..
            } => Some((*staff_id, reason.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(
        outcome,
        [
            (1, "paid 12.00".to_string()),
            (2, "offline_insufficient_cached_balance".to_string()),
            (3, "offline_staff_inactive".to_string()),
            // Unknown person, unknown category: the dearest price of the meal.
            (4, "paid 20.00".to_string()),
        ]
    );
}

#[test]
fn waste_averages_come_from_the_backend_when_it_has_them() {
    let fake = Arc::new(Fake::default());
    let (mut s, events) = station(crate::config::Mode::Return, fake.clone());
    s.on_identified(3, Via::Face, Instant::now());
    s.on_scale(ScaleEvent::Settled { gross_g: 812 });
    *fake.stats.lock().unwrap() = Some(WasteStatsResponse {
        person_average_g: Some(381.0),
        canteen_average_g: Some(120.5),
    });
    s.on_identified(3, Via::Face, Instant::now());
    s.on_scale(ScaleEvent::Settled { gross_g: 650 });
    let got: Vec<(Option<f64>, Option<f64>, String)> = events
        .lock()
        .unwrap()
        .iter()
        .filter_map(|e| match e {
            KioskEvent::WasteRecorded {
                person_average_g,
                canteen_average_g,
                averages_from,
                ..
            } => Some((*person_average_g, *canteen_average_g, averages_from.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(
        got,
        [
            (Some(462.0), Some(462.0), "this station".to_string()),
            (Some(381.0), Some(120.5), "backend".to_string()),
        ]
    );
}

#[test]
fn not_me_voids_an_accepted_charge_and_frees_the_meal() {
    let fake = Arc::new(Fake::default());
    *fake.balance_fen.lock().unwrap() = 10_000;
    let (mut s, events) = station(crate::config::Mode::Pay, fake.clone());
    s.on_identified(7, Via::Face, Instant::now());
    let key = fake.charges.lock().unwrap()[0].idempotency_key.clone();
    assert_eq!(*fake.balance_fen.lock().unwrap(), 8_500);
    s.not_me(&key);
    assert_eq!(*fake.voided.lock().unwrap(), std::slice::from_ref(&key));
    assert_eq!(
        *fake.balance_fen.lock().unwrap(),
        10_000,
        "the money is back"
    );
    let ev = events.lock().unwrap().clone();
    assert!(ev.iter().any(
        |e| matches!(e, KioskEvent::NotMe { charge_key, outcome } if *charge_key == key && outcome == "void_queued")
    ));
    assert!(ev
        .iter()
        .any(|e| matches!(e, KioskEvent::ChargeVoided { charge_key, .. } if *charge_key == key)));
    // The person recognised (who did not eat) may still pay for this meal.
    s.on_identified(7, Via::Face, Instant::now());
    assert_eq!(fake.charges.lock().unwrap().len(), 2);
    // Saying it twice changes nothing more.
    s.not_me(&key);
    assert_eq!(fake.voided.lock().unwrap().len(), 1);
}

#[test]
fn not_me_withdraws_an_offline_charge_that_never_left() {
    let fake = Arc::new(Fake::default());
    fake.down.store(true, Ordering::SeqCst);
    let (mut s, events) = station(crate::config::Mode::Pay, fake.clone());
    s.on_identified(7, Via::Face, Instant::now());
    let key = match events.lock().unwrap().last() {
        Some(KioskEvent::Paid {
            offline: true,
            idempotency_key,
            ..
        }) => idempotency_key.clone(),
        other => panic!("served offline, got {other:?}"),
    };
    assert_eq!(s.store.unsettled_offline_fen(7).unwrap(), 1500);
    s.not_me(&key);
    assert!(matches!(
        events.lock().unwrap().last(),
        Some(KioskEvent::NotMe { outcome, .. }) if outcome == "withdrawn"
    ));
    assert_eq!(s.store.counts().unwrap().pending, 0);
    assert_eq!(s.store.unsettled_offline_fen(7).unwrap(), 0);
    fake.down.store(false, Ordering::SeqCst);
    sync_once(&mut s);
    assert!(
        fake.charges.lock().unwrap().is_empty(),
        "nothing reaches the backend"
    );
}
