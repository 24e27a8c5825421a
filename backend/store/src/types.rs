//! Plain records passed through the [`crate::Store`] trait. Ids are database integers, times are
//! UTC milliseconds since the epoch (portable across both databases), money is [`Fen`].

use ledger::refund::ChargeStatus;
use ledger::{Fen, MealKind};
use serde::{Deserialize, Serialize};

/// Who did something, as written into the audit log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Actor {
    User {
        id: i64,
        username: String,
        role: Role,
    },
    Kiosk {
        id: i64,
    },
    /// The payment provider's notification or a reconciliation run.
    Gateway,
    /// Command-line tools (`create-manager`, `seed-demo`) and background tasks.
    System(&'static str),
}

impl Actor {
    pub fn label(&self) -> String {
        match self {
            Actor::User { id, username, role } => format!("{}:{}:{}", role.as_str(), id, username),
            Actor::Kiosk { id } => format!("kiosk:{id}"),
            Actor::Gateway => "gateway".into(),
            Actor::System(what) => format!("system:{what}"),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Manager,
    Staff,
    Auditor,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Manager => "manager",
            Role::Staff => "staff",
            Role::Auditor => "auditor",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "manager" => Some(Role::Manager),
            "staff" => Some(Role::Staff),
            "auditor" => Some(Role::Auditor),
            _ => None,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Canteen {
    pub id: i64,
    pub name: String,
    pub utc_offset_minutes: i32,
    pub per_transaction_cap: Option<Fen>,
    pub daily_cap: Option<Fen>,
    pub created_at_ms: i64,
    /// The plate waste aimed for, grams per plate (the dashboard's target line).
    #[serde(default)]
    pub waste_target_grams: Option<i64>,
}

#[derive(Clone, Debug, Default)]
pub struct NewCanteen {
    pub name: String,
    pub utc_offset_minutes: i32,
    pub per_transaction_cap: Option<Fen>,
    pub daily_cap: Option<Fen>,
}

#[derive(Clone, Debug, Default)]
pub struct CanteenUpdate {
    pub name: Option<String>,
    pub utc_offset_minutes: Option<i32>,
    /// `Some(None)` removes the cap.
    pub per_transaction_cap: Option<Option<Fen>>,
    pub daily_cap: Option<Option<Fen>>,
    /// `Some(None)` removes the target.
    pub waste_target_grams: Option<Option<i64>>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MealWindow {
    pub canteen_id: i64,
    pub meal: MealKind,
    pub start_minute: u16,
    pub end_minute: u16,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Price {
    pub canteen_id: i64,
    pub category: String,
    pub meal: MealKind,
    pub price: Fen,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubsidyRule {
    pub category: String,
    /// Credited per subsidy period (calendar month).
    pub amount: Fen,
    /// Whether unspent subsidy is returned to the fund when the next period opens.
    pub expires: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CanteenConfig {
    pub canteen: Canteen,
    pub windows: Vec<MealWindow>,
    pub prices: Vec<Price>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GrantSummary {
    pub period: String,
    pub people: i64,
    pub granted: Fen,
    pub expired: Fen,
    /// People already granted for this period before (idempotent re-runs).
    pub skipped: i64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Staff {
    pub id: i64,
    pub employee_no: String,
    pub name: String,
    pub department: String,
    pub category: String,
    pub active: bool,
    pub meals_per_period: u32,
    pub created_at_ms: i64,
}

#[derive(Clone, Debug, Default)]
pub struct NewStaff {
    pub employee_no: String,
    pub name: String,
    pub department: String,
    pub category: String,
}

/// A manager's search of the staff list: `text` in the employee number, name or department
/// (case-insensitive; empty matches everyone), a page of `limit` in employee-number order
/// after `after_employee_no`.
#[derive(Clone, Debug, Default)]
pub struct StaffSearch {
    pub text: String,
    pub include_inactive: bool,
    pub after_employee_no: String,
    pub limit: i64,
}

#[derive(Clone, Debug, Default)]
pub struct StaffUpdate {
    pub name: Option<String>,
    pub department: Option<String>,
    pub category: Option<String>,
    pub active: Option<bool>,
    pub meals_per_period: Option<u32>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Balances {
    pub staff_id: i64,
    pub cash: Fen,
    pub subsidy: Fen,
}

/// One journal entry as seen from one person's accounts.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatementLine {
    pub entry_id: i64,
    pub kind: String,
    pub at_ms: i64,
    pub cash_delta: Fen,
    pub subsidy_delta: Fen,
    pub memo: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct User {
    pub id: i64,
    pub username: String,
    pub role: Role,
    pub staff_id: Option<i64>,
    pub active: bool,
    pub password_hash: String,
    /// Set while the password is a one-time sign-in code a manager issued: the time it stops
    /// working. A session opened with it may only set a real password.
    pub one_time_until_ms: Option<i64>,
}

impl User {
    /// Whether this user still signs in with a one-time code and must choose a password.
    pub fn must_set_password(&self) -> bool {
        self.one_time_until_ms.is_some()
    }
}

#[derive(Clone, Debug)]
pub struct NewUser {
    pub username: String,
    pub password_hash: String,
    pub role: Role,
    pub staff_id: Option<i64>,
}

#[derive(Clone, Debug)]
pub struct NewSession {
    pub token_hash: String,
    pub user_id: i64,
    pub csrf_token: String,
    pub created_ms: i64,
    pub expires_ms: i64,
}

#[derive(Clone, Debug)]
pub struct Session {
    pub user: User,
    pub csrf_token: String,
    pub expires_ms: i64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Kiosk {
    pub id: i64,
    pub name: String,
    pub canteen_id: i64,
    pub revoked: bool,
    pub created_at_ms: i64,
    /// When the server last looked its token up (at most once a minute is noted).
    #[serde(default)]
    pub last_seen_ms: Option<i64>,
}

/// One charge as a kiosk sent it, already authenticated and hashed by the server.
#[derive(Clone, Debug)]
pub struct ChargeCommand {
    pub kiosk_id: i64,
    pub canteen_id: i64,
    pub idempotency_key: String,
    /// Hash of the canonical request body: the same key with another body is a conflict.
    pub request_hash: String,
    pub staff_id: i64,
    /// When the meal is judged to have been served: the server's clock for online charges,
    /// the kiosk's for offline ones.
    pub kiosk_time_ms: i64,
    pub received_ms: i64,
    /// Recorded while the kiosk was offline: the meal was already served, so a rule broken
    /// now becomes an exception for a manager instead of a refusal.
    pub offline: bool,
    /// An offline charge older than the server accepts on its own
    /// (`ledger::charge::offline_too_old`): recorded as an exception for a manager.
    pub offline_too_old: bool,
    /// An explicit amount (a la carte); `None` means the price table decides.
    pub amount: Option<Fen>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChargeOutcome {
    Accepted,
    Declined,
    Exception,
}

/// What a charge request produced; stored verbatim for idempotent replays.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChargeResult {
    pub outcome: ChargeOutcome,
    pub charge_id: Option<i64>,
    pub reason: Option<String>,
    pub meal: Option<MealKind>,
    pub local_date: Option<String>,
    pub amount: Fen,
    pub subsidy: Fen,
    pub cash: Fen,
    pub cash_balance: Fen,
    pub subsidy_balance: Fen,
    #[serde(default)]
    pub replayed: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChargeRecord {
    pub id: i64,
    pub kiosk_id: i64,
    pub idempotency_key: String,
    pub staff_id: i64,
    pub canteen_id: i64,
    pub meal: Option<MealKind>,
    pub local_date: String,
    pub kiosk_time_ms: i64,
    pub received_ms: i64,
    pub amount: Fen,
    pub subsidy: Fen,
    pub cash: Fen,
    pub status: ChargeStatus,
    pub reason: Option<String>,
    pub entry_id: Option<i64>,
    pub offline: bool,
}

#[derive(Clone, Debug, Default)]
pub struct ChargeFilter {
    pub staff_id: Option<i64>,
    pub status: Option<ChargeStatus>,
    pub kiosk_id: Option<i64>,
    /// Page backwards: only ids below this.
    pub before_id: Option<i64>,
    pub limit: i64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RefundStatus {
    Requested,
    Approved,
    Rejected,
}

impl RefundStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            RefundStatus::Requested => "requested",
            RefundStatus::Approved => "approved",
            RefundStatus::Rejected => "rejected",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "requested" => Some(RefundStatus::Requested),
            "approved" => Some(RefundStatus::Approved),
            "rejected" => Some(RefundStatus::Rejected),
            _ => None,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Refund {
    pub id: i64,
    pub charge_id: i64,
    pub staff_id: i64,
    /// "manager_reversal" or "staff_request".
    pub kind: String,
    pub status: RefundStatus,
    pub amount: Fen,
    pub reason: String,
    pub entry_id: Option<i64>,
    pub requested_at_ms: i64,
    pub decided_at_ms: Option<i64>,
}

/// What a kiosk's void did: the charge, its reversal, and whether the reversal already existed
/// (a replayed void, or a manager got there first), so a kiosk that lost the answer can ask again.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct VoidOutcome {
    pub charge: ChargeRecord,
    pub refund: Refund,
    pub already_void: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Offboarding {
    pub staff_id: i64,
    pub cash_paid_out: Fen,
    pub subsidy_returned: Fen,
    pub templates_deleted: i64,
}

#[derive(Clone, Debug)]
pub struct NewPaymentOrder {
    pub order_no: String,
    pub staff_id: i64,
    pub amount: Fen,
    pub provider: String,
    pub now_ms: i64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OrderStatus {
    /// Waiting for payment.
    Created,
    /// Paid and credited to the balance (exactly once).
    Credited,
    /// Paid after the person had left: not credited; the payment is being returned to the
    /// payer through the provider.
    Refused,
    /// Paid after the person had left and returned to the payer (nothing was credited).
    Returned,
}

impl OrderStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            OrderStatus::Created => "created",
            OrderStatus::Credited => "credited",
            OrderStatus::Refused => "refused",
            OrderStatus::Returned => "returned",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "created" => Some(OrderStatus::Created),
            "credited" => Some(OrderStatus::Credited),
            "refused" => Some(OrderStatus::Refused),
            "returned" => Some(OrderStatus::Returned),
            _ => None,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaymentOrder {
    pub order_no: String,
    pub staff_id: i64,
    pub amount: Fen,
    pub provider: String,
    pub status: OrderStatus,
    pub provider_txn: Option<String>,
    pub created_at_ms: i64,
    pub credited_at_ms: Option<i64>,
    pub entry_id: Option<i64>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CreditOutcome {
    Credited,
    AlreadyCredited,
    AmountMismatch,
    UnknownOrder,
    /// The person left before the payment arrived: not credited, to be returned to the payer
    /// (see [`PaymentReturn`]). Repeated notifications answer this again.
    RefusedLeft,
}

impl CreditOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            CreditOutcome::Credited => "credited",
            CreditOutcome::AlreadyCredited => "already_credited",
            CreditOutcome::AmountMismatch => "amount_mismatch",
            CreditOutcome::UnknownOrder => "unknown_order",
            CreditOutcome::RefusedLeft => "refused_left",
        }
    }
}

/// A paid order that was refused (the person had left) and must go back to the payer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaymentReturn {
    pub order_no: String,
    pub staff_id: i64,
    pub amount: Fen,
    /// The provider's payment transaction, which the refund reverses.
    pub provider_txn: String,
    pub created_at_ms: i64,
    /// The provider's refund transaction, once it confirmed the refund.
    pub provider_refund: Option<String>,
}

#[derive(Clone, Debug)]
pub struct WasteCommand {
    pub kiosk_id: i64,
    pub idempotency_key: String,
    pub request_hash: String,
    pub staff_id: Option<i64>,
    pub charge_id: Option<i64>,
    pub gross_grams: i64,
    pub tare_grams: i64,
    pub dish: Option<String>,
    pub category: Option<String>,
    pub measured_at_ms: i64,
    pub received_ms: i64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WasteRecord {
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
    #[serde(default)]
    pub replayed: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Consent {
    pub staff_id: i64,
    pub granted: bool,
    pub changed_at_ms: Option<i64>,
}

/// A face template encrypted by the server (AES-256-GCM); storage never sees plaintext.
#[derive(Clone, Debug)]
pub struct SealedTemplate {
    pub nonce: Vec<u8>,
    pub ciphertext: Vec<u8>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TemplateMeta {
    pub id: i64,
    pub staff_id: i64,
    pub version: i64,
    pub deleted: bool,
    pub created_at_ms: i64,
}

#[derive(Clone, Debug)]
pub struct GalleryChange {
    pub template_id: i64,
    pub staff_id: i64,
    pub version: i64,
    /// `None` for a tombstone (the template was deleted).
    pub sealed: Option<SealedTemplate>,
}

#[derive(Clone, Debug)]
pub struct GalleryPage {
    pub changes: Vec<GalleryChange>,
    /// The highest version in the gallery at the time of the read.
    pub current_version: i64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEntry {
    pub id: i64,
    pub at_ms: i64,
    pub actor: String,
    pub action: String,
    pub detail: String,
    pub seq: Option<i64>,
    pub prev_hash: Option<String>,
    pub hash: Option<String>,
}

/// The result of `backend check`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckReport {
    /// Empty when every invariant holds.
    pub problems: Vec<String>,
    pub entries: i64,
    pub postings: i64,
    pub charges: i64,
    pub audit_sealed: i64,
    pub audit_unsealed: i64,
    /// The last sealed entry the chain was verified up to (seq, hash): the chain's head when
    /// the chain is whole.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audit_verified_head: Option<(i64, String)>,
    /// The first sealed entry that breaks the chain, if one does (also among `problems`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audit_break: Option<AuditBreak>,
}

impl CheckReport {
    pub fn ok(&self) -> bool {
        self.problems.is_empty()
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SandboxPayment {
    pub order_no: String,
    pub amount: Fen,
    pub txn: String,
    pub paid_at_ms: i64,
}

/// What redeeming a pay code found.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum PayCodeRedemption {
    Redeemed {
        staff_id: i64,
    },
    Unknown,
    AlreadyUsed,
    Expired,
    /// The code was valid but its owner has left; it is used up all the same.
    StaffInactive,
}

#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct WasteStats {
    pub person_average_g: Option<f64>,
    pub canteen_average_g: Option<f64>,
}

/// One person's money as kiosks see it for offline decisions.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BalanceRow {
    pub staff_id: i64,
    pub active: bool,
    pub category: String,
    pub cash: Fen,
    pub subsidy: Fen,
    /// Grows with every change to this person's balances.
    pub version: i64,
}

/// Counters of the charge group commit since the store was opened (see `Store::charge`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChargeBatchStats {
    /// Batch transactions committed or failed.
    pub batches: u64,
    /// Charges those batches carried.
    pub charges: u64,
    /// The largest batch.
    pub largest: u64,
    /// Batches that failed as a whole (every charge in them was refused).
    pub failed: u64,
}

/// What the managers' dashboard asks for: a window of time and how days are cut (the
/// canteen's UTC offset), and the weight under which a plate counts as clean.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DashboardQuery {
    pub from_ms: i64,
    pub to_ms: i64,
    pub utc_offset_minutes: i32,
    pub clean_plate_max_grams: i64,
}

/// Charges of one local day and meal period (`day` counts days since 1970-01-01 in the
/// canteen's offset). `meals` counts every charge whatever its status (a person was served);
/// `revenue` and `subsidy` only accepted charges (refunds are reported on their own).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MealDay {
    pub day: i64,
    pub meal: Option<MealKind>,
    pub meals: i64,
    pub revenue: Fen,
    pub subsidy: Fen,
}

/// Money moved on one local day: credited top-ups, or approved refunds and reversals.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MoneyDay {
    pub day: i64,
    pub count: i64,
    pub amount: Fen,
}

/// Plate waste weighed on one local day.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WasteDay {
    pub day: i64,
    pub plates: i64,
    pub grams: i64,
    pub clean_plates: i64,
}

/// The dashboard's figures per day, each list ordered by day (then meal).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DashboardFigures {
    pub meals: Vec<MealDay>,
    pub top_ups: Vec<MoneyDay>,
    pub refunds: Vec<MoneyDay>,
    pub waste: Vec<WasteDay>,
    /// Plate waste over the whole range per department of the people weighed (the person is
    /// the record's or its charge's; plates of nobody known are left out), most grams per
    /// plate first.
    pub waste_by_department: Vec<WasteGroup>,
    /// Plate waste over the whole range per meal period of the charge the plate belongs to
    /// (`group` is the period's name, `""` for plates with no charge or no period), in the
    /// order of the day.
    pub waste_by_meal: Vec<WasteGroup>,
}

/// Plates weighed in one group (a department, a meal period) over a dashboard's range.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WasteGroup {
    pub group: String,
    pub plates: i64,
    pub grams: i64,
    pub clean_plates: i64,
}

impl WasteGroup {
    pub fn empty(group: String) -> Self {
        WasteGroup {
            group,
            plates: 0,
            grams: 0,
            clean_plates: 0,
        }
    }
}

/// Which journal lines the managers' journal shows: entries made in `[from_ms, to_ms)`,
/// optionally of one person (by employee number), one department, one kiosk and one entry
/// kind, newest first, pages of `limit` entries below `before_entry_id`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct JournalFilter {
    pub from_ms: i64,
    pub to_ms: i64,
    pub employee_no: Option<String>,
    /// Only entries touching people of this department, and only their lines.
    pub department: Option<String>,
    /// Only the charges made at this kiosk (the one kind of entry a kiosk makes).
    pub kiosk_id: Option<i64>,
    /// An entry kind (`charge`, `top_up`, `refund`, `reversal`, `subsidy_grant`, ...).
    pub kind: Option<String>,
    pub before_entry_id: Option<i64>,
    pub limit: i64,
}

/// Which plate-waste records the managers' journal shows (its "waste" kind): weighed in
/// `[from_ms, to_ms)`, optionally of one person, department or kiosk, the latest weighed
/// first, pages of `limit` after `before`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WasteFilter {
    pub from_ms: i64,
    pub to_ms: i64,
    pub employee_no: Option<String>,
    pub department: Option<String>,
    pub kiosk_id: Option<i64>,
    /// Continue below this plate: its weighing time and id (pages go by time, newest first).
    pub before: Option<(i64, i64)>,
    pub limit: i64,
}

/// One plate as the journal lists it. The person is the record's or its charge's; `None` for a
/// plate no one was recognised for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WasteLine {
    pub id: i64,
    pub at_ms: i64,
    pub kiosk: String,
    pub person: Option<WastePerson>,
    pub net_grams: i64,
    pub dish: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WastePerson {
    pub employee_no: String,
    pub name: String,
    pub department: String,
}

/// One journal entry as it touched one person's accounts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JournalLine {
    pub entry_id: i64,
    pub kind: String,
    pub at_ms: i64,
    pub staff_id: i64,
    pub employee_no: String,
    pub name: String,
    pub cash_delta: Fen,
    pub subsidy_delta: Fen,
    pub memo: String,
}

/// Where `check` found the keyed audit chain broken: the first sealed entry that does not
/// follow from the one before it (its seq, its row id when it has one, and what is wrong).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditBreak {
    pub seq: i64,
    pub entry_id: Option<i64>,
    pub problem: String,
}

/// A page of one kind of record for the inspection export: records whose time falls in
/// `[from_ms, to_ms)`, oldest id first, ids above `after_id`, at most `limit`. Which time and
/// which id each kind pages by is said on its `Store` method.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ExportRange {
    pub from_ms: i64,
    pub to_ms: i64,
    pub after_id: i64,
    pub limit: i64,
}

/// Who a record in the export belongs to, as the staff table says now.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ExportPerson {
    pub employee_no: String,
    pub name: String,
    pub department: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExportCharge {
    pub charge: ChargeRecord,
    pub person: ExportPerson,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExportRefund {
    pub refund: Refund,
    pub person: ExportPerson,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExportTopUp {
    pub order: PaymentOrder,
    pub person: ExportPerson,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExportWaste {
    pub waste: WasteRecord,
    /// `None` for a plate no one was recognised for.
    pub person: Option<ExportPerson>,
}
