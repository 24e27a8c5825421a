//! The staff's mobile page (`/me/...`, 360–430 px wide first): balance, recent activity, top-up
//! through the payment provider (and the new balance when it comes back), a one-time pay code
//! as a QR code, and consent to face recognition with the stored templates. Every handler
//! takes the staff id from the visitor's own session ([`StaffMember`]); ids in a URL are only
//! ever looked up among that person's own records, so another person's id answers 404.

use crate::error::{OrPage, PageError};
use crate::format::{self, clock_time, local_time, signed_yuan, yuan};
use crate::manage::canteen_offset;
use crate::session::{Chrome, CsrfForm, StaffMember};
use crate::HostRef;
use askama::Template;
use askama_web::WebTemplate;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use ledger::refund::ChargeStatus;
use ledger::Fen;
use ledger::MealKind;
use serde::Deserialize;
use store::{ChargeFilter, OrderStatus, RefundStatus};

/// Under this the page suggests a top-up.
const LOW_BALANCE: Fen = Fen(2000);
/// The amounts offered as one-tap choices (yuan).
const TOP_UP_CHOICES: [i64; 4] = [50, 100, 200, 500];

pub fn routes() -> Router<HostRef> {
    Router::new()
        .route("/me", get(home))
        .route("/me/top-up", post(top_up))
        .route("/me/pay-code", post(pay_code))
        .route("/me/consent", post(consent))
        .route("/me/refunds", post(request_refund))
        .route("/me/templates/{id}/delete", post(delete_template))
}

pub struct Line {
    pub what: &'static str,
    pub when: String,
    pub amount: String,
    pub credit: bool,
    pub memo: String,
}

/// A recent meal, with what can be done about it.
pub struct Meal {
    pub charge_id: i64,
    pub when: String,
    pub what: &'static str,
    pub amount: String,
    /// The refund's state when one was asked for.
    pub refund: Option<&'static str>,
    /// Whether a refund may still be asked for (paid, within the window, none open).
    pub refundable: bool,
}

pub struct TemplateRow {
    pub id: i64,
    pub created: String,
}

/// The state of the top-up the visitor just came back from.
pub enum TopUpState {
    None,
    Pending,
    Credited(String),
}

#[derive(Template, WebTemplate)]
#[template(path = "me.html")]
pub struct HomePage {
    pub c: Chrome,
    pub name: String,
    pub total: String,
    pub cash: String,
    pub subsidy: String,
    pub low: bool,
    pub lines: Vec<Line>,
    pub meals: Vec<Meal>,
    pub consent: bool,
    pub templates: Vec<TemplateRow>,
    pub top_up: TopUpState,
    pub choices: Vec<i64>,
    pub error: Option<String>,
    pub notice: Option<&'static str>,
    /// When unspent subsidy goes back to the fund (the month's last day), if it does.
    pub subsidy_expires: Option<String>,
    /// My plate waste over the last 30 days: the chart, plates weighed and clean ones.
    pub waste_chart: Option<String>,
    pub plates: i64,
    pub clean_plates: i64,
}

impl HomePage {
    pub fn refresh(&self) -> bool {
        matches!(self.top_up, TopUpState::Pending)
    }
}

#[derive(Deserialize, Default)]
pub struct HomeQuery {
    /// The top-up order the payer comes back from.
    #[serde(default)]
    pub topup: String,
    /// A short notice after an action (`withdrawn`).
    #[serde(default)]
    pub done: String,
}

