//! The UI's state, driven by the kiosk's events: which screen shows and what it says.
//! Pure (no Slint types), so the adapting of [`KioskEvent`]s is tested on its own; the
//! [`crate::view`] module copies it into the Slint window.

use std::time::{Duration, Instant};

use kiosk::decide::{FaceEvent, Refusal};
use kiosk::event::{KioskEvent, Via};

/// How long the paid and declined screens stay before the attract screen returns.
pub const RESULT_SECONDS: u64 = 6;

/// Grams left that still count as a clean plate (sauce, bones).
pub const CLEAN_PLATE_G: i64 = 30;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Screen {
    Attract,
    Paid,
    Declined,
    PayCode,
    Return,
    Desk,
    Settings,
    Fault,
}

impl Screen {
    pub fn id(self) -> &'static str {
        match self {
            Screen::Attract => "attract",
            Screen::Paid => "paid",
            Screen::Declined => "declined",
            Screen::PayCode => "paycode",
            Screen::Return => "return",
            Screen::Desk => "desk",
            Screen::Settings => "settings",
            Screen::Fault => "fault",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Pay,
    Return,
    Desk,
}

impl Mode {
    pub fn id(self) -> &'static str {
        match self {
            Mode::Pay => "pay",
            Mode::Return => "return",
            Mode::Desk => "desk",
        }
    }

    pub fn home(self) -> Screen {
        match self {
            Mode::Pay => Screen::Attract,
            Mode::Return => Screen::Return,
            Mode::Desk => Screen::Desk,
        }
    }
}

/// A fault that stops the kiosk's main job, shown full screen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    Models,
    Camera,
    Scale,
    Backend,
}

