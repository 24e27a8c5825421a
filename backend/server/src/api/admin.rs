//! Manager routes for the canteen's set-up: canteens, meal windows, prices, subsidy rules and
//! periods, staff, users and kiosks. Auditors may read what managers may read; every change is
//! audited inside the store's transaction.

use super::types::*;
use crate::auth::{Need, AUDITOR, KIOSK, MANAGER};
use crate::crypto::{hash_password, token_hash};
use crate::error::{ApiError, JsonBody};
use crate::error::{ApiPath, ApiQuery};
use crate::state::{now_ms, AppState};
use axum::extract::State;
use axum::Json;
use ledger::Fen;
use rand::Rng;
use serde::Deserialize;
use store::{
    CanteenUpdate, MealWindow, NewCanteen, NewStaff, NewUser, Price, Role, StaffUpdate, SubsidyRule,
};
use utoipa::IntoParams;

async fn canteen_out(st: &AppState, id: i64) -> Result<CanteenOut, ApiError> {
    let c = st.store.canteen_config(id).await?;
    Ok(CanteenOut {
        id: c.canteen.id,
        name: c.canteen.name,
        utc_offset_minutes: c.canteen.utc_offset_minutes,
        per_transaction_cap: c.canteen.per_transaction_cap.map(Fen::to_yuan),
        daily_cap: c.canteen.daily_cap.map(Fen::to_yuan),
        windows: c
            .windows
            .into_iter()
            .map(|w| MealWindowOut {
                meal: meal_to_wire(w.meal),
                start: fmt_hhmm(w.start_minute),
                end: fmt_hhmm(w.end_minute),
            })
            .collect(),
        prices: c
            .prices
            .into_iter()
            .map(|p| PriceOut {
                category: p.category,
                meal: meal_to_wire(p.meal),
                price: p.price.to_yuan(),
            })
            .collect(),
    })
}

/// A cap as sent: absent or "0" means no cap.
fn cap(d: Option<Decimal>, what: &'static str) -> Result<Option<Fen>, ApiError> {
    match d {
        None => Ok(None),
        Some(d) if d.is_zero() => Ok(None),
        Some(d) => Ok(Some(positive_fen(d, what)?)),
    }
}

use rust_decimal::Decimal;

/// List canteens. Roles: manager, auditor.
#[utoipa::path(get, path = "/api/v1/canteens", tag = "setup", responses((status = 200, body = Vec<CanteenOut>)))]
pub async fn list_canteens(
    State(st): State<AppState>,
    _w: Need<{ MANAGER | AUDITOR }>,
) -> Result<Json<Vec<CanteenOut>>, ApiError> {
    let mut out = Vec::new();
    for c in st.store.list_canteens().await? {
        out.push(canteen_out(&st, c.id).await?);
    }
    Ok(Json(out))
}

/// Create a canteen. Roles: manager.
#[utoipa::path(post, path = "/api/v1/canteens", tag = "setup", request_body = CanteenIn, responses((status = 200, body = CanteenOut)))]
pub async fn create_canteen(
    State(st): State<AppState>,
    Need(p): Need<MANAGER>,
    JsonBody(b): JsonBody<CanteenIn>,
) -> Result<Json<CanteenOut>, ApiError> {
    let c = st
        .store
        .create_canteen(
            NewCanteen {
                name: b.name,
                // In range by its kind's rule (wire::fields::UtcOffsetMinutes).
                utc_offset_minutes: b.utc_offset_minutes as i32,
                per_transaction_cap: cap(b.per_transaction_cap, "per_transaction_cap")?,
                daily_cap: cap(b.daily_cap, "daily_cap")?,
            },
            &p.actor(),
        )
        .await?;
    Ok(Json(canteen_out(&st, c.id).await?))
}

