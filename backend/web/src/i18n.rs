//! The pages' two languages. Every visible string is a field of [`Tr`], so a template that
//! names a missing string does not compile, and both languages must give every string. zh-CN
//! is the default; the `cp_lang` cookie remembers a visitor's choice.

use axum::http::request::Parts;
use axum::http::HeaderMap;

pub const LANG_COOKIE: &str = "cp_lang";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lang {
    Zh,
    En,
}

impl Lang {
    pub fn code(self) -> &'static str {
        match self {
            Lang::Zh => "zh-CN",
            Lang::En => "en",
        }
    }

    pub fn tr(self) -> &'static Tr {
        match self {
            Lang::Zh => &ZH,
            Lang::En => &EN,
        }
    }

    pub fn parse(s: &str) -> Option<Lang> {
        match s {
            "zh-CN" | "zh" => Some(Lang::Zh),
            "en" => Some(Lang::En),
            _ => None,
        }
    }

    /// The other language (what the switch link offers).
    pub fn other(self) -> Lang {
        match self {
            Lang::Zh => Lang::En,
            Lang::En => Lang::Zh,
        }
    }

    /// The language named by the request's cookie, else zh-CN.
    pub fn of_headers(headers: &HeaderMap) -> Lang {
        crate::session::cookie(headers, LANG_COOKIE)
            .and_then(Lang::parse)
            .unwrap_or(Lang::Zh)
    }

    pub fn of(parts: &Parts) -> Lang {
        Lang::of_headers(&parts.headers)
    }
}

