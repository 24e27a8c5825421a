//! The canteen's settings as the kiosk applies them on its own clock: the UTC offset and
//! meal windows (for "one charge per person per meal", also offline) and the price list
//! (for the offline allowance). They come from the backend (`GET /api/v1/canteens/{id}`,
//! the kiosk's own canteen, a [`wire::Canteen`]), are kept in `<data_dir>/canteen.json` so a
//! kiosk that starts offline still follows the canteen's rules, and fall back to the kiosk
//! configuration (`utc_offset_minutes`, `meal_windows`, `offline_meal_price`) only on a kiosk
//! that has never reached its backend. [`SettingsSource`] says which of the three is in force.
//!
//! The rules themselves are `ledger`'s, the same code the backend decides with: windows are
//! read by `ledger::meal::parse_hhmm` into a [`ledger::Schedule`] (which refuses overlaps),
//! and money is whole fen ([`ledger::Fen`], which refuses sub-fen amounts).

use std::path::Path;

use ledger::meal::{MealError, MealSlot};
use ledger::{Fen, MealKind, MealPeriod, MoneyError, Schedule};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use wire::{Meal, MealPrice, MealWindow};

use crate::config::KioskConfig;
use crate::gallery_cache::{read_private, write_private, CacheError};

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

/// The meal of a `ledger` slot as the wire names it.
pub fn wire_meal(m: MealKind) -> Meal {
    match m {
        MealKind::Breakfast => Meal::Breakfast,
        MealKind::Lunch => Meal::Lunch,
        MealKind::Dinner => Meal::Dinner,
    }
}

fn meal_kind(m: Meal) -> MealKind {
    match m {
        Meal::Breakfast => MealKind::Breakfast,
        Meal::Lunch => MealKind::Lunch,
        Meal::Dinner => MealKind::Dinner,
    }
}

/// What the kiosk applies. Built only from checked input (the configuration, the backend's
/// answer, the saved file), so its schedule and prices are always usable.
#[derive(Debug, Clone, PartialEq)]
pub struct CanteenSettings {
    pub canteen_id: Option<i64>,
    /// The canteen's name ("" until the backend told it).
    pub name: String,
    pub prices: Vec<MealPrice>,
    /// When the backend last answered with these settings (kiosk clock, ms); None: config.
    pub fetched_ms: Option<i64>,
    pub source: SettingsSource,
    utc_offset_minutes: i32,
    windows: Vec<MealWindow>,
    schedule: Schedule,
}

/// `canteen.json`: what was fetched, as it was fetched.
#[derive(Serialize, Deserialize)]
struct Saved {
    canteen_id: Option<i64>,
    #[serde(default)]
    name: String,
    utc_offset_minutes: i32,
    windows: Vec<MealWindow>,
    prices: Vec<MealPrice>,
    fetched_ms: Option<i64>,
}

impl CanteenSettings {
    fn build(saved: Saved, source: SettingsSource) -> Result<CanteenSettings, SettingsError> {
        let invalid = |m: String| SettingsError::Invalid(m);
        if saved.utc_offset_minutes.abs() > 18 * 60 {
            return Err(invalid(format!(
                "utc_offset_minutes {} is beyond ±18 h",
                saved.utc_offset_minutes
            )));
        }
        let periods = saved
            .windows
            .iter()
            .map(|w| MealPeriod::parse(meal_kind(w.meal), &w.start, &w.end))
            .collect::<Result<Vec<_>, MealError>>()
            .map_err(|e| invalid(format!("meal windows: {e}")))?;
        let schedule = Schedule::new(saved.utc_offset_minutes, periods)
            .map_err(|e| invalid(format!("meal windows: {e}")))?;
        for p in &saved.prices {
            if p.price.is_sign_negative() {
                return Err(invalid("a negative price".into()));
            }
            Fen::from_yuan(p.price)
                .map_err(|e| invalid(format!("price of {} {:?}: {e}", p.category, p.meal)))?;
        }
        Ok(CanteenSettings {
            canteen_id: saved.canteen_id,
            name: saved.name,
            prices: saved.prices,
            fetched_ms: saved.fetched_ms,
            source,
            utc_offset_minutes: saved.utc_offset_minutes,
            windows: saved.windows,
            schedule,
        })
    }

