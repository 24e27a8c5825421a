//! Typed kiosk configuration: built-in defaults, then an optional TOML file, then
//! `CLEANPLATE_KIOSK_*` environment variables (nested fields with `__`, e.g.
//! `CLEANPLATE_KIOSK_SOURCE__FPS=15`), then command-line flags in the binary. Every
//! field has a default that runs the kiosk against a backend on localhost, so a
//! configuration file only lists what differs.

use std::path::{Path, PathBuf};

use figment::providers::{Env, Format, Serialized, Toml};
use figment::Figment;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::decide::DecisionConfig;
use crate::scale::StabilityConfig;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// At the entrance: identify and charge.
    Pay,
    /// At the tray return: identify and record plate waste from the scale.
    Return,
    /// Both on one device.
    Both,
    /// The enrolment desk: the camera serves template captures, nobody is charged.
    Desk,
}

impl Mode {
    pub fn pays(self) -> bool {
        matches!(self, Mode::Pay | Mode::Both)
    }

    pub fn weighs(self) -> bool {
        matches!(self, Mode::Return | Mode::Both)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SourceKind {
    Replay,
    Camera,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SourceConfig {
    pub kind: SourceKind,
    /// Replay: a folder of images (sorted by name), a printf-style numbered pattern
    /// (`frames/%04d.jpg`), or one image file.
    pub replay: Option<PathBuf>,
    /// Replay: start again after the last frame.
    pub looped: bool,
    /// Frames per second the source delivers (replay paces itself to this).
    pub fps: f32,
    /// Camera: V4L2 device index, and the resolution asked for.
    pub camera_index: u32,
    pub width: u32,
    pub height: u32,
    /// Frames larger than this (longer side, pixels) are scaled down before analysis, as
    /// a camera at `width`x`height` would deliver them.
    pub max_side: u32,
}

impl Default for SourceConfig {
    fn default() -> Self {
        SourceConfig {
            kind: SourceKind::Replay,
            replay: None,
            looped: false,
            fps: 10.0,
            camera_index: 0,
            width: 640,
            height: 480,
            max_side: 640,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ScaleConfig {
    /// `tcp://HOST:PORT` (a networked scale or the simulator) or a serial device path
    /// (`/dev/ttyUSB0`). None: no scale.
    pub port: Option<String>,
    pub baud: u32,
    /// The empty tray's weight, subtracted from every gross reading.
    pub tare_g: i64,
    pub stability: StabilityConfig,
    /// A weighing and an identification belong together when this close in time.
    pub pair_window_ms: u64,
}

impl Default for ScaleConfig {
    fn default() -> Self {
        ScaleConfig {
            port: None,
            baud: 9600,
            tare_g: 350,
            stability: StabilityConfig::default(),
            pair_window_ms: 15_000,
        }
    }
}

/// A meal period in canteen-local time (`meal`, `start` "HH:MM" inclusive, `end` exclusive),
/// the same shape the backend reports.
pub use wire::MealWindow;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct KioskConfig {
    /// The backend's base URL.
    pub backend_url: String,
    /// Local state: the SQLite outbox, the encrypted gallery cache, the device token.
    pub data_dir: PathBuf,
    /// Where the device token is kept (0600). Default: `<data_dir>/device_token`.
    pub token_path: Option<PathBuf>,
    /// A human name for this device, sent when registering.
    pub name: String,
    pub mode: Mode,
    /// A front end's language: `zh_CN` or `en`.
    pub language: String,
    pub source: SourceConfig,
    /// The face models; default: `models/dist` found from the working directory.
    pub models_dir: Option<PathBuf>,
    pub decision: DecisionConfig,
    /// The gallery's match policy (Euclidean distance between dlib descriptors).
    pub match_threshold: f32,
    pub match_margin: f32,
    /// Run the passive liveness models on every face.
    pub liveness: bool,
    /// Faces with eyes closer than this (pixels) get "come closer" instead of a decision.
    pub min_eye_distance_px: f32,
    /// Look for QR pay codes on the frames.
    pub paycodes: bool,
    /// AES-256-GCM key of the gallery cache, 64 hex digits. Empty: a random key is made
    /// once and kept in `<data_dir>/gallery.key` (0600).
    pub gallery_key_hex: String,
    /// Offline: at most this much (yuan) per person charged while the backend is away.
    pub offline_limit: Decimal,
    /// Offline: the price assumed for a meal when the canteen's price list (fetched from
    /// the backend) has none for it, or was never fetched.
    pub offline_meal_price: Decimal,
    /// The canteen's offset from UTC and meal windows: only a fallback for a kiosk that has
    /// never fetched its canteen's settings from the backend (see `canteen.rs`).
    pub utc_offset_minutes: i32,
    pub meal_windows: Vec<MealWindow>,
    pub scale: ScaleConfig,
    /// Background sync (outbox, gallery) period.
    pub sync_interval_ms: u64,
    /// How often the sync thread re-reads everyone's balances (a paged snapshot) for
    /// offline decisions, and the canteen's settings.
    pub balances_interval_ms: u64,
    pub canteen_interval_ms: u64,
    /// Page size of the balances snapshot.
    pub balances_page: i64,
    /// HTTP timeouts: connecting, and the whole exchange.
    pub connect_timeout_ms: u64,
    pub request_timeout_ms: u64,
}

impl Default for KioskConfig {
    fn default() -> Self {
        let w = |meal, start: &str, end: &str| MealWindow {
            meal,
            start: start.into(),
            end: end.into(),
        };
        KioskConfig {
            backend_url: "http://127.0.0.1:8080".into(),
            data_dir: PathBuf::from(".data/kiosk"),
            token_path: None,
            name: "kiosk".into(),
            mode: Mode::Pay,
            language: "zh_CN".into(),
            source: SourceConfig::default(),
            models_dir: None,
            decision: DecisionConfig::default(),
            match_threshold: models::gallery::MatchPolicy::default().threshold,
            match_margin: models::gallery::MatchPolicy::default().margin,
            liveness: true,
            min_eye_distance_px: 40.0,
            paycodes: true,
            gallery_key_hex: String::new(),
            offline_limit: Decimal::new(3000, 2),
            offline_meal_price: Decimal::new(1500, 2),
            utc_offset_minutes: 480,
            meal_windows: vec![
                w(wire::Meal::Breakfast, "06:30", "09:30"),
                w(wire::Meal::Lunch, "11:00", "13:30"),
                w(wire::Meal::Dinner, "17:00", "19:30"),
            ],
            scale: ScaleConfig::default(),
            sync_interval_ms: 2_000,
            balances_interval_ms: 30_000,
            canteen_interval_ms: 60_000,
            balances_page: 1_000,
            connect_timeout_ms: 1_000,
            request_timeout_ms: 5_000,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("configuration: {0}")]
    Load(#[from] Box<figment::Error>),
    #[error("configuration: {0}")]
    Invalid(String),
}

impl KioskConfig {
    /// Defaults, then `file` (which must exist if given), then the environment.
    pub fn load(file: Option<&Path>) -> Result<KioskConfig, ConfigError> {
        let mut fig = Figment::from(Serialized::defaults(KioskConfig::default()));
        if let Some(f) = file {
            if !f.exists() {
                return Err(ConfigError::Invalid(format!(
                    "config file {} does not exist",
                    f.display()
                )));
            }
            fig = fig.merge(Toml::file(f));
        }
        fig = fig.merge(Env::prefixed("CLEANPLATE_KIOSK_").split("__"));
        let c: KioskConfig = fig.extract().map_err(Box::new)?;
        c.validate()?;
        Ok(c)
    }

    /// The settings saved on the kiosk's own settings screen (`<data_dir>/settings.toml`,
    /// see `settings.rs`) over the file and the environment. Binaries call it once the data
    /// directory is final and before their other flags, so a flag still wins.
    pub fn apply_local_settings(&mut self) -> Result<(), ConfigError> {
        let saved = crate::settings::LocalSettings::load(&self.data_dir)
            .map_err(|e| ConfigError::Invalid(e.to_string()))?;
        if let Some(u) = saved.backend_url {
            self.backend_url = u;
        }
        if let Some(m) = saved.mode {
            self.mode = m;
        }
        if let Some(l) = saved.language {
            self.language = l;
        }
        if let Some(p) = saved.scale.port {
            self.scale.port = Some(p);
        }
        if let Some(t) = saved.scale.tare_g {
            self.scale.tare_g = t;
        }
        self.validate()
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |m: String| Err(ConfigError::Invalid(m));
        crate::settings::parse_language(&self.language)
            .map_err(|e| ConfigError::Invalid(e.to_string()))?;
        crate::settings::check_tare(self.scale.tare_g)
            .map_err(|e| ConfigError::Invalid(format!("scale.tare_g: {e}")))?;
        if !(self.source.fps.is_finite() && self.source.fps >= 0.0) {
            return bad(format!(
                "source.fps must be a non-negative number, got {}",
                self.source.fps
            ));
        }
        models::gallery::MatchPolicy::new(self.match_threshold, self.match_margin)
            .map_err(|e| ConfigError::Invalid(e.to_string()))?;
        if self.decision.frames_to_agree == 0 {
            return bad("decision.frames_to_agree must be at least 1".into());
        }
        if self.offline_limit.is_sign_negative() || self.offline_meal_price.is_sign_negative() {
            return bad("offline_limit and offline_meal_price must not be negative".into());
        }
        for (what, yuan) in [
            ("offline_limit", self.offline_limit),
            ("offline_meal_price", self.offline_meal_price),
        ] {
            if let Err(e) = ledger::Fen::from_yuan(yuan) {
                return bad(format!("{what}: {e}"));
            }
        }
        crate::canteen::CanteenSettings::from_config(self)
            .map_err(|e| ConfigError::Invalid(e.to_string()))?;
        if !(1..=5_000).contains(&self.balances_page) {
            return bad(format!(
                "balances_page must be 1-5000, got {}",
                self.balances_page
            ));
        }
        if !self.gallery_key_hex.is_empty() {
            self.gallery_key()?;
        }
        Ok(())
    }

    pub fn token_path(&self) -> PathBuf {
        self.token_path
            .clone()
            .unwrap_or_else(|| self.data_dir.join("device_token"))
    }

    pub fn match_policy(&self) -> models::gallery::MatchPolicy {
        models::gallery::MatchPolicy {
            threshold: self.match_threshold,
            margin: self.match_margin,
        }
    }

    /// The configured gallery key, if any.
    pub fn gallery_key(&self) -> Result<Option<[u8; 32]>, ConfigError> {
        if self.gallery_key_hex.is_empty() {
            return Ok(None);
        }
        let bytes = hex::decode(self.gallery_key_hex.trim())
            .map_err(|_| ConfigError::Invalid("gallery_key_hex must be 64 hex digits".into()))?;
        let key: [u8; 32] = bytes.try_into().map_err(|_| {
            ConfigError::Invalid("gallery_key_hex must be 64 hex digits (32 bytes)".into())
        })?;
        Ok(Some(key))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_validate_and_a_file_overrides() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("k.toml");
        std::fs::write(&f, "mode = \"return\"\nbackend_url = \"http://10.0.0.1:9\"\n[source]\nfps = 5.0\n[scale]\ntare_g = 400\n").unwrap();
        let c = KioskConfig::load(Some(&f)).unwrap();
        assert_eq!(c.mode, Mode::Return);
        assert_eq!(c.source.fps, 5.0);
        assert_eq!(c.scale.tare_g, 400);
        assert_eq!(c.source.width, 640, "unlisted fields keep their defaults");
        assert!(KioskConfig::load(Some(&dir.path().join("missing.toml"))).is_err());
    }

    #[test]
    fn bad_values_are_refused_with_a_message() {
        let c = KioskConfig {
            match_threshold: f32::NAN,
            ..Default::default()
        };
        assert!(c.validate().is_err());
        let c = KioskConfig {
            gallery_key_hex: "abc".into(),
            ..Default::default()
        };
        assert!(c.validate().unwrap_err().to_string().contains("64 hex"));
        let mut c = KioskConfig::default();
        c.meal_windows[0].start = "7h".into();
        assert!(c.validate().is_err());
        let mut c = KioskConfig::default();
        c.meal_windows[0].end = "12:00".into();
        assert!(
            c.validate().unwrap_err().to_string().contains("overlap"),
            "breakfast into lunch"
        );
        let c = KioskConfig {
            offline_limit: Decimal::new(30005, 3),
            ..Default::default()
        };
        assert!(c
            .validate()
            .unwrap_err()
            .to_string()
            .contains("offline_limit"));
    }

    #[test]
    fn meals_follow_the_canteen_clock() {
        let c = crate::canteen::CanteenSettings::from_config(&KioskConfig::default()).unwrap();
        // 04:30 UTC is 12:30 in UTC+8: lunch of that day.
        let t = time::macros::datetime!(2026-11-26 04:30 UTC);
        let slot = c.meal_at(t).unwrap();
        assert_eq!(
            (slot.meal, slot.local_date.to_string()),
            (ledger::MealKind::Lunch, "2026-11-26".to_string())
        );
        // 17:00 UTC is 01:00 the next day: no meal.
        let t = time::macros::datetime!(2026-11-26 17:00 UTC);
        assert_eq!(c.meal_at(t), None);
    }
}
