//! Money as an integer count of fen (1/100 yuan). Integer arithmetic cannot drift the way floats
//! do, and both databases store it as a plain BIGINT. `rust_decimal` appears only at the API edge,
//! where people read and type yuan amounts such as "12.50".

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use std::fmt;

/// An amount in fen. Signed, because postings carry direction in their sign.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct Fen(pub i64);

/// Why an amount typed at the edge is not acceptable money.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MoneyError {
    #[error("amount {0} has more than two decimal places")]
    TooPrecise(Decimal),
    #[error("amount {0} is out of range")]
    OutOfRange(Decimal),
    #[error("amount must be positive")]
    NotPositive,
}

impl Fen {
    pub const ZERO: Fen = Fen(0);

    /// Converts yuan (e.g. `12.50`) to fen, refusing sub-fen precision instead of rounding:
    /// silently rounding a typed amount would invent or lose money.
    pub fn from_yuan(d: Decimal) -> Result<Fen, MoneyError> {
        let scaled = d
            .checked_mul(Decimal::from(100))
            .ok_or(MoneyError::OutOfRange(d))?;
        if scaled.fract() != Decimal::ZERO {
            return Err(MoneyError::TooPrecise(d));
        }
        let v: i64 = scaled
            .trunc()
            .try_into()
            .map_err(|_| MoneyError::OutOfRange(d))?;
        // Keep far away from i64 limits so sums of many amounts cannot overflow.
        if v.abs() > 1_000_000_000_000 {
            return Err(MoneyError::OutOfRange(d));
        }
        Ok(Fen(v))
    }

    /// Like [`Fen::from_yuan`] but also requires a strictly positive amount.
    pub fn positive_from_yuan(d: Decimal) -> Result<Fen, MoneyError> {
        let f = Fen::from_yuan(d)?;
        if f.0 <= 0 {
            return Err(MoneyError::NotPositive);
        }
        Ok(f)
    }

    pub fn to_yuan(self) -> Decimal {
        Decimal::new(self.0, 2)
    }

    pub fn checked_add(self, o: Fen) -> Option<Fen> {
        self.0.checked_add(o.0).map(Fen)
    }

    pub fn checked_sub(self, o: Fen) -> Option<Fen> {
        self.0.checked_sub(o.0).map(Fen)
    }

    pub fn is_positive(self) -> bool {
        self.0 > 0
    }
}

impl fmt::Display for Fen {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.to_yuan())
    }
}

impl std::ops::Neg for Fen {
    type Output = Fen;
    fn neg(self) -> Fen {
        Fen(-self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;

    #[test]
    fn yuan_round_trip() {
        let d = Decimal::from_str("12.50").unwrap();
        assert_eq!(Fen::from_yuan(d).unwrap(), Fen(1250));
        assert_eq!(Fen(1250).to_yuan().to_string(), "12.50");
        assert_eq!(Fen(-5).to_yuan().to_string(), "-0.05");
    }

    #[test]
    fn refuses_sub_fen() {
        let d = Decimal::from_str("0.005").unwrap();
        assert_eq!(Fen::from_yuan(d), Err(MoneyError::TooPrecise(d)));
    }

    #[test]
    fn refuses_non_positive_where_required() {
        assert_eq!(
            Fen::positive_from_yuan(Decimal::ZERO),
            Err(MoneyError::NotPositive)
        );
        assert!(Fen::positive_from_yuan(Decimal::from(-1)).is_err());
    }

    #[test]
    fn refuses_huge() {
        assert!(Fen::from_yuan(Decimal::from_str("100000000000").unwrap()).is_err());
    }
}
