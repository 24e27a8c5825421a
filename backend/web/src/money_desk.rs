//! The managers' money desk (`/manage/money`): what needs a person's decision about money.
//! Offline exceptions (charges that arrived from a kiosk breaking a rule, nothing posted yet)
//! to collect or waive; recent charges to reverse when they were wrong, with the reason kept
//! with the reversal; and top-up reconciliation, the payment provider's orders beside the
//! ledger with the ones that need a look marked, each checkable with the provider on demand. Every action
//! is the store or server function the JSON API's route calls (`resolve_exception`,
//! `reverse_charge`, the API's `reconcile`). Refund requests have their own page.

use crate::error::{OrPage, PageError};
use crate::format::{local_time, yuan};
use crate::i18n::Tr;
use crate::manage::canteen_offset;
use crate::session::{Chrome, Manager};
use crate::HostRef;
use askama::Template;
use askama_web::WebTemplate;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use ledger::refund::ChargeStatus;
use serde::Deserialize;
use std::collections::HashMap;
use store::{ChargeFilter, OrderStatus, PaymentOrder};
use wire::fields::{Reason, TextKind};

/// An unpaid order older than this is worth asking the provider about (a lost notification).
const STALE_ORDER_MS: i64 = 30 * 60 * 1000;

pub fn routes() -> Router<HostRef> {
    Router::new()
        .route("/manage/money", get(page))
        .route("/manage/money/exceptions/{id}", post(resolve))
        .route("/manage/money/charges/{id}/reverse", post(reverse))
        .route("/manage/money/topups/{order}/check", post(check_order))
}

pub struct ChargeRow {
    pub id: i64,
    pub when: String,
    pub employee_no: String,
    pub name: String,
    pub amount: String,
    pub reason: String,
}

pub struct OrderRow {
    pub order_no: String,
    pub when: String,
    pub employee_no: String,
    pub name: String,
    pub amount: String,
    pub status: &'static str,
    /// Needs a look: unpaid for long, or paid after the person left and not yet returned.
    pub attention: bool,
    pub checkable: bool,
}

#[derive(Template, WebTemplate)]
#[template(path = "money.html")]
pub struct MoneyPage {
    pub c: Chrome,
    pub notice: Option<String>,
    pub error: Option<String>,
    pub exceptions: Vec<ChargeRow>,
    pub charges: Vec<ChargeRow>,
    pub person: String,
    pub orders: Vec<OrderRow>,
    pub attention: usize,
}

#[derive(Deserialize, Default)]
pub struct MoneyQuery {
    #[serde(default)]
    pub person: String,
    #[serde(default)]
    pub done: String,
}

