//! The `meals_charged` table: which meals this kiosk charged whom for, so that "one charge
//! per person per meal" holds here even while the backend cannot be asked, and which charge
//! a waste record at this station belongs to.

use ledger::meal::MealSlot;
use rusqlite::{params, Connection, OptionalExtension};

use super::{LocalStore, Result};

fn date(slot: &MealSlot) -> String {
    slot.local_date.to_string()
}

pub(super) fn forget(conn: &Connection, key: &str) -> Result<()> {
    conn.execute(
        "DELETE FROM meals_charged WHERE idempotency_key = ?1",
        [key],
    )?;
    Ok(())
}

/// The meal now belongs to the charge `to` (a served meal's follow-up charge).
pub(super) fn move_to(conn: &Connection, from: &str, to: &str) -> Result<()> {
    conn.execute(
        "UPDATE OR IGNORE meals_charged SET idempotency_key = ?2 WHERE idempotency_key = ?1",
        params![from, to],
    )?;
    Ok(())
}

pub(super) fn set_charge(conn: &Connection, key: &str, charge_id: i64) -> Result<()> {
    conn.execute(
        "UPDATE meals_charged SET charge_id = ?2 WHERE idempotency_key = ?1",
        params![key, charge_id],
    )?;
    Ok(())
}

impl LocalStore {
    /// Remembers that `staff_id` was charged for the meal `slot` under `key`. Returns false
    /// when a charge for that meal was already recorded here.
    pub fn mark_meal(
        &mut self,
        staff_id: i64,
        slot: &MealSlot,
        key: &str,
        now_ms: i64,
    ) -> Result<bool> {
        let n = self.conn.execute(
            "INSERT OR IGNORE INTO meals_charged (staff_id, local_date, meal, idempotency_key, at_ms)
             VALUES (?1, ?2, ?3, ?4, ?5)",
            params![staff_id, date(slot), slot.meal.as_str(), key, now_ms],
        )?;
        Ok(n == 1)
    }

    /// Forgets a meal mark (the charge was declined, refused or voided after all).
    pub fn unmark_meal(&mut self, key: &str) -> Result<()> {
        forget(&self.conn, key)
    }

    pub fn meal_taken(&self, staff_id: i64, slot: &MealSlot) -> Result<bool> {
        Ok(self
            .conn
            .query_row(
                "SELECT 1 FROM meals_charged WHERE staff_id = ?1 AND local_date = ?2 AND meal = ?3",
                params![staff_id, date(slot), slot.meal.as_str()],
                |_| Ok(()),
            )
            .optional()?
            .is_some())
    }

    /// The backend's charge id of the meal charged here, once its answer came.
    pub fn meal_charge(&self, staff_id: i64, slot: &MealSlot) -> Result<Option<i64>> {
        Ok(self
            .conn
            .query_row(
                "SELECT charge_id FROM meals_charged WHERE staff_id = ?1 AND local_date = ?2 AND meal = ?3",
                params![staff_id, date(slot), slot.meal.as_str()],
                |r| r.get::<_, Option<i64>>(0),
            )
            .optional()?
            .flatten())
    }

    /// Remembers the backend's charge id of a meal charged here (links waste records).
    pub fn set_meal_charge(&mut self, key: &str, charge_id: i64) -> Result<()> {
        set_charge(&self.conn, key, charge_id)
    }

    #[cfg(test)]
    pub(crate) fn unmark_meal_for_test(&mut self, staff_id: i64) {
        self.conn
            .execute("DELETE FROM meals_charged WHERE staff_id = ?1", [staff_id])
            .unwrap();
    }
}
