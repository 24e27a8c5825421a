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
        /// Of the amount, what the subsidy paid (online answers only).
        subsidy_used: Option<String>,
        /// From the backend's staff directory, when this kiosk has it.
        name: Option<String>,
        department: Option<String>,
        /// From the frame that completed the decision to this event.
        latency_ms: f64,
    },
    /// Do not serve; pay another way.
    Declined {
        staff_id: i64,
        via: Via,
        reason: String,
        name: Option<String>,
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
    /// A QR pay code was read; the backend is being asked.
    PayCodeScanned,
    /// The diner said "not me" on the paid screen: the charge is withdrawn (it never left
    /// the kiosk, `outcome: "withdrawn"`) or a void of it is queued (`"void_queued"`; the
    /// backend's reversal follows as `ChargeVoided`), or nothing was left to undo
    /// (`"nothing_to_undo"`).
    NotMe {
        charge_key: String,
        outcome: String,
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
        name: Option<String>,
    },
    ScaleProblem {
        message: String,
    },
    /// The scale's link is up (again).
    ScaleConnected {
        tare_g: i64,
    },
    /// A manager set the empty tray's weight; the next weighings subtract it.
    TareSet {
        tare_g: i64,
    },
    /// The scale cannot be reached (unplugged, wrong port); the kiosk keeps retrying.
    ScaleDisconnected {
        message: String,
    },
    /// No frames: the camera is missing or failed. Pay codes through a scanner still work;
    /// the kiosk keeps trying to open it.
    CameraUnavailable {
        message: String,
    },
    /// The face models cannot be loaded: no face decisions, pay codes still work.
    ModelsUnavailable {
        message: String,
    },
    /// A template captured at the enrolment desk (mode `desk`), after a capture command:
    /// the main face of a frame good enough to enrol, and whom it already resembles.
    TemplateCaptured {
        embedding: Vec<f32>,
        quality: f32,
        /// An enrolled person this face matches by the kiosk's policy, if any.
        matches_staff_id: Option<i64>,
    },
    /// The meal period now in force changed (or the settings did): breakfast, lunch, dinner
    /// or none, and its price for the regular category (a range when categories differ).
    MealNow {
        meal: Option<String>,
        price: Option<String>,
    },
    /// The mode changed at run time (a front end's command).
    ModeChanged {
        mode: String,
    },
    /// The front end's language, as a command set it (kept for the next start).
    Language {
        language: String,
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
        name: String,
        meal: Option<String>,
        price: Option<String>,
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
