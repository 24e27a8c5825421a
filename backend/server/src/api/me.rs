//! Staff self-service from a phone ("只跑一次": nobody needs to visit a counter): balance,
//! statement, own charges, refund requests, top-ups and face-data consent. Every route acts on
//! the caller's own staff record only; ids of other people's records answer 404.

use super::types::*;
use crate::auth::{Need, Principal, STAFF};
use crate::error::ApiPath;
use crate::error::{ApiError, JsonBody};
use crate::state::{now_ms, AppState};
use axum::extract::State;
use axum::Json;
use store::{ChargeFilter, NewPaymentOrder};

/// My balances. Roles: staff.
#[utoipa::path(get, path = "/api/v1/me/balance", tag = "me", responses((status = 200, body = BalanceOut)))]
pub async fn balance(
    State(st): State<AppState>,
    Need(p): Need<STAFF>,
) -> Result<Json<BalanceOut>, ApiError> {
    Ok(Json(st.store.balances(p.own_staff_id()?).await?.into()))
}

/// My statement, newest first. Roles: staff.
#[utoipa::path(get, path = "/api/v1/me/statement", tag = "me", responses((status = 200, body = Vec<StatementLineOut>)))]
pub async fn statement(
    State(st): State<AppState>,
    Need(p): Need<STAFF>,
) -> Result<Json<Vec<StatementLineOut>>, ApiError> {
    Ok(Json(
        st.store
            .statement(p.own_staff_id()?, 200)
            .await?
            .into_iter()
            .map(Into::into)
            .collect(),
    ))
}

/// My charges, newest first. Roles: staff.
#[utoipa::path(get, path = "/api/v1/me/charges", tag = "me", responses((status = 200, body = Vec<ChargeOut>)))]
pub async fn charges(
    State(st): State<AppState>,
    Need(p): Need<STAFF>,
) -> Result<Json<Vec<ChargeOut>>, ApiError> {
    let f = ChargeFilter {
        staff_id: Some(p.own_staff_id()?),
        limit: 200,
        ..Default::default()
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

/// My refund requests. Roles: staff.
#[utoipa::path(get, path = "/api/v1/me/refunds", tag = "me", responses((status = 200, body = Vec<RefundOut>)))]
pub async fn refunds(
    State(st): State<AppState>,
    Need(p): Need<STAFF>,
) -> Result<Json<Vec<RefundOut>>, ApiError> {
    Ok(Json(
        st.store
            .list_refunds(None, Some(p.own_staff_id()?))
            .await?
            .into_iter()
            .map(Into::into)
            .collect(),
    ))
}

/// Ask for a refund of one of my charges (within 7 days); a manager approves online. Roles: staff.
#[utoipa::path(post, path = "/api/v1/me/refunds", tag = "me", request_body = RefundRequestIn,
    responses((status = 200, body = RefundOut), (status = 409, body = wire::ErrorBody)))]
pub async fn request_refund(
    State(st): State<AppState>,
    Need(p): Need<STAFF>,
    JsonBody(b): JsonBody<RefundRequestIn>,
) -> Result<Json<RefundOut>, ApiError> {
    let me = p.own_staff_id()?;
    Ok(Json(
        st.store
            .request_refund(b.charge_id, me, &b.reason, now_ms(), &p.actor())
            .await?
            .into(),
    ))
}

/// Start a top-up: creates an order and returns the provider's pay URL. Roles: staff.
#[utoipa::path(post, path = "/api/v1/me/topups", tag = "me", request_body = TopUpIn, responses((status = 200, body = OrderOut)))]
pub async fn create_topup(
    State(st): State<AppState>,
    Need(p): Need<STAFF>,
    JsonBody(b): JsonBody<TopUpIn>,
) -> Result<Json<OrderOut>, ApiError> {
    let amount = positive_fen(b.amount, "amount")?;
    let (o, url) = start_topup(&st, &p, amount).await?;
    Ok(Json(OrderOut::from_order(o, Some(url))))
}

/// Creates a top-up order for a staff caller and asks the provider for its pay page: the one
/// way a top-up starts, for the API and the web pages.
pub async fn start_topup(
    st: &AppState,
    p: &Principal,
    amount: ledger::Fen,
) -> Result<(store::PaymentOrder, String), ApiError> {
    let payments = st.payment_provider()?;
    if !amount.is_positive() {
        return Err(ApiError::unprocessable(
            "bad_amount",
            "amount must be positive",
        ));
    }
    if amount.0 > 500_000 {
        return Err(ApiError::unprocessable(
            "bad_amount",
            "a single top-up is at most 5000.00",
        ));
    }
    let order_no = format!("CP{}", uuid::Uuid::new_v4().simple());
    let o = st
        .store
        .create_payment_order(
            NewPaymentOrder {
                order_no,
                staff_id: p.own_staff_id()?,
                amount,
                provider: payments.name().into(),
                now_ms: now_ms(),
            },
            &p.actor(),
        )
        .await?;
    let url = payments
        .create(&o)
        .await
        .map_err(|e| ApiError::Unavailable(e.to_string()))?;
    Ok((o, url))
}

