//! The `waste_log` table: the weighings shown at this station, for the averages diners see
//! when the backend offers none.

use rusqlite::params;

use super::{LocalStore, Result};

impl LocalStore {
    /// Records a weighing shown at this station.
    pub fn log_waste(&mut self, staff_id: Option<i64>, net_g: i64, at_ms: i64) -> Result<()> {
        self.conn.execute(
            "INSERT INTO waste_log (staff_id, net_g, at_ms) VALUES (?1, ?2, ?3)",
            params![staff_id, net_g, at_ms],
        )?;
        Ok(())
    }

    /// This station's average net waste: of one person, and of everyone.
    pub fn local_waste_averages(
        &self,
        staff_id: Option<i64>,
    ) -> Result<(Option<f64>, Option<f64>)> {
        let person = match staff_id {
            Some(id) => self.conn.query_row(
                "SELECT AVG(net_g) FROM waste_log WHERE staff_id = ?1",
                [id],
                |r| r.get(0),
            )?,
            None => None,
        };
        let all = self
            .conn
            .query_row("SELECT AVG(net_g) FROM waste_log", [], |r| r.get(0))?;
        Ok((person, all))
    }
}
