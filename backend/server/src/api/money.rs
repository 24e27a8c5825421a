//! Manager and auditor routes over money: charges, exceptions, reversals, refund decisions,
//! top-up orders and reconciliation, plate waste; plus the payment gateway's notification
//! endpoint and the sandbox gateway's pay page.

use super::types::*;
use crate::auth::{Need, AUDITOR, MANAGER};
use crate::error::{ApiError, JsonBody};
use crate::error::{ApiPath, ApiQuery};
use crate::payments::{handle_notification, PaymentError, ProviderOrderState};
use crate::state::{now_ms, AppState};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Html;
use axum::Json;
use ledger::refund::ChargeStatus;
use serde::Deserialize;
use store::{ChargeFilter, RefundStatus};
use utoipa::IntoParams;

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ChargeQuery {
    pub staff_id: Option<i64>,
    /// accepted, exception, refunded or waived.
    pub status: Option<wire::fields::ChargeStatusName>,
    pub kiosk_id: Option<i64>,
    pub before_id: Option<i64>,
    pub limit: Option<i64>,
}

/// Charges, newest first (status=exception lists what needs a manager). Roles: manager, auditor.
#[utoipa::path(get, path = "/api/v1/charges", tag = "money", params(ChargeQuery), responses((status = 200, body = Vec<ChargeOut>)))]
pub async fn list_charges(
    State(st): State<AppState>,
    _w: Need<{ MANAGER | AUDITOR }>,
    ApiQuery(q): ApiQuery<ChargeQuery>,
) -> Result<Json<Vec<ChargeOut>>, ApiError> {
    // The query's kind admits exactly the ledger's statuses.
    let status = q.status.and_then(|s| ChargeStatus::parse(s.as_str()));
    let f = ChargeFilter {
        staff_id: q.staff_id,
        status,
        kiosk_id: q.kiosk_id,
        before_id: q.before_id,
        limit: q.limit.unwrap_or(100).clamp(1, 1000),
    };
    Ok(Json(
        st.store
            .list_charges(f)
            .await?
            .into_iter()
            .map(Into::into)
            .collect(),
    ))
}

/// One charge. Roles: manager, auditor.
#[utoipa::path(get, path = "/api/v1/charges/{id}", tag = "money", params(("id" = i64, Path)), responses((status = 200, body = ChargeOut)))]
pub async fn get_charge(
    State(st): State<AppState>,
    _w: Need<{ MANAGER | AUDITOR }>,
    ApiPath(id): ApiPath<i64>,
) -> Result<Json<ChargeOut>, ApiError> {
    Ok(Json(st.store.get_charge(id).await?.into()))
}

/// Reverse a wrong charge (a reversing entry; the original stays in the journal). Roles: manager.
#[utoipa::path(post, path = "/api/v1/charges/{id}/reverse", tag = "money", params(("id" = i64, Path)), request_body = ReasonIn,
    responses((status = 200, body = RefundOut), (status = 422, body = wire::ErrorBody)))]
pub async fn reverse_charge(
    State(st): State<AppState>,
    Need(p): Need<MANAGER>,
    ApiPath(id): ApiPath<i64>,
    JsonBody(b): JsonBody<ReasonIn>,
) -> Result<Json<RefundOut>, ApiError> {
    Ok(Json(
        st.store
            .reverse_charge(id, &b.reason, now_ms(), &p.actor())
            .await?
            .into(),
    ))
}

/// Settle an exception: "collect" (post it now, funds permitting) or "waive". Roles: manager.
#[utoipa::path(post, path = "/api/v1/charges/{id}/resolve", tag = "money", params(("id" = i64, Path)), request_body = ResolveIn,
    responses((status = 200, body = ChargeOut), (status = 422, body = wire::ErrorBody)))]
