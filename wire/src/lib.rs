//! Wire types shared by the kiosk and the backend (they speak HTTP and never link each other).
//!
//! Everything a kiosk sends to or receives from the backend is defined here: the
//! `/api/v1/kiosk/...` routes (this file), its canteen's settings ([`canteen`]) and the routes
//! its enrolment desk calls with a manager's session ([`admin`]). So both sides agree on field
//! names and encodings at compile time:
//! - money is a decimal string in yuan with at most two places (`"12.50"`), never a float;
//! - times are RFC 3339 strings (`"2026-11-26T12:10:00+08:00"`); the kiosk sends its own clock;
//! - face embeddings travel as base64 of little-endian `f32`s (see [`encode_embedding`]);
//! - errors are `{"error": {"code": "stable_code", "message": "human text"}}` ([`ErrorBody`]).
//!
//! Authentication: a kiosk enrols once with a one-time code ([`EnrolRequest`]) and then sends
//! `Authorization: Bearer <device_token>` on every request.

pub mod fields;

use base64::Engine;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

#[cfg(feature = "openapi")]
use utoipa::ToSchema;

pub mod admin;
pub mod canteen;

pub use admin::{
    Consent, ConsentRequest, EnrolmentCode, EnrolmentCodeRequest, LoginRequest, LoginResponse,
    PayCode, Staff, Template, TemplateRequest, User, UserRequest,
};
pub use canteen::{Canteen, MealPrice, MealWindow, MealWindowRequest};

/// `POST /api/v1/kiosk/enrol`: exchange a manager's one-time code for a device token.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct EnrolRequest {
    #[serde(deserialize_with = "fields::check::text::<fields::OneTimeCode, _>")]
    #[cfg_attr(feature = "openapi", schema(value_type = fields::OneTimeCode))]
    pub code: String,
    /// A human name for this device, e.g. "North hall, line 2".
    #[serde(deserialize_with = "fields::check::text::<fields::Name, _>")]
    #[cfg_attr(feature = "openapi", schema(value_type = fields::Name))]
    pub name: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct EnrolResponse {
    pub kiosk_id: i64,
    pub canteen_id: i64,
    /// Shown once; the backend keeps only its hash. Send as `Authorization: Bearer <token>`.
    pub device_token: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Meal {
    Breakfast,
    Lunch,
    Dinner,
}

impl Meal {
    /// The name as it travels (`"lunch"`), also in paths such as `/meal-windows/{meal}`.
    pub fn as_str(self) -> &'static str {
        match self {
            Meal::Breakfast => "breakfast",
            Meal::Lunch => "lunch",
            Meal::Dinner => "dinner",
        }
    }
}