/// My top-up orders. Roles: staff.
#[utoipa::path(get, path = "/api/v1/me/topups", tag = "me", responses((status = 200, body = Vec<OrderOut>)))]
pub async fn topups(
    State(st): State<AppState>,
    Need(p): Need<STAFF>,
) -> Result<Json<Vec<OrderOut>>, ApiError> {
    let orders = st
        .store
        .list_payment_orders(Some(p.own_staff_id()?), 100)
        .await?;
    Ok(Json(
        orders
            .into_iter()
            .map(|o| OrderOut::from_order(o, None))
            .collect(),
    ))
}

/// My consent to face recognition. Roles: staff.
#[utoipa::path(get, path = "/api/v1/me/consent", tag = "me", responses((status = 200, body = ConsentOut)))]
pub async fn consent(
    State(st): State<AppState>,
    Need(p): Need<STAFF>,
) -> Result<Json<ConsentOut>, ApiError> {
    Ok(Json(consent_out(
        st.store.consent(p.own_staff_id()?).await?,
    )))
}

/// Give or withdraw consent; withdrawing deletes my face templates. Roles: staff.
#[utoipa::path(put, path = "/api/v1/me/consent", tag = "me", request_body = ConsentIn, responses((status = 200, body = ConsentOut)))]
pub async fn set_consent(
    State(st): State<AppState>,
    Need(p): Need<STAFF>,
    JsonBody(b): JsonBody<ConsentIn>,
) -> Result<Json<ConsentOut>, ApiError> {
    Ok(Json(consent_out(
        st.store
            .set_consent(p.own_staff_id()?, b.granted, now_ms(), &p.actor())
            .await?,
    )))
}

/// My stored face templates (metadata only). Roles: staff.
#[utoipa::path(get, path = "/api/v1/me/templates", tag = "me", responses((status = 200, body = Vec<TemplateOut>)))]
pub async fn templates(
    State(st): State<AppState>,
    Need(p): Need<STAFF>,
) -> Result<Json<Vec<TemplateOut>>, ApiError> {
    Ok(Json(
        st.store
            .list_templates(p.own_staff_id()?)
            .await?
            .into_iter()
            .map(template_out)
            .collect(),
    ))
}

/// Delete one of my face templates. Roles: staff.
#[utoipa::path(delete, path = "/api/v1/me/templates/{id}", tag = "me", operation_id = "delete_my_template", params(("id" = i64, Path)), responses((status = 200, body = TemplateOut)))]
pub async fn delete_template(
    State(st): State<AppState>,
    Need(p): Need<STAFF>,
    ApiPath(id): ApiPath<i64>,
) -> Result<Json<TemplateOut>, ApiError> {
    let me = p.own_staff_id()?;
    if !st
        .store
        .list_templates(me)
        .await?
        .iter()
        .any(|t| t.id == id)
    {
        return Err(ApiError::NotFound("template"));
    }
    Ok(Json(template_out(
        st.store.delete_template(id, now_ms(), &p.actor()).await?,
    )))
}

/// Make a one-time pay code to show as a QR code at a kiosk (valid 2 minutes). Roles: staff.
#[utoipa::path(post, path = "/api/v1/me/pay-codes", tag = "me", responses((status = 200, body = PayCodeOut)))]
pub async fn create_pay_code(
    State(st): State<AppState>,
    Need(p): Need<STAFF>,
) -> Result<Json<PayCodeOut>, ApiError> {
    let (code, expires_at_ms) = issue_pay_code(&st, p.own_staff_id()?).await?;
    Ok(Json(PayCodeOut {
        code,
        expires_at_ms,
    }))
}

/// Issues a one-time pay code (valid 2 minutes) for an active staff member: answers the code
/// and its expiry. The one way a pay code is made, for the API and the web pages.
pub async fn issue_pay_code(st: &AppState, me: i64) -> Result<(String, i64), ApiError> {
    if !st.store.get_staff(me).await?.active {
        return Err(ApiError::unprocessable(
            "staff_inactive",
            "the account is not active",
        ));
    }
    let code = crate::crypto::random_token();
    let now = now_ms();
    let expires = now + 2 * 60 * 1000;
    st.store
        .create_pay_code(me, &crate::crypto::token_hash(&code), now, expires)
        .await?;
    Ok((code, expires))
}
