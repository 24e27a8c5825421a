//! The local store's tests: queue order and exactly-once delivery under failures, crashes
//! and reopenings (property tests), the lost-answer state machine, the balances cache and
//! the migrations of old databases.

use std::collections::HashMap;

use ledger::meal::MealSlot;
use ledger::MealKind;
use proptest::prelude::*;
use rusqlite::Connection;
use wire::{ChargeRequest, ChargeResponse, ChargeStatus, WasteRequest, WasteResponse};

use super::*;

fn lunch() -> MealSlot {
    MealSlot {
        meal: MealKind::Lunch,
        local_date: time::macros::date!(2026 - 11 - 26),
    }
}

/// A waste record: the simplest request, whose answers teach the store nothing.
fn waste(key: &str, gross_grams: i64) -> Request {
    Request::Waste(WasteRequest {
        idempotency_key: key.into(),
        staff_id: None,
        charge_id: None,
        gross_grams,
        tare_grams: 0,
        dish: None,
        category: None,
        measured_at: time::macros::datetime!(2026-11-26 12:00 +08:00),
    })
}

fn grams(item: &OutboxItem) -> i64 {
    match &item.request {
        Request::Waste(w) => w.gross_grams,
        other => panic!("not a waste record: {other:?}"),
    }
}

fn charge(key: &str, staff_id: i64, offline: bool) -> ChargeRequest {
    ChargeRequest {
        idempotency_key: key.into(),
        staff_id,
        kiosk_time: time::macros::datetime!(2026-11-26 12:00 +08:00),
        offline,
        amount: None,
    }
}

fn recorded(id: i64) -> Delivery {
    Delivery::Delivered(Answer::Waste(WasteResponse {
        id,
        net_grams: 0,
        replayed: false,
    }))
}

/// A backend that applies each idempotency key once and answers replays with the stored
/// result, like the real one.
#[derive(Default)]
struct FakeBackend {
    applied: Vec<String>,
    seen: HashMap<String, i64>,
}

impl FakeBackend {
    fn handle(&mut self, item: &OutboxItem) -> Delivery {
        let next = self.applied.len() as i64 + 1;
        let id = *self
            .seen
            .entry(item.idempotency_key.clone())
            .or_insert_with(|| {
                self.applied.push(item.idempotency_key.clone());
                next
            });
        recorded(id)
    }
}

#[test]
fn items_are_sent_in_order_and_marked() {
    let mut s = LocalStore::in_memory().unwrap();
    for k in ["a", "b", "c"] {
        s.enqueue(&waste(k, 1), 1).unwrap();
    }
    assert_eq!(
        s.enqueue(&waste("a", 2), 2).unwrap(),
        1,
        "same key, same item"
    );
    let mut sent = Vec::new();
    let done = s
        .drain(
            || 5,
            |i| {
                sent.push(i.idempotency_key.clone());
                if i.idempotency_key == "b" && sent.len() == 2 {
                    Delivery::Transient("down".into())
                } else {
                    recorded(1)
                }
            },
        )
        .unwrap();
    assert_eq!(done.len(), 1);
    assert_eq!(sent, ["a", "b"], "a transient failure stops the drain");
    s.drain(
        || 6,
        |i| {
            sent.push(i.idempotency_key.clone());
            recorded(1)
        },
    )
    .unwrap();
    assert_eq!(sent, ["a", "b", "b", "c"]);
    assert_eq!(
        s.counts().unwrap(),
        OutboxCounts {
            pending: 0,
            delivered: 3,
            rejected: 0,
            derived: 0
        }
    );
}

#[test]
fn only_surely_unsent_items_may_change() {
    let mut s = LocalStore::in_memory().unwrap();
    s.enqueue(&waste("a", 1), 1).unwrap();
    s.drain(|| 2, |_| Delivery::Unreachable("refused".into()))
        .unwrap();
    assert!(s.rewrite_unsent("a", &waste("a", 2)).unwrap());
    assert_eq!(grams(&s.next_pending().unwrap().unwrap()), 2);
    s.drain(|| 3, |_| Delivery::Transient("timeout".into()))
        .unwrap();
    assert!(
        !s.rewrite_unsent("a", &waste("a", 3)).unwrap(),
        "it may have arrived: frozen"
    );
    assert!(!s.withdraw_unsent("a").unwrap());
    assert_eq!(grams(&s.next_pending().unwrap().unwrap()), 2);
}

