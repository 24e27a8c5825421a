//! Meal periods: each canteen has breakfast, lunch and dinner windows in its local time. A charge
//! belongs to the period that contains the *kiosk's* timestamp, not the time the backend received
//! it, so a charge recorded offline at 12:10 and uploaded at 18:00 is still a lunch of that day.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;
use time::{Date, OffsetDateTime, UtcOffset};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MealKind {
    Breakfast,
    Lunch,
    Dinner,
}

impl MealKind {
    pub const ALL: [MealKind; 3] = [MealKind::Breakfast, MealKind::Lunch, MealKind::Dinner];

    pub fn as_str(self) -> &'static str {
        match self {
            MealKind::Breakfast => "breakfast",
            MealKind::Lunch => "lunch",
            MealKind::Dinner => "dinner",
        }
    }
}

impl fmt::Display for MealKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MealError {
    #[error("unknown meal {0:?} (expected breakfast, lunch or dinner)")]
    UnknownMeal(String),
    #[error("meal window {start}..{end} is not within one day or is empty")]
    BadWindow { start: u16, end: u16 },
    #[error("meal windows of {0} and {1} overlap")]
    Overlap(MealKind, MealKind),
    #[error("UTC offset of {0} minutes is not a real time zone offset")]
    BadOffset(i32),
    #[error("timestamp {0} ms is out of range")]
    BadTimestamp(i64),
    #[error("{0:?} is not HH:MM")]
    BadTime(String),
}

/// `"HH:MM"` local time to minutes after midnight; `"24:00"` is allowed (as a window's end).
/// The one reading of a meal window's times, for the backend's API and the kiosk alike.
pub fn parse_hhmm(s: &str) -> Result<u16, MealError> {
    let bad = || MealError::BadTime(s.to_string());
    let (h, m) = s.split_once(':').ok_or_else(bad)?;
    // `H:MM` or `HH:MM`, digits only (no sign, no spaces, no three-digit fields).
    let digits = |t: &str| t.bytes().all(|b| b.is_ascii_digit());
    if !(1..=2).contains(&h.len()) || m.len() != 2 || !digits(h) || !digits(m) {
        return Err(bad());
    }
    let h: u16 = h.parse().map_err(|_| bad())?;
    let m: u16 = m.parse().map_err(|_| bad())?;
    if m >= 60 || h > 24 || (h == 24 && m != 0) {
        return Err(bad());
    }
    Ok(h * 60 + m)
}

/// Minutes after midnight as `"HH:MM"` (the inverse of [`parse_hhmm`]).
pub fn fmt_hhmm(minute: u16) -> String {
    format!("{:02}:{:02}", minute / 60, minute % 60)
}

impl FromStr for MealKind {
    type Err = MealError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "breakfast" => Ok(MealKind::Breakfast),
            "lunch" => Ok(MealKind::Lunch),
            "dinner" => Ok(MealKind::Dinner),
            other => Err(MealError::UnknownMeal(other.to_string())),
        }
    }
}

/// A window `[start_minute, end_minute)` in minutes after local midnight.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MealPeriod {
    pub meal: MealKind,
    pub start_minute: u16,
    pub end_minute: u16,
}

impl MealPeriod {
    pub fn new(meal: MealKind, start_minute: u16, end_minute: u16) -> Result<Self, MealError> {
        if start_minute >= end_minute || end_minute > 24 * 60 {
            return Err(MealError::BadWindow {
                start: start_minute,
                end: end_minute,
            });
        }
        Ok(MealPeriod {
            meal,
            start_minute,
            end_minute,
        })
    }

    /// A window given as `"HH:MM"` strings (start inclusive, end exclusive).
    pub fn parse(meal: MealKind, start: &str, end: &str) -> Result<Self, MealError> {
        MealPeriod::new(meal, parse_hhmm(start)?, parse_hhmm(end)?)
    }

    fn contains(&self, minute: u16) -> bool {
        self.start_minute <= minute && minute < self.end_minute
    }
}

/// Where a timestamp falls: which meal on which local day.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MealSlot {
    pub meal: MealKind,
    pub local_date: Date,
}

/// A canteen's meal windows and its UTC offset.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Schedule {
    offset: UtcOffset,
    periods: Vec<MealPeriod>,
}

impl Schedule {
    /// Builds a schedule, refusing overlapping windows: a timestamp must map to at most one meal,
    /// or the same tray could be priced two ways.
    pub fn new(utc_offset_minutes: i32, mut periods: Vec<MealPeriod>) -> Result<Self, MealError> {
        let offset = UtcOffset::from_whole_seconds(utc_offset_minutes.saturating_mul(60))
            .map_err(|_| MealError::BadOffset(utc_offset_minutes))?;
        periods.sort_by_key(|p| p.start_minute);
        for w in periods.windows(2) {
            if w[0].end_minute > w[1].start_minute || w[0].meal == w[1].meal {
                return Err(MealError::Overlap(w[0].meal, w[1].meal));
            }
        }
        Ok(Schedule { offset, periods })
    }

