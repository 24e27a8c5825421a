//! Undoing a charge whose diner says "not me" on the paid screen: what the local state holds
//! about the charge, and the two local undos. A charge that surely never left the kiosk is
//! withdrawn with its meal mark and offline allowance; one that may have reached the backend
//! is marked not served (`refused`), so that an `accepted` answer queues its void (see
//! [`super::follow_up`]). A charge already accepted is voided by the caller through the outbox.

use rusqlite::{params, OptionalExtension};
use wire::ChargeResponse;

use super::{allowance, meals, LocalStore, Result};

/// Where a queued charge stands.
#[derive(Debug, Clone, PartialEq)]
pub enum ChargeState {
    /// Not answered yet; `maybe_sent`: an attempt may have reached the backend.
    Pending { maybe_sent: bool },
    /// Answered (the answer as stored).
    Answered(Option<ChargeResponse>),
    /// Refused for good, or not in the outbox (withdrawn, never queued).
    Gone,
}

impl LocalStore {
    pub fn charge_state(&self, key: &str) -> Result<ChargeState> {
        let row: Option<(String, bool, Option<String>)> = self
            .conn
            .query_row(
                "SELECT state, maybe_sent, response FROM outbox WHERE idempotency_key = ?1 AND kind = 'charge'",
                [key],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .optional()?;
        Ok(match row {
            Some((state, maybe_sent, _)) if state == "pending" => {
                ChargeState::Pending { maybe_sent }
            }
            Some((state, _, response)) if state == "delivered" => {
                ChargeState::Answered(response.and_then(|r| serde_json::from_str(&r).ok()))
            }
            _ => ChargeState::Gone,
        })
    }

    /// Withdraws a charge that surely never left the kiosk, with its meal mark and offline
    /// allowance, in one transaction. False (nothing changed) if it may have left.
    pub fn withdraw_charge(&mut self, key: &str) -> Result<bool> {
        let tx = self.conn.transaction()?;
        let withdrawn = tx.execute(
            "DELETE FROM outbox WHERE idempotency_key = ?1 AND kind = 'charge' AND state = 'pending' AND maybe_sent = 0",
            [key],
        )? == 1;
        if withdrawn {
            meals::forget(&tx, key)?;
            allowance::forget(&tx, key)?;
        }
        tx.commit()?;
        Ok(withdrawn)
    }

    /// The diner of a pending charge that may have reached the backend was not served after
    /// all: marked so that an `accepted` answer queues a void, and its meal mark and offline
    /// allowance released, in one transaction.
    pub fn unserve(&mut self, key: &str) -> Result<()> {
        let tx = self.conn.transaction()?;
        tx.execute(
            "UPDATE outbox SET served = 0, refused = 1 WHERE idempotency_key = ?1 AND kind = 'charge'",
            params![key],
        )?;
        meals::forget(&tx, key)?;
        allowance::forget(&tx, key)?;
        tx.commit()?;
        Ok(())
    }
}
