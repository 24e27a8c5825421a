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
//!
//! The clock, meal windows and prices come from the canteen's settings ([`CanteenSettings`],
//! fetched from the backend and cached on disk); offline decisions use the balances the
//! sync thread keeps from the backend's snapshot and from charge answers.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use serde::Serialize;
use time::OffsetDateTime;
use wire::{
    ChargeRequest, ChargeResponse, ChargeStatus, VoidChargeRequest, VoidChargeResponse,
    WasteRequest, WasteResponse,
};

use crate::api::{ApiError, BackendApi};
use crate::canteen::{CanteenSettings, SettingsSource};
use crate::config::{to_fen, KioskConfig};
use crate::decide::{FaceEvent, Refusal};
use crate::outbox::{
    refused_follow_up, served_follow_up, Delivery, ItemKind, LocalStore, OutboxItem, StoreError,
};
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
    /// A QR pay code that cannot pay: `reason` is the backend's stable code
    /// (`unknown_pay_code`, `pay_code_used`, `pay_code_expired`, `staff_inactive`) or
    /// `backend_unreachable` / `not_supported`.
    PayCodeRefused {
        reason: String,
        message: String,
    },
    /// A meal served after a lost answer whose charge the backend declined (or never
    /// applied): a new offline charge for it is queued under `idempotency_key`.
    ServedMealQueued {
        staff_id: i64,
        original_key: String,
        idempotency_key: String,
    },
    /// A charge accepted by the backend after the kiosk had refused its diner on its own: a
    /// void of it is queued under `idempotency_key`.
    UnservedChargeVoidQueued {
        charge_key: String,
        idempotency_key: String,
    },
    /// The backend reversed a charge whose diner was not served.
    ChargeVoided {
        charge_key: String,
        charge_id: i64,
        amount: String,
        already_void: bool,
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
    /// The canteen settings in force (clock, meal windows, prices) and where they came from.
    CanteenSettings {
        source: SettingsSource,
        canteen_id: Option<i64>,
        utc_offset_minutes: i32,
        meal_windows: usize,
        prices: usize,
        fetched_ms: Option<i64>,
    },
    /// A full balances snapshot was read from the backend.
    BalancesSynced {
        people: usize,
        changed: usize,
        pages: usize,
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
        ItemKind::Void => match serde_json::from_str::<VoidChargeRequest>(&item.body) {
            Ok(req) => api.void_charge(&req).and_then(|r| {
                serde_json::to_string(&r).map_err(|e| ApiError::Decode(e.to_string()))
            }),
            Err(e) => return Delivery::Permanent(format!("unreadable queued void: {e}")),
        },
    };
    match result {
        Ok(body) => Delivery::Delivered(body),
        Err(e @ ApiError::NotSent(_)) => Delivery::Unreachable(e.to_string()),
        Err(e) if e.is_transient() => Delivery::Transient(e.to_string()),
        Err(e) => Delivery::Permanent(e.to_string()),
    }
}

