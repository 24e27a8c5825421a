//! The canteen's settings as the kiosk applies them on its own clock: the UTC offset and
//! meal windows (for "one charge per person per meal", also offline) and the price list
//! (for the offline allowance). They come from the backend (`GET /api/v1/canteens/{id}`,
//! the kiosk's own canteen), are kept in `<data_dir>/canteen.json` so a kiosk that starts
//! offline still follows the canteen's rules, and fall back to the kiosk configuration
//! (`utc_offset_minutes`, `meal_windows`, `offline_meal_price`) only on a kiosk that has
//! never reached its backend. [`SettingsSource`] says which of the three is in force.

use std::path::Path;

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use wire::Meal;

use crate::config::{parse_hhmm, KioskConfig, MealWindow};
use crate::gallery_cache::{read_private, write_private, CacheError};

/// `GET /api/v1/canteens/{id}` as the backend answers it (its `CanteenOut`; the type is not
/// in `wire`, so only the fields the kiosk uses are read, and unknown fields are ignored).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CanteenInfo {
    pub id: i64,
    #[serde(default)]
    pub name: String,
    pub utc_offset_minutes: i32,
    #[serde(default, with = "rust_decimal::serde::str_option")]
    pub per_transaction_cap: Option<Decimal>,
    #[serde(default, with = "rust_decimal::serde::str_option")]
    pub daily_cap: Option<Decimal>,
    pub windows: Vec<MealWindow>,
    pub prices: Vec<MealPrice>,
}

/// The price of a meal for a staff category.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MealPrice {
    pub category: String,
    pub meal: Meal,
    #[serde(with = "rust_decimal::serde::str")]
    pub price: Decimal,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SettingsSource {
    /// Fetched from the backend during this run.
    Backend,
    /// Read from `canteen.json`, as last fetched (the backend has not answered yet).
    Cache,
    /// The kiosk configuration: this kiosk has never fetched its canteen's settings.
    Config,
}

#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    #[error("canteen settings: {0}")]
    Invalid(String),
    #[error("canteen settings file {path}: {reason}")]
    File { path: String, reason: String },
    #[error(transparent)]
    Io(#[from] CacheError),
}

/// What the kiosk applies.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CanteenSettings {
    pub canteen_id: Option<i64>,
    pub utc_offset_minutes: i32,
    pub windows: Vec<MealWindow>,
    pub prices: Vec<MealPrice>,
    /// When the backend last answered with these settings (kiosk clock, ms); None: config.
    pub fetched_ms: Option<i64>,
    #[serde(skip, default = "cache_source")]
    pub source: SettingsSource,
}

fn cache_source() -> SettingsSource {
    SettingsSource::Cache
}

impl CanteenSettings {
    /// The kiosk configuration's fallback values (a kiosk that never reached its backend).
    pub fn from_config(cfg: &KioskConfig) -> CanteenSettings {
        CanteenSettings {
            canteen_id: None,
            utc_offset_minutes: cfg.utc_offset_minutes,
            windows: cfg.meal_windows.clone(),
            prices: Vec::new(),
            fetched_ms: None,
            source: SettingsSource::Config,
        }
    }

    /// The backend's answer, checked: times must be `HH:MM`, the offset within ±18 h.
    pub fn from_backend(info: CanteenInfo, now_ms: i64) -> Result<CanteenSettings, SettingsError> {
        let s = CanteenSettings {
            canteen_id: Some(info.id),
            utc_offset_minutes: info.utc_offset_minutes,
            windows: info.windows,
            prices: info.prices,
            fetched_ms: Some(now_ms),
            source: SettingsSource::Backend,
        };
        s.validate()?;
        Ok(s)
    }

    fn validate(&self) -> Result<(), SettingsError> {
        if self.utc_offset_minutes.abs() > 18 * 60 {
            return Err(SettingsError::Invalid(format!(
                "utc_offset_minutes {} is beyond ±18 h",
                self.utc_offset_minutes
            )));
        }
        for w in &self.windows {
            if parse_hhmm(&w.start).is_none() || parse_hhmm(&w.end).is_none() {
                return Err(SettingsError::Invalid(format!(
                    "meal window {:?} {}-{}: times must be HH:MM",
                    w.meal, w.start, w.end
                )));
            }
        }
        if self.prices.iter().any(|p| p.price.is_sign_negative()) {
            return Err(SettingsError::Invalid("a negative price".into()));
        }
        Ok(())
    }

    /// The settings last saved, if any. A file that is unreadable or malformed is an error
    /// (the caller decides to fall back), never half-applied.
    pub fn load(path: &Path) -> Result<Option<CanteenSettings>, SettingsError> {
        let Some(bytes) = read_private(path)? else {
            return Ok(None);
        };
        let mut s: CanteenSettings =
            serde_json::from_slice(&bytes).map_err(|e| SettingsError::File {
                path: path.display().to_string(),
                reason: e.to_string(),
            })?;
        s.source = SettingsSource::Cache;
        s.validate().map_err(|e| SettingsError::File {
            path: path.display().to_string(),
            reason: e.to_string(),
        })?;
        Ok(Some(s))
    }

    /// Saves atomically (a crash leaves the old file or the new one).
    pub fn save(&self, path: &Path) -> Result<(), SettingsError> {
        let json = serde_json::to_vec_pretty(self).map_err(|e| SettingsError::File {
            path: path.display().to_string(),
            reason: e.to_string(),
        })?;
        write_private(path, &json)?;
        Ok(())
    }