    /// The kiosk configuration's fallback values (a kiosk that never reached its backend).
    pub fn from_config(cfg: &KioskConfig) -> Result<CanteenSettings, SettingsError> {
        Self::build(
            Saved {
                canteen_id: None,
                name: String::new(),
                utc_offset_minutes: cfg.utc_offset_minutes,
                windows: cfg.meal_windows.clone(),
                prices: Vec::new(),
                fetched_ms: None,
            },
            SettingsSource::Config,
        )
    }

    /// The backend's answer, checked: times must be `HH:MM` in non-overlapping windows, the
    /// offset within ±18 h, prices whole fen and not negative.
    pub fn from_backend(
        info: wire::Canteen,
        now_ms: i64,
    ) -> Result<CanteenSettings, SettingsError> {
        Self::build(
            Saved {
                canteen_id: Some(info.id),
                name: info.name,
                utc_offset_minutes: info.utc_offset_minutes,
                windows: info.windows,
                prices: info.prices,
                fetched_ms: Some(now_ms),
            },
            SettingsSource::Backend,
        )
    }

    /// The settings last saved, if any. A file that is unreadable or malformed is an error
    /// (the caller decides to fall back), never half-applied.
    pub fn load(path: &Path) -> Result<Option<CanteenSettings>, SettingsError> {
        let Some(bytes) = read_private(path)? else {
            return Ok(None);
        };
        let file_error = |reason: String| SettingsError::File {
            path: path.display().to_string(),
            reason,
        };
        let saved: Saved = serde_json::from_slice(&bytes).map_err(|e| file_error(e.to_string()))?;
        Self::build(saved, SettingsSource::Cache)
            .map(Some)
            .map_err(|e| file_error(e.to_string()))
    }

    /// Saves atomically (a crash leaves the old file or the new one).
    pub fn save(&self, path: &Path) -> Result<(), SettingsError> {
        let saved = Saved {
            canteen_id: self.canteen_id,
            name: self.name.clone(),
            utc_offset_minutes: self.utc_offset_minutes,
            windows: self.windows.clone(),
            prices: self.prices.clone(),
            fetched_ms: self.fetched_ms,
        };
        let json = serde_json::to_vec_pretty(&saved).map_err(|e| SettingsError::File {
            path: path.display().to_string(),
            reason: e.to_string(),
        })?;
        write_private(path, &json)?;
        Ok(())
    }

    /// The same rules (what changed matters, not when it was fetched).
    pub fn same_rules(&self, other: &CanteenSettings) -> bool {
        self.canteen_id == other.canteen_id
            && self.name == other.name
            && self.utc_offset_minutes == other.utc_offset_minutes
            && self.windows == other.windows
            && self.prices == other.prices
    }

    pub fn utc_offset_minutes(&self) -> i32 {
        self.utc_offset_minutes
    }

    pub fn windows(&self) -> &[MealWindow] {
        &self.windows
    }

    pub fn utc_offset(&self) -> time::UtcOffset {
        time::UtcOffset::from_whole_seconds(self.utc_offset_minutes * 60)
            .unwrap_or(time::UtcOffset::UTC)
    }

    /// `at` in canteen-local time.
    pub fn local(&self, at: OffsetDateTime) -> OffsetDateTime {
        at.to_offset(self.utc_offset())
    }

    /// The meal period `at` falls in and its canteen-local day (start inclusive, end
    /// exclusive), by `ledger`'s schedule as the backend decides.
    pub fn meal_at(&self, at: OffsetDateTime) -> Option<MealSlot> {
        let ms = (at.unix_timestamp_nanos() / 1_000_000) as i64;
        // Only a time beyond the year 9999 has no slot by error; it has no meal either.
        self.schedule.locate(ms).ok().flatten()
    }

