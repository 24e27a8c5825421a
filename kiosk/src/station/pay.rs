//! The charge: one path from "this person pays" to what the diner is told. The meal guard
//! (one charge per person per meal, kept here even offline), the charge committed to the
//! outbox, delivered by the courier, and then exactly one of: the backend's answer, its
//! refusal, or, when it cannot be asked, the kiosk's own decision by the offline rules
//! ([`crate::offline`]) with the canteen's price for the person.

use std::time::Instant;

use ledger::meal::MealSlot;
use ledger::{Fen, MealKind, MoneyError};
use time::OffsetDateTime;
use wire::{ChargeRequest, ChargeResponse, ChargeStatus};

use super::{Station, TEST_KILL_AFTER_OUTBOX_WRITE};
use crate::event::{KioskEvent, Via};
use crate::local_store::{Answer, Delivery, Request, StoreError};
use crate::now_ms;
use crate::offline::{self, OfflineDecision, OfflineFacts};

#[derive(Debug, thiserror::Error)]
pub enum PayError {
    #[error(transparent)]
    Store(#[from] StoreError),
    /// An amount that is not whole fen (the configuration and the canteen's prices are
    /// checked when loaded, so this means a bug, not bad input).
    #[error("money: {0}")]
    Money(#[from] MoneyError),
}

impl Station {
    pub(super) fn pay(
        &mut self,
        staff_id: i64,
        via: Via,
        captured: Instant,
    ) -> Result<(), PayError> {
        let now = self.settings.local(OffsetDateTime::now_utc());
        let slot = self.settings.meal_at(now);
        if let Some(slot) = &slot {
            if self.store.meal_taken(staff_id, slot)? {
                self.emit(KioskEvent::AlreadyCharged {
                    staff_id,
                    meal: format!("{} {}", slot.meal, slot.local_date),
                });
                // On a device that does both, a diner who already paid is back with the tray.
                if self.cfg.mode.weighs() {
                    self.pending_diner = Some((staff_id, Instant::now()));
                }
                return Ok(());
            }
        }
        let req = ChargeRequest {
            idempotency_key: uuid::Uuid::new_v4().to_string(),
            staff_id,
            kiosk_time: now,
            offline: false,
            amount: None,
        };
        let key = req.idempotency_key.clone();
        self.commit_charge(&req, slot.as_ref())?;

        let courier = self.courier.clone();
        let mut sent = courier.deliver(&mut self.store)?;
        for e in std::mem::take(&mut sent.events) {
            self.emit(e);
        }
        let latency_ms = captured.elapsed().as_secs_f64() * 1000.0;
        match sent.report.outcome_of(&key) {
            Some(Delivery::Delivered(Answer::Charge(resp))) => {
                self.set_online(true);
                self.tell_answer(staff_id, via, key, resp, latency_ms);
            }
            Some(Delivery::Delivered(other)) => {
                self.error(
                    "reading the charge answer",
                    format!("not a charge answer: {other:?}"),
                );
            }
            Some(Delivery::Permanent(e)) => {
                let name = self.person(staff_id).0;
                self.emit(KioskEvent::Declined {
                    staff_id,
                    via,
                    reason: format!("refused by the backend: {e}"),
                    name,
                    latency_ms,
                });
            }
            _ => {
                // Not delivered: the backend is away. Decided while `sent` still holds the
                // send lock, so nobody sends this charge while it may be rewritten.
                self.set_online(false);
                self.decide_offline(req, slot.map(|s| s.meal), via, latency_ms)?;
            }
        }
        drop(sent);
        Ok(())
    }

    /// Marks the meal and commits the charge to the outbox (fsynced) before anything is sent.
    fn commit_charge(
        &mut self,
        req: &ChargeRequest,
        slot: Option<&MealSlot>,
    ) -> Result<(), StoreError> {
        let t_ms = now_ms();
        if let Some(slot) = slot {
            self.store
                .mark_meal(req.staff_id, slot, &req.idempotency_key, t_ms)?;
        }
        self.store.enqueue(&Request::Charge(req.clone()), t_ms)?;
        if std::env::var_os(TEST_KILL_AFTER_OUTBOX_WRITE).is_some() {
            kill_self();
        }
        Ok(())
    }

    fn tell_answer(
        &mut self,
        staff_id: i64,
        via: Via,
        key: String,
        resp: &ChargeResponse,
        latency_ms: f64,
    ) {
        let (name, department) = self.person(staff_id);
        match resp.status {
            ChargeStatus::Accepted | ChargeStatus::Exception => self.emit(KioskEvent::Paid {
                staff_id,
                via,
                idempotency_key: key,
                offline: false,
                charge_id: resp.charge_id,
                amount: Some(resp.amount.to_string()),
                balance: Some((resp.cash_balance + resp.subsidy_balance).to_string()),
                subsidy_used: Some(resp.subsidy_used.to_string()),
                name,
                department,
                latency_ms,
            }),
            ChargeStatus::Declined => self.emit(KioskEvent::Declined {
                staff_id,
                via,
                reason: resp.reason.clone().unwrap_or_else(|| "declined".into()),
                name,
                latency_ms,
            }),
        }
    }

    /// The backend cannot be asked (or its answer was lost): the offline rules decide, with
    /// the canteen's price for the person's category.
    fn decide_offline(
        &mut self,
        mut req: ChargeRequest,
        meal: Option<MealKind>,
        via: Via,
        latency_ms: f64,
    ) -> Result<(), PayError> {
        let staff_id = req.staff_id;
        let key = req.idempotency_key.clone();
        let balance = self.store.balance(staff_id)?;
        let price = self.settings.offline_price(
            balance.as_ref().and_then(|b| b.category.as_deref()),
            meal,
            Fen::from_yuan(self.cfg.offline_meal_price)?,
        )?;
        let facts = OfflineFacts {
            price,
            unsettled: Fen(self.store.unsettled_offline_fen(staff_id)?),
            limit: Fen::from_yuan(self.cfg.offline_limit)?,
            cached_balance: balance.as_ref().map(|b| Fen(b.available_fen)),
            active: balance.as_ref().is_none_or(|b| b.active),
        };
        let (name, department) = self.person(staff_id);
        match offline::decide(&facts) {
            OfflineDecision::Serve { balance_after } => {
                // Marked offline so the backend records a broken rule as an exception
                // instead of refusing a meal already served; only possible if it never left
                // the kiosk. Otherwise the identical request is resent until its stored
                // answer is known, and `served` makes the outbox queue an offline charge if
                // that was a decline.
                req.offline = true;
                self.store.serve_offline(&key, &req, staff_id, price.0)?;
                self.emit(KioskEvent::Paid {
                    staff_id,
                    via,
                    idempotency_key: key,
                    offline: true,
                    charge_id: None,
                    amount: Some(price.to_yuan().to_string()),
                    balance: balance_after.map(|b| b.to_yuan().to_string()),
                    subsidy_used: None,
                    name,
                    department,
                    latency_ms,
                });
            }
            OfflineDecision::Refuse(refusal) => {
                // Only a request that surely never left may be withdrawn; one that may have
                // arrived stays queued so its true outcome is learnt.
                if !self.store.withdraw_unsent(&key)? {
                    // If the backend did apply it, the person paid for a meal not served:
                    // marked, so that an `accepted` answer queues a void of it.
                    self.store.mark_refused(&key)?;
                    tracing::info!(
                        key = %key,
                        staff_id,
                        "refused offline, but the charge may have reached the backend; it will be voided if it was accepted"
                    );
                }
                self.store.unmark_meal(&key)?;
                self.emit(KioskEvent::Declined {
                    staff_id,
                    via,
                    reason: refusal.code().into(),
                    name,
                    latency_ms,
                });
            }
        }
        Ok(())
    }
}

/// The crash test's hook: die like `kill -9` would kill us.
fn kill_self() -> ! {
    tracing::warn!(
        "{TEST_KILL_AFTER_OUTBOX_WRITE} is set: killing the kiosk after the outbox write"
    );
    let _ = std::process::Command::new("kill")
        .args(["-9", &std::process::id().to_string()])
        .status();
    std::thread::sleep(std::time::Duration::from_secs(5));
    std::process::abort()
}
