//! The decision for one meal charge: is it allowed, and how is it split between subsidy and cash.
//! Inputs are facts read inside the storage transaction (with the person's accounts locked), so
//! the decision is made against balances no concurrent charge can change underneath it.

use crate::meal::MealKind;
use crate::money::Fen;
use serde::{Deserialize, Serialize};

/// Everything the rules need about one charge attempt.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChargeFacts {
    /// An offline charge that reached the backend later than the canteen settles on its own
    /// ([`offline_too_old`]): a manager decides it.
    pub served_too_long_ago: bool,
    pub staff_active: bool,
    /// The meal the kiosk's timestamp falls in; `None` when outside every window.
    pub meal: Option<MealKind>,
    /// The price of that meal for the person's category (or the amount the kiosk asked for).
    pub price: Option<Fen>,
    pub cash_balance: Fen,
    pub subsidy_balance: Fen,
    /// Gross amount (subsidy + cash) of accepted charges on the same local day.
    pub spent_today: Fen,
    /// Accepted charges for the same meal on the same local day.
    pub meals_taken: u32,
    /// Paid meals allowed per meal period (1 unless a manager allowed more).
    pub meals_allowed: u32,
    pub per_transaction_cap: Option<Fen>,
    pub daily_cap: Option<Fen>,
}

/// How an accepted charge is paid.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChargeSplit {
    pub meal: MealKind,
    pub total: Fen,
    pub subsidy: Fen,
    pub cash: Fen,
}

/// Why a charge is not allowed; `code()` is the stable string sent to kiosks and stored with
/// exceptions.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[serde(rename_all = "snake_case")]
pub enum Rejection {
    #[error("the person's account is not active")]
    StaffInactive,
    #[error("no meal is served at this time")]
    OutsideMealPeriod,
    #[error("no price is set for this person's category and meal")]
    NoPrice,
    #[error("the amount is above the per-transaction cap")]
    TransactionCapExceeded,
    #[error("this meal was already paid for in this meal period")]
    MealAlreadyTaken,
    #[error("the daily spending cap would be exceeded")]
    DailyCapExceeded,
    #[error("the balance is too low")]
    InsufficientFunds,
    #[error("the meal was served offline too long ago to be charged without a manager")]
    OfflineTooOld,
}

impl Rejection {
    pub fn code(self) -> &'static str {
        match self {
            Rejection::StaffInactive => "staff_inactive",
            Rejection::OutsideMealPeriod => "outside_meal_period",
            Rejection::NoPrice => "no_price",
            Rejection::TransactionCapExceeded => "transaction_cap_exceeded",
            Rejection::MealAlreadyTaken => "meal_already_taken",
            Rejection::DailyCapExceeded => "daily_cap_exceeded",
            Rejection::InsufficientFunds => "insufficient_funds",
            Rejection::OfflineTooOld => "offline_too_old",
        }
    }

    pub fn from_code(s: &str) -> Option<Rejection> {
        [
            Rejection::StaffInactive,
            Rejection::OutsideMealPeriod,
            Rejection::NoPrice,
            Rejection::TransactionCapExceeded,
            Rejection::MealAlreadyTaken,
            Rejection::DailyCapExceeded,
            Rejection::InsufficientFunds,
            Rejection::OfflineTooOld,
        ]
        .into_iter()
        .find(|r| r.code() == s)
    }
}

/// Applies the rules in the order a cashier would: who, when, what, how many, how much.
/// Subsidy is spent before cash; cash may never go below zero.
pub fn decide_charge(f: &ChargeFacts) -> Result<ChargeSplit, Rejection> {
    if f.served_too_long_ago {
        return Err(Rejection::OfflineTooOld);
    }
    if !f.staff_active {
        return Err(Rejection::StaffInactive);
    }
    let meal = f.meal.ok_or(Rejection::OutsideMealPeriod)?;
    let price = f.price.ok_or(Rejection::NoPrice)?;
    if price.0 <= 0 {
        // A zero or negative price is a configuration mistake, not a free meal.
        return Err(Rejection::NoPrice);
    }
    if let Some(cap) = f.per_transaction_cap {
        if price > cap {
            return Err(Rejection::TransactionCapExceeded);
        }
    }
    if f.meals_taken >= f.meals_allowed {
        return Err(Rejection::MealAlreadyTaken);
    }
    if let Some(cap) = f.daily_cap {
        let after = f
            .spent_today
            .checked_add(price)
            .ok_or(Rejection::DailyCapExceeded)?;
        if after > cap {
            return Err(Rejection::DailyCapExceeded);
        }
    }
    let subsidy = Fen(f.subsidy_balance.0.max(0).min(price.0));
    let cash = Fen(price.0 - subsidy.0);
    if cash > Fen(f.cash_balance.0.max(0)) {
        return Err(Rejection::InsufficientFunds);
    }
    Ok(ChargeSplit {
        meal,
        total: price,
        subsidy,
        cash,
    })
}

