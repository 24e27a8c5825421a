//! The pay and return stations: what the kiosk does once it knows who is there or what a
//! tray weighs. [`Station`] turns face decisions, pay codes and scale weighings into
//! charges and waste records through the outbox, decides offline by cached balance and
//! offline limit, keeps "one charge per person per meal", and reports everything as
//! [`KioskEvent`]s for a screen (or the headless binary's log) to show.
//!
//! The order of a charge, which the crash tests rely on: mark the meal locally, commit
//! the request to the outbox (fsynced), and only then send it and tell the diner. A
//! request that never left the kiosk (backend unreachable) may still be turned into an
//! offline charge or withdrawn; one that may have arrived is only ever resent as is.
//! Sending is serialised by a gate shared with the background sync, so the queue goes
//! out in order and an item is never rewritten while another thread is sending it.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use serde::Serialize;
use time::OffsetDateTime;
use wire::{ChargeRequest, ChargeResponse, ChargeStatus, WasteRequest, WasteResponse};

use crate::api::{ApiError, BackendApi};
use crate::config::{to_fen, KioskConfig};
use crate::decide::{FaceEvent, Refusal};
use crate::outbox::{Delivery, ItemKind, LocalStore, OutboxItem, StoreError};
use crate::scale::ScaleEvent;

/// Set this environment variable to make the kiosk kill itself with SIGKILL right after a
/// charge is committed to the outbox and before it is sent: the crash test's hook.
pub const TEST_KILL_AFTER_OUTBOX_WRITE: &str = "CLEANPLATE_KIOSK_TEST_KILL_AFTER_OUTBOX_WRITE";

/// How a person was identified.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Via {
    Face,
    PayCode,
}

/// Everything a screen shows, and the headless binary logs as JSON lines.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum KioskEvent {
    Started {
        mode: String,
        source: String,
        templates: usize,
        persons: usize,
    },
    Face(FaceEvent),
    /// The diner may take the meal.
    Paid {
        staff_id: i64,
        via: Via,
        idempotency_key: String,
        offline: bool,
        charge_id: Option<i64>,
        amount: Option<String>,
        balance: Option<String>,
        /// From the frame that completed the decision to this event.
        latency_ms: f64,
    },
    /// Do not serve; pay another way.
    Declined {
        staff_id: i64,
        via: Via,
        reason: String,
        latency_ms: f64,
    },
    AlreadyCharged {
        staff_id: i64,
        meal: String,
    },
    PayCodeRefused {
        reason: String,
    },
    Weighed {
        gross_g: i64,
        net_g: i64,
    },
    WasteRecorded {
        staff_id: Option<i64>,
        gross_g: i64,
        tare_g: i64,
        net_g: i64,
        queued: bool,
        person_average_g: Option<f64>,
        canteen_average_g: Option<f64>,
        averages_from: String,
    },
    ScaleProblem {
        message: String,
    },
    Synced {
        delivered: usize,
        pending: i64,
        rejected: i64,
        gallery_version: i64,
        templates: usize,
    },
    Online {
        online: bool,
    },
    Error {
        message: String,
    },
    Stats {
        frames: u64,
        dropped: u64,
        analyse_p50_ms: f64,
        analyse_p95_ms: f64,
    },
    Stopped,
}

pub type EventSink = Box<dyn FnMut(KioskEvent) + Send>;

/// Sends one outbox item (charge or waste) and classifies the outcome.
pub fn send_item(api: &dyn BackendApi, item: &OutboxItem) -> Delivery {
    let result = match item.kind {
        ItemKind::Charge => match serde_json::from_str::<ChargeRequest>(&item.body) {
            Ok(req) => api.charge(&req).and_then(|r| {
                serde_json::to_string(&r).map_err(|e| ApiError::Decode(e.to_string()))
            }),
            Err(e) => return Delivery::Permanent(format!("unreadable queued charge: {e}")),
        },
        ItemKind::Waste => match serde_json::from_str::<WasteRequest>(&item.body) {
            Ok(req) => api.waste(&req).and_then(|r| {
                serde_json::to_string(&r).map_err(|e| ApiError::Decode(e.to_string()))
            }),
            Err(e) => return Delivery::Permanent(format!("unreadable queued waste record: {e}")),
        },
    };
    match result {
        Ok(body) => Delivery::Delivered(body),
        Err(e @ ApiError::NotSent(_)) => Delivery::Unreachable(e.to_string()),
        Err(e) if e.is_transient() => Delivery::Transient(e.to_string()),
        Err(e) => Delivery::Permanent(e.to_string()),
    }
}

