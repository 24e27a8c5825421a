//! The kiosk's own rule for a diner it must decide about alone (the backend cannot be asked,
//! or its answer was lost): serve when the person is not known to be inactive, the meal's
//! price fits in what this kiosk may still charge them offline (the offline limit minus what
//! it charged them offline and the backend has not confirmed), and, when their balance is
//! cached, in that balance too. Pure: the station gathers the facts and does what this says.

use ledger::Fen;

/// What the kiosk knows when it decides alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OfflineFacts {
    /// The meal's price for this person (see `CanteenSettings::offline_price`).
    pub price: Fen,
    /// Charged offline here and not yet confirmed by the backend.
    pub unsettled: Fen,
    /// The most this kiosk charges one person offline.
    pub limit: Fen,
    /// Cash + subsidy as last heard from the backend; None for someone never heard of.
    pub cached_balance: Option<Fen>,
    /// False when the backend listed the person as inactive.
    pub active: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OfflineDecision {
    /// Serve; the cached balance left after this meal, when one is known.
    Serve {
        balance_after: Option<Fen>,
    },
    Refuse(OfflineRefusal),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OfflineRefusal {
    StaffInactive,
    InsufficientCachedBalance,
    LimitReached,
}

impl OfflineRefusal {
    /// The reason as the kiosk reports it (`KioskEvent::Declined`).
    pub fn code(self) -> &'static str {
        match self {
            OfflineRefusal::StaffInactive => "offline_staff_inactive",
            OfflineRefusal::InsufficientCachedBalance => "offline_insufficient_cached_balance",
            OfflineRefusal::LimitReached => "offline_limit_reached",
        }
    }
}

pub fn decide(f: &OfflineFacts) -> OfflineDecision {
    let spent_after = f.unsettled.0.saturating_add(f.price.0);
    let within_limit = spent_after <= f.limit.0;
    let left = f
        .cached_balance
        .map(|b| Fen(b.0.saturating_sub(spent_after)));
    let within_balance = left.is_none_or(|l| l.0 >= 0);
    if !f.active {
        OfflineDecision::Refuse(OfflineRefusal::StaffInactive)
    } else if !within_balance {
        OfflineDecision::Refuse(OfflineRefusal::InsufficientCachedBalance)
    } else if !within_limit {
        OfflineDecision::Refuse(OfflineRefusal::LimitReached)
    } else {
        OfflineDecision::Serve {
            balance_after: left,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts() -> OfflineFacts {
        OfflineFacts {
            price: Fen(1500),
            unsettled: Fen(0),
            limit: Fen(3000),
            cached_balance: None,
            active: true,
        }
    }

    #[test]
    fn serves_within_the_limit_and_the_cached_balance() {
        assert_eq!(
            decide(&facts()),
            OfflineDecision::Serve {
                balance_after: None
            }
        );
        let f = OfflineFacts {
            cached_balance: Some(Fen(2000)),
            unsettled: Fen(500),
            ..facts()
        };
        assert_eq!(
            decide(&f),
            OfflineDecision::Serve {
                balance_after: Some(Fen(0))
            }
        );
    }

    #[test]
    fn refuses_with_the_first_reason_that_applies() {
        let f = OfflineFacts {
            unsettled: Fen(1600),
            ..facts()
        };
        assert_eq!(
            decide(&f),
            OfflineDecision::Refuse(OfflineRefusal::LimitReached)
        );
        let f = OfflineFacts {
            cached_balance: Some(Fen(1499)),
            unsettled: Fen(1600),
            ..facts()
        };
        assert_eq!(
            decide(&f),
            OfflineDecision::Refuse(OfflineRefusal::InsufficientCachedBalance)
        );
        let f = OfflineFacts { active: false, ..f };
        assert_eq!(
            decide(&f),
            OfflineDecision::Refuse(OfflineRefusal::StaffInactive)
        );
        assert_eq!(OfflineRefusal::LimitReached.code(), "offline_limit_reached");
    }
}