/// `POST /api/v1/kiosk/charges`: charge one meal to a person.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct ChargeRequest {
    /// Made on the kiosk (a UUID is fine), 1-128 characters, unique per kiosk. Resending the
    /// same request with the same key returns the first result; the same key with a different
    /// body is refused with 409 `idempotency_key_reused`.
    #[serde(deserialize_with = "fields::check::text::<fields::IdempotencyKey, _>")]
    #[cfg_attr(feature = "openapi", schema(value_type = fields::IdempotencyKey))]
    pub idempotency_key: String,
    #[serde(deserialize_with = "fields::check::whole::<fields::Id, _>")]
    #[cfg_attr(feature = "openapi", schema(value_type = fields::Id))]
    pub staff_id: i64,
    /// When the tray was served, by the kiosk's clock. Online charges are judged at the
    /// server's time (this only may not be ahead of it); offline charges (`offline: true`) at
    /// this time, within the server's bound on how old an offline charge may be.
    #[serde(with = "time::serde::rfc3339")]
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub kiosk_time: OffsetDateTime,
    /// True for charges queued while the kiosk could not reach the backend. The meal was
    /// already served, so a rule broken by now is recorded as an exception for a manager
    /// instead of being refused.
    #[serde(default)]
    pub offline: bool,
    /// An explicit amount in yuan (a la carte). Absent: the price table decides.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        serialize_with = "rust_decimal::serde::str_option::serialize",
        deserialize_with = "fields::check::opt_positive_yuan"
    )]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<fields::PositiveYuan>))]
    pub amount: Option<Decimal>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum ChargeStatus {
    /// Paid: posted to the journal.
    Accepted,
    /// Refused (online only): do not serve, or take another payment. `reason` says why.
    Declined,
    /// Recorded for a manager (offline charges that broke a rule). Nothing was debited yet.
    Exception,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct ChargeResponse {
    pub status: ChargeStatus,
    pub charge_id: Option<i64>,
    /// Stable code when not accepted: `insufficient_funds`, `meal_already_taken`,
    /// `daily_cap_exceeded`, `transaction_cap_exceeded`, `outside_meal_period`, `no_price`,
    /// `staff_inactive`.
    pub reason: Option<String>,
    pub meal: Option<Meal>,
    /// The canteen-local day the charge counts for (YYYY-MM-DD).
    pub local_date: Option<String>,
    #[serde(with = "rust_decimal::serde::str")]
    #[cfg_attr(feature = "openapi", schema(value_type = String, example = "12.50"))]
    pub amount: Decimal,
    #[serde(with = "rust_decimal::serde::str")]
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub subsidy_used: Decimal,
    #[serde(with = "rust_decimal::serde::str")]
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub cash_used: Decimal,
    #[serde(with = "rust_decimal::serde::str")]
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub cash_balance: Decimal,
    #[serde(with = "rust_decimal::serde::str")]
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub subsidy_balance: Decimal,
    /// True when this is the stored answer to an earlier identical request.
    pub replayed: bool,
}

/// `POST /api/v1/kiosk/charges/void`: the kiosk refused a diner on its own (offline, the
/// charge's answer lost) and later learnt that the charge it could not withdraw was accepted:
/// the person paid for a meal never served. The backend reverses that charge (a journal
/// reversal, audited, the kiosk as actor). Idempotent: voiding an already reversed charge
/// answers the same reversal again.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct VoidChargeRequest {
    /// The idempotency key of the charge to void (made by this same kiosk).
    #[serde(deserialize_with = "fields::check::text::<fields::IdempotencyKey, _>")]
    #[cfg_attr(feature = "openapi", schema(value_type = fields::IdempotencyKey))]
    pub charge_key: String,
    /// Why, for the manager reading the journal, e.g. `refused_offline_not_served`.
    #[serde(deserialize_with = "fields::check::text::<fields::Reason, _>")]
    #[cfg_attr(feature = "openapi", schema(value_type = fields::Reason))]
    pub reason: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct VoidChargeResponse {
    pub charge_id: i64,
    /// The reversal's refund record.
    pub refund_id: i64,
    /// What went back to the person's balances.
    #[serde(with = "rust_decimal::serde::str")]
    #[cfg_attr(feature = "openapi", schema(value_type = String, example = "12.00"))]
    pub amount: Decimal,
    /// True when the charge had already been reversed (by an earlier void or a manager).
    pub already_void: bool,
}

/// `POST /api/v1/kiosk/waste`: grams left on a tray.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct WasteRequest {
    #[serde(deserialize_with = "fields::check::text::<fields::IdempotencyKey, _>")]
    #[cfg_attr(feature = "openapi", schema(value_type = fields::IdempotencyKey))]
    pub idempotency_key: String,
    #[serde(
        default,
        deserialize_with = "fields::check::opt_whole::<fields::Id, _>"
    )]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<fields::Id>))]
    pub staff_id: Option<i64>,
    /// The meal's charge, when known; links waste to what was eaten.
    #[serde(
        default,
        deserialize_with = "fields::check::opt_whole::<fields::Id, _>"
    )]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<fields::Id>))]
    pub charge_id: Option<i64>,
    #[serde(deserialize_with = "fields::check::whole::<fields::Grams, _>")]
    #[cfg_attr(feature = "openapi", schema(value_type = fields::Grams))]
    pub gross_grams: i64,
    #[serde(deserialize_with = "fields::check::whole::<fields::Grams, _>")]
    #[cfg_attr(feature = "openapi", schema(value_type = fields::Grams))]
    pub tare_grams: i64,
    #[serde(
        default,
        deserialize_with = "fields::check::opt_text::<fields::Dish, _>"
    )]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<fields::Dish>))]
    pub dish: Option<String>,
    #[serde(
        default,
        deserialize_with = "fields::check::opt_text::<fields::Category, _>"
    )]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<fields::Category>))]
    pub category: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub measured_at: OffsetDateTime,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct WasteResponse {
    pub id: i64,
    pub net_grams: i64,
    pub replayed: bool,
}

/// `GET /api/v1/kiosk/gallery?since=V&limit=N`: face templates changed after version `V`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct GalleryResponse {
    /// Pass this as `since` next time.
    pub next_since: i64,
    /// True when more changes are waiting: ask again at once.
    pub more: bool,
    pub changes: Vec<GalleryChange>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct GalleryChange {
    pub template_id: i64,
    pub staff_id: i64,
    pub version: i64,
    /// A tombstone: drop this template from the local gallery.
    pub deleted: bool,
    /// Base64 of little-endian f32s; absent for tombstones.
    pub embedding: Option<String>,
}

/// `GET /api/v1/kiosk/me`: who this device is.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct KioskInfo {
    pub kiosk_id: i64,
    pub name: String,
    pub canteen_id: i64,
}