/// What a delivered item teaches the local state: balances, settled offline spending.
pub fn learn_from_delivery(
    store: &mut LocalStore,
    item: &OutboxItem,
    delivery: &Delivery,
    now_ms: i64,
) -> Result<(), StoreError> {
    if let (ItemKind::Charge, Delivery::Delivered(body)) = (item.kind, delivery) {
        if let (Ok(resp), Ok(req)) = (
            serde_json::from_str::<ChargeResponse>(body),
            serde_json::from_str::<ChargeRequest>(&item.body),
        ) {
            store.settle_offline_spend(&item.idempotency_key)?;
            store.set_balance(
                req.staff_id,
                to_fen(resp.cash_balance + resp.subsidy_balance),
                now_ms,
            )?;
            if let Some(id) = resp.charge_id {
                store.set_meal_charge(&item.idempotency_key, id)?;
            }
            if resp.status == ChargeStatus::Declined {
                store.unmark_meal(&item.idempotency_key)?;
            }
        }
    }
    Ok(())
}

pub fn now_ms() -> i64 {
    (OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64
}

fn meal_name(m: wire::Meal) -> &'static str {
    match m {
        wire::Meal::Breakfast => "breakfast",
        wire::Meal::Lunch => "lunch",
        wire::Meal::Dinner => "dinner",
    }
}

pub struct Station {
    cfg: KioskConfig,
    api: Arc<dyn BackendApi>,
    store: LocalStore,
    gate: Arc<Mutex<()>>,
    sink: EventSink,
    pending_diner: Option<(i64, Instant)>,
    pending_weighing: Option<(i64, Instant)>,
    online: Option<bool>,
}

impl Station {
    pub fn new(
        cfg: KioskConfig,
        api: Arc<dyn BackendApi>,
        store: LocalStore,
        gate: Arc<Mutex<()>>,
        sink: EventSink,
    ) -> Station {
        Station {
            cfg,
            api,
            store,
            gate,
            sink,
            pending_diner: None,
            pending_weighing: None,
            online: None,
        }
    }

    pub fn emit(&mut self, e: KioskEvent) {
        (self.sink)(e)
    }

    pub fn store(&self) -> &LocalStore {
        &self.store
    }

    /// Nothing waits to be paired at the return station.
    pub fn is_idle(&self) -> bool {
        self.pending_diner.is_none() && self.pending_weighing.is_none()
    }

    fn set_online(&mut self, online: bool) {
        if self.online != Some(online) {
            self.online = Some(online);
            self.emit(KioskEvent::Online { online });
        }
    }

    fn error(&mut self, what: &str, e: impl std::fmt::Display) {
        tracing::error!("{what}: {e}");
        self.emit(KioskEvent::Error {
            message: format!("{what}: {e}"),
        });
    }

    /// Face decisions from the decider; `captured` is when the deciding frame was taken.
    pub fn on_face_events(&mut self, events: Vec<FaceEvent>, captured: Instant) {
        for ev in events {
            let identified = match &ev {
                FaceEvent::Identified { staff_id, .. } => Some(*staff_id),
                _ => None,
            };
            self.emit(KioskEvent::Face(ev));
            if let Some(staff_id) = identified {
                self.on_identified(staff_id, Via::Face, captured);
            }
        }
    }

    /// A QR code seen on a frame.
    pub fn on_pay_code(&mut self, code: &str, captured: Instant) {
        match self.api.redeem_pay_code(code) {
            Ok(grant) => self.on_identified(grant.staff_id, Via::PayCode, captured),
            Err(e) => {
                let reason = match e {
                    ApiError::NotSent(_) | ApiError::NoAnswer(_) => {
                        "pay codes need the backend, which cannot be reached now".to_string()
                    }
                    other => other.to_string(),
                };
                self.emit(KioskEvent::PayCodeRefused { reason });
            }
        }
    }

    pub fn on_identified(&mut self, staff_id: i64, via: Via, captured: Instant) {
        let now = Instant::now();
        let fresh = |t: &Instant| {
            now.duration_since(*t).as_millis() as u64 <= self.cfg.scale.pair_window_ms
        };
        if self.cfg.mode.weighs() {
            if let Some((gross, t)) = self.pending_weighing {
                if fresh(&t) {
                    self.pending_weighing = None;
                    self.record_waste(Some(staff_id), gross);
                    return;
                }
            }
            if !self.cfg.mode.pays() {
                self.pending_diner = Some((staff_id, now));
                return;
            }
        }
        if self.cfg.mode.pays() {
            if let Err(e) = self.pay(staff_id, via, captured) {
                self.error("charging", e);
            }
        }
    }