fn order_status(t: &'static Tr, s: OrderStatus) -> &'static str {
    match s {
        OrderStatus::Created => t.order_created,
        OrderStatus::Credited => t.order_credited,
        OrderStatus::Refused => t.order_refused,
        OrderStatus::Returned => t.order_returned,
    }
}

fn needs_attention(o: &PaymentOrder, now_ms: i64) -> bool {
    match o.status {
        OrderStatus::Created => now_ms - o.created_at_ms > STALE_ORDER_MS,
        OrderStatus::Refused => true,
        OrderStatus::Credited | OrderStatus::Returned => false,
    }
}

async fn money_page(
    host: &HostRef,
    v: &crate::session::Visitor,
    q: MoneyQuery,
    error: Option<String>,
) -> Result<MoneyPage, PageError> {
    let lang = v.lang;
    let t = lang.tr();
    let store = host.store();
    let offset = canteen_offset(host).await.or_page(lang)?;
    let mut names = Names::default();
    let exceptions = store
        .list_charges(ChargeFilter {
            status: Some(ChargeStatus::Exception),
            limit: 200,
            ..Default::default()
        })
        .await
        .or_page(lang)?;
    let exceptions = charge_rows(host, &mut names, exceptions, offset)
        .await
        .or_page(lang)?;
    let person = q.person.trim().to_string();
    let staff_id = if person.is_empty() {
        None
    } else {
        let found = store
            .find_staff(store::StaffSearch {
                text: person.clone(),
                include_inactive: true,
                after_employee_no: String::new(),
                limit: 50,
            })
            .await
            .or_page(lang)?;
        match found
            .iter()
            .find(|s| s.employee_no.eq_ignore_ascii_case(&person))
        {
            Some(s) => Some(s.id),
            None => return Err(PageError::not_found(lang)),
        }
    };
    let charges = store
        .list_charges(ChargeFilter {
            staff_id,
            status: Some(ChargeStatus::Accepted),
            limit: 30,
            ..Default::default()
        })
        .await
        .or_page(lang)?;
    let charges = charge_rows(host, &mut names, charges, offset)
        .await
        .or_page(lang)?;
    let now = host.now_ms();
    let mut orders = Vec::new();
    for o in store.list_payment_orders(None, 100).await.or_page(lang)? {
        let (no, name) = names.of(host, o.staff_id).await.or_page(lang)?;
        orders.push(OrderRow {
            attention: needs_attention(&o, now),
            checkable: o.status == OrderStatus::Created || o.status == OrderStatus::Refused,
            status: order_status(t, o.status),
            when: local_time(o.created_at_ms, offset),
            amount: yuan(o.amount),
            order_no: o.order_no,
            employee_no: no,
            name,
        });
    }
    let notice = match q.done.as_str() {
        "collected" => Some(t.exception_collected.to_string()),
        "waived" => Some(t.exception_waived.to_string()),
        "reversed" => Some(t.charge_reversed.to_string()),
        "" => None,
        outcome => Some(format!(
            "{}: {}",
            t.provider_says,
            outcome_label(t, outcome)
        )),
    };
    Ok(MoneyPage {
        c: v.chrome("money"),
        notice,
        error,
        attention: orders.iter().filter(|o| o.attention).count(),
        exceptions,
        charges,
        person,
        orders,
    })
}

/// Employee numbers and names, each person looked up once per page.
#[derive(Default)]
struct Names(HashMap<i64, (String, String)>);

impl Names {
    async fn of(&mut self, host: &HostRef, id: i64) -> Result<(String, String), store::StoreError> {
        if let Some(p) = self.0.get(&id) {
            return Ok(p.clone());
        }
        let s = host.store().get_staff(id).await?;
        let p = (s.employee_no, s.name);
        self.0.insert(id, p.clone());
        Ok(p)
    }
}

async fn charge_rows(
    host: &HostRef,
    names: &mut Names,
    list: Vec<store::ChargeRecord>,
    offset: i32,
) -> Result<Vec<ChargeRow>, store::StoreError> {
    let mut rows = Vec::with_capacity(list.len());
    for ch in list {
        let (employee_no, name) = names.of(host, ch.staff_id).await?;
        rows.push(ChargeRow {
            id: ch.id,
            when: local_time(ch.kiosk_time_ms, offset),
            employee_no,
            name,
            amount: yuan(ch.amount),
            reason: ch.reason.unwrap_or_default(),
        });
    }
    Ok(rows)
}

fn outcome_label(t: &'static Tr, outcome: &str) -> &'static str {
    match outcome {
        "not_paid" => t.outcome_not_paid,
        "credited" => t.outcome_credited,
        "already_credited" => t.outcome_already_credited,
        "refused_left" => t.outcome_refused_left,
        "amount_mismatch" => t.outcome_amount_mismatch,
        _ => t.outcome_other,
    }
}

pub async fn page(
    State(host): State<HostRef>,
    Manager(v): Manager,
    Query(q): Query<MoneyQuery>,
) -> Result<MoneyPage, PageError> {
    money_page(&host, &v, q, None).await
}

#[derive(Deserialize)]
pub struct ResolveForm {
    #[serde(default)]
    pub csrf: String,
    #[serde(default)]
    pub collect: String,
}

pub async fn resolve(
    State(host): State<HostRef>,
    Manager(v): Manager,
    Path(id): Path<i64>,
    Form(f): Form<ResolveForm>,
) -> Result<Response, PageError> {
    v.check_csrf(&host, &f.csrf)?;
    let collect = match f.collect.as_str() {
        "true" => true,
        "false" => false,
        _ => return Err(PageError::bad_form(v.lang)),
    };
    host.store()
        .resolve_exception(id, collect, host.now_ms(), &v.actor())
        .await
        .or_page(v.lang)?;
    let done = if collect { "collected" } else { "waived" };
    Ok(Redirect::to(&format!("/manage/money?done={done}")).into_response())
}

#[derive(Deserialize)]
pub struct ReverseForm {
    #[serde(default)]
    pub csrf: String,
    #[serde(default)]
    pub reason: String,
}

pub async fn reverse(
    State(host): State<HostRef>,
    Manager(v): Manager,
    Path(id): Path<i64>,
    Form(f): Form<ReverseForm>,
) -> Result<Response, PageError> {
    v.check_csrf(&host, &f.csrf)?;
    let lang = v.lang;
    // The reason is kept with the reversal: the API's rule for a reason.
    let reason = match Reason::RULE.check(&f.reason) {
        Ok(r) => r,
        Err(_) => {
            let page = money_page(
                &host,
                &v,
                MoneyQuery::default(),
                Some(lang.tr().reason_needed.to_string()),
            )
            .await?;
            return Ok((StatusCode::UNPROCESSABLE_ENTITY, page).into_response());
        }
    };
    host.store()
        .reverse_charge(id, &reason, host.now_ms(), &v.actor())
        .await
        .or_page(lang)?;
    Ok(Redirect::to("/manage/money?done=reversed").into_response())
}

pub async fn check_order(
    State(host): State<HostRef>,
    Manager(v): Manager,
    Path(order): Path<String>,
    Form(f): Form<crate::session::CsrfForm>,
) -> Result<Response, PageError> {
    v.check_csrf(&host, &f.csrf)?;
    let outcome = host.reconcile_top_up(&order).await.or_page(v.lang)?;
    // Only known words go back into the address.
    let known = [
        "not_paid",
        "credited",
        "already_credited",
        "refused_left",
        "amount_mismatch",
    ];
    let done = if known.contains(&outcome.as_str()) {
        outcome.as_str()
    } else {
        "other"
    };
    Ok(Redirect::to(&format!("/manage/money?done={done}")).into_response())
}
