//! The managers' staff pages (`/manage/staff/...`): search the people who eat here, add one,
//! change their details, deactivate or reactivate them, hand them a one-time sign-in code,
//! see and delete their face data, and offboard them (cash paid out, subsidy returned, as the
//! API's `offboard`). Every write goes through the store method the JSON API's handler calls,
//! with the fields checked by the API's own rules (`wire::fields`), so a page cannot accept
//! what the API refuses. Importing many people at once is in [`crate::import`].

use crate::error::{OrPage, PageError};
use crate::format::{local_time, signed_yuan, yuan};
use crate::i18n::{Lang, Tr};
use crate::manage::canteen_offset;
use crate::session::{encode, Chrome, CsrfForm, Manager, Visitor};
use crate::HostRef;
use askama::Template;
use askama_web::WebTemplate;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use serde::Deserialize;
use store::{NewStaff, Staff, StaffSearch, StaffUpdate};
use wire::fields::{Category, Department, EmployeeNo, FieldError, MealsPerPeriod, Name, TextKind};

/// People per page of the list.
const PAGE: i64 = 50;

pub fn routes() -> Router<HostRef> {
    Router::new()
        .route("/manage/staff", get(list).post(create))
        .route("/manage/staff/{id}", get(detail).post(update))
        .route("/manage/staff/{id}/sign-in-code", post(sign_in_code))
        .route(
            "/manage/staff/{id}/offboard",
            get(offboard_confirm).post(offboard),
        )
        .route(
            "/manage/staff/{id}/templates/{template}/delete",
            post(delete_template),
        )
        .route("/manage/staff/{id}/consent", post(record_consent))
}

/// The largest photo accepted (as the API's photo route).
pub const MAX_PHOTO_BYTES: usize = 10 * 1024 * 1024;

/// The photo upload, with a body limit of its own (the other forms are small).
pub fn upload_routes() -> Router<HostRef> {
    Router::new()
        .route("/manage/staff/{id}/photos", post(enrol_photo))
        .layer(axum::extract::DefaultBodyLimit::max(
            MAX_PHOTO_BYTES + crate::upload::FRAMING_BYTES,
        ))
}

