//! Demo history for `backend seed-demo`: a month of meals, top-ups and plate waste written
//! through the ordinary store operations (charges decided by the ledger's rules, waste linked
//! to its meal), so the managers' dashboard and the staff's page are not empty in a demo.
//! Deterministic: the same day and staff give the same history.

use ledger::{Fen, MealKind};
use store::{Actor, ChargeCommand, ChargeOutcome, NewPaymentOrder, Staff, Store, WasteCommand};

const DAY_MS: i64 = 24 * 3600 * 1000;

/// What [`seed_history`] wrote.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct History {
    pub charges: usize,
    pub waste: usize,
    pub top_ups: usize,
}

/// A small deterministic generator (64-bit LCG): demo data needs variety, not randomness.
struct Dice(u64);

impl Dice {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        self.0 >> 33
    }

    /// A whole number in `0..n`.
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// Writes the `days` days before `now_ms`'s day (today itself is left to the kiosks, whose
/// meals it would otherwise pre-empt) for `staff` at `kiosk_id` of a canteen at UTC offset
/// `utc_offset_minutes`: a top-up for everyone on the first day, then most people at lunch,
/// some at breakfast and dinner, each meal's plate weighed at the return (plates grow cleaner
/// over the month, as a canteen's waste campaign would hope).
pub async fn seed_history(
    store: &dyn Store,
    kiosk_id: i64,
    canteen_id: i64,
    utc_offset_minutes: i32,
    staff: &[Staff],
    now_ms: i64,
    days: i64,
) -> store::Result<History> {
    let offset_ms = utc_offset_minutes as i64 * 60_000;
    let today = (now_ms + offset_ms).div_euclid(DAY_MS);
    let first = today - days;
    let mut dice = Dice(first as u64 ^ 0x5eed);
    let mut h = History::default();
    let actor = Actor::System("seed-demo");
    for s in staff {
        let order_no = format!("DEMO-{}-{first}", s.employee_no);
        let at = first * DAY_MS - offset_ms + 7 * 3600 * 1000;
        let amount = Fen(80_000);
        store
            .create_payment_order(
                NewPaymentOrder {
                    order_no: order_no.clone(),
                    staff_id: s.id,
                    amount,
                    provider: "sandbox".into(),
                    now_ms: at,
                },
                &actor,
            )
            .await?;
        store
            .credit_payment(&order_no, &format!("demo-{order_no}"), amount, "{}", at)
            .await?;
        h.top_ups += 1;
    }
    for day in first..today {
        let midnight = day * DAY_MS - offset_ms;
        // How far into the month: plates get cleaner from 45% to 75% clean.
        let progress = (day - first) as f64 / days.max(1) as f64;
        for s in staff {
            for (meal, minute, chance) in [
                (MealKind::Breakfast, 7 * 60 + 20, 40),
                (MealKind::Lunch, 11 * 60 + 35, 90),
                (MealKind::Dinner, 17 * 60 + 40, 35),
            ] {
                if dice.below(100) >= chance {
                    continue;
                }
                let t = midnight + (minute + dice.below(50) as i64) * 60_000;
                if t > now_ms {
                    continue;
                }
                let key = format!("demo-{}-{day}-{}", s.employee_no, meal.as_str());
                let r = store
                    .charge(ChargeCommand {
                        kiosk_id,
                        canteen_id,
                        idempotency_key: key.clone(),
                        request_hash: key.clone(),
                        staff_id: s.id,
                        kiosk_time_ms: t,
                        received_ms: t,
                        offline: false,
                        offline_too_old: false,
                        amount: None,
                    })
                    .await?;
                if r.outcome != ChargeOutcome::Accepted {
                    continue;
                }
                h.charges += 1;
                let clean = (dice.below(100) as f64) < 45.0 + 30.0 * progress;
                let net = if clean {
                    dice.below(21) as i64
                } else {
                    25 + dice.below(160) as i64
                };
                store
                    .record_waste(WasteCommand {
                        kiosk_id,
                        idempotency_key: format!("{key}-waste"),
                        request_hash: format!("{key}-waste"),
                        staff_id: Some(s.id),
                        charge_id: r.charge_id,
                        gross_grams: 480 + net,
                        tare_grams: 480,
                        dish: None,
                        category: None,
                        measured_at_ms: t + 25 * 60_000,
                        received_ms: t + 25 * 60_000,
                    })
                    .await?;
                h.waste += 1;
            }
        }
    }
    Ok(h)
}