/// A canteen with its meal windows and prices. Roles: manager, auditor, kiosk.
#[utoipa::path(get, path = "/api/v1/canteens/{id}", tag = "setup", params(("id" = i64, Path)), responses((status = 200, body = CanteenOut)))]
pub async fn get_canteen(
    State(st): State<AppState>,
    Need(p): Need<{ MANAGER | AUDITOR | KIOSK }>,
    ApiPath(id): ApiPath<i64>,
) -> Result<Json<CanteenOut>, ApiError> {
    if let Ok(k) = p.kiosk() {
        if k.canteen_id != id {
            return Err(ApiError::NotFound("canteen"));
        }
    }
    Ok(Json(canteen_out(&st, id).await?))
}

/// Change a canteen's name, offset or caps ("0" removes a cap). Roles: manager.
#[utoipa::path(patch, path = "/api/v1/canteens/{id}", tag = "setup", params(("id" = i64, Path)), request_body = CanteenPatch,
    responses((status = 200, body = CanteenOut)))]
pub async fn patch_canteen(
    State(st): State<AppState>,
    Need(p): Need<MANAGER>,
    ApiPath(id): ApiPath<i64>,
    JsonBody(b): JsonBody<CanteenPatch>,
) -> Result<Json<CanteenOut>, ApiError> {
    let opt_cap = |d: Option<Decimal>, what| -> Result<Option<Option<Fen>>, ApiError> {
        match d {
            None => Ok(None),
            Some(d) if d.is_zero() => Ok(Some(None)),
            Some(d) => Ok(Some(Some(positive_fen(d, what)?))),
        }
    };
    st.store
        .update_canteen(
            id,
            CanteenUpdate {
                name: b.name,
                utc_offset_minutes: b.utc_offset_minutes.map(|m| m as i32),
                per_transaction_cap: opt_cap(b.per_transaction_cap, "per_transaction_cap")?,
                daily_cap: opt_cap(b.daily_cap, "daily_cap")?,
                // Set on the settings page; the API leaves it as it is.
                waste_target_grams: None,
            },
            &p.actor(),
        )
        .await?;
    Ok(Json(canteen_out(&st, id).await?))
}

/// Set a meal window ("HH:MM" local, end exclusive). Roles: manager.
#[utoipa::path(put, path = "/api/v1/canteens/{id}/meal-windows/{meal}", tag = "setup",
    params(("id" = i64, Path), ("meal" = wire::Meal, Path)), request_body = MealWindowIn, responses((status = 200, body = CanteenOut)))]
pub async fn put_meal_window(
    State(st): State<AppState>,
    Need(p): Need<MANAGER>,
    ApiPath((id, meal)): ApiPath<(i64, wire::Meal)>,
    JsonBody(b): JsonBody<MealWindowIn>,
) -> Result<Json<CanteenOut>, ApiError> {
    let w = MealWindow {
        canteen_id: id,
        meal: meal_from_wire(meal),
        start_minute: parse_hhmm(&b.start)?,
        end_minute: parse_hhmm(&b.end)?,
    };
    st.store.set_meal_window(w, &p.actor()).await?;
    Ok(Json(canteen_out(&st, id).await?))
}

/// Set the price of a meal for a staff category. Roles: manager.
#[utoipa::path(put, path = "/api/v1/canteens/{id}/prices", tag = "setup", params(("id" = i64, Path)), request_body = PriceIn,
    responses((status = 200, body = CanteenOut)))]
pub async fn put_price(
    State(st): State<AppState>,
    Need(p): Need<MANAGER>,
    ApiPath(id): ApiPath<i64>,
    JsonBody(b): JsonBody<PriceIn>,
) -> Result<Json<CanteenOut>, ApiError> {
    let price = Price {
        canteen_id: id,
        category: b.category,
        meal: meal_from_wire(b.meal),
        price: positive_fen(b.price, "price")?,
    };
    st.store.set_price(price, &p.actor()).await?;
    Ok(Json(canteen_out(&st, id).await?))
}

