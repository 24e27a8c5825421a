//! The courier: the one way queued requests leave the kiosk. [`Courier::deliver`] takes the
//! send lock, sends the outbox in order through the [`BackendApi`], and hands back what
//! happened together with the events for what the answers made the outbox do by itself
//! (follow-up charges and voids, voids delivered). The pay station, the return station and the
//! background sync all deliver through it, so the queue goes out in order and an item is
//! never rewritten while another thread is sending it: whoever holds a [`Sent`] holds the lock.

use std::sync::{Arc, Mutex, MutexGuard};

use crate::api::{ApiError, BackendApi};
use crate::event::KioskEvent;
use crate::local_store::{
    refused_follow_up, served_follow_up, void_key, Answer, Delivery, DrainReport, LocalStore,
    OutboxItem, Request, StoreError,
};
use crate::now_ms;

/// Sends outbox items through the backend API, one sender at a time (cheap to clone; the
/// clones share the lock).
#[derive(Clone)]
pub struct Courier {
    api: Arc<dyn BackendApi>,
    gate: Arc<Mutex<()>>,
}

/// One delivery round: what was finished or stopped, and the events to show. Holds the send
/// lock until dropped, so a caller can still decide about its own item (e.g. serve offline)
/// before anyone sends again.
pub struct Sent<'a> {
    pub report: DrainReport,
    pub events: Vec<KioskEvent>,
    _gate: MutexGuard<'a, ()>,
}

impl Courier {
    pub fn new(api: Arc<dyn BackendApi>) -> Courier {
        Courier {
            api,
            gate: Arc::new(Mutex::new(())),
        }
    }

    /// The backend, for calls that are not queued (pay codes, statistics, sync).
    pub fn api(&self) -> &dyn BackendApi {
        &*self.api
    }

    /// Sends every pending item of `store` in order until the queue is empty or the backend
    /// stops answering.
    pub fn deliver(&self, store: &mut LocalStore) -> Result<Sent<'_>, StoreError> {
        let gate = self.gate.lock().unwrap_or_else(|p| p.into_inner());
        let report = store.drain_report(now_ms, |item| send(&*self.api, &item.request))?;
        let events = follow_up_events(&report.done);
        Ok(Sent {
            report,
            events,
            _gate: gate,
        })
    }
}

/// Sends one request and classifies the outcome for the outbox.
pub fn send(api: &dyn BackendApi, request: &Request) -> Delivery {
    let result = match request {
        Request::Charge(r) => api.charge(r).map(Answer::Charge),
        Request::Waste(r) => api.waste(r).map(Answer::Waste),
        Request::Void(r) => api.void_charge(r).map(Answer::Void),
    };
    match result {
        Ok(answer) => Delivery::Delivered(answer),
        Err(e @ ApiError::NotSent(_)) => Delivery::Unreachable(e.to_string()),
        Err(e) if e.is_transient() => Delivery::Transient(e.to_string()),
        Err(e) => Delivery::Permanent(e.to_string()),
    }
}

/// The events for what a drain's answers made the outbox queue by itself (offline charges
/// for served meals whose lost-answer charge was declined, voids of charges accepted for
/// diners who were refused) and for the voids it delivered.
pub fn follow_up_events(done: &[(OutboxItem, Delivery)]) -> Vec<KioskEvent> {
    done.iter()
        .filter_map(|(item, d)| {
            if let Some(f) = served_follow_up(item, d) {
                return Some(KioskEvent::ServedMealQueued {
                    staff_id: f.staff_id,
                    original_key: item.idempotency_key.clone(),
                    idempotency_key: f.idempotency_key,
                });
            }
            if let Some(void) = refused_follow_up(item, d) {
                return Some(KioskEvent::UnservedChargeVoidQueued {
                    idempotency_key: void_key(&void.charge_key),
                    charge_key: void.charge_key,
                });
            }
            match (&item.request, d) {
                (Request::Void(req), Delivery::Delivered(Answer::Void(r))) => {
                    Some(KioskEvent::ChargeVoided {
                        charge_key: req.charge_key.clone(),
                        charge_id: r.charge_id,
                        amount: r.amount.to_string(),
                        already_void: r.already_void,
                    })
                }
                _ => None,
            }
        })
        .collect()
}
