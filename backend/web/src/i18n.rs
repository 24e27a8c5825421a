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
    kind_waste: "剩餐称重", "Plate waste";
    grams_left: "剩餐（克）", "Left (g)";
    dish: "菜品", "Dish";
    not_recognised_plate: "（未识别）", "(not recognised)";
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
    nav_staff: "人员", "Staff";
    staff_title: "人员管理", "Staff";
    search: "搜索", "Search";
    search_hint: "工号、姓名或部门", "Employee no., name or department";
    include_inactive: "包括已停用和已离职", "Include inactive and departed";
    no_people: "没有符合条件的人员。", "Nobody matches.";
    add_person: "新增人员", "Add a person";
    employee_no: "工号", "Employee no.";
    department: "部门", "Department";
    category: "类别", "Category";
    cat_regular: "正式职工", "Regular staff";
    cat_contractor: "外包人员", "Contractor";
    cat_intern: "实习生", "Intern";
    status_active: "在职", "Active";
    status_inactive: "已停用", "Inactive";
    status_left: "已离职", "Left";
    rule_employee_no: "工号须为 1-32 个字母、数字或 . _ - 字符。", "An employee number is 1-32 letters, digits or . _ - characters.";
    rule_name: "姓名须为 1-100 个字符，不能为空白或含控制字符。", "A name is 1-100 characters, not blank, no control characters.";
    rule_department: "部门最多 100 个字符，不能含控制字符。", "A department is at most 100 characters, no control characters.";
    rule_category: "类别须为 1-40 个字符，例如 regular。", "A category is 1-40 characters, e.g. regular.";
    rule_meals: "每餐次可就餐次数须为 1-20 的整数。", "Meals per period is a whole number from 1 to 20.";
    employee_no_taken: "该工号已存在。", "This employee number exists already.";
    person_added: "已新增。可为其生成一次性登录码。", "Added. You can now give them a one-time sign-in code.";
    saved: "已保存。", "Saved.";
    face_deleted: "人脸模板已删除；取餐机下次同步后将不再使用它。", "Face template deleted; kiosks stop using it at their next sync.";
    details: "资料", "Details";
    meals_per_period: "每餐次可就餐次数", "Meals per meal period";
    active_label: "在职（可就餐、可登录）", "Active (may eat and sign in)";
    save: "保存", "Save";
    recent: "最近流水", "Recent activity";
    login: "员工页面登录", "Staff page sign-in";
    login_none: "尚未开通登录。", "No sign-in yet.";
    login_waiting: "已发一次性登录码，等待本人首次登录设置密码。", "A one-time code was issued; waiting for their first sign-in.";
    login_ready: "已设置密码。", "Has set a password.";
    issue_code: "生成一次性登录码", "Issue a one-time sign-in code";
    reissue_code: "重置：生成新的一次性登录码", "Reset: issue a new one-time code";
    sign_in_code_title: "一次性登录码", "One-time sign-in code";
    sign_in_code_hint: "请当面交给本人：在员工页面用工号和此码登录，然后设置自己的密码。此码只显示这一次，旧密码和旧登录均已失效。", "Hand it to the person: they sign in on the staff page with their employee number and this code, then choose a password. It is shown only this once; their old password and sessions no longer work.";
    valid_until: "有效期至", "Valid until";
    person_consent_yes: "本人已同意人脸识别就餐。", "Has agreed to pay by face.";
    person_consent_no: "本人未同意人脸识别（可用付款码就餐）。", "Has not agreed to face recognition (pays with a pay code).";
    no_templates: "没有人脸模板。", "No face templates.";
    template: "人脸模板", "Face template";
    delete: "删除", "Delete";
    face_photo_hint: "正面、光线均匀、只有本人的一张照片（JPEG/PNG/WebP，10 MB 以内）。本人可随时在员工页面撤回同意。", "One photo of the person alone, facing the camera in even light (JPEG/PNG/WebP, up to 10 MB). They can withdraw consent on the staff page at any time.";
    offboard: "办理离职", "Offboard";
    offboard_hint: "离职时退还现金余额、收回补贴、删除人脸数据并停用登录。", "Leaving pays out the cash balance, returns the subsidy, deletes face data and ends the sign-in.";
    offboard_will: "确认后将：", "Confirming will:";
    offboard_final: "离职不可撤销。", "Offboarding cannot be undone.";
    offboard_confirm: "确认离职", "Confirm offboarding";
    offboarded: "已办理离职。", "Offboarded.";
    cash_paid_out: "退还现金", "Cash paid out";
    subsidy_returned: "收回补贴", "Subsidy returned";
    templates_deleted: "删除人脸模板", "Face templates deleted";
    cancel: "取消", "Cancel";
    import_title: "批量导入", "Import";
    import_upload: "上传名单", "Upload a list";
    import_hint: "CSV 或 XLSX 文件，第一行为表头：工号、姓名（必填），部门、类别（可选，类别默认 regular）。先逐行检查，全部无误才会导入；有任何错误则一条也不写入。", "A CSV or XLSX file whose first row is the header: employee no. and name (required), department and category (optional; category defaults to regular). Every row is checked first; the list is imported only when no row is wrong, otherwise nothing is written.";
    import_template: "下载模板（CSV）", "Download the template (CSV)";
    import_file: "文件", "File";
    import_go: "检查并导入", "Check and import";
    import_done: "已导入", "Imported";
    import_next_step: "下一步：为每位员工生成一次性登录码，并在登记台采集人脸。", "Next: issue each person a one-time sign-in code and take their face at the enrolment desk.";
    import_nothing_written: "未导入任何人员。", "Nothing was imported.";
    import_problems: "发现问题", "Problems found";
    import_rows_checked: "已检查行数", "Rows checked";
    row: "行", "Row";
    column: "列", "Column";
    value: "内容", "Value";
    problem: "问题", "Problem";
    import_not_xlsx: "无法读取该 XLSX 文件", "This XLSX file cannot be read";
    import_not_csv: "无法读取该 CSV 文件", "This CSV file cannot be read";
    import_no_sheet: "该工作簿没有工作表。", "The workbook has no sheet.";
    import_no_header: "文件没有表头行。", "The file has no header row.";
    import_missing_columns: "缺少必填列", "Required columns are missing";
    import_too_many_rows: "行数超过上限", "Too many rows";
    import_empty: "文件中没有人员。", "The file lists nobody.";
    import_repeated_in_file: "文件中重复，首次出现在第", "Repeated in the file; first on row";
    import_too_large: "文件太大（上限 5 MB）。", "The file is too large (at most 5 MB).";
    import_no_file: "请选择要上传的文件。", "Choose a file to upload.";
    set_password_title: "设置密码", "Choose a password";
    set_password_first: "欢迎！请先设置您自己的密码，之后用工号和此密码登录。", "Welcome! First choose your own password; from now on you sign in with your employee number and it.";
    new_password: "新密码", "New password";
    repeat_password: "再次输入新密码", "New password again";
    password_rule: "密码须为 10-128 个字符，不能含控制字符。", "A password is 10-128 characters, no control characters.";
    passwords_differ: "两次输入的密码不一致。", "The two passwords differ.";
    no_activity: "暂无流水。", "No activity yet.";
    export_xlsx: "导出 XLSX", "Export XLSX";
    memo: "摘要", "Memo";
    nav_money: "资金台", "Money desk";
    money_title: "资金台", "Money desk";
    exceptions_title: "离线异常扣款", "Offline exceptions";
    exceptions_hint: "取餐机离线时记下、但违反规则（余额不足、超限额等）的就餐，尚未入账。收取：余额够时现在扣款；免单：不再收取。", "Meals a kiosk recorded while offline that broke a rule (not enough money, over a cap, ...); nothing is posted yet. Collect charges them now if the money is there; waive lets them go.";
    no_exceptions: "没有待处理的异常。", "No exceptions waiting.";
    collect: "收取", "Collect";
    waive: "免单", "Waive";
    exception_collected: "已收取。", "Collected.";
    exception_waived: "已免单。", "Waived.";
    reverse_title: "冲正错误扣款", "Reverse a wrong charge";
    reverse_hint: "最近的已扣款就餐；冲正会全额退回现金和补贴，并记下原因。", "Recent paid meals; a reversal returns the cash and subsidy in full and keeps the reason.";
    reverse: "冲正", "Reverse";
    reason_needed: "请填写冲正原因（1-200 个字符）。", "Give the reason for the reversal (1-200 characters).";
    charge_reversed: "已冲正，款项已退回。", "Reversed; the money is back.";
    reconcile_title: "充值对账", "Top-up reconciliation";
    reconcile_hint: "支付渠道的充值订单与账本对照：超过 30 分钟仍未支付的订单（可能丢失了到账通知）和离职后才支付、正在退回的订单需要留意；可向支付渠道查询，已支付的会入账且只入一次。", "The payment provider's top-up orders beside the ledger: orders unpaid after 30 minutes (a lost notification?) and payments made after the person left, being returned, need a look; ask the provider, and a paid order is credited exactly once.";
    needs_look: "需留意", "Need a look";
    order_no: "订单号", "Order";
    order_created: "待支付", "Awaiting payment";
    order_credited: "已入账", "Credited";
    order_refused: "离职后支付，退回中", "Paid after leaving, being returned";
    order_returned: "已退回付款人", "Returned to the payer";
    check_with_provider: "向支付渠道查询", "Ask the provider";
    provider_says: "支付渠道查询结果", "The provider says";
    outcome_not_paid: "尚未支付", "not paid";
    outcome_credited: "已支付，现已入账", "paid; credited now";
    outcome_already_credited: "已支付，早已入账", "paid; credited before";
    outcome_refused_left: "已支付，但本人已离职，退回付款人", "paid, but the person had left: going back to the payer";
    outcome_amount_mismatch: "金额不符，未入账，请人工核对", "the amount differs: not credited, check by hand";
    outcome_other: "未知结果，请查看日志", "an unknown outcome; see the log";
    subsidy_expires: "未用完的补贴到期日：", "Unspent subsidy expires on";
    my_waste: "我的剩餐", "My plate waste";
    plates_weighed: "称重餐盘", "plates weighed";
    clean_plates_mine: "光盘", "clean";
    nav_settings: "设置", "Settings";
    settings_title: "设置", "Settings";
    canteen: "食堂", "Canteen";
    time_zone: "时区", "Time zone";
    time_zone_hint: "与 UTC 相差的分钟数，北京时间为 480", "Minutes from UTC; 480 for Beijing time";
    per_transaction_cap: "单笔限额（元）", "Cap per meal (yuan)";
    empty_for_none: "留空为不限", "Empty for none";
    daily_cap: "每日限额（元）", "Cap per day (yuan)";
    meal_windows: "餐次时段", "Meal periods";
    start: "开始", "Start";
    end: "结束（不含）", "End (exclusive)";
    prices: "价格（元）", "Prices (yuan)";
    new_category: "新类别", "New category";
    subsidies: "每月补贴", "Monthly subsidies";
    subsidy_amount: "每月金额（元）", "Per month (yuan)";
    subsidy_expires_label: "月底未用完的收回", "Unspent returns at month end";
    grant_title: "发放补贴", "Grant subsidies";
    grant_hint: "为该月份发放补贴（按类别；设为月底收回的，先收回上月余额）。同一月份重复发放不会重复入账。", "Grants the month's subsidy per category (expiring leftovers first where the rule says so). Granting a month twice credits nobody twice.";
    period: "月份", "Month";
    grant_go: "发放", "Grant";
    granted_period: "已发放", "Granted";
    people_granted: "人数", "people";
    amount_granted: "发放", "granted";
    amount_expired: "收回", "expired";
    people_skipped: "已发过", "already granted";
    kiosks: "取餐机", "Kiosks";
    kiosk_name: "名称", "Name";
    registered: "注册时间", "Registered";
    last_seen: "最近联络", "Last heard from";
    never: "从未", "never";
    revoked: "已停用", "Revoked";
    revoke: "停用", "Revoke";
    kiosk_revoked: "已停用该取餐机，它的令牌不再有效。", "Kiosk revoked; its token no longer works.";
    new_kiosk_code: "生成新取餐机注册码", "Issue a code for a new kiosk";
    kiosk_code_title: "取餐机注册码", "Kiosk registration code";
    kiosk_code_hint: "在新取餐机上运行 kiosk register --code 并输入此码。此码只显示这一次，只能使用一次。", "On the new kiosk run kiosk register --code with this code. It is shown only now and works once.";
    rule_offset: "时区须为 -840 到 840 之间的整数分钟（北京时间为 480）。", "The time zone is whole minutes from -840 to 840 (Beijing is 480).";
    rule_money: "金额须为不超过两位小数的正数。", "An amount is a positive number with at most two decimals.";
    rule_window: "时段须为 HH:MM，结束晚于开始，且不与其他餐次重叠。", "A period is HH:MM to HH:MM, ending after it starts, not overlapping another meal.";
    rule_period: "月份格式为 YYYY-MM。", "A month is written YYYY-MM.";
    nothing_changed: "未做任何更改。", "Nothing was changed.";
    photo_label: "登记照片", "Enrolment photo";
    photo_go: "上传并登记人脸", "Upload and enrol the face";
    face_enrolled: "已从照片登记人脸；取餐机下次同步后即可识别。", "Face enrolled from the photo; kiosks recognise the person after their next sync.";
    photo_no_face: "照片中没有找到人脸，请换一张正面照片。", "No face was found in the photo; use a photo facing the camera.";
    photo_several_faces: "照片中有多张人脸，请用只有本人的照片。", "The photo shows several faces; use one of the person alone.";
    photo_poor_quality: "照片质量不够（太小、太暗、模糊或侧脸），请重拍", "The photo is not good enough (too small, dark, blurred or turned away); take another";
    photo_bad_image: "无法读取该图片，请上传 JPEG、PNG 或 WebP 照片。", "The image cannot be read; upload a JPEG, PNG or WebP photo.";
    photo_consent_required: "本人尚未同意人脸识别，请先记录同意。", "The person has not consented to face recognition; record their consent first.";
    photo_matches_other: "警告：这张脸与另一位已登记的人过于相似，取餐机可能认错人，未登记。请核对本人和照片", "Warning: this face is too close to someone else already enrolled; a kiosk could take one for the other, so it was not enrolled. Check the person and the photo";
    photo_unlike_own: "这张脸与本人已登记的人脸不像，未登记（照片或人是否弄错？如需重新登记，先删除旧模板）", "This face is unlike the person's enrolled face, so it was not enrolled (a wrong photo or person? delete the old templates first to re-enrol)";
    photo_unavailable: "人脸模型未安装，暂不能从照片登记。", "The face models are not installed; photos cannot be enrolled now.";
    photo_too_large: "照片太大（上限 10 MB）。", "The photo is too large (at most 10 MB).";
    photo_none: "请选择一张照片。", "Choose a photo.";
    record_consent: "记录本人已同意（纸质同意书）", "Record consent (signed at the desk)";
    consent_paper_hint: "本人在登记台签署同意书后记录；本人也可在员工页面自行同意。", "Record it once the person has signed at the desk; they can also agree on the staff page themselves.";
    record_withdrawal: "记录撤回同意并删除人脸数据", "Record withdrawal and delete face data";
    consent_recorded: "已记录。", "Recorded.";
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
    waste_target: "目标", "Target";
    chart_departments: "各部门人均剩餐（近 30 天）", "Waste per plate by department (30 days)";
    no_department: "（未填部门）", "(no department)";
    chart_meal_waste: "各餐次人均剩餐（近 30 天）", "Waste per plate by meal (30 days)";
    waste_target_label: "剩餐目标（克/盘）", "Plate-waste target (g per plate)";
    empty_for_no_target: "留空为不设目标", "Empty for no target";
    rule_waste_target: "剩餐目标须为 0-5000 之间的整数克数。", "A plate-waste target is whole grams from 0 to 5000.";
}