impl Fault {
    pub fn id(self) -> &'static str {
        match self {
            Fault::Models => "models",
            Fault::Camera => "camera",
            Fault::Scale => "scale",
            Fault::Backend => "backend",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotMe {
    None,
    Pending,
    Done,
}

/// The face box in the preview, as fractions of the (mirrored) frame, and its hint.
#[derive(Debug, Clone, PartialEq)]
pub struct FaceView {
    pub x: f32,
    pub y: f32,
    pub w: f32,
    pub h: f32,
    /// look, too_far, too_dark, hold_still, or "" when the face is fine.
    pub hint: String,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Diner {
    pub staff_id: i64,
    pub name: String,
    pub department: String,
    pub amount: String,
    pub subsidy_used: String,
    pub balance: String,
    pub offline: bool,
    pub via_pay_code: bool,
    pub charge_key: String,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct ReturnView {
    pub weight_g: i64,
    pub tare_g: i64,
    pub net_g: i64,
    pub has_result: bool,
    pub person_average_g: Option<f64>,
    pub canteen_average_g: Option<f64>,
    pub scale_message: String,
}

impl ReturnView {
    pub fn clean_plate(&self) -> bool {
        self.net_g <= CLEAN_PLATE_G
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct UiModel {
    pub mode: Mode,
    pub screen: Screen,
    /// `zh_CN` (the default) or `en`.
    pub language: String,
    pub portrait: bool,
    pub canteen_name: String,
    /// breakfast, lunch, dinner or "" outside meal hours.
    pub meal: String,
    pub meal_price: String,
    pub clock: String,
    pub online: bool,
    pub camera_ok: bool,
    pub scale_ok: bool,
    pub fault: Option<Fault>,
    pub fault_detail: String,
    pub face: Option<FaceView>,
    pub diner: Diner,
    pub not_me: NotMe,
    pub decline_reason: String,
    pub paycode_reading: bool,
    pub ret: ReturnView,
    /// When a result screen (paid, declined, waste result) was shown.
    shown_at: Option<Instant>,
}

impl UiModel {
    pub fn new(mode: Mode) -> UiModel {
        UiModel {
            mode,
            screen: mode.home(),
            language: "zh_CN".into(),
            portrait: false,
            canteen_name: String::new(),
            meal: String::new(),
            meal_price: String::new(),
            clock: String::new(),
            online: true,
            camera_ok: true,
            scale_ok: true,
            fault: None,
            fault_detail: String::new(),
            face: None,
            diner: Diner::default(),
            not_me: NotMe::None,
            decline_reason: String::new(),
            paycode_reading: false,
            ret: ReturnView::default(),
            shown_at: None,
        }
    }

    /// The screen the kiosk rests on: its mode's home, or a blocking fault.
    pub fn home(&self) -> Screen {
        match self.fault {
            Some(_) => Screen::Fault,
            None => self.mode.home(),
        }
    }

    fn show(&mut self, screen: Screen, now: Instant) {
        self.screen = screen;
        self.shown_at = Some(now);
    }

    /// Seconds until a result screen goes back home.
    pub fn seconds_left(&self, now: Instant) -> u64 {
        let Some(t) = self.shown_at else {
            return RESULT_SECONDS;
        };
        RESULT_SECONDS.saturating_sub(now.duration_since(t).as_secs())
    }

    /// Returns to the home screen once a result has been shown long enough.
    pub fn tick(&mut self, now: Instant) {
        if let Some(t) = self.shown_at {
            if now.duration_since(t) >= Duration::from_secs(RESULT_SECONDS) {
                self.shown_at = None;
                self.ret.has_result = false;
                if matches!(
                    self.screen,
                    Screen::Paid | Screen::Declined | Screen::Return | Screen::PayCode
                ) {
                    self.screen = self.home();
                }
            }
        }
    }

    /// The diner pressed a button that ends the result screen (OK, Cancel).
    pub fn dismiss(&mut self) {
        self.shown_at = None;
        self.paycode_reading = false;
        self.screen = self.home();
    }

    pub fn on_event(&mut self, ev: &KioskEvent, now: Instant) {
        match ev {
            KioskEvent::Paid {
                staff_id,
                via,
                idempotency_key,
                offline,
                amount,
                balance,
                name,
                department,
                subsidy_used,
                ..
            } => {
                self.diner = Diner {
                    staff_id: *staff_id,
                    name: name.clone().unwrap_or_else(|| format!("#{staff_id}")),
                    department: department.clone().unwrap_or_default(),
                    amount: amount.clone().unwrap_or_default(),
                    subsidy_used: subsidy_used.clone().unwrap_or_default(),
                    balance: balance.clone().unwrap_or_default(),
                    offline: *offline,
                    via_pay_code: *via == Via::PayCode,
                    charge_key: idempotency_key.clone(),
                };
                self.not_me = NotMe::None;
                self.paycode_reading = false;
                self.show(Screen::Paid, now);
            }
            KioskEvent::Declined {
                staff_id,
                reason,
                name,
                ..
            } => {
                self.diner = Diner {
                    staff_id: *staff_id,
                    name: name.clone().unwrap_or_default(),
                    ..Diner::default()
                };
                self.decline(decline_code(reason), now);
            }
            KioskEvent::AlreadyCharged { .. } => {
                self.diner = Diner::default();
                self.decline("meal_already_taken", now);
            }
            KioskEvent::PayCodeRefused { reason, .. } => {
                self.diner = Diner::default();
                self.decline(decline_code(reason), now);
            }
            KioskEvent::PayCodeScanned => {
                self.paycode_reading = true;
                self.show(Screen::PayCode, now);
            }
            KioskEvent::Face(f) => self.on_face(f, now),
            KioskEvent::NotMe { charge_key, .. } if *charge_key == self.diner.charge_key => {
                self.not_me = NotMe::Pending;
                self.shown_at = Some(now);
            }
            KioskEvent::ChargeVoided { charge_key, .. }
                if *charge_key == self.diner.charge_key && self.not_me != NotMe::None =>
            {
                self.not_me = NotMe::Done;
            }
            KioskEvent::Weighed { gross_g, .. } => {
                self.ret.weight_g = *gross_g;
                self.ret.scale_message.clear();
            }
            KioskEvent::WasteRecorded {
                gross_g,
                tare_g,
                net_g,
                person_average_g,
                canteen_average_g,
                name,
                ..
            } => {
                self.ret = ReturnView {
                    weight_g: *gross_g,
                    tare_g: *tare_g,
                    net_g: *net_g,
                    has_result: true,
                    person_average_g: *person_average_g,
                    canteen_average_g: *canteen_average_g,
                    scale_message: String::new(),
                };
                self.diner = Diner {
                    name: name.clone().unwrap_or_default(),
                    ..Diner::default()
                };
                self.show(Screen::Return, now);
            }
            KioskEvent::ScaleProblem { message } => self.ret.scale_message = message.clone(),
            KioskEvent::TareSet { tare_g } => self.ret.tare_g = *tare_g,
            KioskEvent::ScaleConnected { tare_g } => {
                self.scale_ok = true;
                self.ret.tare_g = *tare_g;
                self.ret.scale_message.clear();
                self.clear_fault(Fault::Scale);
            }
            KioskEvent::ScaleDisconnected { message } => {
                self.scale_ok = false;
                self.ret.scale_message = message.clone();
                if self.mode == Mode::Return {
                    self.set_fault(Fault::Scale, message);
                }
            }
            KioskEvent::Online { online } => self.online = *online,
            KioskEvent::CameraUnavailable { message } => {
                self.camera_ok = false;
                self.face = None;
                self.set_fault(Fault::Camera, message);
            }
            KioskEvent::ModelsUnavailable { message } => self.set_fault(Fault::Models, message),
            KioskEvent::CanteenSettings {
                name, meal, price, ..
            } => {
                self.canteen_name = name.clone();
                self.meal = meal.clone().unwrap_or_default();
                self.meal_price = price.clone().unwrap_or_default();
            }
            KioskEvent::MealNow { meal, price } => {
                self.meal = meal.clone().unwrap_or_default();
                self.meal_price = price.clone().unwrap_or_default();
            }
            _ => {}
        }
    }

    fn decline(&mut self, code: &str, now: Instant) {
        self.decline_reason = code.to_string();
        self.paycode_reading = false;
        self.show(Screen::Declined, now);
    }

    fn set_fault(&mut self, fault: Fault, detail: &str) {
        self.fault = Some(fault);
        self.fault_detail = detail.to_string();
        if matches!(
            self.screen,
            Screen::Attract | Screen::Return | Screen::Fault
        ) {
            self.screen = Screen::Fault;
        }
    }

    fn clear_fault(&mut self, fault: Fault) {
        if self.fault == Some(fault) {
            self.fault = None;
            self.fault_detail.clear();
            if self.screen == Screen::Fault {
                self.screen = self.home();
            }
        }
    }

    fn on_face(&mut self, f: &FaceEvent, now: Instant) {
        match f {
            FaceEvent::Left { .. } => self.face = None,
            FaceEvent::Refused { refusal, .. } => {
                let code = match refusal {
                    Refusal::NoMotion | Refusal::NotLive { .. } => "not_live",
                    _ => "unknown",
                };
                if self.mode == Mode::Pay && self.screen == Screen::Attract {
                    self.diner = Diner::default();
                    self.decline(code, now);
                }
            }
            _ => {}
        }
    }

    /// The face box and hint of the newest preview frame (None: no face). A frame means the
    /// camera works (again).
    pub fn set_face(&mut self, face: Option<FaceView>) {
        self.face = face;
        if !self.camera_ok {
            self.camera_ok = true;
            self.clear_fault(Fault::Camera);
        }
    }
}

/// The declined screen's reason for a kiosk or backend reason code.
pub fn decline_code(reason: &str) -> &'static str {
    match reason {
        "insufficient_funds" | "offline_insufficient_cached_balance" => "insufficient_funds",
        "daily_cap_exceeded" | "transaction_cap_exceeded" => "daily_cap",
        "meal_already_taken" => "meal_already_taken",
        "outside_meal_period" | "no_price" => "outside_meal_period",
        "staff_inactive" | "offline_staff_inactive" => "staff_inactive",
        "offline_limit_reached" => "offline_limit",
        "pay_code_used" => "pay_code_used",
        "pay_code_expired" => "pay_code_expired",
        "unknown_pay_code" => "unknown_pay_code",
        "backend_unreachable" => "backend_unreachable",
        _ => "other",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn paid(key: &str) -> KioskEvent {
        KioskEvent::Paid {
            staff_id: 7,
            via: Via::Face,
            idempotency_key: key.into(),
            offline: false,
            charge_id: Some(1),
            amount: Some("15.00".into()),
            balance: Some("85.00".into()),
            subsidy_used: Some("5.00".into()),
            name: Some("王小明".into()),
            department: Some("研发部".into()),
            latency_ms: 20.0,
        }
    }

    #[test]
    fn a_payment_shows_then_returns_to_attract() {
        let t0 = Instant::now();
        let mut m = UiModel::new(Mode::Pay);
        m.on_event(&paid("k1"), t0);
        assert_eq!(m.screen, Screen::Paid);
        assert_eq!(m.diner.name, "王小明");
        assert_eq!(
            m.seconds_left(t0 + Duration::from_secs(2)),
            RESULT_SECONDS - 2
        );
        m.tick(t0 + Duration::from_secs(RESULT_SECONDS));
        assert_eq!(m.screen, Screen::Attract);
    }

    #[test]
    fn not_me_is_shown_pending_then_done_for_that_charge_only() {
        let t0 = Instant::now();
        let mut m = UiModel::new(Mode::Pay);
        m.on_event(&paid("k1"), t0);
        let voided = |key: &str| KioskEvent::ChargeVoided {
            charge_key: key.into(),
            charge_id: 1,
            amount: "15.00".into(),
            already_void: false,
        };
        m.on_event(&voided("k1"), t0);
        assert_eq!(m.not_me, NotMe::None, "a void nobody asked for here");
        m.on_event(
            &KioskEvent::NotMe {
                charge_key: "k1".into(),
                outcome: "void_queued".into(),
            },
            t0,
        );
        assert_eq!(m.not_me, NotMe::Pending);
        m.on_event(&voided("other"), t0);
        assert_eq!(m.not_me, NotMe::Pending);
        m.on_event(&voided("k1"), t0);
        assert_eq!(m.not_me, NotMe::Done);
    }

    #[test]
    fn refusals_and_declines_map_to_their_screens() {
        let t0 = Instant::now();
        let mut m = UiModel::new(Mode::Pay);
        m.on_event(
            &KioskEvent::Face(FaceEvent::Refused {
                track: 1,
                refusal: Refusal::NoMotion,
            }),
            t0,
        );
        assert_eq!(
            (m.screen, m.decline_reason.as_str()),
            (Screen::Declined, "not_live")
        );
        m.dismiss();
        m.on_event(
            &KioskEvent::PayCodeRefused {
                reason: "pay_code_used".into(),
                message: "used".into(),
            },
            t0,
        );
        assert_eq!(m.decline_reason, "pay_code_used");
        assert_eq!(
            decline_code("offline_insufficient_cached_balance"),
            "insufficient_funds"
        );
    }

    #[test]
    fn faults_take_the_screen_and_leave_when_fixed() {
        let t0 = Instant::now();
        let mut m = UiModel::new(Mode::Return);
        m.on_event(
            &KioskEvent::ScaleDisconnected {
                message: "connection refused".into(),
            },
            t0,
        );
        assert_eq!((m.screen, m.fault), (Screen::Fault, Some(Fault::Scale)));
        m.on_event(&KioskEvent::ScaleConnected { tare_g: 350 }, t0);
        assert_eq!((m.screen, m.fault), (Screen::Return, None));
        let mut m = UiModel::new(Mode::Pay);
        m.on_event(&KioskEvent::Online { online: false }, t0);
        assert_eq!(m.screen, Screen::Attract, "offline is a banner, not a stop");
        assert!(!m.online);
    }

    #[test]
    fn a_clean_plate_is_near_zero() {
        let t0 = Instant::now();
        let mut m = UiModel::new(Mode::Return);
        m.on_event(
            &KioskEvent::WasteRecorded {
                staff_id: Some(3),
                gross_g: 370,
                tare_g: 350,
                net_g: 20,
                queued: false,
                person_average_g: Some(80.0),
                canteen_average_g: Some(120.0),
                averages_from: "backend".into(),
                name: None,
            },
            t0,
        );
        assert!(m.ret.has_result && m.ret.clean_plate());
    }
}
