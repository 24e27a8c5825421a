//! The kiosk-facing routes: enrolment, charges, plate waste and gallery sync. Request and
//! response bodies are the `wire` crate's types, shared with the kiosk.

use super::types::meal_to_wire;
use crate::auth::{ClientIp, Need, KIOSK};
use crate::crypto::{random_token, token_hash};
use crate::error::ApiQuery;
use crate::error::{ApiError, JsonBody};
use crate::state::{now_ms, AppState};
use axum::extract::State;
use axum::Json;
use ledger::Fen;
use serde::Deserialize;
use store::{ChargeCommand, ChargeOutcome, PayCodeRedemption, SealedTemplate, WasteCommand};
use utoipa::IntoParams;
use wire::{
    ChargeRequest, ChargeResponse, ChargeStatus, EnrolRequest, EnrolResponse, GalleryChange,
    GalleryResponse, KioskInfo, VoidChargeRequest, VoidChargeResponse, WasteRequest, WasteResponse,
};

/// How far ahead of the server's clock a kiosk's timestamp may be.
const MAX_CLOCK_AHEAD_MS: i64 = 5 * 60 * 1000;

fn ms(t: time::OffsetDateTime) -> i64 {
    (t.unix_timestamp_nanos() / 1_000_000) as i64
}

/// Exchange a one-time enrolment code for a device token. Public (the code is the credential).
#[utoipa::path(post, path = "/api/v1/kiosk/enrol", tag = "kiosk", request_body = EnrolRequest,
    responses((status = 200, body = EnrolResponse), (status = 422, body = wire::ErrorBody), (status = 429, body = wire::ErrorBody)))]
pub async fn enrol(
    State(st): State<AppState>,
    ClientIp(ip): ClientIp,
    JsonBody(req): JsonBody<EnrolRequest>,
) -> Result<Json<EnrolResponse>, ApiError> {
    let now = now_ms();
    // Codes are short enough to type, so guessing is throttled, per source: a global budget
    // would let anyone lock every installer out by sending 30 bad codes. A code carries about
    // 60 random bits and lives an hour, so per-source limits leave guessing hopeless.
    if !st
        .store
        .rate_limit_hit(&format!("kiosk-enrol:{ip}"), now, 60_000, 30)
        .await?
    {
        return Err(ApiError::TooManyRequests);
    }
    let token = random_token();
    let k = st
        .store
        .redeem_enrolment_code(&token_hash(&req.code), &req.name, &token_hash(&token), now)
        .await?;
    Ok(Json(EnrolResponse {
        kiosk_id: k.id,
        canteen_id: k.canteen_id,
        device_token: token,
    }))
}

/// This device's identity. Roles: kiosk.
#[utoipa::path(get, path = "/api/v1/kiosk/me", tag = "kiosk", responses((status = 200, body = KioskInfo)))]
pub async fn kiosk_me(Need(p): Need<KIOSK>) -> Result<Json<KioskInfo>, ApiError> {
    let k = p.kiosk()?;
    Ok(Json(KioskInfo {
        kiosk_id: k.id,
        name: k.name.clone(),
        canteen_id: k.canteen_id,
    }))
}

/// The hash that makes "same key, different body" detectable: every field that changes the
/// meaning of the charge, in a fixed textual form (independent of JSON formatting).
fn charge_hash(req: &ChargeRequest, amount: Option<Fen>) -> String {
    store::sha256_hex(
        format!(
            "v1|{}|{}|{}|{}",
            req.staff_id,
            ms(req.kiosk_time),
            req.offline,
            amount.map(|a| a.0).unwrap_or(-1)
        )
        .as_bytes(),
    )
}

/// Charge one meal; idempotent per (kiosk, idempotency key). Roles: kiosk.
#[utoipa::path(post, path = "/api/v1/kiosk/charges", tag = "kiosk", request_body = ChargeRequest,
    responses((status = 200, description = "accepted, declined or recorded as an exception", body = ChargeResponse),
              (status = 409, description = "idempotency key reused with a different body", body = wire::ErrorBody),
              (status = 404, body = wire::ErrorBody)))]