/// `POST /api/v1/kiosk/pay-codes/redeem`: a one-time code a person shows as a QR code (made on
/// their phone with `POST /api/v1/me/pay-codes`, valid about two minutes). Redeeming uses it up;
/// the kiosk then charges the person with a normal [`ChargeRequest`]. Errors: 404
/// `unknown_pay_code`, 410 `pay_code_used` / `pay_code_expired`, 422 `staff_inactive`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct PayCodeRedeemRequest {
    #[serde(deserialize_with = "fields::check::text::<fields::OneTimeCode, _>")]
    #[cfg_attr(feature = "openapi", schema(value_type = fields::OneTimeCode))]
    pub code: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct PayCodeRedeemResponse {
    pub staff_id: i64,
}

/// `GET /api/v1/kiosk/waste-stats?staff_id=N`: average net grams left over the last 30 days, the
/// person's and everyone's at this kiosk's canteen (`null` without records).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct WasteStatsResponse {
    pub person_average_g: Option<f64>,
    pub canteen_average_g: Option<f64>,
}

/// `GET /api/v1/kiosk/balances?since=C&limit=N`: everyone's balances for offline decisions, as a
/// paged snapshot in staff-id order. Pass `next_since` back as `since`; after the last page
/// (`more: false`) `next_since` is 0 again, so the next poll starts a fresh snapshot. Keep, per
/// person, the entry with the highest `version`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct BalancesResponse {
    pub next_since: i64,
    pub more: bool,
    pub balances: Vec<BalanceEntry>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct BalanceEntry {
    pub staff_id: i64,
    /// Cash plus subsidy, yuan.
    #[serde(with = "rust_decimal::serde::str")]
    #[cfg_attr(feature = "openapi", schema(value_type = String, example = "123.50"))]
    pub available: Decimal,
    /// Offboarded or deactivated people: refuse offline.
    pub active: bool,
    /// Staff category, to pick the price from the canteen's price list.
    pub category: String,
    /// Grows with every change to this person's balances.
    pub version: i64,
    /// For the kiosk's screens ("王小明, 研发部"); empty from a backend that does not say.
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub department: String,
}

/// Every error response of the API.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct ErrorDetail {
    /// Stable, machine-readable (`idempotency_key_reused`, `unauthorized`, ...).
    pub code: String,
    /// For people; may change.
    pub message: String,
}

/// Encodes an embedding for [`GalleryChange::embedding`].
pub fn encode_embedding(v: &[f32]) -> String {
    let mut bytes = Vec::with_capacity(v.len() * 4);
    for x in v {
        bytes.extend_from_slice(&x.to_le_bytes());
    }
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadEmbedding(pub String);

impl std::fmt::Display for BadEmbedding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "bad embedding: {}", self.0)
    }
}

impl std::error::Error for BadEmbedding {}

/// Decodes [`GalleryChange::embedding`]; refuses lengths that are not whole f32s and
/// non-finite values.
pub fn decode_embedding(s: &str) -> Result<Vec<f32>, BadEmbedding> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(s)
        .map_err(|e| BadEmbedding(e.to_string()))?;
    if bytes.len() % 4 != 0 {
        return Err(BadEmbedding(format!(
            "{} bytes is not a whole number of f32s",
            bytes.len()
        )));
    }
    let v: Vec<f32> = bytes
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    if v.iter().any(|x| !x.is_finite()) {
        return Err(BadEmbedding("non-finite value".into()));
    }
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedding_round_trip_and_errors() {
        let v = vec![0.5f32, -1.25, 3.0];
        assert_eq!(decode_embedding(&encode_embedding(&v)).unwrap(), v);
        assert!(decode_embedding("AAA").is_err());
        assert!(decode_embedding(&encode_embedding(&[f32::NAN])).is_err());
    }

    #[test]
    fn canteen_json_shape() {
        let j = r#"{"id":3,"name":"North","utc_offset_minutes":480,"per_transaction_cap":"50.00","daily_cap":null,
            "windows":[{"meal":"lunch","start":"11:00","end":"14:00"}],
            "prices":[{"category":"regular","meal":"lunch","price":"15.00"}]}"#;
        let c: Canteen = serde_json::from_str(j).unwrap();
        assert_eq!(c.per_transaction_cap, Some(Decimal::new(5000, 2)));
        assert_eq!(c.prices[0].price, Decimal::new(1500, 2));
        let back = serde_json::to_value(&c).unwrap();
        assert_eq!(back["prices"][0]["price"], "15.00");
        assert_eq!(back["daily_cap"], serde_json::Value::Null);
    }

    #[test]
    fn charge_request_json_shape() {
        let j = r#"{"idempotency_key":"k1","staff_id":7,"kiosk_time":"2026-11-26T12:10:00+08:00","amount":"12.50"}"#;
        let r: ChargeRequest = serde_json::from_str(j).unwrap();
        assert_eq!(r.amount, Some(Decimal::new(1250, 2)));
        assert!(!r.offline);
        let back = serde_json::to_value(&r).unwrap();
        assert_eq!(back["amount"], "12.50");
    }
}