    /// The same rules (what changed matters, not when it was fetched).
    pub fn same_rules(&self, other: &CanteenSettings) -> bool {
        self.canteen_id == other.canteen_id
            && self.utc_offset_minutes == other.utc_offset_minutes
            && self.windows == other.windows
            && self.prices == other.prices
    }

    pub fn utc_offset(&self) -> time::UtcOffset {
        time::UtcOffset::from_whole_seconds(self.utc_offset_minutes * 60)
            .unwrap_or(time::UtcOffset::UTC)
    }

    /// `at` in canteen-local time.
    pub fn local(&self, at: OffsetDateTime) -> OffsetDateTime {
        at.to_offset(self.utc_offset())
    }

    /// The canteen-local date and meal period of `at`, if it falls in a window
    /// (start inclusive, end exclusive, as the backend decides).
    pub fn meal_at(&self, at: OffsetDateTime) -> (String, Option<Meal>) {
        let local = self.local(at);
        let date = format!(
            "{:04}-{:02}-{:02}",
            local.year(),
            u8::from(local.month()),
            local.day()
        );
        let minute = local.hour() as u32 * 60 + local.minute() as u32;
        let meal = self.windows.iter().find_map(|w| {
            let (s, e) = (parse_hhmm(&w.start)?, parse_hhmm(&w.end)?);
            (s <= minute && minute < e).then_some(w.meal)
        });
        (date, meal)
    }

    /// The price the offline allowance assumes for a meal: the canteen's price for the
    /// person's category; for an unknown category the dearest price of that meal (never
    /// under-estimate what the backend will charge); `fallback` when the canteen lists no
    /// price for the meal (or there is no meal period, or the settings are the config's).
    pub fn offline_price(
        &self,
        category: Option<&str>,
        meal: Option<Meal>,
        fallback: Decimal,
    ) -> Decimal {
        let Some(meal) = meal else {
            return fallback;
        };
        let of_meal = self.prices.iter().filter(|p| p.meal == meal);
        if let Some(c) = category {
            if let Some(p) = of_meal.clone().find(|p| p.category == c) {
                return p.price;
            }
        }
        of_meal.map(|p| p.price).max().unwrap_or(fallback)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info() -> CanteenInfo {
        serde_json::from_str(
            r#"{"id":3,"name":"North","utc_offset_minutes":-300,"per_transaction_cap":"50.00","daily_cap":null,
                "windows":[{"meal":"lunch","start":"11:00","end":"14:00"},{"meal":"dinner","start":"17:00","end":"24:00"}],
                "prices":[{"category":"regular","meal":"lunch","price":"15.00"},{"category":"contractor","meal":"lunch","price":"20.00"}],
                "something_new":true}"#,
        )
        .unwrap()
    }

    #[test]
    fn the_backends_answer_sets_the_clock_windows_and_prices() {
        let s = CanteenSettings::from_backend(info(), 1).unwrap();
        assert_eq!(s.source, SettingsSource::Backend);
        // 17:30 UTC is 12:30 at UTC-5: lunch.
        let t = time::macros::datetime!(2026-11-26 17:30 UTC);
        assert_eq!(s.meal_at(t), ("2026-11-26".into(), Some(Meal::Lunch)));
        // 04:59 UTC on the 27th is 23:59 on the 26th locally: dinner (end 24:00 exclusive).
        let t = time::macros::datetime!(2026-11-27 04:59 UTC);
        assert_eq!(s.meal_at(t), ("2026-11-26".into(), Some(Meal::Dinner)));
        let fallback = Decimal::new(999, 2);
        assert_eq!(
            s.offline_price(Some("regular"), Some(Meal::Lunch), fallback),
            Decimal::new(1500, 2)
        );
        assert_eq!(
            s.offline_price(Some("intern"), Some(Meal::Lunch), fallback),
            Decimal::new(2000, 2),
            "unknown category: the dearest lunch"
        );
        assert_eq!(
            s.offline_price(None, Some(Meal::Dinner), fallback),
            fallback
        );
        assert_eq!(s.offline_price(None, None, fallback), fallback);
    }

    #[test]
    fn bad_settings_are_refused() {
        let mut i = info();
        i.windows[0].start = "noon".into();
        assert!(CanteenSettings::from_backend(i, 1).is_err());
        let mut i = info();
        i.utc_offset_minutes = 20 * 60;
        assert!(CanteenSettings::from_backend(i, 1).is_err());
    }

    #[test]
    fn saved_settings_come_back_as_the_cache_and_a_broken_file_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("canteen.json");
        assert!(CanteenSettings::load(&path).unwrap().is_none());
        let s = CanteenSettings::from_backend(info(), 42).unwrap();
        s.save(&path).unwrap();
        let back = CanteenSettings::load(&path).unwrap().unwrap();
        assert_eq!(back.source, SettingsSource::Cache);
        assert!(back.same_rules(&s));
        assert_eq!(back.fetched_ms, Some(42));
        std::fs::write(&path, b"{\"canteen_id\": 1").unwrap();
        let e = CanteenSettings::load(&path).unwrap_err().to_string();
        assert!(e.contains("canteen.json"), "{e}");
    }

    #[test]
    fn the_config_is_the_fallback() {
        let s = CanteenSettings::from_config(&KioskConfig::default());
        assert_eq!(s.source, SettingsSource::Config);
        assert_eq!(s.utc_offset_minutes, 480);
        let t = time::macros::datetime!(2026-11-26 04:30 UTC);
        assert_eq!(s.meal_at(t).1, Some(Meal::Lunch));
    }
}