pub async fn resolve_exception(
    State(st): State<AppState>,
    Need(p): Need<MANAGER>,
    ApiPath(id): ApiPath<i64>,
    JsonBody(b): JsonBody<ResolveIn>,
) -> Result<Json<ChargeOut>, ApiError> {
    let collect = b.action == wire::fields::ExceptionAction::Collect;
    Ok(Json(
        st.store
            .resolve_exception(id, collect, now_ms(), &p.actor())
            .await?
            .into(),
    ))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RefundQuery {
    /// requested, approved or rejected.
    pub status: Option<wire::fields::RefundStatusName>,
    pub staff_id: Option<i64>,
}

/// Refunds and refund requests. Roles: manager, auditor.
#[utoipa::path(get, path = "/api/v1/refunds", tag = "money", params(RefundQuery), responses((status = 200, body = Vec<RefundOut>)))]
pub async fn list_refunds(
    State(st): State<AppState>,
    _w: Need<{ MANAGER | AUDITOR }>,
    ApiQuery(q): ApiQuery<RefundQuery>,
) -> Result<Json<Vec<RefundOut>>, ApiError> {
    let status = q.status.and_then(|s| RefundStatus::parse(s.as_str()));
    Ok(Json(
        st.store
            .list_refunds(status, q.staff_id)
            .await?
            .into_iter()
            .map(Into::into)
            .collect(),
    ))
}

/// Approve or reject a staff refund request. Roles: manager.
#[utoipa::path(post, path = "/api/v1/refunds/{id}/decide", tag = "money", params(("id" = i64, Path)), request_body = DecideIn,
    responses((status = 200, body = RefundOut)))]
pub async fn decide_refund(
    State(st): State<AppState>,
    Need(p): Need<MANAGER>,
    ApiPath(id): ApiPath<i64>,
    JsonBody(b): JsonBody<DecideIn>,
) -> Result<Json<RefundOut>, ApiError> {
    Ok(Json(
        st.store
            .decide_refund(id, b.approve, now_ms(), &p.actor())
            .await?
            .into(),
    ))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct OrderQuery {
    pub staff_id: Option<i64>,
    pub limit: Option<i64>,
}

/// Top-up orders. Roles: manager, auditor.
#[utoipa::path(get, path = "/api/v1/topups", tag = "money", params(OrderQuery), responses((status = 200, body = Vec<OrderOut>)))]
pub async fn list_topups(
    State(st): State<AppState>,
    _w: Need<{ MANAGER | AUDITOR }>,
    ApiQuery(q): ApiQuery<OrderQuery>,
) -> Result<Json<Vec<OrderOut>>, ApiError> {
    let orders = st
        .store
        .list_payment_orders(q.staff_id, q.limit.unwrap_or(100))
        .await?;
    Ok(Json(
        orders
            .into_iter()
            .map(|o| OrderOut::from_order(o, None))
            .collect(),
    ))
}

/// Ask the provider about an order and credit it if it was paid (exactly once). Roles: manager.
#[utoipa::path(post, path = "/api/v1/topups/{order_no}/reconcile", tag = "money", params(("order_no" = String, Path)),
    responses((status = 200, body = OutcomeOut)))]
pub async fn reconcile(
    State(st): State<AppState>,
    Need(_p): Need<MANAGER>,
    ApiPath(order_no): ApiPath<String>,
) -> Result<Json<OutcomeOut>, ApiError> {
    let outcome = reconcile_order(&st, &order_no).await?;
    Ok(Json(OutcomeOut { outcome }))
}

/// Asks the provider about one order and credits it if it was paid (exactly once); answers
/// `not_paid` or the credit's outcome. The API's reconcile route and the money desk page.
pub async fn reconcile_order(st: &AppState, order_no: &str) -> Result<String, ApiError> {
    let order_no = order_no.to_string();
    let payments = st.payment_provider()?;
    st.store.get_payment_order(&order_no).await?;
    let state = payments
        .query(&order_no)
        .await
        .map_err(|e| ApiError::Unavailable(e.to_string()))?;
    let outcome = match state {
        ProviderOrderState::NotPaid => "not_paid".to_string(),
        ProviderOrderState::Paid { amount, txn } => {
            let o = st
                .store
                .credit_payment(&order_no, &txn, amount, "reconciliation query", now_ms())
                .await?;
            if o == store::CreditOutcome::RefusedLeft {
                // A refused payment still waiting to go back: try again now.
                crate::payments::return_refused_payments(st)
                    .await
                    .map_err(|e| ApiError::Unavailable(e.to_string()))?;
            }
            o.as_str().to_string()
        }
    };
    Ok(outcome)
}