pub async fn charge(
    State(st): State<AppState>,
    Need(p): Need<KIOSK>,
    JsonBody(req): JsonBody<ChargeRequest>,
) -> Result<Json<ChargeResponse>, ApiError> {
    let k = p.kiosk()?;
    let amount = req
        .amount
        .map(|a| super::types::positive_fen(a, "amount"))
        .transpose()?;
    let now = st.clock.now_ms();
    // Offline charges may arrive hours or days late, but none can come from the future: a kiosk
    // clock running ahead would put meals into the wrong period or day.
    if ms(req.kiosk_time) > now + MAX_CLOCK_AHEAD_MS {
        return Err(ApiError::unprocessable(
            "kiosk_clock_ahead",
            "kiosk_time is in the future; check the kiosk's clock",
        ));
    }
    // An online charge is a diner at the kiosk now: it is judged at the server's time, whatever
    // the kiosk's clock says, or a back-dated timestamp would book it on a day whose cap and
    // meals are already settled. Only offline charges (served while the backend was
    // unreachable) carry their own time; the store bounds how old that may be.
    let meal_time_ms = if req.offline { ms(req.kiosk_time) } else { now };
    let cmd = ChargeCommand {
        kiosk_id: k.id,
        canteen_id: k.canteen_id,
        idempotency_key: req.idempotency_key.clone(),
        request_hash: charge_hash(&req, amount),
        staff_id: req.staff_id,
        kiosk_time_ms: meal_time_ms,
        received_ms: now,
        offline: req.offline,
        offline_too_old: req.offline
            && ledger::charge::offline_too_old(
                meal_time_ms,
                now,
                st.cfg.offline_max_age_hours.max(1) * 3_600_000,
            ),
        amount,
    };
    let r = st.store.charge(cmd).await?;
    Ok(Json(ChargeResponse {
        status: match r.outcome {
            ChargeOutcome::Accepted => ChargeStatus::Accepted,
            ChargeOutcome::Declined => ChargeStatus::Declined,
            ChargeOutcome::Exception => ChargeStatus::Exception,
        },
        charge_id: r.charge_id,
        reason: r.reason,
        meal: r.meal.map(meal_to_wire),
        local_date: r.local_date,
        amount: r.amount.to_yuan(),
        subsidy_used: r.subsidy.to_yuan(),
        cash_used: r.cash.to_yuan(),
        cash_balance: r.cash_balance.to_yuan(),
        subsidy_balance: r.subsidy_balance.to_yuan(),
        replayed: r.replayed,
    }))
}

/// Void a charge this kiosk sent but did not serve (its answer was lost and the diner was refused
/// offline); the charge is reversed as a manager would, the kiosk recorded as actor. Idempotent:
/// a repeated void answers the same reversal with `already_void`. Roles: kiosk.
#[utoipa::path(post, path = "/api/v1/kiosk/charges/void", tag = "kiosk", request_body = VoidChargeRequest,
    responses((status = 200, description = "reversed now, or already reversed", body = VoidChargeResponse),
              (status = 404, description = "this kiosk sent no charge with this key (declined charges included)", body = wire::ErrorBody),
              (status = 409, description = "nothing_to_void (exception or waived) or void_too_late (older than 7 days)", body = wire::ErrorBody),
              (status = 422, body = wire::ErrorBody)))]
pub async fn void_charge(
    State(st): State<AppState>,
    Need(p): Need<KIOSK>,
    JsonBody(req): JsonBody<VoidChargeRequest>,
) -> Result<Json<VoidChargeResponse>, ApiError> {
    let k = p.kiosk()?;
    let v = st
        .store
        .void_kiosk_charge(k.id, &req.charge_key, &req.reason, now_ms())
        .await?;
    Ok(Json(VoidChargeResponse {
        charge_id: v.charge.id,
        refund_id: v.refund.id,
        amount: v.refund.amount.to_yuan(),
        already_void: v.already_void,
    }))
}

/// Record plate waste; idempotent per (kiosk, idempotency key). Roles: kiosk.
#[utoipa::path(post, path = "/api/v1/kiosk/waste", tag = "kiosk", request_body = WasteRequest,
    responses((status = 200, body = WasteResponse), (status = 422, body = wire::ErrorBody)))]
