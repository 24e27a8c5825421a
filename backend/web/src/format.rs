//! How numbers, money and times look on the pages: money as `¥1,234.50` (two decimals, the
//! sign in front), times in the canteen's own UTC offset. Pure functions, unit tested.

use ledger::Fen;
use time::{Date, OffsetDateTime, UtcOffset};

pub const DAY_MS: i64 = 24 * 3600 * 1000;

/// `¥1,234.50`, `-¥0.05`.
pub fn yuan(f: Fen) -> String {
    let sign = if f.0 < 0 { "-" } else { "" };
    let abs = f.0.unsigned_abs();
    format!("{sign}¥{}.{:02}", group(abs / 100), abs % 100)
}

/// `+¥5.00` for a credit, `-¥5.00` for a debit (statement lines).
/// Yuan as typed into a form (`15.00`): no sign, no grouping.
pub fn plain_yuan(f: Fen) -> String {
    let a = f.0.unsigned_abs();
    format!(
        "{}{}.{:02}",
        if f.0 < 0 { "-" } else { "" },
        a / 100,
        a % 100
    )
}

pub fn signed_yuan(f: Fen) -> String {
    if f.0 > 0 {
        format!("+{}", yuan(f))
    } else {
        yuan(f)
    }
}

/// Thousands separated by commas (both languages write numbers this way).
pub fn group(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

pub fn count(n: i64) -> String {
    let s = group(n.unsigned_abs());
    if n < 0 {
        format!("-{s}")
    } else {
        s
    }
}

fn offset(minutes: i32) -> UtcOffset {
    UtcOffset::from_whole_seconds(minutes * 60).unwrap_or(UtcOffset::UTC)
}

/// The canteen-local day number (days since 1970-01-01 in that offset) of an instant.
pub fn local_day(ms: i64, utc_offset_minutes: i32) -> i64 {
    (ms + utc_offset_minutes as i64 * 60_000).div_euclid(DAY_MS)
}

/// The first instant (UTC ms) of a canteen-local day number.
pub fn day_start_ms(day: i64, utc_offset_minutes: i32) -> i64 {
    day * DAY_MS - utc_offset_minutes as i64 * 60_000
}

pub fn day_date(day: i64) -> Date {
    OffsetDateTime::from_unix_timestamp(day * 86_400)
        .map(|t| t.date())
        .unwrap_or(Date::MIN)
}

/// `2026-12-03`.
pub fn iso_day(day: i64) -> String {
    let d = day_date(day);
    format!("{:04}-{:02}-{:02}", d.year(), d.month() as u8, d.day())
}

/// `12-03` (chart axes).
pub fn short_day(day: i64) -> String {
    let d = day_date(day);
    format!("{:02}-{:02}", d.month() as u8, d.day())
}

/// Parses `2026-12-03` into a day number.
pub fn parse_day(s: &str) -> Option<i64> {
    let mut it = s.trim().splitn(3, '-');
    let y: i32 = it.next()?.parse().ok()?;
    let m: u8 = it.next()?.parse().ok()?;
    let d: u8 = it.next()?.parse().ok()?;
    let date = Date::from_calendar_date(y, time::Month::try_from(m).ok()?, d).ok()?;
    Some((date - Date::from_calendar_date(1970, time::Month::January, 1).ok()?).whole_days())
}

/// `2026-12-03 12:10` in the canteen's offset.
pub fn local_time(ms: i64, utc_offset_minutes: i32) -> String {
    let Ok(t) = OffsetDateTime::from_unix_timestamp_nanos(ms as i128 * 1_000_000) else {
        return String::new();
    };
    let t = t.to_offset(offset(utc_offset_minutes));
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}",
        t.year(),
        t.month() as u8,
        t.day(),
        t.hour(),
        t.minute()
    )
}

/// `12:12:30` in the canteen's offset.
pub fn clock_time(ms: i64, utc_offset_minutes: i32) -> String {
    let Ok(t) = OffsetDateTime::from_unix_timestamp_nanos(ms as i128 * 1_000_000) else {
        return String::new();
    };
    let t = t.to_offset(offset(utc_offset_minutes));
    format!("{:02}:{:02}:{:02}", t.hour(), t.minute(), t.second())
}

/// Parses a yuan amount typed by a person (`50`, `50.5`, `¥1,000.00`) into fen; `None` when it
/// is not a plain non-negative amount with at most two decimals.
pub fn parse_yuan(s: &str) -> Option<Fen> {
    let s: String = s
        .trim()
        .trim_start_matches('¥')
        .chars()
        .filter(|c| *c != ',')
        .collect();
    let (whole, frac) = s.split_once('.').unwrap_or((&s, ""));
    if whole.is_empty() && frac.is_empty() {
        return None;
    }
    if !whole.chars().all(|c| c.is_ascii_digit()) || !frac.chars().all(|c| c.is_ascii_digit()) {
        return None;
    }
    if frac.len() > 2 || whole.len() > 9 {
        return None;
    }
    let w: i64 = if whole.is_empty() {
        0
    } else {
        whole.parse().ok()?
    };
    let f: i64 = format!("{frac:0<2}").parse().ok()?;
    Some(Fen(w * 100 + f))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn money_has_the_yuan_sign_two_decimals_and_groups() {
        assert_eq!(yuan(Fen(0)), "¥0.00");
        assert_eq!(yuan(Fen(5)), "¥0.05");
        assert_eq!(yuan(Fen(12_345_678)), "¥123,456.78");
        assert_eq!(yuan(Fen(-1250)), "-¥12.50");
        assert_eq!(signed_yuan(Fen(500)), "+¥5.00");
        assert_eq!(signed_yuan(Fen(-500)), "-¥5.00");
        assert_eq!(count(1_234_567), "1,234,567");
    }

    #[test]
    fn typed_amounts_parse_or_are_refused() {
        assert_eq!(parse_yuan("50"), Some(Fen(5000)));
        assert_eq!(parse_yuan(" 50.5 "), Some(Fen(5050)));
        assert_eq!(parse_yuan("¥1,000.00"), Some(Fen(100_000)));
        assert_eq!(parse_yuan(".5"), Some(Fen(50)));
        for bad in ["", ".", "-5", "5.001", "abc", "1e3", "12345678901"] {
            assert_eq!(parse_yuan(bad), None, "{bad}");
        }
    }

    #[test]
    fn days_follow_the_canteen_offset() {
        // 2026-11-26 20:00 UTC is already 2026-11-27 in UTC+8.
        let ms = 1_795_723_200_000;
        assert_eq!(iso_day(local_day(ms, 0)), "2026-11-26");
        assert_eq!(iso_day(local_day(ms, 480)), "2026-11-27");
        assert_eq!(parse_day("2026-11-27"), Some(local_day(ms, 480)));
        assert_eq!(
            local_day(day_start_ms(local_day(ms, 480), 480), 480),
            local_day(ms, 480)
        );
        assert_eq!(local_time(ms, 480), "2026-11-27 04:00");
        assert_eq!(parse_day("2026-13-01"), None);
    }
}
