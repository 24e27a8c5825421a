//! JSON shapes of the people-facing API (managers, staff, auditors). Kiosk-facing shapes live in
//! the `wire` crate. Money is a decimal string in yuan ("12.50"); conversion to fen happens here
//! at the edge and refuses sub-fen precision.

use crate::error::ApiError;
use ledger::{Fen, MealKind};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use wire::fields;

pub fn fen(d: Decimal, what: &'static str) -> Result<Fen, ApiError> {
    Fen::from_yuan(d).map_err(|e| ApiError::unprocessable("bad_amount", format!("{what}: {e}")))
}

pub fn positive_fen(d: Decimal, what: &'static str) -> Result<Fen, ApiError> {
    Fen::positive_from_yuan(d)
        .map_err(|e| ApiError::unprocessable("bad_amount", format!("{what}: {e}")))
}

// The shapes the kiosk's enrolment desk exchanges too live in `wire` (one definition for both
// sides); these names keep the handlers' spelling.
pub use wire::{
    Canteen as CanteenOut, Consent as ConsentOut, ConsentRequest as ConsentIn,
    EnrolmentCode as EnrolCodeOut, EnrolmentCodeRequest as EnrolCodeIn, LoginRequest,
    LoginResponse, MealPrice as PriceOut, MealWindow as MealWindowOut,
    MealWindowRequest as MealWindowIn, PayCode as PayCodeOut, Staff as StaffOut,
    Template as TemplateOut, TemplateRequest as TemplateIn, User as UserOut, UserRequest as UserIn,
};

pub fn staff_out(s: store::Staff) -> StaffOut {
    StaffOut {
        id: s.id,
        employee_no: s.employee_no,
        name: s.name,
        department: s.department,
        category: s.category,
        active: s.active,
        meals_per_period: s.meals_per_period,
    }
}

pub fn consent_out(c: store::Consent) -> ConsentOut {
    ConsentOut {
        staff_id: c.staff_id,
        granted: c.granted,
        changed_at_ms: c.changed_at_ms,
    }
}

pub fn template_out(t: store::TemplateMeta) -> TemplateOut {
    TemplateOut {
        id: t.id,
        staff_id: t.staff_id,
        version: t.version,
        deleted: t.deleted,
    }
}

pub fn meal_from_wire(m: wire::Meal) -> MealKind {
    match m {
        wire::Meal::Breakfast => MealKind::Breakfast,
        wire::Meal::Lunch => MealKind::Lunch,
        wire::Meal::Dinner => MealKind::Dinner,
    }
}

pub fn meal_to_wire(m: MealKind) -> wire::Meal {
    match m {
        MealKind::Breakfast => wire::Meal::Breakfast,
        MealKind::Lunch => wire::Meal::Lunch,
        MealKind::Dinner => wire::Meal::Dinner,
    }
}

#[derive(Serialize, Deserialize, ToSchema)]
pub struct MeResponse {
    pub user_id: Option<i64>,
    pub username: Option<String>,
    pub role: String,
    pub staff_id: Option<i64>,
    pub kiosk_id: Option<i64>,
}

#[derive(Deserialize, ToSchema)]
pub struct CanteenIn {
    #[serde(deserialize_with = "fields::check::text::<fields::Name, _>")]
    #[schema(value_type = fields::Name)]
    pub name: String,
    /// Minutes east of UTC (480 for China).
    #[serde(deserialize_with = "fields::check::whole::<fields::UtcOffsetMinutes, _>")]
    #[schema(value_type = fields::UtcOffsetMinutes)]
    pub utc_offset_minutes: i64,
    /// Largest single charge; absent or "0": no cap.
    #[serde(default, deserialize_with = "fields::check::opt_yuan")]
    #[schema(value_type = Option<fields::Yuan>)]
    pub per_transaction_cap: Option<Decimal>,
    /// Most a person may spend in a day; absent or "0": no cap.
    #[serde(default, deserialize_with = "fields::check::opt_yuan")]
    #[schema(value_type = Option<fields::Yuan>)]
    pub daily_cap: Option<Decimal>,
}

#[derive(Deserialize, ToSchema, Default)]
pub struct CanteenPatch {
    #[serde(
        default,
        deserialize_with = "fields::check::opt_text::<fields::Name, _>"
    )]
    #[schema(value_type = Option<fields::Name>)]
    pub name: Option<String>,
    #[serde(
        default,
        deserialize_with = "fields::check::opt_whole::<fields::UtcOffsetMinutes, _>"
    )]
    #[schema(value_type = Option<fields::UtcOffsetMinutes>)]
    pub utc_offset_minutes: Option<i64>,
    /// `"0"` removes the cap.
    #[serde(default, deserialize_with = "fields::check::opt_yuan")]
    #[schema(value_type = Option<fields::Yuan>)]
    pub per_transaction_cap: Option<Decimal>,
    /// `"0"` removes the cap.
    #[serde(default, deserialize_with = "fields::check::opt_yuan")]
    #[schema(value_type = Option<fields::Yuan>)]
    pub daily_cap: Option<Decimal>,
}

