//! The [`Store`] trait for [`SqlStore`], method by method to the module of its area.

use super::*;
use ledger::Fen;
use store::{
    Actor, AuditEntry, BalanceRow, Balances, Canteen, CanteenConfig, CanteenUpdate,
    ChargeBatchStats, ChargeCommand, ChargeFilter, ChargeRecord, ChargeResult, CheckReport,
    Consent, CreditOutcome, DashboardFigures, DashboardQuery, GalleryPage, GrantSummary,
    JournalFilter, JournalLine, Kiosk, MealWindow, NewCanteen, NewPaymentOrder, NewSession,
    NewStaff, NewUser, Offboarding, PayCodeRedemption, PaymentOrder, PaymentReturn, Price, Refund,
    RefundStatus, SandboxPayment, SealedTemplate, Session, Staff, StaffSearch, StaffUpdate,
    StatementLine, Store, SubsidyRule, TemplateMeta, User, VoidOutcome, WasteCommand, WasteFilter,
    WasteLine, WasteRecord, WasteStats,
};

#[async_trait::async_trait]
impl Store for SqlStore {
    fn backend_name(&self) -> &'static str {
        crate::dialect::BACKEND_NAME
    }

    fn charge_batch_stats(&self) -> Option<ChargeBatchStats> {
        self.queue.settings.enabled().then(|| self.queue.stats())
    }

    async fn migrate(&self) -> Result<()> {
        migrate(&self.pool).await?;
        self.system_ids().await?;
        Ok(())
    }

    async fn create_canteen(&self, new: NewCanteen, actor: &Actor) -> Result<Canteen> {
        canteens::create_canteen(self, new, actor).await
    }

    async fn update_canteen(&self, id: i64, upd: CanteenUpdate, actor: &Actor) -> Result<Canteen> {
        canteens::update_canteen(self, id, upd, actor).await
    }

    async fn list_canteens(&self) -> Result<Vec<Canteen>> {
        canteens::list_canteens(self).await
    }

    async fn canteen_config(&self, id: i64) -> Result<CanteenConfig> {
        canteens::canteen_config(self, id).await
    }

    async fn set_meal_window(&self, w: MealWindow, actor: &Actor) -> Result<()> {
        canteens::set_meal_window(self, w, actor).await
    }

    async fn set_price(&self, p: Price, actor: &Actor) -> Result<()> {
        canteens::set_price(self, p, actor).await
    }

    async fn set_subsidy_rule(&self, r: SubsidyRule, actor: &Actor) -> Result<()> {
        canteens::set_subsidy_rule(self, r, actor).await
    }

    async fn list_subsidy_rules(&self) -> Result<Vec<SubsidyRule>> {
        canteens::list_subsidy_rules(self).await
    }

    async fn grant_subsidies(
        &self,
        period: &str,
        now_ms: i64,
        actor: &Actor,
    ) -> Result<GrantSummary> {
        canteens::grant_subsidies(self, period, now_ms, actor).await
    }

    async fn create_staff(&self, new: NewStaff, actor: &Actor) -> Result<Staff> {
        people::create_staff(self, new, actor).await
    }

    async fn update_staff(&self, id: i64, upd: StaffUpdate, actor: &Actor) -> Result<Staff> {
        people::update_staff(self, id, upd, actor).await
    }

    async fn get_staff(&self, id: i64) -> Result<Staff> {
        people::get_staff(self, id).await
    }

    async fn list_staff(&self, after_id: i64, limit: i64) -> Result<Vec<Staff>> {
        people::list_staff(self, after_id, limit).await
    }

    async fn balances(&self, staff_id: i64) -> Result<Balances> {
        people::balances(self, staff_id).await
    }

    async fn balance_page(&self, after_staff_id: i64, limit: i64) -> Result<Vec<BalanceRow>> {
        people::balance_page(self, after_staff_id, limit).await
    }

    async fn statement(&self, staff_id: i64, limit: i64) -> Result<Vec<StatementLine>> {
        people::statement(self, staff_id, limit).await
    }

    async fn create_user(&self, new: NewUser, actor: &Actor) -> Result<User> {
        people::create_user(self, new, actor).await
    }

    async fn find_staff(&self, search: StaffSearch) -> Result<Vec<Staff>> {
        people::find_staff(self, search).await
    }

    async fn import_staff(&self, people: Vec<NewStaff>, actor: &Actor) -> Result<Vec<Staff>> {
        people::import_staff(self, people, actor).await
    }

    async fn left_at(&self, staff_id: i64) -> Result<Option<i64>> {
        people::left_at(self, staff_id).await
    }

    async fn user_for_staff(&self, staff_id: i64) -> Result<Option<User>> {
        people::user_for_staff(self, staff_id).await
    }

    async fn issue_sign_in_code(
        &self,
        staff_id: i64,
        code_hash: &str,
        until_ms: i64,
        actor: &Actor,
    ) -> Result<User> {
        people::issue_sign_in_code(self, staff_id, code_hash, until_ms, actor).await
    }

    async fn set_own_password(
        &self,
        user_id: i64,
        password_hash: &str,
        keep_session_hash: &str,
        actor: &Actor,
    ) -> Result<()> {
        people::set_own_password(self, user_id, password_hash, keep_session_hash, actor).await
    }

    async fn user_by_username(&self, username: &str) -> Result<Option<User>> {
        people::user_by_username(self, username).await
    }

    async fn create_session(&self, s: NewSession) -> Result<()> {
        people::create_session(self, s).await
    }

    async fn session(&self, token_hash: &str, now_ms: i64) -> Result<Option<Session>> {
        people::session(self, token_hash, now_ms).await
    }

    async fn delete_session(&self, token_hash: &str) -> Result<()> {
        people::delete_session(self, token_hash).await
    }

    async fn purge_expired(&self, now_ms: i64) -> Result<u64> {
        people::purge_expired(self, now_ms).await
    }

    async fn rate_limit_hit(
        &self,
        key: &str,
        now_ms: i64,
        window_ms: i64,
        max: i64,
    ) -> Result<bool> {
        people::rate_limit_hit(self, key, now_ms, window_ms, max).await
    }

    async fn create_enrolment_code(
        &self,
        canteen_id: i64,
        code_hash: &str,
        expires_ms: i64,
        actor: &Actor,
    ) -> Result<()> {
        kiosks::create_enrolment_code(self, canteen_id, code_hash, expires_ms, actor).await
    }

    async fn redeem_enrolment_code(
        &self,
        code_hash: &str,
        name: &str,
        token_hash: &str,
        now_ms: i64,
    ) -> Result<Kiosk> {
        kiosks::redeem_enrolment_code(self, code_hash, name, token_hash, now_ms).await
    }

    async fn kiosk_by_token(&self, token_hash: &str) -> Result<Option<Kiosk>> {
        kiosks::kiosk_by_token(self, token_hash).await
    }

    async fn revoke_kiosk(&self, id: i64, now_ms: i64, actor: &Actor) -> Result<Kiosk> {
        kiosks::revoke_kiosk(self, id, now_ms, actor).await
    }

    async fn kiosk_seen(&self, id: i64, now_ms: i64) -> Result<()> {
        kiosks::kiosk_seen(self, id, now_ms).await
    }

    async fn list_kiosks(&self) -> Result<Vec<Kiosk>> {
        kiosks::list_kiosks(self).await
    }

    async fn charge(&self, cmd: ChargeCommand) -> Result<ChargeResult> {
        charges::charge(self, cmd).await
    }

    async fn get_charge(&self, id: i64) -> Result<ChargeRecord> {
        charges::get_charge(self, id).await
    }

    async fn list_charges(&self, filter: ChargeFilter) -> Result<Vec<ChargeRecord>> {
        charges::list_charges(self, filter).await
    }

    async fn resolve_exception(
        &self,
        charge_id: i64,
        collect: bool,
        now_ms: i64,
        actor: &Actor,
    ) -> Result<ChargeRecord> {
        charges::resolve_exception(self, charge_id, collect, now_ms, actor).await
    }

    async fn reverse_charge(
        &self,
        charge_id: i64,
        reason: &str,
        now_ms: i64,
        actor: &Actor,
    ) -> Result<Refund> {
        refunds::reverse_charge(self, charge_id, reason, now_ms, actor).await
    }

    async fn void_kiosk_charge(
        &self,
        kiosk_id: i64,
        idempotency_key: &str,
        reason: &str,
        now_ms: i64,
    ) -> Result<VoidOutcome> {
        refunds::void_kiosk_charge(self, kiosk_id, idempotency_key, reason, now_ms).await
    }

    async fn request_refund(
        &self,
        charge_id: i64,
        staff_id: i64,
        reason: &str,
        now_ms: i64,
        actor: &Actor,
    ) -> Result<Refund> {
        refunds::request_refund(self, charge_id, staff_id, reason, now_ms, actor).await
    }

    async fn decide_refund(
        &self,
        refund_id: i64,
        approve: bool,
        now_ms: i64,
        actor: &Actor,
    ) -> Result<Refund> {
        refunds::decide_refund(self, refund_id, approve, now_ms, actor).await
    }

    async fn list_refunds(
        &self,
        status: Option<RefundStatus>,
        staff_id: Option<i64>,
    ) -> Result<Vec<Refund>> {
        refunds::list_refunds(self, status, staff_id).await
    }

    async fn offboard_staff(
        &self,
        staff_id: i64,
        now_ms: i64,
        actor: &Actor,
    ) -> Result<Offboarding> {
        people::offboard_staff(self, staff_id, now_ms, actor).await
    }

    async fn create_payment_order(
        &self,
        new: NewPaymentOrder,
        actor: &Actor,
    ) -> Result<PaymentOrder> {
        topups::create_payment_order(self, new, actor).await
    }

    async fn get_payment_order(&self, order_no: &str) -> Result<PaymentOrder> {
        topups::get_payment_order(self, order_no).await
    }

    async fn list_payment_orders(
        &self,
        staff_id: Option<i64>,
        limit: i64,
    ) -> Result<Vec<PaymentOrder>> {
        topups::list_payment_orders(self, staff_id, limit).await
    }

    async fn credit_payment(
        &self,
        order_no: &str,
        provider_txn: &str,
        paid: Fen,
        raw: &str,
        now_ms: i64,
    ) -> Result<CreditOutcome> {
        topups::credit_payment(self, order_no, provider_txn, paid, raw, now_ms).await
    }

    async fn log_payment_notification(
        &self,
        order_no: Option<&str>,
        raw: &str,
        verdict: &str,
        now_ms: i64,
    ) -> Result<()> {
        topups::log_payment_notification(self, order_no, raw, verdict, now_ms).await
    }

    async fn sandbox_record_payment(
        &self,
        order_no: &str,
        amount: Fen,
        txn: &str,
        now_ms: i64,
    ) -> Result<bool> {
        topups::sandbox_record_payment(self, order_no, amount, txn, now_ms).await
    }

    async fn sandbox_payment(&self, order_no: &str) -> Result<Option<SandboxPayment>> {
        topups::sandbox_payment(self, order_no).await
    }

    async fn pending_payment_returns(&self, limit: i64) -> Result<Vec<PaymentReturn>> {
        topups::pending_payment_returns(self, limit).await
    }

    async fn mark_payment_returned(
        &self,
        order_no: &str,
        provider_refund: &str,
        now_ms: i64,
    ) -> Result<()> {
        topups::mark_payment_returned(self, order_no, provider_refund, now_ms).await
    }

    async fn sandbox_record_refund(
        &self,
        order_no: &str,
        amount: Fen,
        refund_txn: &str,
        now_ms: i64,
    ) -> Result<bool> {
        topups::sandbox_record_refund(self, order_no, amount, refund_txn, now_ms).await
    }

    async fn sandbox_refund(&self, order_no: &str) -> Result<Option<String>> {
        topups::sandbox_refund(self, order_no).await
    }

    async fn create_pay_code(
        &self,
        staff_id: i64,
        code_hash: &str,
        now_ms: i64,
        expires_ms: i64,
    ) -> Result<()> {
        pay_codes::create_pay_code(self, staff_id, code_hash, now_ms, expires_ms).await
    }

    async fn redeem_pay_code(
        &self,
        code_hash: &str,
        kiosk_id: i64,
        now_ms: i64,
    ) -> Result<PayCodeRedemption> {
        pay_codes::redeem_pay_code(self, code_hash, kiosk_id, now_ms).await
    }

    async fn record_waste(&self, cmd: WasteCommand) -> Result<WasteRecord> {
        waste::record_waste(self, cmd).await
    }

    async fn list_waste(&self, staff_id: Option<i64>, limit: i64) -> Result<Vec<WasteRecord>> {
        waste::list_waste(self, staff_id, limit).await
    }

    async fn waste_stats(
        &self,
        staff_id: i64,
        canteen_id: i64,
        since_ms: i64,
    ) -> Result<WasteStats> {
        waste::waste_stats(self, staff_id, canteen_id, since_ms).await
    }

    async fn dashboard_figures(&self, q: DashboardQuery) -> Result<DashboardFigures> {
        dashboard::dashboard_figures(self, q).await
    }

    async fn journal_page(&self, f: JournalFilter) -> Result<Vec<JournalLine>> {
        dashboard::journal_page(self, f).await
    }

    async fn waste_page(&self, f: WasteFilter) -> Result<Vec<WasteLine>> {
        dashboard::waste_page(self, f).await
    }

    async fn departments(&self) -> Result<Vec<String>> {
        dashboard::departments(self).await
    }

    async fn set_consent(
        &self,
        staff_id: i64,
        granted: bool,
        now_ms: i64,
        actor: &Actor,
    ) -> Result<Consent> {
        faces::set_consent(self, staff_id, granted, now_ms, actor).await
    }

    async fn consent(&self, staff_id: i64) -> Result<Consent> {
        faces::consent(self, staff_id).await
    }

    async fn add_template(
        &self,
        staff_id: i64,
        sealed: SealedTemplate,
        now_ms: i64,
        actor: &Actor,
    ) -> Result<TemplateMeta> {
        faces::add_template(self, staff_id, sealed, now_ms, actor).await
    }

    async fn delete_template(
        &self,
        template_id: i64,
        now_ms: i64,
        actor: &Actor,
    ) -> Result<TemplateMeta> {
        faces::delete_template(self, template_id, now_ms, actor).await
    }

    async fn list_templates(&self, staff_id: i64) -> Result<Vec<TemplateMeta>> {
        faces::list_templates(self, staff_id).await
    }

    async fn gallery_changes(&self, since: i64, limit: i64) -> Result<GalleryPage> {
        faces::gallery_changes(self, since, limit).await
    }

    async fn append_audit(
        &self,
        actor: &Actor,
        action: &str,
        detail: serde_json::Value,
        now_ms: i64,
    ) -> Result<()> {
        audit::append_audit(self, actor, action, detail, now_ms).await
    }

    async fn seal_audit(&self, max: i64) -> Result<usize> {
        audit::seal_audit(self, max).await
    }

    async fn audit_head(&self) -> Result<Option<(i64, String)>> {
        audit::audit_head(self).await
    }

    async fn audit_hash_at(&self, seq: i64) -> Result<Option<String>> {
        audit::audit_hash_at(self, seq).await
    }

    async fn list_audit(&self, after_id: i64, limit: i64) -> Result<Vec<AuditEntry>> {
        audit::list_audit(self, after_id, limit).await
    }

    async fn check(&self, now_ms: i64, unsealed_grace_ms: i64) -> Result<CheckReport> {
        check::check(self, now_ms, unsealed_grace_ms).await
    }

    async fn audit_page(&self, before_id: Option<i64>, limit: i64) -> Result<Vec<AuditEntry>> {
        export::audit_page(self, before_id, limit).await
    }

    async fn export_charges(&self, r: store::ExportRange) -> Result<Vec<store::ExportCharge>> {
        export::export_charges(self, r).await
    }

    async fn export_refunds(&self, r: store::ExportRange) -> Result<Vec<store::ExportRefund>> {
        export::export_refunds(self, r).await
    }

    async fn export_top_ups(&self, r: store::ExportRange) -> Result<Vec<store::ExportTopUp>> {
        export::export_top_ups(self, r).await
    }

    async fn export_waste(&self, r: store::ExportRange) -> Result<Vec<store::ExportWaste>> {
        export::export_waste(self, r).await
    }
}
