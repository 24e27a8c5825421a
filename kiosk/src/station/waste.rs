//! The return station's record: a weighing (with the diner, when one was paired with it)
//! becomes a waste record in the outbox, linked to the meal this kiosk charged when it did,
//! and the diner sees their grams with the backend's 30-day averages (theirs and the
//! canteen's), or this station's own history when the backend cannot be asked.

use time::OffsetDateTime;
use wire::WasteRequest;

use super::Station;
use crate::event::KioskEvent;
use crate::local_store::{Answer, Delivery, Request, StoreError};
use crate::now_ms;

impl Station {
    pub(super) fn record_waste(&mut self, staff_id: Option<i64>, gross_g: i64) {
        if let Err(e) = self.try_record_waste(staff_id, gross_g) {
            self.error("recording waste", e);
        }
    }

    fn try_record_waste(&mut self, staff_id: Option<i64>, gross_g: i64) -> Result<(), StoreError> {
        let now = self.settings.local(OffsetDateTime::now_utc());
        let charge_id = match (staff_id, self.settings.meal_at(now)) {
            (Some(s), Some(slot)) => self.store.meal_charge(s, &slot)?,
            _ => None,
        };
        let tare_g = self.cfg.scale.tare_g;
        let req = WasteRequest {
            idempotency_key: uuid::Uuid::new_v4().to_string(),
            staff_id,
            charge_id,
            gross_grams: gross_g,
            tare_grams: tare_g,
            dish: None,
            category: None,
            measured_at: now,
        };
        let key = req.idempotency_key.clone();
        let t = now_ms();
        self.store.enqueue(&Request::Waste(req), t)?;
        let net_g = gross_g - tare_g;
        self.store.log_waste(staff_id, net_g, t)?;
        let delivered = {
            let courier = self.courier.clone();
            let mut sent = courier.deliver(&mut self.store)?;
            for e in std::mem::take(&mut sent.events) {
                self.emit(e);
            }
            sent.report.outcome_of(&key).cloned()
        };
        let (queued, net_g) = match &delivered {
            Some(Delivery::Delivered(Answer::Waste(r))) => (false, r.net_grams),
            Some(Delivery::Delivered(_)) => (false, net_g),
            _ => (true, net_g),
        };
        let (person, canteen, from) = match staff_id.map(|s| self.courier.api().waste_stats(s)) {
            Some(Ok(s)) => (s.person_average_g, s.canteen_average_g, "backend"),
            _ => {
                let (p, c) = self.store.local_waste_averages(staff_id)?;
                (p, c, "this station")
            }
        };
        let name = staff_id.and_then(|s| self.person(s).0);
        self.emit(KioskEvent::WasteRecorded {
            staff_id,
            gross_g,
            tare_g,
            net_g,
            queued,
            person_average_g: person,
            canteen_average_g: canteen,
            averages_from: from.into(),
            name,
        });
        Ok(())
    }
}