#[test]
fn serving_offline_rewrites_only_what_surely_never_left() {
    let mut s = LocalStore::in_memory().unwrap();
    s.enqueue(&Request::Charge(charge("a", 1, false)), 1)
        .unwrap();
    s.enqueue(&Request::Charge(charge("b", 1, false)), 1)
        .unwrap();
    s.drain(
        || 2,
        |i| {
            if i.idempotency_key == "a" {
                Delivery::Transient("timeout".into())
            } else {
                Delivery::Unreachable("refused".into())
            }
        },
    )
    .unwrap();
    assert!(
        !s.serve_offline("a", &charge("a", 1, true), 1, 1500)
            .unwrap(),
        "a may have arrived"
    );
    let a = s.next_pending().unwrap().unwrap();
    assert_eq!(
        (&a.request, a.served),
        (&Request::Charge(charge("a", 1, false)), true)
    );
    s.record(a.seq, &Delivery::Permanent("422".into()), 3)
        .unwrap();
    assert!(s
        .serve_offline("b", &charge("b", 1, true), 1, 1200)
        .unwrap());
    let b = s.next_pending().unwrap().unwrap();
    assert_eq!(
        (&b.request, b.served),
        (&Request::Charge(charge("b", 1, true)), true)
    );
    assert_eq!(s.unsettled_offline_fen(1).unwrap(), 2700);
}

#[test]
fn a_permanent_refusal_does_not_block_the_queue() {
    let mut s = LocalStore::in_memory().unwrap();
    s.enqueue(&waste("bad", 1), 1).unwrap();
    s.enqueue(&waste("good", 1), 1).unwrap();
    s.drain(
        || 2,
        |i| {
            if i.idempotency_key == "bad" {
                Delivery::Permanent("422".into())
            } else {
                recorded(1)
            }
        },
    )
    .unwrap();
    assert_eq!(
        s.counts().unwrap(),
        OutboxCounts {
            pending: 0,
            delivered: 1,
            rejected: 1,
            derived: 0
        }
    );
}

#[test]
fn an_unreadable_row_is_set_aside_and_the_queue_goes_on() {
    let mut s = LocalStore::in_memory().unwrap();
    s.conn
        .execute(
            "INSERT INTO outbox (kind, idempotency_key, body, created_ms) VALUES ('charge', 'broken', '{}', 1)",
            [],
        )
        .unwrap();
    s.enqueue(&waste("good", 1), 1).unwrap();
    let done = s.drain(|| 2, |_| recorded(1)).unwrap();
    assert_eq!(done.len(), 1);
    assert_eq!(done[0].0.idempotency_key, "good");
    let c = s.counts().unwrap();
    assert_eq!((c.pending, c.delivered, c.rejected), (0, 1, 1));
}

#[test]
fn the_outbox_survives_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kiosk.db");
    {
        let mut s = LocalStore::open(&path).unwrap();
        s.enqueue(&waste("k1", 1), 1).unwrap();
    }
    let s = LocalStore::open(&path).unwrap();
    assert_eq!(
        s.next_pending().unwrap().map(|i| i.idempotency_key),
        Some("k1".into())
    );
}

#[test]
fn meals_balances_and_offline_allowance() {
    let mut s = LocalStore::in_memory().unwrap();
    let dinner = MealSlot {
        meal: MealKind::Dinner,
        ..lunch()
    };
    assert!(s.mark_meal(1, &lunch(), "k", 1).unwrap());
    assert!(!s.mark_meal(1, &lunch(), "k2", 2).unwrap());
    assert!(s.meal_taken(1, &lunch()).unwrap());
    assert!(!s.meal_taken(1, &dinner).unwrap());
    s.set_meal_charge("k", 42).unwrap();
    assert_eq!(s.meal_charge(1, &lunch()).unwrap(), Some(42));
    s.unmark_meal("k").unwrap();
    assert!(!s.meal_taken(1, &lunch()).unwrap());

    s.set_balance(1, 1000, 10).unwrap();
    s.set_balance(1, 5, 5).unwrap();
    assert_eq!(
        s.balance(1).unwrap().map(|b| b.available_fen),
        Some(1000),
        "older news does not overwrite"
    );
    s.add_offline_spend("o1", 1, 300).unwrap();
    s.add_offline_spend("o2", 1, 200).unwrap();
    s.add_offline_spend("o2", 1, 200).unwrap();
    assert_eq!(s.unsettled_offline_fen(1).unwrap(), 500);
    s.settle_offline_spend("o1").unwrap();
    assert_eq!(s.unsettled_offline_fen(1).unwrap(), 200);
}