/// Whether an offline charge arrived too long after its meal to be decided on its own: the
/// day's cap and meals of a day long settled should not be reopened by a kiosk that was
/// offline for a week (or whose clock was wrong); such charges go to a manager.
pub fn offline_too_old(served_ms: i64, received_ms: i64, max_age_ms: i64) -> bool {
    received_ms.saturating_sub(served_ms) > max_age_ms
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn old_offline_charges_go_to_a_manager() {
        let day = 86_400_000;
        assert!(!offline_too_old(0, 3 * day, 3 * day));
        assert!(offline_too_old(0, 3 * day + 1, 3 * day));
        assert!(offline_too_old(i64::MIN, i64::MAX, 3 * day), "no overflow");
        let f = ChargeFacts {
            served_too_long_ago: true,
            ..facts()
        };
        assert_eq!(decide_charge(&f), Err(Rejection::OfflineTooOld));
    }

    fn facts() -> ChargeFacts {
        ChargeFacts {
            served_too_long_ago: false,
            staff_active: true,
            meal: Some(MealKind::Lunch),
            price: Some(Fen(1500)),
            cash_balance: Fen(10_000),
            subsidy_balance: Fen(0),
            spent_today: Fen(0),
            meals_taken: 0,
            meals_allowed: 1,
            per_transaction_cap: Some(Fen(5000)),
            daily_cap: Some(Fen(6000)),
        }
    }

    #[test]
    fn plain_cash_charge() {
        let s = decide_charge(&facts()).unwrap();
        assert_eq!((s.subsidy, s.cash, s.total), (Fen(0), Fen(1500), Fen(1500)));
    }

    #[test]
    fn subsidy_first_then_cash() {
        let mut f = facts();
        f.subsidy_balance = Fen(1000);
        let s = decide_charge(&f).unwrap();
        assert_eq!((s.subsidy, s.cash), (Fen(1000), Fen(500)));
        f.subsidy_balance = Fen(9000);
        let s = decide_charge(&f).unwrap();
        assert_eq!((s.subsidy, s.cash), (Fen(1500), Fen(0)));
    }

    #[test]
    fn exact_balance_is_enough_one_fen_short_is_not() {
        let mut f = facts();
        f.cash_balance = Fen(1500);
        assert!(decide_charge(&f).is_ok());
        f.cash_balance = Fen(1499);
        assert_eq!(decide_charge(&f), Err(Rejection::InsufficientFunds));
        f.subsidy_balance = Fen(1);
        assert!(decide_charge(&f).is_ok());
    }

    #[test]
    fn rules_in_order() {
        let mut f = facts();
        f.meals_taken = 1;
        assert_eq!(decide_charge(&f), Err(Rejection::MealAlreadyTaken));
        f.meals_allowed = 2;
        assert!(decide_charge(&f).is_ok());
        f.spent_today = Fen(4600);
        assert_eq!(decide_charge(&f), Err(Rejection::DailyCapExceeded));
        f.spent_today = Fen(4500);
        assert!(decide_charge(&f).is_ok());
        f.price = Some(Fen(5001));
        f.spent_today = Fen(0);
        assert_eq!(decide_charge(&f), Err(Rejection::TransactionCapExceeded));
        f.meal = None;
        assert_eq!(decide_charge(&f), Err(Rejection::OutsideMealPeriod));
        f.staff_active = false;
        assert_eq!(decide_charge(&f), Err(Rejection::StaffInactive));
    }

    #[test]
    fn no_or_zero_price() {
        let mut f = facts();
        f.price = None;
        assert_eq!(decide_charge(&f), Err(Rejection::NoPrice));
        f.price = Some(Fen(0));
        assert_eq!(decide_charge(&f), Err(Rejection::NoPrice));
    }

    #[test]
    fn codes_round_trip() {
        for r in [
            Rejection::StaffInactive,
            Rejection::InsufficientFunds,
            Rejection::DailyCapExceeded,
        ] {
            assert_eq!(Rejection::from_code(r.code()), Some(r));
        }
    }
}