/// A person's state in words.
pub(crate) fn status_of(t: &'static Tr, s: &Staff, left: bool) -> &'static str {
    if left {
        t.status_left
    } else if s.active {
        t.status_active
    } else {
        t.status_inactive
    }
}

/// A field's refusal in the visitor's language: which field and what its rule asks.
pub(crate) fn field_message(lang: Lang, e: &FieldError) -> String {
    let t = lang.tr();
    match e.code {
        "bad_employee_no" => t.rule_employee_no.into(),
        "bad_name" => t.rule_name.into(),
        "bad_department" => t.rule_department.into(),
        "bad_category" => t.rule_category.into(),
        "bad_meals_per_period" => t.rule_meals.into(),
        _ => e.message.clone(),
    }
}

pub struct ListRow {
    pub id: i64,
    pub employee_no: String,
    pub name: String,
    pub department: String,
    pub category: String,
    pub cash: String,
    pub subsidy: String,
    pub status: &'static str,
    pub active: bool,
}

#[derive(Template, WebTemplate)]
#[template(path = "people.html")]
pub struct PeoplePage {
    pub c: Chrome,
    pub q: String,
    pub all: bool,
    pub rows: Vec<ListRow>,
    pub next: Option<String>,
    pub first_page: bool,
    /// The add-a-person form, filled again when it was refused.
    pub form: PersonForm,
    pub form_error: Option<String>,
}

#[derive(Deserialize, Default)]
pub struct ListQuery {
    #[serde(default)]
    pub q: String,
    #[serde(default)]
    pub all: String,
    #[serde(default)]
    pub after: String,
}

fn list_query(q: &str, all: bool) -> String {
    format!("q={}{}", encode(q), if all { "&all=1" } else { "" })
}

async fn people_page(
    host: &HostRef,
    v: &Visitor,
    q: ListQuery,
    form: PersonForm,
    form_error: Option<String>,
) -> Result<PeoplePage, PageError> {
    let lang = v.lang;
    let t = lang.tr();
    let all = q.all == "1";
    let store = host.store();
    let mut found = store
        .find_staff(StaffSearch {
            text: q.q.clone(),
            include_inactive: all,
            after_employee_no: q.after.clone(),
            limit: PAGE + 1,
        })
        .await
        .or_page(lang)?;
    let more = found.len() as i64 > PAGE;
    found.truncate(PAGE as usize);
    let mut rows = Vec::with_capacity(found.len());
    for s in found {
        let b = store.balances(s.id).await.or_page(lang)?;
        rows.push(ListRow {
            id: s.id,
            status: status_of(t, &s, false),
            active: s.active,
            cash: yuan(b.cash),
            subsidy: yuan(b.subsidy),
            employee_no: s.employee_no,
            name: s.name,
            department: s.department,
            category: s.category,
        });
    }
    let next = match rows.last() {
        Some(last) if more => Some(format!(
            "{}&after={}",
            list_query(&q.q, all),
            encode(&last.employee_no)
        )),
        _ => None,
    };
    Ok(PeoplePage {
        c: v.chrome("staff"),
        first_page: q.after.is_empty(),
        q: q.q,
        all,
        rows,
        next,
        form,
        form_error,
    })
}

pub async fn list(
    State(host): State<HostRef>,
    Manager(v): Manager,
    Query(q): Query<ListQuery>,
) -> Result<PeoplePage, PageError> {
    people_page(&host, &v, q, PersonForm::default(), None).await
}

/// The add-a-person form and the edit form (which has no employee number: it never changes).
#[derive(Deserialize, Default, Clone)]
pub struct PersonForm {
    #[serde(default)]
    pub csrf: String,
    #[serde(default)]
    pub employee_no: String,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub department: String,
    #[serde(default)]
    pub category: String,
    #[serde(default)]
    pub meals_per_period: String,
    #[serde(default)]
    pub active: String,
}

/// The fields of a new person, each under the API's rule for its kind.
pub(crate) fn new_staff(
    employee_no: &str,
    name: &str,
    department: &str,
    category: &str,
) -> Result<NewStaff, FieldError> {
    Ok(NewStaff {
        employee_no: EmployeeNo::RULE.check(employee_no)?,
        name: Name::RULE.check(name)?,
        department: Department::RULE.check(department)?,
        category: Category::RULE.check(category)?,
    })
}

pub async fn create(
    State(host): State<HostRef>,
    Manager(v): Manager,
    Form(f): Form<PersonForm>,
) -> Result<Response, PageError> {
    v.check_csrf(&host, &f.csrf)?;
    let lang = v.lang;
    let refused = |message: String| async {
        let page = people_page(&host, &v, ListQuery::default(), f.clone(), Some(message)).await?;
        Ok::<_, PageError>((StatusCode::UNPROCESSABLE_ENTITY, page).into_response())
    };
    let new = match new_staff(&f.employee_no, &f.name, &f.department, &f.category) {
        Ok(n) => n,
        Err(e) => return refused(field_message(lang, &e)).await,
    };
    match host.store().create_staff(new, &v.actor()).await {
        Ok(s) => Ok(Redirect::to(&format!("/manage/staff/{}?added=1", s.id)).into_response()),
        Err(store::StoreError::Conflict { .. }) => {
            refused(lang.tr().employee_no_taken.to_string()).await
        }
        Err(e) => Err(PageError::from_store(lang, e)),
    }
}

pub struct Line {
    pub when: String,
    pub what: String,
    pub cash: String,
    pub subsidy: String,
}

pub struct TemplateRow {
    pub id: i64,
    pub created: String,
}

#[derive(Template, WebTemplate)]
#[template(path = "person.html")]
pub struct PersonPage {
    pub c: Chrome,
    pub s: Staff,
    pub status: &'static str,
    pub left: bool,
    pub form: PersonForm,
    pub form_error: Option<String>,
    pub notice: Option<&'static str>,
    pub cash: String,
    pub subsidy: String,
    pub lines: Vec<Line>,
    /// `None`: no login yet; else whether it still waits for its one-time code.
    pub login: Option<bool>,
    pub consent: bool,
    pub consent_changed: String,
    pub templates: Vec<TemplateRow>,
    /// A code just issued, shown once.
    pub code: Option<(String, String)>,
    /// Why the photo just sent was not enrolled, in the visitor's words.
    pub photo_error: Option<String>,
}

#[derive(Deserialize, Default)]
pub struct DetailQuery {
    #[serde(default)]
    pub added: String,
    #[serde(default)]
    pub saved: String,
    #[serde(default)]
    pub deleted: String,
    #[serde(default)]
    pub enrolled: String,
    #[serde(default)]
    pub consent: String,
}

async fn person_page(
    host: &HostRef,
    v: &Visitor,
    id: i64,
    form: Option<PersonForm>,
    form_error: Option<String>,
    notice: Option<&'static str>,
    code: Option<(String, i64)>,
) -> Result<PersonPage, PageError> {
    let lang = v.lang;
    let t = lang.tr();
    let store = host.store();
    let s = store.get_staff(id).await.or_page(lang)?;
    let offset = canteen_offset(host).await.or_page(lang)?;
    let b = store.balances(id).await.or_page(lang)?;
    let left = has_left(host, lang, &s).await?;
    let lines = store
        .statement(id, 20)
        .await
        .or_page(lang)?
        .into_iter()
        .map(|l| Line {
            when: local_time(l.at_ms, offset),
            what: crate::journal::kind_name(&l.kind, t).to_string(),
            cash: signed_yuan(l.cash_delta),
            subsidy: signed_yuan(l.subsidy_delta),
        })
        .collect();
    let login = store
        .user_for_staff(id)
        .await
        .or_page(lang)?
        .map(|u| u.must_set_password());
    let consent = store.consent(id).await.or_page(lang)?;
    let templates = store
        .list_templates(id)
        .await
        .or_page(lang)?
        .into_iter()
        .filter(|m| !m.deleted)
        .map(|m| TemplateRow {
            id: m.id,
            created: local_time(m.created_at_ms, offset),
        })
        .collect();
    let form = form.unwrap_or_else(|| PersonForm {
        csrf: String::new(),
        employee_no: s.employee_no.clone(),
        name: s.name.clone(),
        department: s.department.clone(),
        category: s.category.clone(),
        meals_per_period: s.meals_per_period.to_string(),
        active: if s.active { "1".into() } else { String::new() },
    });
    Ok(PersonPage {
        c: v.chrome("staff"),
        status: status_of(t, &s, left),
        left,
        form,
        form_error,
        notice,
        cash: yuan(b.cash),
        subsidy: yuan(b.subsidy),
        lines,
        login,
        consent: consent.granted,
        consent_changed: consent
            .changed_at_ms
            .map(|ms| local_time(ms, offset))
            .unwrap_or_default(),
        templates,
        code: code.map(|(c, until)| (c, local_time(until, offset))),
        photo_error: None,
        s,
    })
}

/// Whether the person has been offboarded (left for good, not merely deactivated).
async fn has_left(host: &HostRef, lang: Lang, s: &Staff) -> Result<bool, PageError> {
    if s.active {
        return Ok(false);
    }
    Ok(host.store().left_at(s.id).await.or_page(lang)?.is_some())
}

pub async fn detail(
    State(host): State<HostRef>,
    Manager(v): Manager,
    Path(id): Path<i64>,
    Query(q): Query<DetailQuery>,
) -> Result<PersonPage, PageError> {
    let t = v.lang.tr();
    let notice = if q.added == "1" {
        Some(t.person_added)
    } else if q.saved == "1" {
        Some(t.saved)
    } else if q.deleted == "1" {
        Some(t.face_deleted)
    } else if q.enrolled == "1" {
        Some(t.face_enrolled)
    } else if q.consent == "1" {
        Some(t.consent_recorded)
    } else {
        None
    };
    person_page(&host, &v, id, None, None, notice, None).await
}

pub async fn update(
    State(host): State<HostRef>,
    Manager(v): Manager,
    Path(id): Path<i64>,
    Form(f): Form<PersonForm>,
) -> Result<Response, PageError> {
    v.check_csrf(&host, &f.csrf)?;
    let lang = v.lang;
    let checked = (|| {
        Ok::<_, FieldError>(StaffUpdate {
            name: Some(Name::RULE.check(&f.name)?),
            department: Some(Department::RULE.check(&f.department)?),
            category: Some(Category::RULE.check(&f.category)?),
            active: Some(f.active == "1"),
            meals_per_period: Some(meals_per_period(&f.meals_per_period)?),
        })
    })();
    let upd = match checked {
        Ok(u) => u,
        Err(e) => {
            let page = person_page(
                &host,
                &v,
                id,
                Some(f.clone()),
                Some(field_message(lang, &e)),
                None,
                None,
            )
            .await?;
            return Ok((StatusCode::UNPROCESSABLE_ENTITY, page).into_response());
        }
    };
    host.store()
        .update_staff(id, upd, &v.actor())
        .await
        .or_page(lang)?;
    Ok(Redirect::to(&format!("/manage/staff/{id}?saved=1")).into_response())
}

fn meals_per_period(s: &str) -> Result<u32, FieldError> {
    use wire::fields::IntKind;
    let n: i64 = s.trim().parse().map_err(|_| FieldError {
        code: "bad_meals_per_period",
        message: "meals per period must be a whole number".into(),
    })?;
    Ok(MealsPerPeriod::RULE.check(n)? as u32)
}

pub async fn sign_in_code(
    State(host): State<HostRef>,
    Manager(v): Manager,
    Path(id): Path<i64>,
    Form(f): Form<CsrfForm>,
) -> Result<PersonPage, PageError> {
    v.check_csrf(&host, &f.csrf)?;
    let code = host
        .issue_sign_in_code(v.user(), id)
        .await
        .or_page(v.lang)?;
    person_page(&host, &v, id, None, None, None, Some(code)).await
}

pub async fn delete_template(
    State(host): State<HostRef>,
    Manager(v): Manager,
    Path((id, template)): Path<(i64, i64)>,
    Form(f): Form<CsrfForm>,
) -> Result<Response, PageError> {
    v.check_csrf(&host, &f.csrf)?;
    let lang = v.lang;
    let store = host.store();
    // Only a template of this person: another id in the URL is not found here.
    let own = store
        .list_templates(id)
        .await
        .or_page(lang)?
        .iter()
        .any(|m| m.id == template && !m.deleted);
    if !own {
        return Err(PageError::not_found(lang));
    }
    store
        .delete_template(template, host.now_ms(), &v.actor())
        .await
        .or_page(lang)?;
    Ok(Redirect::to(&format!("/manage/staff/{id}?deleted=1")).into_response())
}

#[derive(Template, WebTemplate)]
#[template(path = "offboard.html")]
pub struct OffboardPage {
    pub c: Chrome,
    pub s: Staff,
    pub cash: String,
    pub subsidy: String,
    pub templates: usize,
    /// After the offboarding: what was paid out and returned.
    pub done: bool,
}

pub async fn offboard_confirm(
    State(host): State<HostRef>,
    Manager(v): Manager,
    Path(id): Path<i64>,
) -> Result<OffboardPage, PageError> {
    let lang = v.lang;
    let store = host.store();
    let s = store.get_staff(id).await.or_page(lang)?;
    let b = store.balances(id).await.or_page(lang)?;
    let templates = store
        .list_templates(id)
        .await
        .or_page(lang)?
        .iter()
        .filter(|m| !m.deleted)
        .count();
    Ok(OffboardPage {
        c: v.chrome("staff"),
        s,
        cash: yuan(b.cash),
        subsidy: yuan(b.subsidy),
        templates,
        done: false,
    })
}

pub async fn offboard(
    State(host): State<HostRef>,
    Manager(v): Manager,
    Path(id): Path<i64>,
    Form(f): Form<CsrfForm>,
) -> Result<OffboardPage, PageError> {
    v.check_csrf(&host, &f.csrf)?;
    let lang = v.lang;
    let store = host.store();
    let o = store
        .offboard_staff(id, host.now_ms(), &v.actor())
        .await
        .or_page(lang)?;
    let s = store.get_staff(id).await.or_page(lang)?;
    Ok(OffboardPage {
        c: v.chrome("staff"),
        s,
        cash: yuan(o.cash_paid_out),
        subsidy: yuan(o.subsidy_returned),
        templates: o.templates_deleted as usize,
        done: true,
    })
}

/// The photo refusal in the visitor's words; the server's own message (which names the
/// measure that failed, or the look-alike) follows where it helps.
fn photo_message(t: &'static Tr, code: &str, detail: &str) -> String {
    match code {
        "no_face" => t.photo_no_face.into(),
        "several_faces" => t.photo_several_faces.into(),
        "poor_quality" => format!("{} ({detail})", t.photo_poor_quality),
        "bad_image" => t.photo_bad_image.into(),
        "consent_required" => t.photo_consent_required.into(),
        "face_matches_other" => format!("{} ({detail})", t.photo_matches_other),
        "face_unlike_own" => format!("{} ({detail})", t.photo_unlike_own),
        "face_pipeline_unavailable" => t.photo_unavailable.into(),
        _ => detail.to_string(),
    }
}

pub async fn enrol_photo(
    State(host): State<HostRef>,
    Manager(v): Manager,
    Path(id): Path<i64>,
    headers: axum::http::HeaderMap,
    multipart: Result<axum::extract::Multipart, axum::extract::multipart::MultipartRejection>,
) -> Result<Response, PageError> {
    use crate::upload::{read_upload, UploadError};
    let lang = v.lang;
    let t = lang.tr();
    let again = |message: String, status: StatusCode| {
        let host = host.clone();
        let v = &v;
        async move {
            let mut page = person_page(&host, v, id, None, None, None, None).await?;
            page.photo_error = Some(message);
            Ok::<_, PageError>((status, page).into_response())
        }
    };
    let upload = match read_upload(&headers, multipart, MAX_PHOTO_BYTES).await {
        Ok(u) => u,
        Err(UploadError::TooLarge) => {
            return again(t.photo_too_large.into(), StatusCode::PAYLOAD_TOO_LARGE).await
        }
        Err(UploadError::NoFile) => {
            return again(t.photo_none.into(), StatusCode::BAD_REQUEST).await
        }
    };
    v.check_csrf(&host, &upload.csrf)?;
    match host.enrol_photo(v.user(), id, upload.bytes).await {
        Ok(_) => Ok(Redirect::to(&format!("/manage/staff/{id}?enrolled=1#face")).into_response()),
        Err(crate::HostError::Refused {
            status,
            code,
            message,
        }) if code != "not_found" => {
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::UNPROCESSABLE_ENTITY);
            again(photo_message(t, &code, &message), status).await
        }
        Err(crate::HostError::Unavailable(_)) => {
            again(t.photo_unavailable.into(), StatusCode::SERVICE_UNAVAILABLE).await
        }
        Err(e) => Err(PageError::from_host(lang, e)),
    }
}

#[derive(Deserialize)]
pub struct ConsentForm {
    #[serde(default)]
    pub csrf: String,
    #[serde(default)]
    pub granted: String,
}

/// Consent given on paper at the desk (or withdrawn there), recorded by the manager as the
/// API's `PUT /staff/{id}/consent` does; withdrawing deletes the person's templates.
pub async fn record_consent(
    State(host): State<HostRef>,
    Manager(v): Manager,
    Path(id): Path<i64>,
    Form(f): Form<ConsentForm>,
) -> Result<Response, PageError> {
    v.check_csrf(&host, &f.csrf)?;
    let granted = match f.granted.as_str() {
        "true" => true,
        "false" => false,
        _ => return Err(PageError::bad_form(v.lang)),
    };
    host.store()
        .set_consent(id, granted, host.now_ms(), &v.actor())
        .await
        .or_page(v.lang)?;
    Ok(Redirect::to(&format!("/manage/staff/{id}?consent=1#face")).into_response())
}