#[derive(Serialize, Deserialize, ToSchema)]
pub struct PriceIn {
    #[serde(deserialize_with = "fields::check::text::<fields::Category, _>")]
    #[schema(value_type = fields::Category)]
    pub category: String,
    pub meal: wire::Meal,
    #[serde(deserialize_with = "fields::check::positive_yuan")]
    #[schema(value_type = fields::PositiveYuan)]
    pub price: Decimal,
}

#[derive(Serialize, Deserialize, ToSchema)]
pub struct SubsidyRuleIn {
    #[serde(deserialize_with = "fields::check::yuan")]
    #[schema(value_type = fields::Yuan)]
    pub amount: Decimal,
    pub expires: bool,
}

#[derive(Serialize, Deserialize, ToSchema)]
pub struct SubsidyRuleOut {
    pub category: String,
    #[schema(value_type = String)]
    pub amount: Decimal,
    pub expires: bool,
}

#[derive(Deserialize, ToSchema)]
pub struct GrantIn {
    /// "YYYY-MM".
    pub period: fields::Period,
}

#[derive(Serialize, Deserialize, ToSchema)]
pub struct GrantOut {
    pub period: String,
    pub people: i64,
    pub skipped: i64,
    #[schema(value_type = String)]
    pub granted: Decimal,
    #[schema(value_type = String)]
    pub expired: Decimal,
}

#[derive(Deserialize, ToSchema)]
pub struct StaffIn {
    #[serde(deserialize_with = "fields::check::text::<fields::EmployeeNo, _>")]
    #[schema(value_type = fields::EmployeeNo)]
    pub employee_no: String,
    #[serde(deserialize_with = "fields::check::text::<fields::Name, _>")]
    #[schema(value_type = fields::Name)]
    pub name: String,
    #[serde(
        default,
        deserialize_with = "fields::check::text::<fields::Department, _>"
    )]
    #[schema(value_type = fields::Department)]
    pub department: String,
    #[serde(deserialize_with = "fields::check::text::<fields::Category, _>")]
    #[schema(value_type = fields::Category)]
    pub category: String,
}

#[derive(Deserialize, ToSchema, Default)]
pub struct StaffPatch {
    #[serde(
        default,
        deserialize_with = "fields::check::opt_text::<fields::Name, _>"
    )]
    #[schema(value_type = Option<fields::Name>)]
    pub name: Option<String>,
    #[serde(
        default,
        deserialize_with = "fields::check::opt_text::<fields::Department, _>"
    )]
    #[schema(value_type = Option<fields::Department>)]
    pub department: Option<String>,
    #[serde(
        default,
        deserialize_with = "fields::check::opt_text::<fields::Category, _>"
    )]
    #[schema(value_type = Option<fields::Category>)]
    pub category: Option<String>,
    pub active: Option<bool>,
    /// Paid meals allowed per meal period (1 by default).
    #[serde(
        default,
        deserialize_with = "fields::check::opt_whole::<fields::MealsPerPeriod, _>"
    )]
    #[schema(value_type = Option<fields::MealsPerPeriod>)]
    pub meals_per_period: Option<i64>,
}

#[derive(Serialize, Deserialize, ToSchema)]
pub struct BalanceOut {
    pub staff_id: i64,
    #[schema(value_type = String)]
    pub cash: Decimal,
    #[schema(value_type = String)]
    pub subsidy: Decimal,
}

impl From<store::Balances> for BalanceOut {
    fn from(b: store::Balances) -> Self {
        BalanceOut {
            staff_id: b.staff_id,
            cash: b.cash.to_yuan(),
            subsidy: b.subsidy.to_yuan(),
        }
    }
}

#[derive(Serialize, Deserialize, ToSchema)]
pub struct StatementLineOut {
    pub entry_id: i64,
    pub kind: String,
    pub at_ms: i64,
    #[schema(value_type = String)]
    pub cash_delta: Decimal,
    #[schema(value_type = String)]
    pub subsidy_delta: Decimal,
    pub memo: String,
}