pub async fn waste(
    State(st): State<AppState>,
    Need(p): Need<KIOSK>,
    JsonBody(req): JsonBody<WasteRequest>,
) -> Result<Json<WasteResponse>, ApiError> {
    let k = p.kiosk()?;
    let hash = store::sha256_hex(
        format!(
            "v1|{:?}|{:?}|{}|{}|{:?}|{:?}|{}",
            req.staff_id,
            req.charge_id,
            req.gross_grams,
            req.tare_grams,
            req.dish,
            req.category,
            ms(req.measured_at)
        )
        .as_bytes(),
    );
    let r = st
        .store
        .record_waste(WasteCommand {
            kiosk_id: k.id,
            idempotency_key: req.idempotency_key,
            request_hash: hash,
            staff_id: req.staff_id,
            charge_id: req.charge_id,
            gross_grams: req.gross_grams,
            tare_grams: req.tare_grams,
            dish: req.dish,
            category: req.category,
            measured_at_ms: ms(req.measured_at),
            received_ms: now_ms(),
        })
        .await?;
    Ok(Json(WasteResponse {
        id: r.id,
        net_grams: r.net_grams,
        replayed: r.replayed,
    }))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct GalleryQuery {
    /// Last version the kiosk has (0 for a full sync).
    #[serde(default)]
    pub since: i64,
    /// Page size, 1-5000 (default 500).
    pub limit: Option<i64>,
}

/// Face-template changes since a version, tombstones included. Roles: kiosk.
#[utoipa::path(get, path = "/api/v1/kiosk/gallery", tag = "kiosk", params(GalleryQuery),
    responses((status = 200, body = GalleryResponse)))]
pub async fn gallery(
    State(st): State<AppState>,
    _k: Need<KIOSK>,
    ApiQuery(q): ApiQuery<GalleryQuery>,
) -> Result<Json<GalleryResponse>, ApiError> {
    let limit = q.limit.unwrap_or(500).clamp(1, 5000);
    let page = st.store.gallery_changes(q.since.max(0), limit).await?;
    let mut changes = Vec::with_capacity(page.changes.len());
    for c in &page.changes {
        let embedding = match &c.sealed {
            Some(SealedTemplate { nonce, ciphertext }) => {
                let sealed = SealedTemplate {
                    nonce: nonce.clone(),
                    ciphertext: ciphertext.clone(),
                };
                let v = st.cipher.open(c.staff_id, &sealed).map_err(|_| {
                    ApiError::Internal(format!(
                        "template {} does not decrypt with the configured key",
                        c.template_id
                    ))
                })?;
                Some(wire::encode_embedding(&v))
            }
            None => None,
        };
        changes.push(GalleryChange {
            template_id: c.template_id,
            staff_id: c.staff_id,
            version: c.version,
            deleted: c.sealed.is_none(),
            embedding,
        });
    }
    let next_since = page
        .changes
        .last()
        .map(|c| c.version)
        .unwrap_or(q.since.max(0).max(0));
    let more = page.changes.len() as i64 == limit && next_since < page.current_version;
    let next_since = if page.changes.is_empty() {
        page.current_version.max(q.since)
    } else {
        next_since
    };
    Ok(Json(GalleryResponse {
        next_since,
        more,
        changes,
    }))
}

/// Redeem a one-time pay code (a QR code from the person's phone); the kiosk then charges the
/// returned person as usual. Roles: kiosk.
#[utoipa::path(post, path = "/api/v1/kiosk/pay-codes/redeem", tag = "kiosk", request_body = wire::PayCodeRedeemRequest,
    responses((status = 200, body = wire::PayCodeRedeemResponse), (status = 404, body = wire::ErrorBody),
              (status = 410, body = wire::ErrorBody), (status = 422, body = wire::ErrorBody)))]