#[derive(Debug, Clone)]
enum Step {
    Enqueue,
    /// Drain with this failure pattern per attempt: 0 ok, 1 refused before the
    /// backend saw it, 2 applied by the backend but the answer lost, 3 crash (the
    /// process dies after the backend applied it, before marking).
    Drain(Vec<u8>),
    Reopen,
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        3 => Just(Step::Enqueue),
        3 => proptest::collection::vec(0u8..4, 1..6).prop_map(Step::Drain),
        1 => Just(Step::Reopen),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]
    /// Whatever fails when, every queued item takes effect exactly once at the backend,
    /// in the order it was queued.
    #[test]
    fn each_item_takes_effect_exactly_once_in_order(steps in proptest::collection::vec(step(), 1..40)) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kiosk.db");
        let mut store = LocalStore::open(&path).unwrap();
        let mut backend = FakeBackend::default();
        let mut queued = Vec::new();
        for s in steps {
            match s {
                Step::Enqueue => {
                    let key = format!("k{}", queued.len());
                    store.enqueue(&waste(&key, 1), 0).unwrap();
                    queued.push(key);
                }
                Step::Reopen => {
                    drop(store);
                    store = LocalStore::open(&path).unwrap();
                }
                Step::Drain(pattern) => {
                    let mut attempt = 0;
                    let mut crashed = false;
                    let _ = store.drain(|| 0, |item| {
                        let p = pattern[attempt % pattern.len()];
                        attempt += 1;
                        match p {
                            0 => backend.handle(item),
                            1 => Delivery::Unreachable("connection refused".into()),
                            2 => { backend.handle(item); Delivery::Transient("timeout".into()) }
                            _ => { backend.handle(item); crashed = true; Delivery::Transient("crash".into()) }
                        }
                    });
                    if crashed {
                        // The crash happened before the outcome was written: the
                        // "transient" row update stands in for nothing being marked.
                        drop(store);
                        store = LocalStore::open(&path).unwrap();
                    }
                }
            }
        }
        // The network comes back for good.
        store.drain(|| 0, |item| backend.handle(item)).unwrap();
        prop_assert_eq!(&backend.applied, &queued);
        let c = store.counts().unwrap();
        prop_assert_eq!(c.pending, 0);
        prop_assert_eq!(c.delivered as usize, queued.len());
    }
}

/// The real backend's charge behaviour, in memory: each key is applied once and its
/// first answer stored; online charges of `decline` keys are declined, of `refuse` keys
/// refused for good (4xx, never applied); offline charges are never declined.
#[derive(Default)]
struct ChargeBackend {
    applied: Vec<ChargeRequest>,
    stored: HashMap<String, ChargeResponse>,
    decline: std::collections::HashSet<String>,
    refuse: std::collections::HashSet<String>,
}

impl ChargeBackend {
    /// Some(answer) when the backend applied or replayed it; None when it refused it.
    fn handle(&mut self, item: &OutboxItem) -> Option<ChargeResponse> {
        if let Some(r) = self.stored.get(&item.idempotency_key) {
            return Some(r.clone());
        }
        let Request::Charge(req) = &item.request else {
            panic!("only charges here: {item:?}");
        };
        if !req.offline && self.refuse.contains(&req.idempotency_key) {
            return None;
        }
        let declined = self.decline.contains(&req.idempotency_key);
        let status = match (declined, req.offline) {
            (false, _) => ChargeStatus::Accepted,
            (true, false) => ChargeStatus::Declined,
            (true, true) => ChargeStatus::Exception,
        };
        let resp = ChargeResponse {
            status,
            charge_id: (status != ChargeStatus::Declined).then_some(self.applied.len() as i64 + 1),
            reason: declined.then(|| "insufficient_funds".into()),
            meal: Some(wire::Meal::Lunch),
            local_date: Some("2026-11-26".into()),
            amount: rust_decimal::Decimal::new(1500, 2),
            subsidy_used: rust_decimal::Decimal::ZERO,
            cash_used: rust_decimal::Decimal::ZERO,
            cash_balance: rust_decimal::Decimal::new(10_000, 2),
            subsidy_balance: rust_decimal::Decimal::ZERO,
            replayed: false,
        };
        self.applied.push(req.clone());
        self.stored
            .insert(item.idempotency_key.clone(), resp.clone());
        Some(resp)
    }

    fn answer(&mut self, item: &OutboxItem) -> Delivery {
        match self.handle(item) {
            Some(r) => Delivery::Delivered(Answer::Charge(r)),
            None => Delivery::Permanent("422 refused".into()),
        }
    }
}