    pub fn on_scale(&mut self, ev: ScaleEvent) {
        if !self.cfg.mode.weighs() {
            return;
        }
        match ev {
            ScaleEvent::Settled { gross_g } => {
                let tare = self.cfg.scale.tare_g;
                self.emit(KioskEvent::Weighed {
                    gross_g,
                    net_g: gross_g - tare,
                });
                if gross_g < tare {
                    self.emit(KioskEvent::ScaleProblem {
                        message: format!("tray weighs {gross_g} g, less than the configured tare {tare} g: check scale.tare_g"),
                    });
                    return;
                }
                let now = Instant::now();
                match self.pending_diner.take() {
                    Some((staff, t))
                        if now.duration_since(t).as_millis() as u64
                            <= self.cfg.scale.pair_window_ms =>
                    {
                        self.record_waste(Some(staff), gross_g)
                    }
                    _ => self.pending_weighing = Some((gross_g, now)),
                }
            }
            ScaleEvent::Overload => self.emit(KioskEvent::ScaleProblem {
                message: "scale overloaded".into(),
            }),
            ScaleEvent::Emptied => {}
        }
    }

    /// Expires pairings: a weighing nobody claimed is recorded without a person (it still
    /// counts for the canteen), a diner without a tray is forgotten.
    pub fn tick(&mut self) {
        let now = Instant::now();
        let window = self.cfg.scale.pair_window_ms as u128;
        if let Some((gross, t)) = self.pending_weighing {
            if now.duration_since(t).as_millis() > window {
                self.pending_weighing = None;
                self.record_waste(None, gross);
            }
        }
        if let Some((_, t)) = self.pending_diner {
            if now.duration_since(t).as_millis() > window {
                self.pending_diner = None;
            }
        }
    }

    fn pay(&mut self, staff_id: i64, via: Via, captured: Instant) -> Result<(), StoreError> {
        let now = OffsetDateTime::now_utc().to_offset(self.cfg.utc_offset());
        let (date, meal) = self.cfg.meal_at(now);
        if let Some(m) = meal {
            if self.store.meal_taken(staff_id, &date, meal_name(m))? {
                self.emit(KioskEvent::AlreadyCharged {
                    staff_id,
                    meal: format!("{} {date}", meal_name(m)),
                });
                // On a device that does both, a diner who already paid is back with the tray.
                if self.cfg.mode.weighs() {
                    self.pending_diner = Some((staff_id, Instant::now()));
                }
                return Ok(());
            }
        }
        let key = uuid::Uuid::new_v4().to_string();
        let mut req = ChargeRequest {
            idempotency_key: key.clone(),
            staff_id,
            kiosk_time: now,
            offline: false,
            amount: None,
        };
        let body = serde_json::to_string(&req)?;
        let t_ms = now_ms();
        if let Some(m) = meal {
            self.store
                .mark_meal(staff_id, &date, meal_name(m), &key, t_ms)?;
        }
        self.store.enqueue(ItemKind::Charge, &key, &body, t_ms)?;
        if std::env::var_os(TEST_KILL_AFTER_OUTBOX_WRITE).is_some() {
            kill_self();
        }

        let gate = self.gate.clone();
        let _g = gate.lock().unwrap_or_else(|p| p.into_inner());
        let api = self.api.clone();
        let report = self
            .store
            .drain_report(now_ms, |item| send_item(&*api, item))?;
        for (item, d) in &report.done {
            learn_from_delivery(&mut self.store, item, d, now_ms())?;
        }
        let latency_ms = captured.elapsed().as_secs_f64() * 1000.0;
        let mine = report
            .done
            .iter()
            .find(|(i, _)| i.idempotency_key == key)
            .map(|(_, d)| d.clone());
        match mine {
            Some(Delivery::Delivered(resp)) => {
                self.set_online(true);
                let resp: ChargeResponse = match serde_json::from_str(&resp) {
                    Ok(r) => r,
                    Err(e) => {
                        self.error("reading the charge answer", e);
                        return Ok(());
                    }
                };
                match resp.status {
                    ChargeStatus::Accepted | ChargeStatus::Exception => {
                        self.emit(KioskEvent::Paid {
                            staff_id,
                            via,
                            idempotency_key: key,
                            offline: false,
                            charge_id: resp.charge_id,
                            amount: Some(resp.amount.to_string()),
                            balance: Some((resp.cash_balance + resp.subsidy_balance).to_string()),
                            latency_ms,
                        })
                    }
                    ChargeStatus::Declined => self.emit(KioskEvent::Declined {
                        staff_id,
                        via,
                        reason: resp.reason.unwrap_or_else(|| "declined".into()),
                        latency_ms,
                    }),
                }
            }
            Some(Delivery::Permanent(e)) => {
                self.store.unmark_meal(&key)?;
                self.emit(KioskEvent::Declined {
                    staff_id,
                    via,
                    reason: format!("refused by the backend: {e}"),
                    latency_ms,
                });
            }
            _ => {
                // Not delivered: the backend is away.
                self.set_online(false);
                self.decide_offline(&mut req, via, latency_ms)?;
            }
        }
        Ok(())
    }

