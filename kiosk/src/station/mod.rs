//! The pay and return stations: what the kiosk does once it knows who is there or what a
//! tray weighs. [`Station`] routes face decisions, pay codes and scale weighings: a pay
//! station charges ([`pay`]: the meal guard, the outbox, the backend's answer or the
//! kiosk's own offline decision), a return station pairs a diner with a weighing and records
//! the waste ([`waste`]), a device doing both pays on the way in and weighs on the way out.
//! Everything is reported as [`KioskEvent`]s for a screen (or the headless binary's log).
//!
//! The order of a charge, which the crash tests rely on: mark the meal locally, commit
//! the request to the outbox (fsynced), and only then send it and tell the diner. A
//! request that never left the kiosk (backend unreachable) may still be turned into an
//! offline charge or withdrawn; one that may have arrived is only ever resent as is.
//! Sending goes through the [`Courier`], shared with the background sync, so the queue goes
//! out in order and an item is never rewritten while another thread is sending it.
//!
//! The clock, meal windows and prices come from the canteen's settings ([`CanteenSettings`],
//! fetched from the backend and cached on disk); offline decisions use the balances the
//! sync thread keeps from the backend's snapshot and from charge answers.

use std::time::Instant;

use crate::api::ApiError;
use crate::canteen::{CanteenSettings, SettingsError};
use crate::config::KioskConfig;
use crate::courier::Courier;
use crate::decide::{FaceEvent, Refusal};
use crate::event::{EventSink, KioskEvent, Via};
use crate::local_store::LocalStore;
use crate::scale::ScaleEvent;

mod not_me;
mod pay;
mod waste;

#[cfg(test)]
mod tests;

pub use pay::PayError;

/// Set this environment variable to make the kiosk kill itself with SIGKILL right after a
/// charge is committed to the outbox and before it is sent: the crash test's hook.
pub const TEST_KILL_AFTER_OUTBOX_WRITE: &str = "CLEANPLATE_KIOSK_TEST_KILL_AFTER_OUTBOX_WRITE";

pub struct Station {
    cfg: KioskConfig,
    settings: CanteenSettings,
    courier: Courier,
    store: LocalStore,
    sink: EventSink,
    pending_diner: Option<(i64, Instant)>,
    pending_weighing: Option<(i64, Instant)>,
    online: Option<bool>,
    /// The meal period and price last reported (`KioskEvent::MealNow`).
    meal_shown: Option<(Option<String>, Option<String>)>,
}

impl Station {
    /// A station applying the configuration's fallback canteen settings until
    /// [`set_canteen`](Self::set_canteen) gives the backend's.
    pub fn new(
        cfg: KioskConfig,
        courier: Courier,
        store: LocalStore,
        sink: EventSink,
    ) -> Result<Station, SettingsError> {
        Ok(Station {
            settings: CanteenSettings::from_config(&cfg)?,
            cfg,
            courier,
            store,
            sink,
            pending_diner: None,
            pending_weighing: None,
            online: None,
            meal_shown: None,
        })
    }

    pub fn emit(&mut self, e: KioskEvent) {
        (self.sink)(e)
    }

    pub fn store(&self) -> &LocalStore {
        &self.store
    }

    /// The canteen settings to apply from now on (from the backend or its cache on disk).
    pub fn set_canteen(&mut self, settings: CanteenSettings) {
        let (meal, price) = meal_now(&settings);
        self.meal_shown = Some((meal.clone(), price.clone()));
        self.emit(KioskEvent::CanteenSettings {
            source: settings.source,
            canteen_id: settings.canteen_id,
            name: settings.name.clone(),
            meal,
            price,
            utc_offset_minutes: settings.utc_offset_minutes(),
            meal_windows: settings.windows().len(),
            prices: settings.prices.len(),
            fetched_ms: settings.fetched_ms,
        });
        self.settings = settings;
    }

    pub fn canteen(&self) -> &CanteenSettings {
        &self.settings
    }

    /// Switches between paying, weighing and the enrolment desk; whoever waited to be paired
    /// is forgotten.
    pub fn set_mode(&mut self, mode: crate::config::Mode) {
        self.cfg.mode = mode;
        self.pending_diner = None;
        self.pending_weighing = None;
        self.emit(KioskEvent::ModeChanged {
            mode: format!("{mode:?}").to_lowercase(),
        });
    }

    pub fn mode(&self) -> crate::config::Mode {
        self.cfg.mode
    }

    /// The empty tray's weight from now on (a manager's "tare" on the settings screen):
    /// every record not yet made subtracts it, a weighing waiting for its diner included.
    pub fn set_tare(&mut self, tare_g: i64) {
        match crate::settings::check_tare(tare_g) {
            Ok(g) => {
                self.cfg.scale.tare_g = g;
                self.emit(KioskEvent::TareSet { tare_g: g });
            }
            Err(e) => self.emit(KioskEvent::ScaleProblem {
                message: e.to_string(),
            }),
        }
    }

    pub fn tare_g(&self) -> i64 {
        self.cfg.scale.tare_g
    }

    /// The person's name and department, when the balances snapshot told them.
    fn person(&self, staff_id: i64) -> (Option<String>, Option<String>) {
        match self.store.person(staff_id) {
            Ok(Some((name, department))) => (Some(name), Some(department)),
            _ => (None, None),
        }
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
        if !self.cfg.mode.pays() {
            return;
        }
        self.emit(KioskEvent::PayCodeScanned);
        match self.courier.api().redeem_pay_code(code) {
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
    /// counts for the canteen), a diner without a tray is forgotten; reports a new meal
    /// period when the clock enters one.
    pub fn tick(&mut self) {
        let now_meal = meal_now(&self.settings);
        if self.meal_shown.as_ref() != Some(&now_meal) {
            self.meal_shown = Some(now_meal.clone());
            self.emit(KioskEvent::MealNow {
                meal: now_meal.0,
                price: now_meal.1,
            });
        }
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
}

/// The meal period now in force and its price: one price, or the range over the staff
/// categories (`"12.00-20.00"`); None outside meal hours or without a price list.
fn meal_now(settings: &CanteenSettings) -> (Option<String>, Option<String>) {
    let Some(slot) = settings.meal_at(time::OffsetDateTime::now_utc()) else {
        return (None, None);
    };
    let meal = crate::canteen::wire_meal(slot.meal);
    let prices: Vec<rust_decimal::Decimal> = settings
        .prices
        .iter()
        .filter(|p| p.meal == meal)
        .map(|p| p.price)
        .collect();
    let price = match (prices.iter().min(), prices.iter().max()) {
        (Some(lo), Some(hi)) if lo == hi => Some(format!("{lo:.2}")),
        (Some(lo), Some(hi)) => Some(format!("{lo:.2}-{hi:.2}")),
        _ => None,
    };
    (Some(slot.meal.as_str().to_string()), price)
}

impl Refusal {
    pub fn is_photo(&self) -> bool {
        matches!(self, Refusal::NoMotion)
    }
}
