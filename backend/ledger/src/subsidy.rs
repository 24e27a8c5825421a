//! Subsidies: an employer credits each person an amount per subsidy period (a calendar month),
//! according to their category. Unspent subsidy either carries over or expires at the period's
//! end; expiry is a posting back to the subsidy fund, so nothing disappears from the books.

use crate::money::Fen;
use crate::posting::{PostingError, ProposedEntry};
use time::Date;

/// The subsidy period a local date belongs to, e.g. "2026-11".
pub fn period_of(date: Date) -> String {
    format!("{:04}-{:02}", date.year(), u8::from(date.month()))
}

/// Validates a period key typed by a manager ("YYYY-MM").
pub fn parse_period(s: &str) -> Option<String> {
    let (y, m) = s.split_once('-')?;
    let y: i32 = y.parse().ok()?;
    let m: u8 = m.parse().ok()?;
    if !(2000..=2200).contains(&y) || !(1..=12).contains(&m) || s.len() != 7 {
        return None;
    }
    Some(format!("{y:04}-{m:02}"))
}

/// The entries for opening a new period for one person: first expire what is left (if the rule
/// says subsidies expire), then grant the new amount.
pub fn period_entries(
    staff: i64,
    current_subsidy: Fen,
    grant: Fen,
    expire_leftover: bool,
) -> Result<Vec<ProposedEntry>, PostingError> {
    let mut out = Vec::with_capacity(2);
    if expire_leftover && current_subsidy.0 > 0 {
        out.push(ProposedEntry::subsidy_expiry(staff, current_subsidy)?);
    }
    if grant.0 > 0 {
        out.push(ProposedEntry::subsidy_grant(staff, grant)?);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::posting::BookAccount;
    use time::macros::date;

    #[test]
    fn period_keys() {
        assert_eq!(period_of(date!(2026 - 03 - 31)), "2026-03");
        assert_eq!(parse_period("2026-3"), None);
        assert_eq!(parse_period("2026-03").as_deref(), Some("2026-03"));
        assert_eq!(parse_period("2026-13"), None);
    }

    #[test]
    fn expiring_period_resets_to_grant() {
        let es = period_entries(4, Fen(300), Fen(20000), true).unwrap();
        let net: i64 = es
            .iter()
            .map(|e| e.delta(BookAccount::StaffSubsidy(4)).0)
            .sum();
        assert_eq!(300 + net, 20000);
        let es = period_entries(4, Fen(300), Fen(20000), false).unwrap();
        let net: i64 = es
            .iter()
            .map(|e| e.delta(BookAccount::StaffSubsidy(4)).0)
            .sum();
        assert_eq!(300 + net, 20300);
    }
}