    /// The backend cannot be asked: serve if the person's cached balance and the offline
    /// limit allow it.
    fn decide_offline(
        &mut self,
        req: &mut ChargeRequest,
        via: Via,
        latency_ms: f64,
    ) -> Result<(), StoreError> {
        let staff_id = req.staff_id;
        let key = req.idempotency_key.clone();
        let price = to_fen(self.cfg.offline_meal_price);
        let spent = self.store.unsettled_offline_fen(staff_id)?;
        let limit = to_fen(self.cfg.offline_limit);
        let balance = self.store.balance(staff_id)?;
        let within_limit = spent + price <= limit;
        let within_balance = balance.is_none_or(|b| b.available_fen - spent >= price);
        if within_limit && within_balance {
            // Marked offline so the backend records a broken rule as an exception instead
            // of refusing a meal already served; only possible if it never left the kiosk
            // (otherwise the identical request must be resent, and its answer stands).
            req.offline = true;
            self.store
                .rewrite_unsent(&key, &serde_json::to_string(req)?)?;
            self.store.add_offline_spend(&key, staff_id, price)?;
            self.emit(KioskEvent::Paid {
                staff_id,
                via,
                idempotency_key: key,
                offline: true,
                charge_id: None,
                amount: Some(self.cfg.offline_meal_price.to_string()),
                balance: balance.map(|b| {
                    rust_decimal::Decimal::new(b.available_fen - spent - price, 2).to_string()
                }),
                latency_ms,
            });
        } else {
            // Only a request that surely never left may be withdrawn; one that may have
            // arrived stays queued so its true outcome is learnt.
            self.store.withdraw_unsent(&key)?;
            self.store.unmark_meal(&key)?;
            let reason = if !within_balance {
                "offline_insufficient_cached_balance"
            } else {
                "offline_limit_reached"
            };
            self.emit(KioskEvent::Declined {
                staff_id,
                via,
                reason: reason.into(),
                latency_ms,
            });
        }
        Ok(())
    }

    fn record_waste(&mut self, staff_id: Option<i64>, gross_g: i64) {
        if let Err(e) = self.try_record_waste(staff_id, gross_g) {
            self.error("recording waste", e);
        }
    }

    fn try_record_waste(&mut self, staff_id: Option<i64>, gross_g: i64) -> Result<(), StoreError> {
        let now = OffsetDateTime::now_utc().to_offset(self.cfg.utc_offset());
        let (date, meal) = self.cfg.meal_at(now);
        let charge_id = match (staff_id, meal) {
            (Some(s), Some(m)) => self.store.meal_charge(s, &date, meal_name(m))?,
            _ => None,
        };
        let tare_g = self.cfg.scale.tare_g;
        let key = uuid::Uuid::new_v4().to_string();
        let req = WasteRequest {
            idempotency_key: key.clone(),
            staff_id,
            charge_id,
            gross_grams: gross_g,
            tare_grams: tare_g,
            dish: None,
            category: None,
            measured_at: now,
        };
        let t = now_ms();
        self.store
            .enqueue(ItemKind::Waste, &key, &serde_json::to_string(&req)?, t)?;
        let net_g = gross_g - tare_g;
        self.store.log_waste(staff_id, net_g, t)?;
        let delivered = {
            let gate = self.gate.clone();
            let _g = gate.lock().unwrap_or_else(|p| p.into_inner());
            let api = self.api.clone();
            let report = self
                .store
                .drain_report(now_ms, |item| send_item(&*api, item))?;
            for (item, d) in &report.done {
                learn_from_delivery(&mut self.store, item, d, now_ms())?;
            }
            report
                .done
                .iter()
                .find(|(i, _)| i.idempotency_key == key)
                .map(|(_, d)| d.clone())
        };
        let queued = !matches!(delivered, Some(Delivery::Delivered(_)));
        let net_g = match &delivered {
            Some(Delivery::Delivered(body)) => serde_json::from_str::<WasteResponse>(body)
                .map(|r| r.net_grams)
                .unwrap_or(net_g),
            _ => net_g,
        };
        let (person, canteen, from) = match staff_id.map(|s| self.api.waste_stats(s)) {
            Some(Ok(s)) => (s.person_average_g, s.canteen_average_g, "backend"),
            _ => {
                let (p, c) = self.store.local_waste_averages(staff_id)?;
                (p, c, "this station")
            }
        };
        self.emit(KioskEvent::WasteRecorded {
            staff_id,
            gross_g,
            tare_g,
            net_g,
            queued,
            person_average_g: person,
            canteen_average_g: canteen,
            averages_from: from.into(),
        });
        Ok(())
    }
}