async fn render_home(
    host: &HostRef,
    v: crate::session::Visitor,
    me: i64,
    q: HomeQuery,
    error: Option<String>,
) -> Result<HomePage, PageError> {
    let lang = v.lang;
    let t = lang.tr();
    let store = host.store();
    let offset = canteen_offset(host).await.or_page(lang)?;
    let staff = store.get_staff(me).await.or_page(lang)?;
    let b = store.balances(me).await.or_page(lang)?;
    let lines = store
        .statement(me, 20)
        .await
        .or_page(lang)?
        .into_iter()
        .map(|l| {
            let delta = Fen(l.cash_delta.0 + l.subsidy_delta.0);
            Line {
                what: crate::journal::kind_name(&l.kind, t),
                when: local_time(l.at_ms, offset),
                amount: signed_yuan(delta),
                credit: delta.0 > 0,
                memo: l.memo,
            }
        })
        .collect();
    let now = host.now_ms();
    let refunds = store.list_refunds(None, Some(me)).await.or_page(lang)?;
    let meals = store
        .list_charges(ChargeFilter {
            staff_id: Some(me),
            limit: 5,
            ..Default::default()
        })
        .await
        .or_page(lang)?
        .into_iter()
        .map(|c| {
            // The latest request for the charge tells its state.
            let asked = refunds
                .iter()
                .filter(|r| r.charge_id == c.id)
                .max_by_key(|r| r.id)
                .map(|r| r.status);
            let open = matches!(
                asked,
                Some(RefundStatus::Requested) | Some(RefundStatus::Approved)
            );
            Meal {
                charge_id: c.id,
                when: local_time(c.kiosk_time_ms, offset),
                what: match c.meal {
                    Some(MealKind::Breakfast) => t.breakfast,
                    Some(MealKind::Lunch) => t.lunch,
                    Some(MealKind::Dinner) => t.dinner,
                    None => t.kind_charge,
                },
                amount: yuan(c.amount),
                refund: asked.map(|s| match s {
                    RefundStatus::Requested => t.refund_requested,
                    RefundStatus::Approved => t.refund_approved,
                    RefundStatus::Rejected => t.refund_rejected,
                }),
                refundable: c.status == ChargeStatus::Accepted
                    && !open
                    && now - c.received_ms <= ledger::refund::STAFF_REFUND_WINDOW_MS,
            }
        })
        .collect();
    let consent = store.consent(me).await.or_page(lang)?.granted;
    let templates = store
        .list_templates(me)
        .await
        .or_page(lang)?
        .into_iter()
        .filter(|t| !t.deleted)
        .map(|t| TemplateRow {
            id: t.id,
            created: local_time(t.created_at_ms, offset),
        })
        .collect();
    let top_up = if q.topup.is_empty() {
        TopUpState::None
    } else {
        // Only the visitor's own orders are looked at.
        match store
            .list_payment_orders(Some(me), 50)
            .await
            .or_page(lang)?
            .into_iter()
            .find(|o| o.order_no == q.topup)
        {
            Some(o) if o.status == OrderStatus::Credited => TopUpState::Credited(yuan(o.amount)),
            Some(_) => TopUpState::Pending,
            None => TopUpState::None,
        }
    };
    let total = Fen(b.cash.0 + b.subsidy.0);
    let today = format::local_day(now, offset);
    let expires = store
        .list_subsidy_rules()
        .await
        .or_page(lang)?
        .into_iter()
        .any(|r| r.category == staff.category && r.expires);
    let subsidy_expires = (expires && b.subsidy.0 > 0).then(|| {
        let d = format::day_date(today);
        let last = d.replace_day(d.month().length(d.year())).unwrap_or(d);
        last.to_string()
    });
    let waste = my_waste(host, me, today, offset, t).await.or_page(lang)?;
    Ok(HomePage {
        subsidy_expires,
        waste_chart: waste.0,
        plates: waste.1,
        clean_plates: waste.2,
        c: v.chrome("me"),
        name: staff.name,
        total: yuan(total),
        cash: yuan(b.cash),
        subsidy: yuan(b.subsidy),
        low: total.0 < LOW_BALANCE.0,
        lines,
        meals,
        consent,
        templates,
        top_up,
        choices: TOP_UP_CHOICES.to_vec(),
        error,
        notice: match q.done.as_str() {
            "withdrawn" => Some(t.consent_withdrawn_note),
            "refund" => Some(t.refund_sent_note),
            _ => None,
        },
    })
}

pub async fn home(
    State(host): State<HostRef>,
    StaffMember(v, me): StaffMember,
    Query(q): Query<HomeQuery>,
) -> Result<HomePage, PageError> {
    render_home(&host, v, me, q, None).await
}

/// My last 30 days of plate waste: a line of grams left per plate by day (`None` when nothing
/// was weighed), the plates weighed and how many were clean.
async fn my_waste(
    host: &HostRef,
    me: i64,
    today: i64,
    offset: i32,
    t: &'static crate::i18n::Tr,
) -> Result<(Option<String>, i64, i64), store::StoreError> {
    use crate::chart::{Chart, Kind, Series};
    let first = today - 29;
    let mut grams = [0i64; 30];
    let mut plates = [0i64; 30];
    let mut clean = 0;
    // Newest first; a month of three meals a day is under 100 records.
    for w in host.store().list_waste(Some(me), 200).await? {
        let day = format::local_day(w.measured_at_ms, offset);
        if day < first {
            break;
        }
        if let Ok(i) = usize::try_from(day - first) {
            if i < 30 {
                grams[i] += w.net_grams.max(0);
                plates[i] += 1;
                clean += i64::from(w.net_grams <= crate::manage::CLEAN_PLATE_MAX_GRAMS);
            }
        }
    }
    let weighed: i64 = plates.iter().sum();
    if weighed == 0 {
        return Ok((None, 0, 0));
    }
    let chart = Chart {
        id: "my-waste",
        title: t.my_waste.into(),
        labels: (first..=today).map(format::short_day).collect(),
        series: vec![Series {
            name: t.waste_per_plate.into(),
            colour: "#c8553d",
            values: (0..30)
                .map(|i| {
                    if plates[i] == 0 {
                        f64::NAN
                    } else {
                        grams[i] as f64 / plates[i] as f64
                    }
                })
                .collect(),
        }],
        kind: Kind::Lines,
        y_max: None,
        y_format: |v| format!("{v:.0} g"),
    };
    // A phone is about 360 px wide: drawn at 400 units, its labels stay legible.
    Ok((Some(chart.svg_width(400.0)), weighed, clean))
}

#[derive(Deserialize)]
pub struct TopUpForm {
    #[serde(default)]
    pub csrf: String,
    #[serde(default)]
    pub amount: String,
}

