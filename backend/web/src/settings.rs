//! The managers' configuration (`/manage/settings`): the canteen (name, time zone, spending
//! caps), its meal periods and prices per staff category, the monthly subsidy per category
//! with the button that opens a subsidy month, and the kiosks (a one-time registration code
//! for a new one, when each was last heard from, revoking one). Each form writes through the
//! store method the JSON API's route uses, with the same parsing: `HH:MM` by
//! `ledger::meal::parse_hhmm`, money in yuan with at most two decimals, names and categories by
//! `wire::fields`.

use crate::error::{OrPage, PageError};
use crate::format::{self, local_time, yuan};
use crate::i18n::{Lang, Tr};
use crate::session::{Chrome, CsrfForm, Manager, Visitor};
use crate::HostRef;
use askama::Template;
use askama_web::WebTemplate;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use ledger::meal::{fmt_hhmm, parse_hhmm};
use ledger::{Fen, MealKind};
use serde::Deserialize;
use store::{CanteenUpdate, MealWindow, Price, SubsidyRule};
use wire::fields::{Category, Name, TextKind};

pub fn routes() -> Router<HostRef> {
    Router::new()
        .route("/manage/settings", get(page))
        .route("/manage/settings/canteens/{id}", post(save_canteen))
        .route("/manage/settings/canteens/{id}/windows", post(save_window))
        .route("/manage/settings/canteens/{id}/prices", post(save_price))
        .route("/manage/settings/subsidies", post(save_subsidy))
        .route("/manage/settings/subsidies/grant", post(grant))
        .route("/manage/settings/kiosks/code", post(kiosk_code))
        .route("/manage/settings/kiosks/{id}/revoke", post(revoke_kiosk))
}

const MEALS: [MealKind; 3] = [MealKind::Breakfast, MealKind::Lunch, MealKind::Dinner];

