//! Plate waste: grams left on a tray, i.e. gross weight minus the tray's tare. Readings that
//! cannot come from a real tray are refused rather than stored, because waste statistics are
//! only worth anything if bad sensor readings stay out.

/// The heaviest plausible tray with leftovers; above this the scale is faulty.
pub const MAX_GROSS_GRAMS: i64 = 10_000;

#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum WasteError {
    #[error("weights must not be negative")]
    Negative,
    #[error("gross weight {gross} g is below the tray's tare {tare} g")]
    BelowTare { gross: i64, tare: i64 },
    #[error("gross weight {0} g is not plausible for a tray")]
    Implausible(i64),
}

/// Net grams left on the plate.
/// Whether a canteen's plate-waste target (grams per plate) is one a canteen could mean: a
/// whole number of grams from none left up to half the heaviest plate the scale takes.
pub fn valid_target(grams: i64) -> bool {
    (0..=MAX_GROSS_GRAMS / 2).contains(&grams)
}

pub fn net_grams(gross: i64, tare: i64) -> Result<i64, WasteError> {
    if gross < 0 || tare < 0 {
        return Err(WasteError::Negative);
    }
    if gross > MAX_GROSS_GRAMS {
        return Err(WasteError::Implausible(gross));
    }
    if gross < tare {
        return Err(WasteError::BelowTare { gross, tare });
    }
    Ok(gross - tare)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn net() {
        assert_eq!(net_grams(612, 480), Ok(132));
        assert_eq!(net_grams(480, 480), Ok(0));
        assert_eq!(
            net_grams(400, 480),
            Err(WasteError::BelowTare {
                gross: 400,
                tare: 480
            })
        );
        assert_eq!(net_grams(-1, 0), Err(WasteError::Negative));
        assert_eq!(net_grams(20_000, 0), Err(WasteError::Implausible(20_000)));
    }
}
