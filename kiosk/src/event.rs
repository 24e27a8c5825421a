//! What the kiosk tells the world: every decision, payment, refusal, weighing, sync and fault
//! as one [`KioskEvent`], handed to an [`EventSink`]. A screen turns them into what diners
//! see; the headless binary prints them as JSON lines; tests collect them. The library never
//! draws anything itself.

use serde::Serialize;

use crate::canteen::SettingsSource;
use crate::decide::FaceEvent;

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