pub(crate) fn meal_name(t: &'static Tr, m: MealKind) -> &'static str {
    match m {
        MealKind::Breakfast => t.breakfast,
        MealKind::Lunch => t.lunch,
        MealKind::Dinner => t.dinner,
    }
}

fn meal_of(s: &str) -> Option<MealKind> {
    MEALS.into_iter().find(|m| m.as_str() == s)
}

pub struct WindowRow {
    pub meal: &'static str,
    pub label: &'static str,
    pub start: String,
    pub end: String,
}

pub struct PriceRow {
    pub category: String,
    /// One price per meal (empty when not set), in `MEALS` order.
    pub prices: Vec<(&'static str, &'static str, String)>,
}

pub struct CanteenView {
    pub id: i64,
    pub name: String,
    /// `+08:00`.
    pub offset: String,
    pub offset_minutes: i32,
    pub per_transaction_cap: String,
    pub daily_cap: String,
    pub waste_target: String,
    pub windows: Vec<WindowRow>,
    pub prices: Vec<PriceRow>,
}

pub struct KioskRow {
    pub id: i64,
    pub name: String,
    pub canteen: String,
    pub revoked: bool,
    pub registered: String,
    pub last_seen: String,
}

#[derive(Template, WebTemplate)]
#[template(path = "settings.html")]
pub struct SettingsPage {
    pub c: Chrome,
    pub notice: Option<String>,
    pub error: Option<String>,
    pub canteens: Vec<CanteenView>,
    pub subsidies: Vec<(String, String, bool)>,
    /// The month a grant opens by default (the current one).
    pub period: String,
    pub kiosks: Vec<KioskRow>,
    /// A registration code just issued (shown once) and until when it works.
    pub kiosk_code: Option<(String, String)>,
}

#[derive(Deserialize, Default)]
pub struct SettingsQuery {
    #[serde(default)]
    pub done: String,
}

fn offset_text(minutes: i32) -> String {
    let sign = if minutes < 0 { '-' } else { '+' };
    let m = minutes.unsigned_abs();
    format!("{sign}{:02}:{:02}", m / 60, m % 60)
}

fn cap_text(c: Option<Fen>) -> String {
    c.map(format::plain_yuan).unwrap_or_default()
}

async fn settings_page(
    host: &HostRef,
    v: &Visitor,
    notice: Option<String>,
    error: Option<String>,
    kiosk_code: Option<(String, i64)>,
) -> Result<SettingsPage, PageError> {
    let lang = v.lang;
    let t = lang.tr();
    let store = host.store();
    let canteens_list = store.list_canteens().await.or_page(lang)?;
    let offset = canteens_list
        .first()
        .map(|c| c.utc_offset_minutes)
        .unwrap_or(480);
    let rules = store.list_subsidy_rules().await.or_page(lang)?;
    let mut canteens = Vec::new();
    for c in &canteens_list {
        let cfg = store.canteen_config(c.id).await.or_page(lang)?;
        let windows = MEALS
            .iter()
            .map(|m| {
                let w = cfg.windows.iter().find(|w| w.meal == *m);
                WindowRow {
                    meal: m.as_str(),
                    label: meal_name(t, *m),
                    start: w.map(|w| fmt_hhmm(w.start_minute)).unwrap_or_default(),
                    end: w.map(|w| fmt_hhmm(w.end_minute)).unwrap_or_default(),
                }
            })
            .collect();
        // Every category that has a price or a subsidy rule gets a row.
        let mut categories: Vec<String> = cfg
            .prices
            .iter()
            .map(|p| p.category.clone())
            .chain(rules.iter().map(|r| r.category.clone()))
            .collect();
        categories.sort();
        categories.dedup();
        let prices = categories
            .into_iter()
            .map(|cat| PriceRow {
                prices: MEALS
                    .iter()
                    .map(|m| {
                        let p = cfg
                            .prices
                            .iter()
                            .find(|p| p.category == cat && p.meal == *m)
                            .map(|p| format::plain_yuan(p.price))
                            .unwrap_or_default();
                        (m.as_str(), meal_name(t, *m), p)
                    })
                    .collect(),
                category: cat,
            })
            .collect();
        canteens.push(CanteenView {
            id: c.id,
            name: c.name.clone(),
            offset: offset_text(c.utc_offset_minutes),
            offset_minutes: c.utc_offset_minutes,
            per_transaction_cap: cap_text(c.per_transaction_cap),
            daily_cap: cap_text(c.daily_cap),
            waste_target: c
                .waste_target_grams
                .map(|g| g.to_string())
                .unwrap_or_default(),
            windows,
            prices,
        });
    }
    let kiosks = store
        .list_kiosks()
        .await
        .or_page(lang)?
        .into_iter()
        .map(|k| KioskRow {
            canteen: canteens_list
                .iter()
                .find(|c| c.id == k.canteen_id)
                .map(|c| c.name.clone())
                .unwrap_or_default(),
            registered: local_time(k.created_at_ms, offset),
            last_seen: k
                .last_seen_ms
                .map(|ms| local_time(ms, offset))
                .unwrap_or_else(|| t.never.to_string()),
            id: k.id,
            name: k.name,
            revoked: k.revoked,
        })
        .collect();
    let today = format::day_date(format::local_day(host.now_ms(), offset));
    Ok(SettingsPage {
        c: v.chrome("settings"),
        notice,
        error,
        canteens,
        subsidies: rules
            .into_iter()
            .map(|r| (r.category, format::plain_yuan(r.amount), r.expires))
            .collect(),
        period: ledger::subsidy::period_of(today),
        kiosks,
        kiosk_code: kiosk_code.map(|(c, until)| (c, local_time(until, offset))),
    })
}

fn done_notice(t: &'static Tr, done: &str) -> Option<String> {
    match done {
        "" => None,
        "revoked" => Some(t.kiosk_revoked.into()),
        _ => Some(t.saved.into()),
    }
}

pub async fn page(
    State(host): State<HostRef>,
    Manager(v): Manager,
    Query(q): Query<SettingsQuery>,
) -> Result<SettingsPage, PageError> {
    let notice = done_notice(v.lang.tr(), &q.done);
    settings_page(&host, &v, notice, None, None).await
}

/// The page again with what was wrong, answered 422: nothing was written.
async fn refused(host: &HostRef, v: &Visitor, message: String) -> Result<Response, PageError> {
    let page = settings_page(host, v, None, Some(message), None).await?;
    Ok((StatusCode::UNPROCESSABLE_ENTITY, page).into_response())
}

fn saved(anchor: &str) -> Response {
    Redirect::to(&format!("/manage/settings?done=saved#{anchor}")).into_response()
}

/// A cap typed in yuan: empty or 0 removes it.
fn cap(s: &str) -> Option<Option<Fen>> {
    if s.trim().is_empty() {
        return Some(None);
    }
    let f = format::parse_yuan(s)?;
    Some((f.0 > 0).then_some(f))
}

#[derive(Deserialize)]
pub struct CanteenForm {
    #[serde(default)]
    pub csrf: String,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub utc_offset_minutes: String,
    #[serde(default)]
    pub per_transaction_cap: String,
    #[serde(default)]
    pub daily_cap: String,
    #[serde(default)]
    pub waste_target_grams: String,
}

pub async fn save_canteen(
    State(host): State<HostRef>,
    Manager(v): Manager,
    Path(id): Path<i64>,
    Form(f): Form<CanteenForm>,
) -> Result<Response, PageError> {
    v.check_csrf(&host, &f.csrf)?;
    let t = v.lang.tr();
    let name = match Name::RULE.check(&f.name) {
        Ok(n) => n,
        Err(_) => return refused(&host, &v, t.rule_name.into()).await,
    };
    let offset = match f.utc_offset_minutes.trim().parse::<i32>() {
        Ok(m) if (-14 * 60..=14 * 60).contains(&m) => m,
        _ => return refused(&host, &v, t.rule_offset.into()).await,
    };
    let (Some(per), Some(daily)) = (cap(&f.per_transaction_cap), cap(&f.daily_cap)) else {
        return refused(&host, &v, t.rule_money.into()).await;
    };
    let target = match f.waste_target_grams.trim() {
        "" => None,
        g => match g.parse::<i64>() {
            Ok(g) if ledger::waste::valid_target(g) => Some(g),
            _ => return refused(&host, &v, t.rule_waste_target.into()).await,
        },
    };
    host.store()
        .update_canteen(
            id,
            CanteenUpdate {
                name: Some(name),
                utc_offset_minutes: Some(offset),
                per_transaction_cap: Some(per),
                daily_cap: Some(daily),
                waste_target_grams: Some(target),
            },
            &v.actor(),
        )
        .await
        .or_page(v.lang)?;
    Ok(saved("canteen"))
}

#[derive(Deserialize)]
pub struct WindowForm {
    #[serde(default)]
    pub csrf: String,
    #[serde(default)]
    pub meal: String,
    #[serde(default)]
    pub start: String,
    #[serde(default)]
    pub end: String,
}

pub async fn save_window(
    State(host): State<HostRef>,
    Manager(v): Manager,
    Path(id): Path<i64>,
    Form(f): Form<WindowForm>,
) -> Result<Response, PageError> {
    v.check_csrf(&host, &f.csrf)?;
    let t = v.lang.tr();
    let (Some(meal), Ok(start), Ok(end)) = (
        meal_of(&f.meal),
        parse_hhmm(f.start.trim()),
        parse_hhmm(f.end.trim()),
    ) else {
        return refused(&host, &v, t.rule_window.into()).await;
    };
    let w = MealWindow {
        canteen_id: id,
        meal,
        start_minute: start,
        end_minute: end,
    };
    match host.store().set_meal_window(w, &v.actor()).await {
        Ok(()) => Ok(saved("windows")),
        Err(store::StoreError::Invalid { .. }) => refused(&host, &v, t.rule_window.into()).await,
        Err(e) => Err(PageError::from_store(v.lang, e)),
    }
}

#[derive(Deserialize)]
pub struct PriceForm {
    #[serde(default)]
    pub csrf: String,
    #[serde(default)]
    pub category: String,
    #[serde(default)]
    pub meal: String,
    #[serde(default)]
    pub price: String,
}

pub async fn save_price(
    State(host): State<HostRef>,
    Manager(v): Manager,
    Path(id): Path<i64>,
    Form(f): Form<PriceForm>,
) -> Result<Response, PageError> {
    v.check_csrf(&host, &f.csrf)?;
    let t = v.lang.tr();
    let Ok(category) = Category::RULE.check(&f.category) else {
        return refused(&host, &v, t.rule_category.into()).await;
    };
    let Some(meal) = meal_of(&f.meal) else {
        return Err(PageError::bad_form(v.lang));
    };
    let price = match format::parse_yuan(&f.price) {
        Some(p) if p.0 > 0 => p,
        _ => return refused(&host, &v, t.rule_money.into()).await,
    };
    host.store()
        .set_price(
            Price {
                canteen_id: id,
                category,
                meal,
                price,
            },
            &v.actor(),
        )
        .await
        .or_page(v.lang)?;
    Ok(saved("prices"))
}

#[derive(Deserialize)]
pub struct SubsidyForm {
    #[serde(default)]
    pub csrf: String,
    #[serde(default)]
    pub category: String,
    #[serde(default)]
    pub amount: String,
    #[serde(default)]
    pub expires: String,
}

pub async fn save_subsidy(
    State(host): State<HostRef>,
    Manager(v): Manager,
    Form(f): Form<SubsidyForm>,
) -> Result<Response, PageError> {
    v.check_csrf(&host, &f.csrf)?;
    let t = v.lang.tr();
    let Ok(category) = Category::RULE.check(&f.category) else {
        return refused(&host, &v, t.rule_category.into()).await;
    };
    // Zero is allowed: a category without a subsidy.
    let amount = match f.amount.trim() {
        "0" => Fen(0),
        s => match format::parse_yuan(s) {
            Some(a) => a,
            None => return refused(&host, &v, t.rule_money.into()).await,
        },
    };
    host.store()
        .set_subsidy_rule(
            SubsidyRule {
                category,
                amount,
                expires: f.expires == "1",
            },
            &v.actor(),
        )
        .await
        .or_page(v.lang)?;
    Ok(saved("subsidies"))
}

#[derive(Deserialize)]
pub struct GrantForm {
    #[serde(default)]
    pub csrf: String,
    #[serde(default)]
    pub period: String,
}

pub async fn grant(
    State(host): State<HostRef>,
    Manager(v): Manager,
    Form(f): Form<GrantForm>,
) -> Result<Response, PageError> {
    v.check_csrf(&host, &f.csrf)?;
    let lang = v.lang;
    let t = lang.tr();
    let Some(period) = ledger::subsidy::parse_period(f.period.trim()) else {
        return refused(&host, &v, t.rule_period.into()).await;
    };
    let g = host
        .store()
        .grant_subsidies(&period, host.now_ms(), &v.actor())
        .await
        .or_page(lang)?;
    let notice = grant_notice(lang, &g);
    let page = settings_page(&host, &v, Some(notice), None, None).await?;
    Ok(page.into_response())
}

fn grant_notice(lang: Lang, g: &store::GrantSummary) -> String {
    let t = lang.tr();
    format!(
        "{} {}: {} {} · {} {} · {} {} · {} {}",
        t.granted_period,
        g.period,
        t.people_granted,
        g.people,
        t.amount_granted,
        yuan(g.granted),
        t.amount_expired,
        yuan(g.expired),
        t.people_skipped,
        g.skipped
    )
}

#[derive(Deserialize)]
pub struct KioskCodeForm {
    #[serde(default)]
    pub csrf: String,
    #[serde(default)]
    pub canteen_id: String,
}

pub async fn kiosk_code(
    State(host): State<HostRef>,
    Manager(v): Manager,
    Form(f): Form<KioskCodeForm>,
) -> Result<SettingsPage, PageError> {
    v.check_csrf(&host, &f.csrf)?;
    let canteen: i64 = f
        .canteen_id
        .trim()
        .parse()
        .map_err(|_| PageError::bad_form(v.lang))?;
    let code = host
        .issue_kiosk_code(v.user(), canteen)
        .await
        .or_page(v.lang)?;
    settings_page(&host, &v, None, None, Some(code)).await
}

pub async fn revoke_kiosk(
    State(host): State<HostRef>,
    Manager(v): Manager,
    Path(id): Path<i64>,
    Form(f): Form<CsrfForm>,
) -> Result<Response, PageError> {
    v.check_csrf(&host, &f.csrf)?;
    host.revoke_kiosk(v.user(), id).await.or_page(v.lang)?;
    Ok(Redirect::to("/manage/settings?done=revoked#kiosks").into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_and_caps_read_as_people_write_them() {
        assert_eq!(offset_text(480), "+08:00");
        assert_eq!(offset_text(-330), "-05:30");
        assert_eq!(cap(""), Some(None));
        assert_eq!(cap("0"), Some(None));
        assert_eq!(cap("50.5"), Some(Some(Fen(5050))));
        assert_eq!(cap("-1"), None);
        assert_eq!(cap("1.234"), None);
    }
}