/// The payment gateway's asynchronous notification (HMAC-SHA256 signed in `X-Sandbox-Signature`).
/// Public; unsigned or forged notifications are refused and logged.
#[utoipa::path(post, path = "/api/v1/payments/sandbox/notify", tag = "money", request_body(content = String, description = "signed JSON"),
    responses((status = 200, body = OutcomeOut), (status = 401, body = wire::ErrorBody)))]
pub async fn notify(
    State(st): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<OutcomeOut>, ApiError> {
    match handle_notification(&st, &headers, &body).await {
        Ok(o) => Ok(Json(OutcomeOut {
            outcome: o.as_str().to_string(),
        })),
        Err(PaymentError::BadSignature) => Err(ApiError::Unauthorized),
        Err(PaymentError::Malformed(m)) => Err(ApiError::bad_request("bad_notification", m)),
        Err(PaymentError::Provider(m)) => Err(ApiError::Unavailable(m)),
        Err(PaymentError::NoProvider) => Err(ApiError::NotFound("payment provider")),
    }
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// The sandbox gateway's pay page (a real provider hosts this on its own site). Public.
#[utoipa::path(get, path = "/sandbox/pay/{order_no}", tag = "sandbox", params(("order_no" = String, Path)),
    responses((status = 200, content_type = "text/html", body = String)))]
pub async fn pay_page(
    State(st): State<AppState>,
    ApiPath(order_no): ApiPath<String>,
) -> Result<Html<String>, ApiError> {
    let o = st.store.get_payment_order(&order_no).await?;
    let paid = st.store.sandbox_payment(&order_no).await?.is_some();
    let no = escape(&o.order_no);
    let body = if paid {
        format!("<p>Order {no} is paid.</p>")
    } else {
        format!(
            "<p>Order <b>{no}</b>: pay <b>¥{}</b> to CleanPlate canteen.</p>\
             <form method=\"post\" action=\"/sandbox/pay/{no}\"><button id=\"pay\" type=\"submit\">Pay</button></form>",
            o.amount
        )
    };
    Ok(Html(format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>Sandbox pay</title></head>\
         <body style=\"font-family:sans-serif;max-width:28em;margin:3em auto;padding:0 1em\"><main><h1>Sandbox payment gateway</h1>{body}</main></body></html>"
    )))
}

/// The payer presses "Pay": the sandbox records the payment and notifies the backend
/// asynchronously (signed, retried). Public.
#[utoipa::path(post, path = "/sandbox/pay/{order_no}", tag = "sandbox", params(("order_no" = String, Path)),
    responses((status = 200, content_type = "text/html", body = String)))]
pub async fn pay_submit(
    State(st): State<AppState>,
    ApiPath(order_no): ApiPath<String>,
) -> Result<Html<String>, ApiError> {
    let o = st.store.get_payment_order(&order_no).await?;
    let Some(sandbox) = st.sandbox.clone() else {
        return Err(ApiError::NotFound("sandbox gateway"));
    };
    let txn = crate::payments::sandbox_pay(st.clone(), sandbox, o)
        .await
        .map_err(|e| ApiError::Unavailable(e.to_string()))?;
    // Like a real provider, the sandbox sends the payer back to the shop afterwards: the staff
    // page, which shows the order's state and the new balance.
    Ok(Html(format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>Paid</title></head><body style=\"font-family:sans-serif;max-width:28em;margin:3em auto;padding:0 1em\"><main>\
         <h1>Payment received</h1><p>Transaction {}. Your balance is credited in a moment.</p>\
         <p><a id=\"return\" href=\"/me?topup={}\">Back to CleanPlate</a></p></main></body></html>",
        escape(&txn),
        escape(&order_no)
    )))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct WasteQuery {
    pub staff_id: Option<i64>,
    pub limit: Option<i64>,
}

/// Plate-waste records, newest first. Roles: manager, auditor.
#[utoipa::path(get, path = "/api/v1/waste", tag = "money", params(WasteQuery), responses((status = 200, body = Vec<WasteOut>)))]
pub async fn list_waste(
    State(st): State<AppState>,
    _w: Need<{ MANAGER | AUDITOR }>,
    ApiQuery(q): ApiQuery<WasteQuery>,
) -> Result<Json<Vec<WasteOut>>, ApiError> {
    Ok(Json(
        st.store
            .list_waste(q.staff_id, q.limit.unwrap_or(100))
            .await?
            .into_iter()
            .map(Into::into)
            .collect(),
    ))
}