#[derive(Debug, Clone)]
enum ChargeStep {
    /// A charge for a new person; `served`: the kiosk served the diner on its own
    /// decision after losing the answer; `fate`: 0 accepted, 1 declined, 2 refused for
    /// good (never applied).
    Enqueue {
        served: bool,
        fate: u8,
    },
    /// Per attempt: 0 answered, 1 refused before the backend saw it, 2 handled by the
    /// backend but the answer lost, 3 the kiosk crashed after the backend handled it.
    Drain(Vec<u8>),
    Reopen,
}

fn charge_step() -> impl Strategy<Value = ChargeStep> {
    prop_oneof![
        3 => (any::<bool>(), 0u8..3).prop_map(|(served, fate)| ChargeStep::Enqueue { served, fate }),
        3 => proptest::collection::vec(0u8..4, 1..6).prop_map(ChargeStep::Drain),
        1 => Just(ChargeStep::Reopen),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]
    /// The lost-answer state machine: whatever fails when, every charge the backend can
    /// apply is applied exactly once, and every SERVED meal whose charge was declined or
    /// refused gets exactly one offline charge `<key>:served` (same person, same time),
    /// while nothing else does. The meal stays marked exactly when it was eaten, and no
    /// offline allowance is left hanging.
    #[test]
    fn served_meals_are_recorded_exactly_once(steps in proptest::collection::vec(charge_step(), 1..40)) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kiosk.db");
        let mut store = LocalStore::open(&path).unwrap();
        let mut backend = ChargeBackend::default();
        // (key, staff, served, fate)
        let mut queued: Vec<(String, i64, bool, u8)> = Vec::new();
        let t0 = time::macros::datetime!(2026-11-26 12:00 +08:00);
        for s in steps {
            match s {
                ChargeStep::Enqueue { served, fate } => {
                    let staff = queued.len() as i64 + 1;
                    let key = format!("k{staff}");
                    let req = ChargeRequest {
                        idempotency_key: key.clone(),
                        staff_id: staff,
                        kiosk_time: t0 + time::Duration::minutes(staff),
                        offline: false,
                        amount: None,
                    };
                    store.mark_meal(staff, &lunch(), &key, 0).unwrap();
                    store.enqueue(&Request::Charge(req), 0).unwrap();
                    if served {
                        store.mark_served(&key).unwrap();
                        store.add_offline_spend(&key, staff, 1500).unwrap();
                    }
                    match fate {
                        1 => { backend.decline.insert(key.clone()); }
                        2 => { backend.refuse.insert(key.clone()); }
                        _ => {}
                    }
                    queued.push((key, staff, served, fate));
                }
                ChargeStep::Reopen => {
                    drop(store);
                    store = LocalStore::open(&path).unwrap();
                }
                ChargeStep::Drain(pattern) => {
                    let mut attempt = 0;
                    let mut crashed = false;
                    let _ = store.drain(|| 0, |item| {
                        let p = pattern[attempt % pattern.len()];
                        attempt += 1;
                        match p {
                            0 => backend.answer(item),
                            1 => Delivery::Unreachable("connection refused".into()),
                            2 => { backend.handle(item); Delivery::Transient("timeout".into()) }
                            _ => { backend.handle(item); crashed = true; Delivery::Transient("crash".into()) }
                        }
                    });
                    if crashed {
                        drop(store);
                        store = LocalStore::open(&path).unwrap();
                    }
                }
            }
        }
        store.drain(|| 0, |item| backend.answer(item)).unwrap();

        let originals: Vec<&ChargeRequest> = backend.applied.iter().filter(|r| !r.idempotency_key.ends_with(SERVED_SUFFIX)).collect();
        let expected: Vec<String> = queued.iter().filter(|q| q.3 != 2).map(|q| q.0.clone()).collect();
        prop_assert_eq!(originals.iter().map(|r| r.idempotency_key.clone()).collect::<Vec<_>>(), expected, "originals once each, in order");
        prop_assert!(originals.iter().all(|r| !r.offline));
        let mut derived_expected = 0;
        for (key, staff, served, fate) in &queued {
            let dkey = served_key(key);
            let derived: Vec<&ChargeRequest> = backend.applied.iter().filter(|r| r.idempotency_key == dkey).collect();
            let needs = *served && *fate != 0;
            prop_assert_eq!(derived.len(), usize::from(needs), "{} derived charges for {}", derived.len(), key);
            if needs {
                derived_expected += 1;
                prop_assert!(derived[0].offline);
                prop_assert_eq!(derived[0].staff_id, *staff);
                prop_assert_eq!(derived[0].kiosk_time, t0 + time::Duration::minutes(*staff));
                if *fate == 1 {
                    let pos = |k: &str| backend.applied.iter().position(|r| r.idempotency_key == k);
                    prop_assert!(pos(&dkey) > pos(key), "the derived charge follows its original");
                }
            }
            let eaten = *fate == 0 || *served;
            prop_assert_eq!(store.meal_taken(*staff, &lunch()).unwrap(), eaten, "meal mark of {}", key);
            prop_assert_eq!(store.unsettled_offline_fen(*staff).unwrap(), 0);
        }
        prop_assert_eq!(backend.applied.len(), expected_len(&queued), "nothing else was applied");
        let c = store.counts().unwrap();
        prop_assert_eq!(c.pending, 0);
        prop_assert_eq!(c.derived, derived_expected);
        prop_assert_eq!(c.rejected as usize, queued.iter().filter(|q| q.3 == 2).count());
    }
}