/// Subsidy rules per staff category. Roles: manager, auditor.
#[utoipa::path(get, path = "/api/v1/subsidy-rules", tag = "setup", responses((status = 200, body = Vec<SubsidyRuleOut>)))]
pub async fn list_subsidy_rules(
    State(st): State<AppState>,
    _w: Need<{ MANAGER | AUDITOR }>,
) -> Result<Json<Vec<SubsidyRuleOut>>, ApiError> {
    Ok(Json(
        st.store
            .list_subsidy_rules()
            .await?
            .into_iter()
            .map(|r| SubsidyRuleOut {
                category: r.category,
                amount: r.amount.to_yuan(),
                expires: r.expires,
            })
            .collect(),
    ))
}

/// Set the monthly subsidy of a staff category. Roles: manager.
#[utoipa::path(put, path = "/api/v1/subsidy-rules/{category}", tag = "setup", params(("category" = String, Path)),
    request_body = SubsidyRuleIn, responses((status = 200, body = SubsidyRuleOut)))]
pub async fn put_subsidy_rule(
    State(st): State<AppState>,
    Need(p): Need<MANAGER>,
    ApiPath(category): ApiPath<String>,
    JsonBody(b): JsonBody<SubsidyRuleIn>,
) -> Result<Json<SubsidyRuleOut>, ApiError> {
    let amount = fen(b.amount, "amount")?;
    st.store
        .set_subsidy_rule(
            SubsidyRule {
                category: category.clone(),
                amount,
                expires: b.expires,
            },
            &p.actor(),
        )
        .await?;
    Ok(Json(SubsidyRuleOut {
        category,
        amount: amount.to_yuan(),
        expires: b.expires,
    }))
}

/// Open a subsidy period: expire leftovers where the rule says so, credit the new amounts.
/// Idempotent per person and period. Roles: manager.
#[utoipa::path(post, path = "/api/v1/subsidies/grant", tag = "setup", request_body = GrantIn, responses((status = 200, body = GrantOut)))]
pub async fn grant_subsidies(
    State(st): State<AppState>,
    Need(p): Need<MANAGER>,
    JsonBody(b): JsonBody<GrantIn>,
) -> Result<Json<GrantOut>, ApiError> {
    let g = st
        .store
        .grant_subsidies(b.period.as_str(), now_ms(), &p.actor())
        .await?;
    Ok(Json(GrantOut {
        period: g.period,
        people: g.people,
        skipped: g.skipped,
        granted: g.granted.to_yuan(),
        expired: g.expired.to_yuan(),
    }))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    #[serde(default)]
    pub after_id: i64,
    pub limit: Option<i64>,
}

/// List staff, paged by id. Roles: manager, auditor.
#[utoipa::path(get, path = "/api/v1/staff", tag = "staff", params(PageQuery), responses((status = 200, body = Vec<StaffOut>)))]
pub async fn list_staff(
    State(st): State<AppState>,
    _w: Need<{ MANAGER | AUDITOR }>,
    ApiQuery(q): ApiQuery<PageQuery>,
) -> Result<Json<Vec<StaffOut>>, ApiError> {
    Ok(Json(
        st.store
            .list_staff(q.after_id, q.limit.unwrap_or(100))
            .await?
            .into_iter()
            .map(staff_out)
            .collect(),
    ))
}

/// Add a person (with empty cash and subsidy accounts). Roles: manager.
#[utoipa::path(post, path = "/api/v1/staff", tag = "staff", request_body = StaffIn, responses((status = 200, body = StaffOut)))]
pub async fn create_staff(
    State(st): State<AppState>,
    Need(p): Need<MANAGER>,
    JsonBody(b): JsonBody<StaffIn>,
) -> Result<Json<StaffOut>, ApiError> {
    let s = st
        .store
        .create_staff(
            NewStaff {
                employee_no: b.employee_no,
                name: b.name,
                department: b.department,
                category: b.category,
            },
            &p.actor(),
        )
        .await?;
    Ok(Json(staff_out(s)))
}