impl From<store::StatementLine> for StatementLineOut {
    fn from(l: store::StatementLine) -> Self {
        StatementLineOut {
            entry_id: l.entry_id,
            kind: l.kind,
            at_ms: l.at_ms,
            cash_delta: l.cash_delta.to_yuan(),
            subsidy_delta: l.subsidy_delta.to_yuan(),
            memo: l.memo,
        }
    }
}

#[derive(Serialize, Deserialize, ToSchema)]
pub struct KioskOut {
    pub id: i64,
    pub name: String,
    pub canteen_id: i64,
    pub revoked: bool,
}

impl From<store::Kiosk> for KioskOut {
    fn from(k: store::Kiosk) -> Self {
        KioskOut {
            id: k.id,
            name: k.name,
            canteen_id: k.canteen_id,
            revoked: k.revoked,
        }
    }
}

#[derive(Serialize, Deserialize, ToSchema)]
pub struct ChargeOut {
    pub id: i64,
    pub kiosk_id: i64,
    pub staff_id: i64,
    pub canteen_id: i64,
    pub meal: Option<wire::Meal>,
    pub local_date: String,
    pub kiosk_time_ms: i64,
    pub received_ms: i64,
    #[schema(value_type = String)]
    pub amount: Decimal,
    #[schema(value_type = String)]
    pub subsidy: Decimal,
    #[schema(value_type = String)]
    pub cash: Decimal,
    /// accepted, exception, refunded or waived.
    pub status: String,
    pub reason: Option<String>,
    pub offline: bool,
}

impl From<store::ChargeRecord> for ChargeOut {
    fn from(c: store::ChargeRecord) -> Self {
        ChargeOut {
            id: c.id,
            kiosk_id: c.kiosk_id,
            staff_id: c.staff_id,
            canteen_id: c.canteen_id,
            meal: c.meal.map(meal_to_wire),
            local_date: c.local_date,
            kiosk_time_ms: c.kiosk_time_ms,
            received_ms: c.received_ms,
            amount: c.amount.to_yuan(),
            subsidy: c.subsidy.to_yuan(),
            cash: c.cash.to_yuan(),
            status: c.status.as_str().to_string(),
            reason: c.reason,
            offline: c.offline,
        }
    }
}

#[derive(Deserialize, ToSchema)]
pub struct ReasonIn {
    #[serde(deserialize_with = "fields::check::text::<fields::Reason, _>")]
    #[schema(value_type = fields::Reason)]
    pub reason: String,
}

#[derive(Deserialize, ToSchema)]
pub struct ResolveIn {
    /// "collect" (post it now, funds permitting) or "waive".
    pub action: fields::ExceptionAction,
}

#[derive(Deserialize, ToSchema)]
pub struct DecideIn {
    pub approve: bool,
}

#[derive(Deserialize, ToSchema)]
pub struct RefundRequestIn {
    #[serde(deserialize_with = "fields::check::whole::<fields::Id, _>")]
    #[schema(value_type = fields::Id)]
    pub charge_id: i64,
    #[serde(deserialize_with = "fields::check::text::<fields::Reason, _>")]
    #[schema(value_type = fields::Reason)]
    pub reason: String,
}

#[derive(Serialize, Deserialize, ToSchema)]
pub struct RefundOut {
    pub id: i64,
    pub charge_id: i64,
    pub staff_id: i64,
    pub kind: String,
    pub status: String,
    #[schema(value_type = String)]
    pub amount: Decimal,
    pub reason: String,
    pub requested_at_ms: i64,
    pub decided_at_ms: Option<i64>,
}

impl From<store::Refund> for RefundOut {
    fn from(r: store::Refund) -> Self {
        RefundOut {
            id: r.id,
            charge_id: r.charge_id,
            staff_id: r.staff_id,
            kind: r.kind,
            status: r.status.as_str().to_string(),
            amount: r.amount.to_yuan(),
            reason: r.reason,
            requested_at_ms: r.requested_at_ms,
            decided_at_ms: r.decided_at_ms,
        }
    }
}

#[derive(Serialize, Deserialize, ToSchema)]
pub struct OffboardOut {
    pub staff_id: i64,
    #[schema(value_type = String)]
    pub cash_paid_out: Decimal,
    #[schema(value_type = String)]
    pub subsidy_returned: Decimal,
    pub templates_deleted: i64,
}

#[derive(Deserialize, ToSchema)]
pub struct TopUpIn {
    /// At most 5000.00 at a time.
    #[serde(deserialize_with = "fields::check::positive_yuan")]
    #[schema(value_type = fields::PositiveYuan)]
    pub amount: Decimal,
}

