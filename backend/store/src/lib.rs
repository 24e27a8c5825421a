//! The storage interface of the backend: one async [`Store`] trait whose methods are whole
//! business operations, each one database transaction (a charge, a top-up credit, a refund
//! decision...), plus the plain types they take and return. It knows no database driver: the
//! SQLite and PostgreSQL crates implement it, and the HTTP server only ever sees `dyn Store`.
//! Operations are coarse on purpose: the invariants (idempotency, locking, the audit entry that
//! must land with the money movement) live inside one implementation method and one transaction,
//! never spread over several calls that a crash could separate.

mod error;
mod hashing;
mod types;

pub use error::{SourceError, StoreError};
pub use hashing::{audit_hash, entry_hash, seal_digest, sha256_hex, AuditKey, GENESIS_HASH};
pub use types::*;

use async_trait::async_trait;
use ledger::Fen;

pub type Result<T> = std::result::Result<T, StoreError>;

/// The wall clock in milliseconds since the Unix epoch, as every time in the book is stored: the
/// backend's one reading of it (the server and both databases' implementations call this).
pub fn now_ms() -> i64 {
    (time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64
}

#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// "sqlite" or "postgres", for logs and reports.
    fn backend_name(&self) -> &'static str;

    /// Applies pending migrations (idempotent) and creates the system book accounts.
    async fn migrate(&self) -> Result<()>;

    // ---- canteens and rules -------------------------------------------------------------
    async fn create_canteen(&self, new: NewCanteen, actor: &Actor) -> Result<Canteen>;
    async fn update_canteen(&self, id: i64, upd: CanteenUpdate, actor: &Actor) -> Result<Canteen>;
    async fn list_canteens(&self) -> Result<Vec<Canteen>>;
    async fn canteen_config(&self, id: i64) -> Result<CanteenConfig>;
    async fn set_meal_window(&self, w: MealWindow, actor: &Actor) -> Result<()>;
    async fn set_price(&self, p: Price, actor: &Actor) -> Result<()>;
    async fn set_subsidy_rule(&self, r: SubsidyRule, actor: &Actor) -> Result<()>;
    async fn list_subsidy_rules(&self) -> Result<Vec<SubsidyRule>>;
    /// Opens subsidy period `period` ("YYYY-MM") for every active person: expires leftovers
    /// where the rule says so and credits the new amount. Idempotent per person and period.
    async fn grant_subsidies(
        &self,
        period: &str,
        now_ms: i64,
        actor: &Actor,
    ) -> Result<GrantSummary>;

    // ---- staff, users, sessions ---------------------------------------------------------
    async fn create_staff(&self, new: NewStaff, actor: &Actor) -> Result<Staff>;
    async fn update_staff(&self, id: i64, upd: StaffUpdate, actor: &Actor) -> Result<Staff>;
    async fn get_staff(&self, id: i64) -> Result<Staff>;
    async fn list_staff(&self, after_id: i64, limit: i64) -> Result<Vec<Staff>>;
    /// A manager's search of the staff list (see [`StaffSearch`]).
    async fn find_staff(&self, search: StaffSearch) -> Result<Vec<Staff>>;
    /// Creates every person of an import, all or nothing.
    async fn import_staff(&self, people: Vec<NewStaff>, actor: &Actor) -> Result<Vec<Staff>>;
    async fn balances(&self, staff_id: i64) -> Result<Balances>;
    /// Everyone's balances, paged by staff id (for kiosks' offline decisions).
    async fn balance_page(&self, after_staff_id: i64, limit: i64) -> Result<Vec<BalanceRow>>;
    async fn statement(&self, staff_id: i64, limit: i64) -> Result<Vec<StatementLine>>;

    async fn create_user(&self, new: NewUser, actor: &Actor) -> Result<User>;
    async fn user_by_username(&self, username: &str) -> Result<Option<User>>;
    /// When the person was offboarded (left for good), if they were.
    async fn left_at(&self, staff_id: i64) -> Result<Option<i64>>;
    /// A member of staff's login, if they have one.
    async fn user_for_staff(&self, staff_id: i64) -> Result<Option<User>>;
    /// Gives a member of staff a one-time sign-in code (stored as `code_hash`, working until
    /// `until_ms`): creates their login if needed, else resets it and ends their sessions.
    async fn issue_sign_in_code(
        &self,
        staff_id: i64,
        code_hash: &str,
        until_ms: i64,
        actor: &Actor,
    ) -> Result<User>;
    /// A user's own new password; ends a one-time code and every other session of theirs
    /// than the one named by `keep_session_hash`.
    async fn set_own_password(
        &self,
        user_id: i64,
        password_hash: &str,
        keep_session_hash: &str,
        actor: &Actor,
    ) -> Result<()>;
    async fn create_session(&self, s: NewSession) -> Result<()>;
    async fn session(&self, token_hash: &str, now_ms: i64) -> Result<Option<Session>>;
    async fn delete_session(&self, token_hash: &str) -> Result<()>;
    /// Deletes expired sessions and rate-limit windows older than a day; returns rows removed.
    async fn purge_expired(&self, now_ms: i64) -> Result<u64>;
    /// Counts one hit against `key` in a fixed window and says whether it is still allowed.
    /// Kept in the database so several instances share one budget.
    async fn rate_limit_hit(
        &self,
        key: &str,
        now_ms: i64,
        window_ms: i64,
        max: i64,
    ) -> Result<bool>;

    // ---- kiosks -------------------------------------------------------------------------
    async fn create_enrolment_code(
        &self,
        canteen_id: i64,
        code_hash: &str,
        expires_ms: i64,
        actor: &Actor,
    ) -> Result<()>;
    async fn redeem_enrolment_code(
        &self,
        code_hash: &str,
        name: &str,
        token_hash: &str,
        now_ms: i64,
    ) -> Result<Kiosk>;
    async fn kiosk_by_token(&self, token_hash: &str) -> Result<Option<Kiosk>>;
    async fn revoke_kiosk(&self, id: i64, now_ms: i64, actor: &Actor) -> Result<Kiosk>;
    async fn list_kiosks(&self) -> Result<Vec<Kiosk>>;
    /// Notes that a kiosk was heard from (kept at minute precision).
    async fn kiosk_seen(&self, id: i64, now_ms: i64) -> Result<()>;

    // ---- money --------------------------------------------------------------------------
    /// Applies one kiosk charge exactly once per (kiosk, idempotency key): a replay with the same
    /// request hash returns the first result (with `replayed` set), a different hash is
    /// `StoreError::Conflict { code: "idempotency_key_reused" }`. Implementations may write
    /// concurrent charges together in one transaction (group commit); the call returns only
    /// after the transaction holding this charge has committed.
    async fn charge(&self, cmd: ChargeCommand) -> Result<ChargeResult>;
    /// Group-commit counters, when the implementation batches charges.
    fn charge_batch_stats(&self) -> Option<ChargeBatchStats> {
        None
    }
    async fn get_charge(&self, id: i64) -> Result<ChargeRecord>;
    async fn list_charges(&self, filter: ChargeFilter) -> Result<Vec<ChargeRecord>>;
    /// A manager settles an exception: collect it now (funds permitting) or waive it.
    async fn resolve_exception(
        &self,
        charge_id: i64,
        collect: bool,
        now_ms: i64,
        actor: &Actor,
    ) -> Result<ChargeRecord>;
    /// A manager reverses a wrong charge at once.
    async fn reverse_charge(
        &self,
        charge_id: i64,
        reason: &str,
        now_ms: i64,
        actor: &Actor,
    ) -> Result<Refund>;
    /// A kiosk withdraws a charge it sent but never served (the answer was lost, the diner
    /// was refused offline). Keys are per kiosk, so a kiosk can only void its own charges; the
    /// reversal is the manager's, with the kiosk as actor. Voiding a reversed charge again
    /// answers the existing reversal; only recent charges qualify, older ones go to a manager.
    async fn void_kiosk_charge(
        &self,
        kiosk_id: i64,
        idempotency_key: &str,
        reason: &str,
        now_ms: i64,
    ) -> Result<VoidOutcome>;
    /// A person asks for a refund of their own charge; a manager decides later.
    async fn request_refund(
        &self,
        charge_id: i64,
        staff_id: i64,
        reason: &str,
        now_ms: i64,
        actor: &Actor,
    ) -> Result<Refund>;
    async fn decide_refund(
        &self,
        refund_id: i64,
        approve: bool,
        now_ms: i64,
        actor: &Actor,
    ) -> Result<Refund>;
    async fn list_refunds(
        &self,
        status: Option<RefundStatus>,
        staff_id: Option<i64>,
    ) -> Result<Vec<Refund>>;
    /// Someone leaves: pays out their cash, returns unspent subsidy to the fund, deactivates the
    /// person and deletes their face templates.
    async fn offboard_staff(
        &self,
        staff_id: i64,
        now_ms: i64,
        actor: &Actor,
    ) -> Result<Offboarding>;

    // ---- top-ups ------------------------------------------------------------------------
    async fn create_payment_order(
        &self,
        new: NewPaymentOrder,
        actor: &Actor,
    ) -> Result<PaymentOrder>;
    async fn get_payment_order(&self, order_no: &str) -> Result<PaymentOrder>;
    async fn list_payment_orders(
        &self,
        staff_id: Option<i64>,
        limit: i64,
    ) -> Result<Vec<PaymentOrder>>;
    /// Credits a paid order exactly once. Every call (valid, duplicate, wrong amount) is logged.
    async fn credit_payment(
        &self,
        order_no: &str,
        provider_txn: &str,
        paid: Fen,
        raw: &str,
        now_ms: i64,
    ) -> Result<CreditOutcome>;
    /// Logs a notification that failed before reaching an order (bad signature, unparsable).
    async fn log_payment_notification(
        &self,
        order_no: Option<&str>,
        raw: &str,
        verdict: &str,
        now_ms: i64,
    ) -> Result<()>;

    /// The sandbox gateway's own record of payments (it stands in for a provider's servers, so
    /// it keeps its books apart from ours). `false` when the order was already paid.
    async fn sandbox_record_payment(
        &self,
        order_no: &str,
        amount: Fen,
        txn: &str,
        now_ms: i64,
    ) -> Result<bool>;
    async fn sandbox_payment(&self, order_no: &str) -> Result<Option<SandboxPayment>>;
    /// Refused orders whose payment has not yet gone back to the payer, oldest first.
    async fn pending_payment_returns(&self, limit: i64) -> Result<Vec<PaymentReturn>>;
    /// Records that the provider refunded a refused order (`provider_refund` is its refund
    /// transaction); audited. Idempotent.
    async fn mark_payment_returned(
        &self,
        order_no: &str,
        provider_refund: &str,
        now_ms: i64,
    ) -> Result<()>;
    /// The sandbox gateway's own record of a refund. `false` when already refunded.
    async fn sandbox_record_refund(
        &self,
        order_no: &str,
        amount: Fen,
        refund_txn: &str,
        now_ms: i64,
    ) -> Result<bool>;
    /// The sandbox's refund of an order: its refund transaction.
    async fn sandbox_refund(&self, order_no: &str) -> Result<Option<String>>;

    // ---- one-time pay codes ---------------------------------------------------------------
    /// Stores the hash of a code a person will show as a QR code.
    async fn create_pay_code(
        &self,
        staff_id: i64,
        code_hash: &str,
        now_ms: i64,
        expires_ms: i64,
    ) -> Result<()>;
    /// Redeems a code once (atomically marks it used) and says whose it was.
    async fn redeem_pay_code(
        &self,
        code_hash: &str,
        kiosk_id: i64,
        now_ms: i64,
    ) -> Result<PayCodeRedemption>;

    // ---- plate waste --------------------------------------------------------------------
    async fn record_waste(&self, cmd: WasteCommand) -> Result<WasteRecord>;
    async fn list_waste(&self, staff_id: Option<i64>, limit: i64) -> Result<Vec<WasteRecord>>;
    /// Average net grams since `since_ms`: the person's, and everyone's at this canteen.
    async fn waste_stats(
        &self,
        staff_id: i64,
        canteen_id: i64,
        since_ms: i64,
    ) -> Result<WasteStats>;
    /// Meals, money and plate waste per canteen-local day in `[from_ms, to_ms)`, for the
    /// managers' dashboard (summed in the database: the window may hold millions of rows).
    async fn dashboard_figures(&self, q: DashboardQuery) -> Result<DashboardFigures>;
    /// A page of the journal as it touched people's accounts (the managers' journal and its
    /// export, which reads it page by page): at most `limit` entries, each with one line per
    /// person it touched.
    async fn journal_page(&self, f: JournalFilter) -> Result<Vec<JournalLine>>;
    /// A page of plate-waste records for the managers' journal and its export.
    async fn waste_page(&self, f: WasteFilter) -> Result<Vec<WasteLine>>;
    /// Every department named on a staff record, sorted (the journal's filter offers them).
    async fn departments(&self) -> Result<Vec<String>>;

    // ---- face templates -----------------------------------------------------------------
    async fn set_consent(
        &self,
        staff_id: i64,
        granted: bool,
        now_ms: i64,
        actor: &Actor,
    ) -> Result<Consent>;
    async fn consent(&self, staff_id: i64) -> Result<Consent>;
    /// Stores an (already encrypted) template; refused without recorded consent.
    async fn add_template(
        &self,
        staff_id: i64,
        sealed: SealedTemplate,
        now_ms: i64,
        actor: &Actor,
    ) -> Result<TemplateMeta>;
    async fn delete_template(
        &self,
        template_id: i64,
        now_ms: i64,
        actor: &Actor,
    ) -> Result<TemplateMeta>;
    async fn list_templates(&self, staff_id: i64) -> Result<Vec<TemplateMeta>>;
    /// Changes with version > `since`, oldest first, at most `limit`; tombstones included.
    async fn gallery_changes(&self, since: i64, limit: i64) -> Result<GalleryPage>;

    // ---- audit and checks ---------------------------------------------------------------
    async fn append_audit(
        &self,
        actor: &Actor,
        action: &str,
        detail: serde_json::Value,
        now_ms: i64,
    ) -> Result<()>;
    /// Chains up to `max` unsealed audit entries; returns how many were sealed. Safe to call
    /// from several instances at once (one wins the lock, the others seal nothing).
    async fn seal_audit(&self, max: i64) -> Result<usize>;
    /// The newest sealed audit entry's (seq, hash): the chain's head, for anchors kept outside
    /// the database.
    async fn audit_head(&self) -> Result<Option<(i64, String)>>;
    /// The hash of the sealed audit entry at `seq`, if there is one.
    async fn audit_hash_at(&self, seq: i64) -> Result<Option<String>>;
    async fn list_audit(&self, after_id: i64, limit: i64) -> Result<Vec<AuditEntry>>;
    /// Verifies the book's invariants; see `CheckReport`.
    async fn check(&self, now_ms: i64, unsealed_grace_ms: i64) -> Result<CheckReport>;

    // ---- audit page and inspection export -------------------------------------------------
    /// A page of the audit log, newest first: at most `limit` entries with ids below
    /// `before_id` (all when `None`), sealed or not.
    async fn audit_page(&self, before_id: Option<i64>, limit: i64) -> Result<Vec<AuditEntry>>;
    /// Charges received (`received_ms`) in the range, paged by charge id.
    async fn export_charges(&self, r: ExportRange) -> Result<Vec<ExportCharge>>;
    /// Refunds and reversals requested (`requested_at_ms`) in the range, whatever their
    /// status, paged by refund id.
    async fn export_refunds(&self, r: ExportRange) -> Result<Vec<ExportRefund>>;
    /// Top-ups credited (`credited_at_ms`) in the range, paged by their journal entry id.
    async fn export_top_ups(&self, r: ExportRange) -> Result<Vec<ExportTopUp>>;
    /// Plate weighings measured (`measured_at_ms`) in the range, paged by record id.
    async fn export_waste(&self, r: ExportRange) -> Result<Vec<ExportWaste>>;
}
