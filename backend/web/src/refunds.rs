//! The managers' refunds to approve (`/manage/refunds`): staff refund requests waiting for a
//! decision, each approved or refused with one form (the store's `decide_refund`, as the API's
//! `POST /refunds/{id}/decide`).

use crate::error::{OrPage, PageError};
use crate::format::{local_time, yuan};
use crate::manage::canteen_offset;
use crate::session::{Chrome, Manager};
use crate::HostRef;
use askama::Template;
use askama_web::WebTemplate;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use serde::Deserialize;
use store::RefundStatus;

pub fn routes() -> Router<HostRef> {
    Router::new()
        .route("/manage/refunds", get(list))
        .route("/manage/refunds/{id}/decide", post(decide))
}

pub struct Row {
    pub id: i64,
    pub requested: String,
    pub employee_no: String,
    pub name: String,
    pub amount: String,
    pub reason: String,
}

#[derive(Template, WebTemplate)]
#[template(path = "refunds.html")]
pub struct RefundsPage {
    pub c: Chrome,
    pub rows: Vec<Row>,
}

pub async fn list(
    State(host): State<HostRef>,
    Manager(v): Manager,
) -> Result<RefundsPage, PageError> {
    let lang = v.lang;
    let store = host.store();
    let offset = canteen_offset(&host).await.or_page(lang)?;
    let mut rows = Vec::new();
    for r in store
        .list_refunds(Some(RefundStatus::Requested), None)
        .await
        .or_page(lang)?
    {
        let s = store.get_staff(r.staff_id).await.or_page(lang)?;
        rows.push(Row {
            id: r.id,
            requested: local_time(r.requested_at_ms, offset),
            employee_no: s.employee_no,
            name: s.name,
            amount: yuan(r.amount),
            reason: r.reason,
        });
    }
    Ok(RefundsPage {
        c: v.chrome("refunds"),
        rows,
    })
}

#[derive(Deserialize)]
pub struct DecideForm {
    #[serde(default)]
    pub csrf: String,
    #[serde(default)]
    pub approve: String,
}

pub async fn decide(
    State(host): State<HostRef>,
    Manager(v): Manager,
    Path(id): Path<i64>,
    Form(f): Form<DecideForm>,
) -> Result<Response, PageError> {
    v.check_csrf(&host, &f.csrf)?;
    let approve = match f.approve.as_str() {
        "true" => true,
        "false" => false,
        _ => return Err(PageError::bad_form(v.lang)),
    };
    host.store()
        .decide_refund(id, approve, host.now_ms(), &v.actor())
        .await
        .or_page(v.lang)?;
    Ok(Redirect::to("/manage/refunds").into_response())
}
