//! "Not me": the diner on the paid screen says the charge was not theirs (someone else was
//! recognised, or the pay code was another's). The charge is undone by the outbox's own
//! paths, never by editing what may have reached the backend: withdrawn if it never left the
//! kiosk, marked not served if its answer is still out (an `accepted` answer then queues its
//! void), or voided (`<key>:void`, `POST /api/v1/kiosk/charges/void`) if it was accepted.
//! Each case releases the meal mark, so the person recognised can still eat.

use wire::{ChargeStatus, VoidChargeRequest};

use super::Station;
use crate::event::KioskEvent;
use crate::local_store::{served_key, ChargeState, Request, StoreError};
use crate::now_ms;

/// The reason a "not me" void gives the backend (and the manager reading the journal).
pub const NOT_ME_REASON: &str = "diner_said_not_me";

impl Station {
    /// Undoes the charge queued under `charge_key` (see the module documentation).
    pub fn not_me(&mut self, charge_key: &str) {
        match self.try_not_me(charge_key) {
            Ok(outcome) => {
                tracing::info!(key = %charge_key, outcome, "not me");
                self.emit(KioskEvent::NotMe {
                    charge_key: charge_key.to_string(),
                    outcome: outcome.to_string(),
                });
                if outcome == "void_queued" {
                    // Sent at once when the backend is there (`ChargeVoided` follows).
                    let courier = self.courier.clone();
                    let events = courier.deliver(&mut self.store).map(|sent| sent.events);
                    match events {
                        Ok(events) => {
                            for e in events {
                                self.emit(e);
                            }
                        }
                        Err(e) => self.error("sending the void", e),
                    }
                }
            }
            Err(e) => self.error("undoing a charge", e),
        }
    }

    fn try_not_me(&mut self, charge_key: &str) -> Result<&'static str, StoreError> {
        // Under the send lock (and after sending what was due), so the charge's state cannot
        // change while it is undone.
        let courier = self.courier.clone();
        let mut sent = courier.deliver(&mut self.store)?;
        for e in std::mem::take(&mut sent.events) {
            self.emit(e);
        }
        let outcome = match self.store.charge_state(charge_key)? {
            ChargeState::Pending { maybe_sent: false }
                if self.store.withdraw_charge(charge_key)? =>
            {
                "withdrawn"
            }
            ChargeState::Pending { maybe_sent: false } => "nothing_to_undo",
            ChargeState::Pending { maybe_sent: true } => {
                self.store.unserve(charge_key)?;
                "void_when_answered"
            }
            ChargeState::Answered(Some(resp)) if resp.status == ChargeStatus::Accepted => {
                self.store.unmark_meal(charge_key)?;
                let void = Request::Void(VoidChargeRequest {
                    charge_key: charge_key.to_string(),
                    reason: NOT_ME_REASON.to_string(),
                });
                self.store.enqueue(&void, now_ms())?;
                "void_queued"
            }
            ChargeState::Answered(Some(resp)) if resp.status == ChargeStatus::Declined => {
                // A served meal whose charge was declined is recorded by its follow-up charge.
                let follow = served_key(charge_key);
                drop(sent);
                if !matches!(self.store.charge_state(&follow)?, ChargeState::Gone) {
                    return self.try_not_me(&follow);
                }
                return Ok("nothing_to_undo");
            }
            _ => "nothing_to_undo",
        };
        drop(sent);
        Ok(outcome)
    }
}
