//! Who may undo a charge and when. A charge is undone at most once, and only while it stands
//! (accepted); the undoing is a reversing entry, never an edit of the original.

use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChargeStatus {
    /// Posted to the journal.
    Accepted,
    /// Arrived (offline) breaking a rule; waits for a manager, nothing posted.
    Exception,
    /// Posted, then reversed or refunded.
    Refunded,
    /// An exception a manager decided not to collect.
    Waived,
}

impl ChargeStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ChargeStatus::Accepted => "accepted",
            ChargeStatus::Exception => "exception",
            ChargeStatus::Refunded => "refunded",
            ChargeStatus::Waived => "waived",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "accepted" => Some(ChargeStatus::Accepted),
            "exception" => Some(ChargeStatus::Exception),
            "refunded" => Some(ChargeStatus::Refunded),
            "waived" => Some(ChargeStatus::Waived),
            _ => None,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RefundDenied {
    #[error("only a standing (accepted) charge can be refunded")]
    NotRefundable,
    #[error("people can only ask refunds for their own charges")]
    NotOwner,
    #[error("the refund window for this charge has passed")]
    TooLate,
}

/// How long people may ask for a refund from their phone.
pub const STAFF_REFUND_WINDOW_MS: i64 = 7 * 24 * 3600 * 1000;

/// How long a kiosk may void a charge it did not serve. A void corrects a lost answer, which the
/// kiosk learns on its next resend (minutes, or days for a kiosk left offline); anything older
/// is a dispute for a manager, not something a device should settle.
pub const KIOSK_VOID_WINDOW_MS: i64 = 7 * 24 * 3600 * 1000;

/// A manager may reverse any standing charge.
pub fn manager_may_reverse(status: ChargeStatus) -> Result<(), RefundDenied> {
    if status != ChargeStatus::Accepted {
        return Err(RefundDenied::NotRefundable);
    }
    Ok(())
}

/// A person may ask for a refund of their own standing charge within the window.
pub fn staff_may_request(
    status: ChargeStatus,
    charge_owner: i64,
    requester: i64,
    charged_at_ms: i64,
    now_ms: i64,
) -> Result<(), RefundDenied> {
    if charge_owner != requester {
        return Err(RefundDenied::NotOwner);
    }
    if status != ChargeStatus::Accepted {
        return Err(RefundDenied::NotRefundable);
    }
    if now_ms.saturating_sub(charged_at_ms) > STAFF_REFUND_WINDOW_MS {
        return Err(RefundDenied::TooLate);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules() {
        assert!(manager_may_reverse(ChargeStatus::Accepted).is_ok());
        assert_eq!(
            manager_may_reverse(ChargeStatus::Refunded),
            Err(RefundDenied::NotRefundable)
        );
        assert_eq!(
            staff_may_request(ChargeStatus::Accepted, 1, 2, 0, 0),
            Err(RefundDenied::NotOwner)
        );
        assert_eq!(
            staff_may_request(ChargeStatus::Accepted, 1, 1, 0, STAFF_REFUND_WINDOW_MS + 1),
            Err(RefundDenied::TooLate)
        );
        assert!(staff_may_request(ChargeStatus::Accepted, 1, 1, 0, STAFF_REFUND_WINDOW_MS).is_ok());
        assert_eq!(
            staff_may_request(ChargeStatus::Exception, 1, 1, 0, 0),
            Err(RefundDenied::NotRefundable)
        );
    }

    #[test]
    fn status_round_trip() {
        for s in [
            ChargeStatus::Accepted,
            ChargeStatus::Exception,
            ChargeStatus::Refunded,
            ChargeStatus::Waived,
        ] {
            assert_eq!(ChargeStatus::parse(s.as_str()), Some(s));
        }
    }
}
