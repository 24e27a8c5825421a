//! A canteen's settings as the backend reports them (`GET /api/v1/canteens/{id}`, which a kiosk
//! reads for its own canteen and a manager for any): its clock, meal windows and price list.
//! The kiosk applies them on its own (one meal per period, offline prices), so both sides read
//! the same type.

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

#[cfg(feature = "openapi")]
use utoipa::ToSchema;

use crate::Meal;

/// A canteen with its meal windows and prices.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct Canteen {
    pub id: i64,
    pub name: String,
    /// Minutes east of UTC (480 for China).
    pub utc_offset_minutes: i32,
    #[serde(default, with = "rust_decimal::serde::str_option")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    pub per_transaction_cap: Option<Decimal>,
    #[serde(default, with = "rust_decimal::serde::str_option")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    pub daily_cap: Option<Decimal>,
    pub windows: Vec<MealWindow>,
    pub prices: Vec<MealPrice>,
}

/// A meal period in canteen-local time.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct MealWindow {
    pub meal: Meal,
    /// "HH:MM" local time, inclusive.
    pub start: String,
    /// "HH:MM" local time, exclusive ("24:00" allowed).
    pub end: String,
}

/// `PUT /api/v1/canteens/{id}/meal-windows/{meal}`: a manager sets one meal's window.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct MealWindowRequest {
    /// "HH:MM" local time, inclusive.
    #[serde(deserialize_with = "crate::fields::check::local_time")]
    #[cfg_attr(feature = "openapi", schema(value_type = crate::fields::LocalTime))]
    pub start: String,
    /// "HH:MM" local time, exclusive.
    #[serde(deserialize_with = "crate::fields::check::local_time")]
    #[cfg_attr(feature = "openapi", schema(value_type = crate::fields::LocalTime))]
    pub end: String,
}

/// The price of a meal for a staff category.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct MealPrice {
    pub category: String,
    pub meal: Meal,
    #[serde(with = "rust_decimal::serde::str")]
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub price: Decimal,
}