macro_rules! strings {
    ($($key:ident: $zh:expr, $en:expr;)*) => {
        /// Every string the pages show, in one language.
        pub struct Tr { $(pub $key: &'static str,)* }
        pub static ZH: Tr = Tr { $($key: $zh,)* };
        pub static EN: Tr = Tr { $($key: $en,)* };
    };
}

strings! {
    product: "光盘 CleanPlate", "CleanPlate 光盘";
    switch_to: "English", "中文";
    switch_to_label: "Switch to English", "切换到中文";
    sign_in: "登录", "Sign in";
    sign_out: "退出", "Sign out";
    sign_in_title: "登录光盘", "Sign in to CleanPlate";
    sign_in_hint: "管理员用用户名登录；员工用工号登录。", "Managers sign in with their username; staff with their employee number.";
    username: "用户名或工号", "Username or employee number";
    password: "密码", "Password";
    bad_credentials: "用户名或密码不正确。", "Wrong username or password.";
    rate_limited: "尝试次数过多，请稍等一分钟再试。", "Too many attempts; wait a minute and try again.";
    form_expired: "表单已过期，请重新提交。", "The form expired; please send it again.";
    error_title: "出错了", "Something went wrong";
    back_home: "返回首页", "Back to the start";
    forbidden: "您无权查看此页面。", "You may not see this page.";
    not_found: "找不到该页面或记录。", "No such page or record.";
    internal: "服务器出错，请稍后再试。", "The server failed; please try again shortly.";
    unavailable: "服务暂时不可用，请稍后再试。", "Temporarily unavailable; please try again shortly.";
    nav_dashboard: "概览", "Dashboard";
    nav_journal: "流水", "Journal";
    nav_refunds: "退款审批", "Refunds";
    dashboard_title: "经营概览", "Dashboard";
    today: "今日", "Today";
    last_30_days: "近 30 天", "Last 30 days";
    meals_served: "就餐人次", "Meals served";
    revenue: "餐费收入", "Revenue";
    subsidy_used: "补贴使用", "Subsidies used";
    top_ups: "充值", "Top-ups";
    refunds: "退款", "Refunds";
    waste_per_plate: "人均剩餐", "Waste per plate";
    clean_share: "光盘率", "Clean plates";
    grams: "克", "g";
    breakfast: "早餐", "Breakfast";
    lunch: "午餐", "Lunch";
    dinner: "晚餐", "Dinner";
    other_meal: "其他", "Other";
    chart_meals: "每日就餐人次（按餐次）", "Meals per day by meal period";
    chart_money: "每日餐费收入与补贴", "Revenue and subsidies per day";
    chart_waste: "每日人均剩餐（克）", "Plate waste per plate per day (g)";
    chart_clean: "每日光盘率", "Share of clean plates per day";
    show_values: "查看数据", "Show the values";
    date: "日期", "Date";
    total: "合计", "Total";
    plates: "餐盘数", "Plates";
    waste_total: "剩餐总量", "Waste in total";
    no_data: "暂无数据", "No data yet";
    count_unit: "笔", "entries";
    clean_plate_rule: "光盘：剩餐不超过 20 克。", "Clean plate: at most 20 g left.";
    staff_home: "我的账户", "My account";
    hello: "您好，", "Hello, ";
    balance: "余额", "Balance";
    cash: "现金", "Cash";
    subsidy: "补贴", "Subsidy";
    low_balance: "余额不足 ¥20，请及时充值。", "Your balance is under ¥20; please top up.";
    top_up: "充值", "Top up";
    top_up_amount: "充值金额（元）", "Amount (yuan)";
    top_up_go: "去支付", "Pay";
    top_up_pending: "充值处理中，页面会自动刷新……", "Your top-up is on its way; this page refreshes by itself…";
    top_up_done: "充值成功，已到账", "Top-up received:";
    top_up_bad_amount: "请输入 0.01 到 5000 之间的金额。", "Enter an amount between 0.01 and 5000.";
    history: "最近流水", "Recent activity";
    recent_meals: "最近就餐", "Recent meals";
    request_refund: "申请退款", "Ask for a refund";
    refund_reason: "退款原因", "Why";
    refund_reason_needed: "请填写退款原因（200 字以内）。", "Say why (at most 200 characters).";
    refund_requested: "退款审核中", "Refund requested";
    refund_approved: "已退款", "Refunded";
    refund_rejected: "退款未通过", "Refund refused";
    refund_sent_note: "退款申请已提交，管理员审核后退回余额。", "Refund requested; a manager will decide and the money comes back to your balance.";
    no_history: "暂无记录", "Nothing yet";
    pay_code: "付款码", "Pay code";
    pay_code_show: "出示付款码", "Show a pay code";
    pay_code_hint: "请在取餐机前出示此码，一次有效。", "Hold this code to the kiosk's camera; it works once.";
    expires_at: "有效期至", "Valid until";
    done: "完成", "Done";
    face_data: "人脸数据", "Face data";
    consent_given: "您已同意使用人脸识别就餐。", "You agreed to pay by face.";
    consent_not_given: "您未同意人脸识别，可用付款码就餐。", "You have not agreed to face recognition; pay with a pay code.";
    consent_withdraw: "撤回同意并删除我的人脸数据", "Withdraw consent and delete my face data";
    consent_give: "同意使用人脸识别", "Agree to face recognition";
    templates_count: "已存人脸模板", "Stored face templates";
    delete_template: "删除", "Delete";
    consent_withdrawn_note: "已撤回同意，您的人脸模板已删除；取餐机下次同步后将不再识别您。", "Consent withdrawn and your face templates deleted; kiosks stop recognising you at their next sync.";
    kind_charge: "就餐", "Meal";
    kind_topup: "充值", "Top-up";
    kind_refund: "退款", "Refund";
    kind_reversal: "冲正", "Reversal";
    kind_subsidy: "补贴发放", "Subsidy grant";
    kind_subsidy_expiry: "补贴过期", "Subsidy expired";
    kind_other: "其他", "Other";
    journal_title: "交易流水", "Journal";
    filter: "筛选", "Filter";
    bad_filter: "筛选条件无效：日期请写成 2026-12-03，类型请从列表中选。", "The filter is not valid: write dates as 2026-12-03 and pick a kind from the list.";
    no_lines: "没有符合条件的记录。", "Nothing matches the filter.";
    entry: "凭证号", "Entry";
    from: "起始日期", "From";
    to: "截止日期", "To";
    person: "员工工号", "Employee no.";
    kind: "类型", "Kind";
    all: "全部", "All";
    export_csv: "导出 CSV", "Export CSV";
    next_page: "下一页", "Next page";
    first_page: "第一页", "First page";
    amount: "金额", "Amount";
    status: "状态", "Status";
    name: "姓名", "Name";
    meal: "餐次", "Meal";
    kiosk: "取餐机", "Kiosk";
    time: "时间", "Time";
    reason: "原因", "Reason";
    approve: "批准", "Approve";
    refuse: "拒绝", "Refuse";
    refunds_title: "待审批退款", "Refunds to approve";
    no_refunds: "没有待审批的退款。", "No refunds waiting.";
    status_accepted: "已扣款", "Paid";
    status_exception: "待处理", "Exception";
    status_refunded: "已退款", "Refunded";
    status_waived: "已免单", "Waived";
    nav_audit: "审计", "Audit";
    audit_title: "审计日志", "Audit log";
    audit_chain: "审计链校验", "Audit chain";
    audit_ok: "审计链完整。", "The audit chain is intact.";
    audit_verified: "已校验条目：", "Entries verified:";
    audit_head: "链头", "Chain head";
    audit_last_good: "最后一条完好的条目", "Last good entry";
    audit_took: "耗时", "Took";
    audit_broken: "审计链在此处断开：序号", "The audit chain breaks at seq";
    audit_problems: "检查发现问题：", "The check found problems:";
    audit_empty: "审计链尚无已封存的条目。", "Nothing is sealed into the audit chain yet.";
    audit_verify_hint: "校验会重新计算整条审计链并核对流水与封存记录（与 backend check 相同），大账本可能需要数秒。", "Verifying recomputes the whole audit chain and checks the journal against its seals (as backend check does); on a large ledger it takes seconds.";
    audit_verify_now: "立即校验", "Verify now";
    audit_seq: "序号", "Seq";
    audit_actor: "操作者", "Actor";
    audit_action: "操作", "Action";
    audit_subject: "对象", "Subject";
    audit_summary: "摘要", "Summary";
    export_title: "检查导出", "Inspection export";
    export_zip: "下载 ZIP", "Download ZIP";
    export_hint: "所选日期内的就餐扣款、退款、充值和剩餐记录（CSV），附 manifest.json：各文件的 SHA-256、行数和导出时的审计链头。可用 backend verify-export 复核。", "Charges, refunds, top-ups and plate waste of the dates chosen (CSV), with manifest.json: each file's SHA-256, its row count and the audit chain head at export time. Re-check it with backend verify-export.";
    export_bad_range: "日期范围无效：请写成 2026-12-03，且截止日期不早于起始日期。", "The date range is not valid: write dates as 2026-12-03, the end not before the start.";
}