    /// The usual Chinese canteen day (UTC+8): 06:30-09:30, 11:00-13:30, 17:00-19:30.
    pub fn default_china() -> Self {
        Schedule {
            offset: UtcOffset::from_hms(8, 0, 0).unwrap_or(UtcOffset::UTC),
            periods: vec![
                MealPeriod {
                    meal: MealKind::Breakfast,
                    start_minute: 390,
                    end_minute: 570,
                },
                MealPeriod {
                    meal: MealKind::Lunch,
                    start_minute: 660,
                    end_minute: 810,
                },
                MealPeriod {
                    meal: MealKind::Dinner,
                    start_minute: 1020,
                    end_minute: 1170,
                },
            ],
        }
    }

    pub fn periods(&self) -> &[MealPeriod] {
        &self.periods
    }

    /// The local calendar date of a UTC timestamp (milliseconds since the epoch).
    pub fn local_date(&self, ts_ms: i64) -> Result<Date, MealError> {
        Ok(self.local_time(ts_ms)?.date())
    }

    fn local_time(&self, ts_ms: i64) -> Result<OffsetDateTime, MealError> {
        let dt = OffsetDateTime::from_unix_timestamp_nanos(i128::from(ts_ms) * 1_000_000)
            .map_err(|_| MealError::BadTimestamp(ts_ms))?;
        Ok(dt.to_offset(self.offset))
    }

    /// The meal period containing `ts_ms`, if any.
    pub fn locate(&self, ts_ms: i64) -> Result<Option<MealSlot>, MealError> {
        let local = self.local_time(ts_ms)?;
        let minute = local.hour() as u16 * 60 + local.minute() as u16;
        Ok(self
            .periods
            .iter()
            .find(|p| p.contains(minute))
            .map(|p| MealSlot {
                meal: p.meal,
                local_date: local.date(),
            }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // 2026-11-26 04:10 UTC == 12:10 in UTC+8.
    const LUNCHTIME: i64 = 1_795_666_200_000;

    #[test]
    fn locates_lunch_in_local_time() {
        let s = Schedule::default_china();
        let slot = s.locate(LUNCHTIME).unwrap().unwrap();
        assert_eq!(slot.meal, MealKind::Lunch);
        assert_eq!(slot.local_date.to_string(), "2026-11-26");
    }

    #[test]
    fn outside_any_window() {
        let s = Schedule::default_china();
        // 15:00 local.
        assert_eq!(s.locate(LUNCHTIME + 170 * 60_000).unwrap(), None);
    }

    #[test]
    fn late_evening_utc_is_next_local_day() {
        let s = Schedule::default_china();
        // 2026-11-26 23:00 UTC is 07:00 on the 27th in UTC+8: breakfast of the 27th.
        let ts = LUNCHTIME + (18 * 60 + 50) * 60_000;
        let slot = s.locate(ts).unwrap().unwrap();
        assert_eq!(slot.meal, MealKind::Breakfast);
        assert_eq!(slot.local_date.to_string(), "2026-11-27");
    }

    #[test]
    fn reads_and_writes_hhmm() {
        assert_eq!(parse_hhmm("06:30"), Ok(390));
        assert_eq!(parse_hhmm("24:00"), Ok(1440));
        for bad in ["24:01", "7h", "12:60", "", "-1:00", "12"] {
            assert_eq!(
                parse_hhmm(bad),
                Err(MealError::BadTime(bad.into())),
                "{bad}"
            );
        }
        assert_eq!(fmt_hhmm(1170), "19:30");
        let p = MealPeriod::parse(MealKind::Dinner, "17:00", "24:00").unwrap();
        assert_eq!((p.start_minute, p.end_minute), (1020, 1440));
        assert!(MealPeriod::parse(MealKind::Dinner, "18:00", "17:00").is_err());
    }

    #[test]
    fn refuses_overlap_and_bad_windows() {
        let a = MealPeriod::new(MealKind::Breakfast, 400, 700).unwrap();
        let b = MealPeriod::new(MealKind::Lunch, 650, 800).unwrap();
        assert!(Schedule::new(480, vec![a, b]).is_err());
        assert!(MealPeriod::new(MealKind::Lunch, 800, 800).is_err());
        assert!(MealPeriod::new(MealKind::Lunch, 800, 1500).is_err());
        assert!(Schedule::new(100_000, vec![]).is_err());
    }
}