pub async fn redeem_pay_code(
    State(st): State<AppState>,
    Need(p): Need<KIOSK>,
    JsonBody(req): JsonBody<wire::PayCodeRedeemRequest>,
) -> Result<Json<wire::PayCodeRedeemResponse>, ApiError> {
    let k = p.kiosk()?;
    match st
        .store
        .redeem_pay_code(&token_hash(&req.code), k.id, now_ms())
        .await?
    {
        PayCodeRedemption::Redeemed { staff_id } => {
            Ok(Json(wire::PayCodeRedeemResponse { staff_id }))
        }
        PayCodeRedemption::Unknown => Err(ApiError::Missing {
            code: "unknown_pay_code",
            message: "no such pay code".into(),
        }),
        PayCodeRedemption::AlreadyUsed => Err(ApiError::Gone {
            code: "pay_code_used",
            message: "this pay code was already used".into(),
        }),
        PayCodeRedemption::Expired => Err(ApiError::Gone {
            code: "pay_code_expired",
            message: "this pay code has expired".into(),
        }),
        PayCodeRedemption::StaffInactive => Err(ApiError::unprocessable(
            "staff_inactive",
            "the person's account is not active",
        )),
    }
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct WasteStatsQuery {
    pub staff_id: i64,
}

/// A person's and this canteen's average plate waste over the last 30 days. Roles: kiosk.
#[utoipa::path(get, path = "/api/v1/kiosk/waste-stats", tag = "kiosk", params(WasteStatsQuery),
    responses((status = 200, body = wire::WasteStatsResponse)))]
pub async fn waste_stats(
    State(st): State<AppState>,
    Need(p): Need<KIOSK>,
    ApiQuery(q): ApiQuery<WasteStatsQuery>,
) -> Result<Json<wire::WasteStatsResponse>, ApiError> {
    let k = p.kiosk()?;
    let since = now_ms() - 30 * 24 * 3600 * 1000;
    let s = st
        .store
        .waste_stats(q.staff_id, k.canteen_id, since)
        .await?;
    Ok(Json(wire::WasteStatsResponse {
        person_average_g: s.person_average_g,
        canteen_average_g: s.canteen_average_g,
    }))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct BalancesQuery {
    /// Cursor from the previous page's `next_since` (0 starts a snapshot).
    #[serde(default)]
    pub since: i64,
    /// Page size, 1-5000 (default 1000).
    pub limit: Option<i64>,
}

/// Everyone's balances for offline decisions, a paged snapshot. Roles: kiosk.
#[utoipa::path(get, path = "/api/v1/kiosk/balances", tag = "kiosk", params(BalancesQuery),
    responses((status = 200, body = wire::BalancesResponse)))]
pub async fn balances(
    State(st): State<AppState>,
    _k: Need<KIOSK>,
    ApiQuery(q): ApiQuery<BalancesQuery>,
) -> Result<Json<wire::BalancesResponse>, ApiError> {
    let limit = q.limit.unwrap_or(1000).clamp(1, 5000);
    let rows = st.store.balance_page(q.since.max(0), limit).await?;
    // Names for the kiosk's screens: the same id range, read from the staff list (in its
    // own pages of at most 1000).
    let mut names: std::collections::HashMap<i64, (String, String)> = Default::default();
    let last = rows.last().map_or(0, |r| r.staff_id);
    let mut after = q.since.max(0);
    while after < last {
        let page = st.store.list_staff(after, 1000).await?;
        let Some(end) = page.last().map(|s| s.id) else {
            break;
        };
        names.extend(page.into_iter().map(|s| (s.id, (s.name, s.department))));
        after = end;
    }
    let more = rows.len() as i64 == limit;
    let next_since = if more {
        rows.last().map(|r| r.staff_id).unwrap_or(0)
    } else {
        0
    };
    let balances = rows
        .into_iter()
        .map(|r| {
            let (name, department) = names.get(&r.staff_id).cloned().unwrap_or_default();
            wire::BalanceEntry {
                staff_id: r.staff_id,
                available: Fen(r.cash.0 + r.subsidy.0).to_yuan(),
                active: r.active,
                category: r.category,
                version: r.version,
                name,
                department,
            }
        })
        .collect();
    Ok(Json(wire::BalancesResponse {
        next_since,
        more,
        balances,
    }))
}
