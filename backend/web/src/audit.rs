//! The audit page (`/manage/audit`, for managers and auditors): the audit log newest first in
//! pages of 50, the audit chain's verification, and the inspection export.
//!
//! Verifying is `backend check` itself (through [`crate::Host::verify_audit`]): it reads every
//! sealed audit entry and every journal seal, so over a large ledger it takes seconds and is
//! run on demand — a "verify now" form (POST, CSRF) whose answer is the page with the verdict
//! and how long it took — never on every page view. The page view itself shows only the
//! chain's head (one indexed row).
//!
//! The export (`/manage/audit/export.zip?from=&to=`) is written by [`inspection`] into an
//! anonymous temporary file, page by page from the store, then streamed from that file: the
//! zip is never held in memory. Each export is recorded in the audit log.

use crate::error::{OrPage, PageError};
use crate::format::{self, local_day, local_time};
use crate::manage::canteen_offset;
use crate::session::{Chrome, Overseer};
use crate::HostRef;
use askama::Template;
use askama_web::WebTemplate;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{get, post};
use axum::{Form, Router};
use serde::Deserialize;
use store::{AuditEntry, CheckReport};

const PAGE: i64 = 50;
/// How much of a hash the page shows (the full one is in its `title`).
const SHORT_HASH: usize = 12;
const SUMMARY_CHARS: usize = 90;

pub fn routes() -> Router<HostRef> {
    Router::new()
        .route("/manage/audit", get(page))
        .route("/manage/audit/verify", post(verify))
        .route("/manage/audit/export.zip", get(export))
}

pub struct Row {
    pub id: i64,
    pub seq: String,
    pub time: String,
    pub actor: String,
    pub action: String,
    pub subject: String,
    pub summary: String,
}

/// The chain's newest sealed entry: seq, the hash shortened, the whole hash.
pub struct Head {
    pub seq: i64,
    pub short: String,
    pub full: String,
}

/// What a verification found, as the page shows it.
pub struct Verdict {
    pub ok: bool,
    /// OK: entries verified and the head they end at.
    pub verified: String,
    pub head_seq: String,
    pub head_hash: String,
    pub head_hash_full: String,
    /// Broken: the first broken entry's seq and what is wrong with it.
    pub broken_seq: String,
    pub broken_what: String,
    /// Everything else `backend check` found (the journal against its seals, anchors, ...).
    pub other_problems: Vec<String>,
    pub took: String,
}

#[derive(Template, WebTemplate)]
#[template(path = "audit.html")]
pub struct AuditPage {
    pub c: Chrome,
    pub head: Option<Head>,
    pub verdict: Option<Verdict>,
    pub from: String,
    pub to: String,
    pub rows: Vec<Row>,
    pub next: Option<i64>,
    pub first_page: bool,
}

#[derive(Deserialize, Default)]
pub struct AuditQuery {
    #[serde(default)]
    pub before: Option<i64>,
}

fn short(hash: &str) -> String {
    let mut s: String = hash.chars().take(SHORT_HASH).collect();
    if hash.chars().count() > SHORT_HASH {
        s.push('…');
    }
    s
}

/// Which record an entry is about: the first id-like field of its detail (`charge 12`).
fn subject(detail: &serde_json::Value) -> String {
    const KEYS: [(&str, &str); 12] = [
        ("charge_id", "charge"),
        ("refund_id", "refund"),
        ("order_no", "order"),
        ("staff_id", "staff"),
        ("employee_no", "staff"),
        ("template_id", "template"),
        ("kiosk_id", "kiosk"),
        ("user_id", "user"),
        ("username", "user"),
        ("canteen_id", "canteen"),
        ("period", "period"),
        ("category", "category"),
    ];
    for (key, what) in KEYS {
        match &detail[key] {
            serde_json::Value::Number(n) => return format!("{what} {n}"),
            serde_json::Value::String(s) => return format!("{what} {s}"),
            _ => {}
        }
    }
    // A seal round is about the journal entries it sealed.
    if let (Some(first), Some(last)) = (detail["first"].as_i64(), detail["last"].as_i64()) {
        return format!("entries {first}–{last}");
    }
    // A record written whole (`{"staff": {"id": 3, ...}}`) is about that record.
    if let Some(o) = detail.as_object() {
        for (key, v) in o {
            if let Some(id) = v.get("id").filter(|id| id.is_number()) {
                return format!("{key} {id}");
            }
        }
    }
    String::new()
}

/// The detail's fields as `key=value`, cut to a line.
fn summary(detail: &serde_json::Value, raw: &str) -> String {
    fn fields(o: &serde_json::Map<String, serde_json::Value>, out: &mut Vec<String>) {
        for (k, v) in o {
            match v {
                // A record written whole shows its own fields.
                serde_json::Value::Object(inner) => fields(inner, out),
                serde_json::Value::String(s) => out.push(format!("{k}={s}")),
                v => out.push(format!("{k}={v}")),
            }
        }
    }
    let full = match detail.as_object() {
        Some(o) => {
            let mut out = Vec::new();
            fields(o, &mut out);
            out.join(", ")
        }
        None => raw.to_string(),
    };
    if full.chars().count() > SUMMARY_CHARS {
        let mut s: String = full.chars().take(SUMMARY_CHARS).collect();
        s.push('…');
        s
    } else {
        full
    }
}

fn row(e: AuditEntry, offset: i32) -> Row {
    let detail: serde_json::Value = serde_json::from_str(&e.detail).unwrap_or_default();
    Row {
        id: e.id,
        seq: e.seq.map(|s| s.to_string()).unwrap_or_else(|| "—".into()),
        time: local_time(e.at_ms, offset),
        actor: e.actor,
        action: e.action,
        subject: subject(&detail),
        summary: summary(&detail, &e.detail),
    }
}