fn expected_len(queued: &[(String, i64, bool, u8)]) -> usize {
    queued
        .iter()
        .map(|q| usize::from(q.3 != 2) + usize::from(q.2 && q.3 != 0))
        .sum()
}

#[test]
fn an_old_database_gains_the_new_columns() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kiosk.db");
    let old = serde_json::to_string(&charge("old", 5, false)).unwrap();
    {
        let c = Connection::open(&path).unwrap();
        c.execute_batch(
            "CREATE TABLE outbox (seq INTEGER PRIMARY KEY AUTOINCREMENT, kind TEXT NOT NULL,
               idempotency_key TEXT NOT NULL UNIQUE, body TEXT NOT NULL, created_ms INTEGER NOT NULL,
               state TEXT NOT NULL DEFAULT 'pending', attempts INTEGER NOT NULL DEFAULT 0,
               maybe_sent INTEGER NOT NULL DEFAULT 0, last_error TEXT, response TEXT, done_ms INTEGER);
             CREATE TABLE balances (staff_id INTEGER PRIMARY KEY, available_fen INTEGER NOT NULL, as_of_ms INTEGER NOT NULL);
             INSERT INTO balances VALUES (5, 700, 1);",
        )
        .unwrap();
        c.execute(
            "INSERT INTO outbox (kind, idempotency_key, body, created_ms) VALUES ('charge', 'old', ?1, 1)",
            [&old],
        )
        .unwrap();
    }
    let mut s = LocalStore::open(&path).unwrap();
    let item = s.next_pending().unwrap().unwrap();
    assert_eq!((item.idempotency_key.as_str(), item.served), ("old", false));
    assert!(s.mark_served("old").unwrap());
    let b = s.balance(5).unwrap().unwrap();
    assert_eq!((b.available_fen, b.version, b.active), (700, None, true));
    drop(s);
    LocalStore::open(&path).unwrap();
}

#[test]
fn snapshot_and_charge_answers_keep_the_newest_balance() {
    let mut s = LocalStore::in_memory().unwrap();
    let e = |fen, version| SnapshotBalance {
        staff_id: 1,
        available_fen: fen,
        version,
        active: true,
        category: "regular".into(),
        name: "王小明".into(),
        department: String::new(),
    };
    assert_eq!(s.apply_balance_snapshot(&[e(1000, 5)], 100).unwrap(), 1);
    assert_eq!(
        s.person(1).unwrap(),
        Some(("王小明".to_string(), String::new()))
    );
    assert_eq!(
        s.apply_balance_snapshot(&[e(900, 4)], 200).unwrap(),
        0,
        "an older version loses"
    );
    // A charge answer arriving after the page was asked for is newer (it has no version).
    s.set_balance(1, 850, 150).unwrap();
    assert_eq!(s.balance(1).unwrap().unwrap().available_fen, 850);
    // A page asked for before that answer arrived does not undo it...
    assert_eq!(s.apply_balance_snapshot(&[e(1000, 5)], 140).unwrap(), 0);
    // ...one asked for later does.
    assert_eq!(s.apply_balance_snapshot(&[e(700, 7)], 300).unwrap(), 1);
    let b = s.balance(1).unwrap().unwrap();
    assert_eq!(
        (b.available_fen, b.version, b.category.as_deref()),
        (700, Some(7), Some("regular"))
    );
    // Offboarding comes through whatever the version.
    let mut off = e(0, 7);
    off.active = false;
    s.apply_balance_snapshot(&[off], 400).unwrap();
    assert!(!s.balance(1).unwrap().unwrap().active);
    assert_eq!(s.balances_known().unwrap(), 1);
}