/// Starts a top-up and sends the payer to the provider's pay page.
pub async fn top_up(
    State(host): State<HostRef>,
    StaffMember(v, me): StaffMember,
    Form(f): Form<TopUpForm>,
) -> Result<Response, PageError> {
    v.check_csrf(&host, &f.csrf)?;
    let lang = v.lang;
    let amount = format::parse_yuan(&f.amount).filter(|a| a.0 > 0 && a.0 <= 500_000);
    let Some(amount) = amount else {
        let msg = lang.tr().top_up_bad_amount.to_string();
        let page = render_home(&host, v, me, HomeQuery::default(), Some(msg)).await?;
        return Ok((StatusCode::UNPROCESSABLE_ENTITY, page).into_response());
    };
    let url = host.start_top_up(v.user(), amount).await.or_page(lang)?;
    Ok(Redirect::to(&url).into_response())
}

#[derive(Template, WebTemplate)]
#[template(path = "pay_code.html")]
pub struct PayCodePage {
    pub c: Chrome,
    pub qr_svg: String,
    pub expires: String,
}

pub async fn pay_code(
    State(host): State<HostRef>,
    StaffMember(v, _me): StaffMember,
    Form(f): Form<CsrfForm>,
) -> Result<PayCodePage, PageError> {
    v.check_csrf(&host, &f.csrf)?;
    let lang = v.lang;
    let offset = canteen_offset(&host).await.or_page(lang)?;
    let (code, expires_ms) = host.new_pay_code(v.user()).await.or_page(lang)?;
    let qr = qrcode::QrCode::with_error_correction_level(code.as_bytes(), qrcode::EcLevel::M)
        .map_err(|e| PageError::internal(lang, e))?;
    let qr_svg = qr
        .render::<qrcode::render::svg::Color<'_>>()
        .quiet_zone(true)
        .min_dimensions(240, 240)
        .build();
    // The renderer writes an XML declaration first; inline SVG in HTML does without it.
    let qr_svg = match qr_svg.find("<svg") {
        Some(i) => qr_svg[i..].to_string(),
        None => qr_svg,
    };
    let qr_svg = qr_svg.replacen(
        "<svg",
        &format!("<svg role=\"img\" aria-label=\"{}\"", lang.tr().pay_code),
        1,
    );
    Ok(PayCodePage {
        c: v.chrome("me"),
        qr_svg,
        expires: clock_time(expires_ms, offset),
    })
}

#[derive(Deserialize)]
pub struct ConsentForm {
    #[serde(default)]
    pub csrf: String,
    #[serde(default)]
    pub granted: String,
}

/// Gives or withdraws consent; withdrawing deletes every stored template (the store does
/// both in one transaction, as for the API).
pub async fn consent(
    State(host): State<HostRef>,
    StaffMember(v, me): StaffMember,
    Form(f): Form<ConsentForm>,
) -> Result<Response, PageError> {
    v.check_csrf(&host, &f.csrf)?;
    let granted = match f.granted.as_str() {
        "true" => true,
        "false" => false,
        _ => return Err(PageError::bad_form(v.lang)),
    };
    host.store()
        .set_consent(me, granted, host.now_ms(), &v.actor())
        .await
        .or_page(v.lang)?;
    Ok(Redirect::to(if granted { "/me" } else { "/me?done=withdrawn" }).into_response())
}

/// Deletes one of the visitor's own templates.
pub async fn delete_template(
    State(host): State<HostRef>,
    StaffMember(v, me): StaffMember,
    Path(id): Path<i64>,
    Form(f): Form<CsrfForm>,
) -> Result<Response, PageError> {
    v.check_csrf(&host, &f.csrf)?;
    let store = host.store();
    let own = store.list_templates(me).await.or_page(v.lang)?;
    if !own.iter().any(|t| t.id == id && !t.deleted) {
        return Err(PageError::not_found(v.lang));
    }
    store
        .delete_template(id, host.now_ms(), &v.actor())
        .await
        .or_page(v.lang)?;
    Ok(Redirect::to("/me").into_response())
}

#[derive(Deserialize)]
pub struct RefundForm {
    #[serde(default)]
    pub csrf: String,
    #[serde(default)]
    pub charge_id: i64,
    #[serde(default)]
    pub reason: String,
}

/// Asks for a refund of one of the visitor's own meals (the store refuses other people's
/// charges as not found, and anything outside the refund rules with its reason).
pub async fn request_refund(
    State(host): State<HostRef>,
    StaffMember(v, me): StaffMember,
    Form(f): Form<RefundForm>,
) -> Result<Response, PageError> {
    v.check_csrf(&host, &f.csrf)?;
    let reason = f.reason.trim();
    if reason.is_empty() || reason.chars().count() > 200 {
        let msg = v.lang.tr().refund_reason_needed.to_string();
        let page = render_home(&host, v, me, HomeQuery::default(), Some(msg)).await?;
        return Ok((StatusCode::UNPROCESSABLE_ENTITY, page).into_response());
    }
    host.store()
        .request_refund(f.charge_id, me, reason, host.now_ms(), &v.actor())
        .await
        .or_page(v.lang)?;
    Ok(Redirect::to("/me?done=refund").into_response())
}