fn verdict(r: &CheckReport, took: std::time::Duration) -> Verdict {
    let (head_seq, head_hash) = r.audit_verified_head.clone().unwrap_or((0, String::new()));
    let (broken_seq, broken_what) = match &r.audit_break {
        Some(b) => (b.seq.to_string(), b.problem.clone()),
        None => (String::new(), String::new()),
    };
    let chain_problem = r.audit_break.as_ref().map(|b| b.problem.as_str());
    Verdict {
        ok: r.ok(),
        verified: format::count(r.audit_sealed),
        head_seq: head_seq.to_string(),
        head_hash: short(&head_hash),
        head_hash_full: head_hash,
        broken_seq,
        broken_what,
        other_problems: r
            .problems
            .iter()
            .filter(|p| Some(p.as_str()) != chain_problem)
            .cloned()
            .collect(),
        took: format!("{:.2}", took.as_secs_f64()),
    }
}

async fn render(
    host: &HostRef,
    c: Chrome,
    before: Option<i64>,
    verdict: Option<Verdict>,
) -> Result<AuditPage, PageError> {
    let lang = c.lang;
    let store = host.store();
    let offset = canteen_offset(host).await.or_page(lang)?;
    let head = store
        .audit_head()
        .await
        .or_page(lang)?
        .map(|(seq, h)| Head {
            seq,
            short: short(&h),
            full: h,
        });
    let mut entries = store.audit_page(before, PAGE + 1).await.or_page(lang)?;
    let more = entries.len() as i64 > PAGE;
    entries.truncate(PAGE as usize);
    let next = if more {
        entries.last().map(|e| e.id)
    } else {
        None
    };
    let today = local_day(host.now_ms(), offset);
    // The export form starts at this month's first day.
    let month_start = {
        let d = format::day_date(today);
        today - i64::from(d.day()) + 1
    };
    Ok(AuditPage {
        c,
        head,
        verdict,
        from: format::iso_day(month_start),
        to: format::iso_day(today),
        rows: entries.into_iter().map(|e| row(e, offset)).collect(),
        next,
        first_page: before.is_none(),
    })
}

pub async fn page(
    State(host): State<HostRef>,
    Overseer(v): Overseer,
    Query(q): Query<AuditQuery>,
) -> Result<AuditPage, PageError> {
    render(&host, v.chrome("audit"), q.before, None).await
}

#[derive(Deserialize)]
pub struct VerifyForm {
    #[serde(default)]
    pub csrf: String,
}

pub async fn verify(
    State(host): State<HostRef>,
    Overseer(v): Overseer,
    Form(f): Form<VerifyForm>,
) -> Result<AuditPage, PageError> {
    v.check_csrf(&host, &f.csrf)?;
    let started = std::time::Instant::now();
    let report = host.verify_audit().await.or_page(v.lang)?;
    let took = started.elapsed();
    render(&host, v.chrome("audit"), None, Some(verdict(&report, took))).await
}

#[derive(Deserialize)]
pub struct ExportQuery {
    #[serde(default)]
    pub from: String,
    #[serde(default)]
    pub to: String,
}

pub async fn export(
    State(host): State<HostRef>,
    Overseer(v): Overseer,
    Query(q): Query<ExportQuery>,
) -> Result<Response, PageError> {
    let lang = v.lang;
    let period = inspection::Period::parse(&q.from, &q.to).map_err(|e| {
        PageError::new(
            StatusCode::BAD_REQUEST,
            lang,
            format!("{} ({e})", lang.tr().export_bad_range),
        )
    })?;
    // An anonymous file: gone from the disk as soon as it is closed.
    let mut file = tempfile::tempfile().map_err(|e| PageError::internal(lang, e))?;
    let manifest =
        inspection::write_export(host.store().as_ref(), period, host.now_ms(), &mut file)
            .await
            .map_err(|e| match e {
                inspection::ExportError::Store(e) => PageError::from_store(lang, e),
                e => PageError::internal(lang, e),
            })?;
    host.store()
        .append_audit(
            &v.actor(),
            "inspection.export",
            serde_json::json!({
                "from": manifest.from,
                "to": manifest.to,
                "chain_head_seq": manifest.audit_chain_head.as_ref().map(|h| h.seq),
                "rows": manifest.files.iter().map(|f| (f.name.clone(), f.rows)).collect::<std::collections::BTreeMap<_, _>>(),
            }),
            host.now_ms(),
        )
        .await
        .or_page(lang)?;
    let name = format!("inspection-{}-{}.zip", manifest.from, manifest.to);
    crate::upload::download(file, "application/zip", &name)
        .map_err(|e| PageError::internal(lang, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subjects_and_summaries_come_from_the_detail() {
        let d = serde_json::json!({"charge_id": 12, "amount_fen": 1500});
        assert_eq!(subject(&d), "charge 12");
        let s = summary(&d, "");
        assert!(
            s.contains("amount_fen=1500") && s.contains("charge_id=12"),
            "{s}"
        );
        let d = serde_json::json!({"order_no": "T-1"});
        assert_eq!(subject(&d), "order T-1");
        let d = serde_json::json!({"staff": {"id": 3, "name": "Wang"}});
        assert_eq!(subject(&d), "staff 3");
        assert!(summary(&d, "").contains("name=Wang"));
        let d = serde_json::json!({"digest": "ab", "entries": 3, "first": 7, "last": 9});
        assert_eq!(subject(&d), "entries 7–9");
        let long = serde_json::json!({"x": "y".repeat(200)});
        assert_eq!(summary(&long, "").chars().count(), SUMMARY_CHARS + 1);
        assert_eq!(short("0123456789abcdef"), "0123456789ab…");
    }
}