    /// The price the offline allowance assumes for a meal: the canteen's price for the
    /// person's category; for an unknown category the dearest price of that meal (never
    /// under-estimate what the backend will charge); `fallback` when the canteen lists no
    /// price for the meal (or there is no meal period, or the settings are the config's).
    pub fn offline_price(
        &self,
        category: Option<&str>,
        meal: Option<MealKind>,
        fallback: Fen,
    ) -> Result<Fen, MoneyError> {
        let Some(meal) = meal.map(wire_meal) else {
            return Ok(fallback);
        };
        let of_meal = self.prices.iter().filter(|p| p.meal == meal);
        if let Some(c) = category {
            if let Some(p) = of_meal.clone().find(|p| p.category == c) {
                return Fen::from_yuan(p.price);
            }
        }
        match of_meal.map(|p| p.price).max() {
            Some(p) => Fen::from_yuan(p),
            None => Ok(fallback),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info() -> wire::Canteen {
        serde_json::from_str(
            r#"{"id":3,"name":"North","utc_offset_minutes":-300,"per_transaction_cap":"50.00","daily_cap":null,
                "windows":[{"meal":"lunch","start":"11:00","end":"14:00"},{"meal":"dinner","start":"17:00","end":"24:00"}],
                "prices":[{"category":"regular","meal":"lunch","price":"15.00"},{"category":"contractor","meal":"lunch","price":"20.00"}],
                "something_new":true}"#,
        )
        .unwrap()
    }

    fn slot(meal: MealKind, date: time::Date) -> Option<MealSlot> {
        Some(MealSlot {
            meal,
            local_date: date,
        })
    }

    #[test]
    fn the_backends_answer_sets_the_clock_windows_and_prices() {
        let s = CanteenSettings::from_backend(info(), 1).unwrap();
        assert_eq!(s.source, SettingsSource::Backend);
        assert_eq!(s.name, "North");
        // 17:30 UTC is 12:30 at UTC-5: lunch.
        let t = time::macros::datetime!(2026-11-26 17:30 UTC);
        assert_eq!(
            s.meal_at(t),
            slot(MealKind::Lunch, time::macros::date!(2026 - 11 - 26))
        );
        // 04:59 UTC on the 27th is 23:59 on the 26th locally: dinner (end 24:00 exclusive).
        let t = time::macros::datetime!(2026-11-27 04:59 UTC);
        assert_eq!(
            s.meal_at(t),
            slot(MealKind::Dinner, time::macros::date!(2026 - 11 - 26))
        );
        let fallback = Fen(999);
        assert_eq!(
            s.offline_price(Some("regular"), Some(MealKind::Lunch), fallback),
            Ok(Fen(1500))
        );
        assert_eq!(
            s.offline_price(Some("intern"), Some(MealKind::Lunch), fallback),
            Ok(Fen(2000)),
            "unknown category: the dearest lunch"
        );
        assert_eq!(
            s.offline_price(None, Some(MealKind::Dinner), fallback),
            Ok(fallback)
        );
        assert_eq!(s.offline_price(None, None, fallback), Ok(fallback));
    }

    #[test]
    fn bad_settings_are_refused() {
        let mut i = info();
        i.windows[0].start = "noon".into();
        assert!(CanteenSettings::from_backend(i, 1).is_err());
        let mut i = info();
        i.utc_offset_minutes = 20 * 60;
        assert!(CanteenSettings::from_backend(i, 1).is_err());
        // Two windows covering one minute: the backend refuses those, and so does the kiosk.
        let mut i = info();
        i.windows[1].start = "13:00".into();
        assert!(CanteenSettings::from_backend(i, 1).is_err());
        // A price in fractions of a fen is not money.
        let mut i = info();
        i.prices[0].price = rust_decimal::Decimal::new(15005, 3);
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
        let s = CanteenSettings::from_config(&KioskConfig::default()).unwrap();
        assert_eq!(s.source, SettingsSource::Config);
        assert_eq!(s.utc_offset_minutes(), 480);
        let t = time::macros::datetime!(2026-11-26 04:30 UTC);
        assert_eq!(s.meal_at(t).map(|m| m.meal), Some(MealKind::Lunch));
    }
}