/// The crash test's hook: die like `kill -9` would kill us.
fn kill_self() -> ! {
    tracing::warn!(
        "{TEST_KILL_AFTER_OUTBOX_WRITE} is set: killing the kiosk after the outbox write"
    );
    let _ = std::process::Command::new("kill")
        .args(["-9", &std::process::id().to_string()])
        .status();
    std::thread::sleep(std::time::Duration::from_secs(5));
    std::process::abort()
}

impl Refusal {
    pub fn is_photo(&self) -> bool {
        matches!(self, Refusal::NoMotion)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{PayCodeGrant, WasteStats};
    use rust_decimal::Decimal;
    use std::sync::atomic::{AtomicBool, Ordering};
    use wire::{EnrolRequest, EnrolResponse, GalleryResponse, KioskInfo};

    /// A backend in memory: charges each key once, can be switched off.
    #[derive(Default)]
    struct Fake {
        down: AtomicBool,
        charges: Mutex<Vec<ChargeRequest>>,
        wastes: Mutex<Vec<WasteRequest>>,
        balance_fen: Mutex<i64>,
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
            let mut c = self.charges.lock().unwrap();
            let replayed = c.iter().any(|r| r.idempotency_key == req.idempotency_key);
            let mut bal = self.balance_fen.lock().unwrap();
            let ok = *bal >= 1500;
            if !replayed {
                c.push(req.clone());
                if ok {
                    *bal -= 1500;
                }
            }
            Ok(ChargeResponse {
                status: if ok || req.offline {
                    ChargeStatus::Accepted
                } else {
                    ChargeStatus::Declined
                },
                charge_id: Some(c.len() as i64),
                reason: (!ok).then(|| "insufficient_funds".into()),
                meal: Some(wire::Meal::Lunch),
                local_date: None,
                amount: Decimal::new(1500, 2),
                subsidy_used: Decimal::ZERO,
                cash_used: Decimal::new(1500, 2),
                cash_balance: Decimal::new(*bal, 2),
                subsidy_balance: Decimal::ZERO,
                replayed,
            })
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
        fn gallery(&self, _: i64, _: i64) -> Result<GalleryResponse, ApiError> {
            Ok(GalleryResponse {
                next_since: 0,
                more: false,
                changes: vec![],
            })
        }
        fn redeem_pay_code(&self, code: &str) -> Result<PayCodeGrant, ApiError> {
            code.strip_prefix("PAY-")
                .and_then(|s| s.parse().ok())
                .map(|staff_id| PayCodeGrant { staff_id })
                .ok_or(ApiError::Status {
                    status: 422,
                    code: "bad_code".into(),
                    message: "unknown code".into(),
                })
        }
        fn waste_stats(&self, _: i64) -> Result<WasteStats, ApiError> {
            Err(ApiError::NotSupported("waste statistics"))
        }
    }

    fn station(
        mode: crate::config::Mode,
        fake: Arc<Fake>,
    ) -> (Station, Arc<Mutex<Vec<KioskEvent>>>) {
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
            fake,
            LocalStore::in_memory().unwrap(),
            Arc::new(Mutex::new(())),
            Box::new(move |e| ev.lock().unwrap().push(e)),
        );
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
        s.on_pay_code("garbage", Instant::now());
        assert_eq!(fake.charges.lock().unwrap()[0].staff_id, 9);
        assert!(matches!(
            events.lock().unwrap().last(),
            Some(KioskEvent::PayCodeRefused { .. })
        ));
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
}