/// The events for what a drain's answers made the outbox queue by itself (offline charges
/// for served meals whose lost-answer charge was declined, voids of charges accepted for
/// diners who were refused) and for the voids it delivered.
pub fn follow_up_events(done: &[(OutboxItem, Delivery)]) -> Vec<KioskEvent> {
    done.iter()
        .filter_map(|(item, d)| {
            if let Some(f) = served_follow_up(item, d) {
                return Some(KioskEvent::ServedMealQueued {
                    staff_id: f.staff_id,
                    original_key: item.idempotency_key.clone(),
                    idempotency_key: f.idempotency_key,
                });
            }
            if let Some((void_key, void)) = refused_follow_up(item, d) {
                return Some(KioskEvent::UnservedChargeVoidQueued {
                    charge_key: void.charge_key,
                    idempotency_key: void_key,
                });
            }
            match (item.kind, d) {
                (ItemKind::Void, Delivery::Delivered(body)) => {
                    let r: VoidChargeResponse = serde_json::from_str(body).ok()?;
                    let req: VoidChargeRequest = serde_json::from_str(&item.body).ok()?;
                    Some(KioskEvent::ChargeVoided {
                        charge_key: req.charge_key,
                        charge_id: r.charge_id,
                        amount: r.amount.to_string(),
                        already_void: r.already_void,
                    })
                }
                _ => None,
            }
        })
        .collect()
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
    settings: CanteenSettings,
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
            settings: CanteenSettings::from_config(&cfg),
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

    /// The canteen settings to apply from now on (from the backend or its cache on disk).
    pub fn set_canteen(&mut self, settings: CanteenSettings) {
        self.emit(KioskEvent::CanteenSettings {
            source: settings.source,
            canteen_id: settings.canteen_id,
            utc_offset_minutes: settings.utc_offset_minutes,
            meal_windows: settings.windows.len(),
            prices: settings.prices.len(),
            fetched_ms: settings.fetched_ms,
        });
        self.settings = settings;
    }

    pub fn canteen(&self) -> &CanteenSettings {
        &self.settings
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

    /// A QR code seen on a frame: redeemed at the backend (which uses it up), then the
    /// person it names pays like anyone else. Offline there is no way to tell a valid code
    /// from a copied one, so pay codes need the backend.
    pub fn on_pay_code(&mut self, code: &str, captured: Instant) {
        match self.api.redeem_pay_code(code) {
            Ok(grant) => self.on_identified(grant.staff_id, Via::PayCode, captured),
            Err(e) => {
                let (reason, message) = match &e {
                    ApiError::NotSent(_) => {
                        self.set_online(false);
                        (
                            "backend_unreachable".to_string(),
                            "pay codes need the backend, which cannot be reached now".to_string(),
                        )
                    }
                    ApiError::NoAnswer(_) => (
                        "backend_unreachable".to_string(),
                        // The code may have been used up by this very attempt.
                        "no answer from the backend; please make a new pay code".to_string(),
                    ),
                    ApiError::Status { code, message, .. } => (code.clone(), message.clone()),
                    ApiError::NotSupported(_) => ("not_supported".to_string(), e.to_string()),
                    ApiError::Decode(_) => ("bad_answer".to_string(), e.to_string()),
                };
                tracing::info!(reason = %reason, "pay code refused: {message}");
                self.emit(KioskEvent::PayCodeRefused { reason, message });
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
        let now = self.settings.local(OffsetDateTime::now_utc());
        let (date, meal) = self.settings.meal_at(now);
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
        for e in follow_up_events(&report.done) {
            self.emit(e);
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
                self.decide_offline(&mut req, meal, via, latency_ms)?;
            }
        }
        Ok(())
    }

    /// The backend cannot be asked (or its answer was lost): serve if the person is not
    /// known to be inactive and their cached balance and the offline limit allow the meal's
    /// price (the canteen's price for their category).
    fn decide_offline(
        &mut self,
        req: &mut ChargeRequest,
        meal: Option<wire::Meal>,
        via: Via,
        latency_ms: f64,
    ) -> Result<(), StoreError> {
        let staff_id = req.staff_id;
        let key = req.idempotency_key.clone();
        let balance = self.store.balance(staff_id)?;
        let price_yuan = self.settings.offline_price(
            balance.as_ref().and_then(|b| b.category.as_deref()),
            meal,
            self.cfg.offline_meal_price,
        );
        let price = to_fen(price_yuan);
        let spent = self.store.unsettled_offline_fen(staff_id)?;
        let limit = to_fen(self.cfg.offline_limit);
        let active = balance.as_ref().is_none_or(|b| b.active);
        let within_limit = spent + price <= limit;
        let within_balance = balance
            .as_ref()
            .is_none_or(|b| b.available_fen - spent >= price);
        if active && within_limit && within_balance {
            // Marked offline so the backend records a broken rule as an exception instead
            // of refusing a meal already served; only possible if it never left the kiosk.
            // Otherwise the identical request is resent until its stored answer is known,
            // and `served` makes the outbox queue an offline charge if that was a decline.
            req.offline = true;
            self.store
                .serve_offline(&key, &serde_json::to_string(req)?, staff_id, price)?;
            self.emit(KioskEvent::Paid {
                staff_id,
                via,
                idempotency_key: key,
                offline: true,
                charge_id: None,
                amount: Some(price_yuan.to_string()),
                balance: balance.map(|b| {
                    rust_decimal::Decimal::new(b.available_fen - spent - price, 2).to_string()
                }),
                latency_ms,
            });
        } else {
            // Only a request that surely never left may be withdrawn; one that may have
            // arrived stays queued so its true outcome is learnt.
            if !self.store.withdraw_unsent(&key)? {
                // If the backend did apply it, the person paid for a meal not served: marked,
                // so that an `accepted` answer queues a void of it (see `outbox`).
                self.store.mark_refused(&key)?;
                tracing::info!(
                    key = %key,
                    staff_id,
                    "refused offline, but the charge may have reached the backend; it will be voided if it was accepted"
                );
            }
            self.store.unmark_meal(&key)?;
            let reason = if !active {
                "offline_staff_inactive"
            } else if !within_balance {
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
        let now = self.settings.local(OffsetDateTime::now_utc());
        let (date, meal) = self.settings.meal_at(now);
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
            for e in follow_up_events(&report.done) {
                (self.sink)(e);
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
    use rust_decimal::Decimal;
    use std::collections::HashMap;
    use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
    use wire::{
        EnrolRequest, EnrolResponse, GalleryResponse, KioskInfo, PayCodeRedeemResponse,
        WasteStatsResponse,
    };

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
    fn sync_once(s: &mut Station, fake: &Fake) {
        let report = s
            .store
            .drain_report(now_ms, |item| send_item(fake, item))
            .unwrap();
        for e in follow_up_events(&report.done) {
            s.emit(e);
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
        sync_once(&mut s, &fake);
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
        sync_once(&mut s, &fake);
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
        sync_once(&mut s, &fake);
        sync_once(&mut s, &fake);
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
        sync_once(&mut s, &fake);
        sync_once(&mut s, &fake);
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
        sync_once(&mut s, &fake);
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
        let mut settings = CanteenSettings::from_config(&s.cfg);
        settings.source = SettingsSource::Backend;
        settings.canteen_id = Some(1);
        for meal in [wire::Meal::Breakfast, wire::Meal::Lunch, wire::Meal::Dinner] {
            settings.prices.push(crate::canteen::MealPrice {
                category: "regular".into(),
                meal,
                price: Decimal::new(1200, 2),
            });
            settings.prices.push(crate::canteen::MealPrice {
                category: "contractor".into(),
                meal,
                price: Decimal::new(2000, 2),
            });
        }
        s.set_canteen(settings);
        let snap =
            |staff_id, available_fen, active, category: &str| crate::outbox::SnapshotBalance {
                staff_id,
                available_fen,
                version: 1,
                active,
                category: category.into(),
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
}