/// One person. Roles: manager, auditor.
#[utoipa::path(get, path = "/api/v1/staff/{id}", tag = "staff", params(("id" = i64, Path)), responses((status = 200, body = StaffOut)))]
pub async fn get_staff(
    State(st): State<AppState>,
    _w: Need<{ MANAGER | AUDITOR }>,
    ApiPath(id): ApiPath<i64>,
) -> Result<Json<StaffOut>, ApiError> {
    Ok(Json(staff_out(st.store.get_staff(id).await?)))
}

/// Change a person's details, category, active flag or meals per period. Roles: manager.
#[utoipa::path(patch, path = "/api/v1/staff/{id}", tag = "staff", params(("id" = i64, Path)), request_body = StaffPatch,
    responses((status = 200, body = StaffOut)))]
pub async fn patch_staff(
    State(st): State<AppState>,
    Need(p): Need<MANAGER>,
    ApiPath(id): ApiPath<i64>,
    JsonBody(b): JsonBody<StaffPatch>,
) -> Result<Json<StaffOut>, ApiError> {
    let s = st
        .store
        .update_staff(
            id,
            StaffUpdate {
                name: b.name,
                department: b.department,
                category: b.category,
                active: b.active,
                // 1..=20 by its kind's rule (wire::fields::MealsPerPeriod).
                meals_per_period: b.meals_per_period.map(|m| m as u32),
            },
            &p.actor(),
        )
        .await?;
    Ok(Json(staff_out(s)))
}

/// A person's cash and subsidy balances. Roles: manager, auditor.
#[utoipa::path(get, path = "/api/v1/staff/{id}/balance", tag = "staff", params(("id" = i64, Path)), responses((status = 200, body = BalanceOut)))]
pub async fn staff_balance(
    State(st): State<AppState>,
    _w: Need<{ MANAGER | AUDITOR }>,
    ApiPath(id): ApiPath<i64>,
) -> Result<Json<BalanceOut>, ApiError> {
    Ok(Json(st.store.balances(id).await?.into()))
}

/// A person's journal lines, newest first. Roles: manager, auditor.
#[utoipa::path(get, path = "/api/v1/staff/{id}/statement", tag = "staff", params(("id" = i64, Path)),
    responses((status = 200, body = Vec<StatementLineOut>)))]
pub async fn staff_statement(
    State(st): State<AppState>,
    _w: Need<{ MANAGER | AUDITOR }>,
    ApiPath(id): ApiPath<i64>,
) -> Result<Json<Vec<StatementLineOut>>, ApiError> {
    Ok(Json(
        st.store
            .statement(id, 200)
            .await?
            .into_iter()
            .map(Into::into)
            .collect(),
    ))
}

/// Someone leaves: pay out cash, return subsidy, deactivate, delete face templates. Roles: manager.
#[utoipa::path(post, path = "/api/v1/staff/{id}/offboard", tag = "staff", params(("id" = i64, Path)), responses((status = 200, body = OffboardOut)))]
pub async fn offboard(
    State(st): State<AppState>,
    Need(p): Need<MANAGER>,
    ApiPath(id): ApiPath<i64>,
) -> Result<Json<OffboardOut>, ApiError> {
    let o = st.store.offboard_staff(id, now_ms(), &p.actor()).await?;
    Ok(Json(OffboardOut {
        staff_id: o.staff_id,
        cash_paid_out: o.cash_paid_out.to_yuan(),
        subsidy_returned: o.subsidy_returned.to_yuan(),
        templates_deleted: o.templates_deleted,
    }))
}