#[derive(Serialize, Deserialize, ToSchema)]
pub struct OrderOut {
    pub order_no: String,
    pub staff_id: i64,
    #[schema(value_type = String)]
    pub amount: Decimal,
    pub provider: String,
    /// created, credited, refused (paid after the person left; going back to the payer) or
    /// returned (gone back to the payer).
    pub status: String,
    pub pay_url: Option<String>,
    pub created_at_ms: i64,
    pub credited_at_ms: Option<i64>,
}

impl OrderOut {
    pub fn from_order(o: store::PaymentOrder, pay_url: Option<String>) -> Self {
        OrderOut {
            order_no: o.order_no,
            staff_id: o.staff_id,
            amount: o.amount.to_yuan(),
            provider: o.provider,
            status: o.status.as_str().to_string(),
            pay_url,
            created_at_ms: o.created_at_ms,
            credited_at_ms: o.credited_at_ms,
        }
    }
}

#[derive(Serialize, Deserialize, ToSchema)]
pub struct OutcomeOut {
    /// credited, already_credited, amount_mismatch, unknown_order, refused_left (the person
    /// had left: not credited, the payment goes back to the payer) or not_paid.
    pub outcome: String,
}

#[derive(Serialize, Deserialize, ToSchema)]
pub struct WasteOut {
    pub id: i64,
    pub kiosk_id: i64,
    pub staff_id: Option<i64>,
    pub charge_id: Option<i64>,
    pub gross_grams: i64,
    pub tare_grams: i64,
    pub net_grams: i64,
    pub dish: Option<String>,
    pub category: Option<String>,
    pub measured_at_ms: i64,
}

impl From<store::WasteRecord> for WasteOut {
    fn from(w: store::WasteRecord) -> Self {
        WasteOut {
            id: w.id,
            kiosk_id: w.kiosk_id,
            staff_id: w.staff_id,
            charge_id: w.charge_id,
            gross_grams: w.gross_grams,
            tare_grams: w.tare_grams,
            net_grams: w.net_grams,
            dish: w.dish,
            category: w.category,
            measured_at_ms: w.measured_at_ms,
        }
    }
}

/// The body of `POST /staff/{id}/face-photos`: the photo's bytes (documentation only; the
/// handler reads the raw body).
#[derive(ToSchema)]
#[schema(value_type = String, format = Binary)]
pub struct PhotoBytes(pub Vec<u8>);

/// A template enrolled from a photo: the template's metadata and what the photo measured.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct FacePhotoOut {
    pub id: i64,
    pub staff_id: i64,
    pub version: i64,
    pub deleted: bool,
    /// 0..1, the face quality score (1 is an ideal enrolment photo).
    pub quality_score: f32,
    /// The face detector's confidence, 0..1.
    pub detection_score: f32,
    /// Distance between the eye centres in the photo, pixels.
    pub eye_distance_px: f32,
    /// Faces the detector found in the photo (the enrolled one included).
    pub faces_detected: usize,
}

#[derive(Serialize, Deserialize, ToSchema)]
pub struct AuditOut {
    pub id: i64,
    pub at_ms: i64,
    pub actor: String,
    pub action: String,
    pub detail: String,
    pub seq: Option<i64>,
    pub hash: Option<String>,
}

impl From<store::AuditEntry> for AuditOut {
    fn from(a: store::AuditEntry) -> Self {
        AuditOut {
            id: a.id,
            at_ms: a.at_ms,
            actor: a.actor,
            action: a.action,
            detail: a.detail,
            seq: a.seq,
            hash: a.hash,
        }
    }
}

#[derive(Serialize, Deserialize, ToSchema)]
pub struct CheckOut {
    pub ok: bool,
    pub problems: Vec<String>,
    pub entries: i64,
    pub postings: i64,
    pub charges: i64,
    pub audit_sealed: i64,
    pub audit_unsealed: i64,
}

impl From<store::CheckReport> for CheckOut {
    fn from(r: store::CheckReport) -> Self {
        CheckOut {
            ok: r.ok(),
            problems: r.problems,
            entries: r.entries,
            postings: r.postings,
            charges: r.charges,
            audit_sealed: r.audit_sealed,
            audit_unsealed: r.audit_unsealed,
        }
    }
}

/// "HH:MM" -> minutes after midnight; "24:00" allowed as an end (`ledger`'s reading, which the
/// kiosk shares).
pub fn parse_hhmm(s: &str) -> Result<u16, ApiError> {
    ledger::meal::parse_hhmm(s).map_err(|e| ApiError::unprocessable("bad_time", e.to_string()))
}

pub use ledger::meal::fmt_hhmm;