/// Create a login (manager, staff or auditor). Roles: manager.
#[utoipa::path(post, path = "/api/v1/users", tag = "staff", request_body = UserIn, responses((status = 200, body = UserOut)))]
pub async fn create_user(
    State(st): State<AppState>,
    Need(p): Need<MANAGER>,
    JsonBody(b): JsonBody<UserIn>,
) -> Result<Json<UserOut>, ApiError> {
    // The body's kind (wire::fields::PersonRole) admits exactly these words.
    let role = Role::parse(&b.role).ok_or_else(|| {
        ApiError::unprocessable("bad_role", "role must be manager, staff or auditor")
    })?;
    let pw = b.password.clone();
    let hash = tokio::task::spawn_blocking(move || hash_password(&pw))
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    let u = st
        .store
        .create_user(
            NewUser {
                username: b.username,
                password_hash: hash,
                role,
                staff_id: b.staff_id,
            },
            &p.actor(),
        )
        .await?;
    Ok(Json(UserOut {
        id: u.id,
        username: u.username,
        role: u.role.as_str().into(),
        staff_id: u.staff_id,
    }))
}

/// An unambiguous, typeable code (no 0/O/1/I): 12 characters, about 60 bits.
pub(crate) fn enrolment_code() -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    let mut rng = rand::rngs::OsRng;
    (0..12)
        .map(|_| ALPHABET[rng.gen_range(0..ALPHABET.len())] as char)
        .collect()
}

/// Make a one-time kiosk enrolment code. Roles: manager.
#[utoipa::path(post, path = "/api/v1/kiosks/enrolment-codes", tag = "kiosks", request_body = EnrolCodeIn,
    responses((status = 200, body = EnrolCodeOut)))]
pub async fn create_enrolment_code(
    State(st): State<AppState>,
    Need(p): Need<MANAGER>,
    JsonBody(b): JsonBody<EnrolCodeIn>,
) -> Result<Json<EnrolCodeOut>, ApiError> {
    let (code, expires) = issue_kiosk_code(&st, b.canteen_id, b.valid_minutes, &p.actor()).await?;
    Ok(Json(EnrolCodeOut {
        code,
        expires_at_ms: expires,
    }))
}

/// A one-time kiosk registration code for a canteen (an hour by default, at most a week);
/// only its hash is kept. The API's route and the settings page.
pub async fn issue_kiosk_code(
    st: &AppState,
    canteen_id: i64,
    valid_minutes: Option<i64>,
    actor: &store::Actor,
) -> Result<(String, i64), ApiError> {
    st.store.canteen_config(canteen_id).await?;
    let code = enrolment_code();
    let expires = now_ms() + valid_minutes.unwrap_or(60).clamp(1, 7 * 24 * 60) * 60_000;
    st.store
        .create_enrolment_code(canteen_id, &token_hash(&code), expires, actor)
        .await?;
    Ok((code, expires))
}

/// Registered kiosks. Roles: manager, auditor.
#[utoipa::path(get, path = "/api/v1/kiosks", tag = "kiosks", responses((status = 200, body = Vec<KioskOut>)))]
pub async fn list_kiosks(
    State(st): State<AppState>,
    _w: Need<{ MANAGER | AUDITOR }>,
) -> Result<Json<Vec<KioskOut>>, ApiError> {
    Ok(Json(
        st.store
            .list_kiosks()
            .await?
            .into_iter()
            .map(Into::into)
            .collect(),
    ))
}

/// Revoke a kiosk's token (effective on every instance within the token cache time). Roles: manager.
#[utoipa::path(post, path = "/api/v1/kiosks/{id}/revoke", tag = "kiosks", params(("id" = i64, Path)), responses((status = 200, body = KioskOut)))]
pub async fn revoke_kiosk(
    State(st): State<AppState>,
    Need(p): Need<MANAGER>,
    ApiPath(id): ApiPath<i64>,
) -> Result<Json<KioskOut>, ApiError> {
    Ok(Json(revoke(&st, id, &p.actor()).await?.into()))
}

/// Revokes a kiosk and forgets its cached token here (other instances within their cache
/// time). The API's route and the settings page.
pub async fn revoke(
    st: &AppState,
    id: i64,
    actor: &store::Actor,
) -> Result<store::Kiosk, ApiError> {
    let k = st.store.revoke_kiosk(id, now_ms(), actor).await?;
    st.kiosk_cache.forget_kiosk(id);
    Ok(k)
}
