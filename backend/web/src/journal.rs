//! The managers' journal (`/manage/journal`): every entry as it touched people's accounts,
//! filtered by date range, person (employee number) and kind, 50 entries a page, and
//! `/manage/journal.csv`, the same filter's every line as CSV, streamed page by page from the
//! store (a year of a large canteen is never held in memory).
//!
//! CSV cells follow [`inspection::csv`], the rule every export of the backend shares: text
//! that came from people (names, employee numbers, memos) is escaped against formula
//! injection; the money columns are numbers and are not.

use crate::error::{OrPage, PageError};
use crate::format::{self, day_start_ms, local_day, local_time, signed_yuan};
use crate::i18n::Tr;
use crate::manage::canteen_offset;
use crate::session::{Chrome, Manager};
use crate::HostRef;
use askama::Template;
use askama_web::WebTemplate;
use axum::body::{Body, Bytes};
use axum::extract::{Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use inspection::csv::{money as csv_money, text as csv_text};
use ledger::Fen;
use serde::Deserialize;
use store::{JournalFilter, JournalLine};

const PAGE: i64 = 50;
const EXPORT_PAGE: i64 = 1000;
/// The entry kinds the filter offers.
const KINDS: [&str; 6] = [
    "charge",
    "top_up",
    "refund",
    "reversal",
    "subsidy_grant",
    "subsidy_expiry",
];

pub fn routes() -> Router<HostRef> {
    Router::new()
        .route("/manage/journal", get(page))
        .route("/manage/journal.csv", get(export))
        .route("/manage/journal.xlsx", get(export_xlsx))
}

pub fn kind_name(kind: &str, t: &'static Tr) -> &'static str {
    match kind {
        "charge" => t.kind_charge,
        "top_up" => t.kind_topup,
        "refund" => t.kind_refund,
        "reversal" => t.kind_reversal,
        "subsidy_grant" => t.kind_subsidy,
        "subsidy_expiry" => t.kind_subsidy_expiry,
        _ => t.kind_other,
    }
}

#[derive(Deserialize, Default, Clone)]
pub struct JournalQuery {
    #[serde(default)]
    pub from: String,
    #[serde(default)]
    pub to: String,
    #[serde(default)]
    pub person: String,
    #[serde(default)]
    pub kind: String,
    #[serde(default)]
    pub before: Option<i64>,
}

/// The filter as understood: dates default to the last 30 days; unknown kinds are refused.
struct Filter {
    from_day: i64,
    to_day: i64,
    person: Option<String>,
    kind: Option<String>,
}

impl Filter {
    fn parse(q: &JournalQuery, today: i64) -> Option<Filter> {
        let day = |s: &str, default: i64| {
            if s.trim().is_empty() {
                Some(default)
            } else {
                format::parse_day(s)
            }
        };
        let to_day = day(&q.to, today)?;
        let from_day = day(&q.from, to_day - 29)?;
        let kind = match q.kind.trim() {
            "" => None,
            k if KINDS.contains(&k) => Some(k.to_string()),
            _ => return None,
        };
        let person = Some(q.person.trim().to_string()).filter(|p| !p.is_empty());
        Some(Filter {
            from_day: from_day.min(to_day),
            to_day,
            person,
            kind,
        })
    }

    fn store_filter(&self, offset: i32, before: Option<i64>, limit: i64) -> JournalFilter {
        JournalFilter {
            from_ms: day_start_ms(self.from_day, offset),
            to_ms: day_start_ms(self.to_day + 1, offset),
            employee_no: self.person.clone(),
            kind: self.kind.clone(),
            before_entry_id: before,
            limit,
        }
    }

    /// The query string that repeats this filter (for the next page and the export link).
    fn query(&self) -> String {
        let mut q = format!(
            "from={}&to={}",
            format::iso_day(self.from_day),
            format::iso_day(self.to_day)
        );
        if let Some(p) = &self.person {
            q.push_str(&format!("&person={}", crate::session::encode(p)));
        }
        if let Some(k) = &self.kind {
            q.push_str(&format!("&kind={k}"));
        }
        q
    }
}

pub struct Row {
    pub entry_id: i64,
    pub time: String,
    pub kind: &'static str,
    pub employee_no: String,
    pub name: String,
    pub cash: String,
    pub subsidy: String,
    pub total: String,
    pub memo: String,
}

pub struct KindOption {
    pub value: &'static str,
    pub label: &'static str,
    pub selected: bool,
}

#[derive(Template, WebTemplate)]
#[template(path = "journal.html")]
pub struct JournalPage {
    pub c: Chrome,
    pub from: String,
    pub to: String,
    pub person: String,
    pub kinds: Vec<KindOption>,
    pub rows: Vec<Row>,
    pub query: String,
    pub next: Option<String>,
    pub first_page: bool,
}

async fn today_and_offset(host: &HostRef) -> Result<(i64, i32), store::StoreError> {
    let offset = canteen_offset(host).await?;
    Ok((local_day(host.now_ms(), offset), offset))
}

pub async fn page(
    State(host): State<HostRef>,
    Manager(v): Manager,
    Query(q): Query<JournalQuery>,
) -> Result<JournalPage, PageError> {
    let lang = v.lang;
    let t = lang.tr();
    let (today, offset) = today_and_offset(&host).await.or_page(lang)?;
    let f = Filter::parse(&q, today).ok_or_else(|| PageError::bad_filter(lang))?;
    let lines = host
        .store()
        .journal_page(f.store_filter(offset, q.before, PAGE + 1))
        .await
        .or_page(lang)?;
    // One entry more than a page was asked for: if it came, there is a next page.
    let mut entries: Vec<i64> = lines.iter().map(|l| l.entry_id).collect();
    entries.dedup();
    let more = entries.len() as i64 > PAGE;
    let last_shown = entries.get(PAGE as usize - 1).copied();
    let rows = lines
        .into_iter()
        .filter(|l| !more || last_shown.is_some_and(|last| l.entry_id >= last))
        .map(|l| Row {
            entry_id: l.entry_id,
            time: local_time(l.at_ms, offset),
            kind: kind_name(&l.kind, t),
            employee_no: l.employee_no,
            name: l.name,
            cash: signed_yuan(l.cash_delta),
            subsidy: signed_yuan(l.subsidy_delta),
            total: signed_yuan(Fen(l.cash_delta.0 + l.subsidy_delta.0)),
            memo: l.memo,
        })
        .collect();
    let query = f.query();
    Ok(JournalPage {
        c: v.chrome("journal"),
        from: format::iso_day(f.from_day),
        to: format::iso_day(f.to_day),
        person: f.person.clone().unwrap_or_default(),
        kinds: KINDS
            .iter()
            .map(|k| KindOption {
                value: k,
                label: kind_name(k, t),
                selected: f.kind.as_deref() == Some(*k),
            })
            .collect(),
        rows,
        next: more
            .then(|| last_shown.map(|id| format!("{query}&before={id}")))
            .flatten(),
        first_page: q.before.is_none(),
        query,
    })
}

fn csv_line(l: &JournalLine, offset: i32) -> String {
    format!(
        "{},{},{},{},{},{},{},{},{}\r\n",
        l.entry_id,
        local_time(l.at_ms, offset),
        csv_text(&l.kind),
        csv_text(&l.employee_no),
        csv_text(&l.name),
        csv_money(l.cash_delta),
        csv_money(l.subsidy_delta),
        csv_money(Fen(l.cash_delta.0 + l.subsidy_delta.0)),
        csv_text(&l.memo),
    )
}

const CSV_HEADER: &str =
    "\u{feff}entry,time,kind,employee_no,name,cash_yuan,subsidy_yuan,total_yuan,memo\r\n";

/// Where the export stream is: the header still to send, then pages below an entry id.
enum Cursor {
    Start,
    Before(Option<i64>),
    Done,
}

pub async fn export(
    State(host): State<HostRef>,
    Manager(v): Manager,
    Query(q): Query<JournalQuery>,
) -> Result<Response, PageError> {
    let lang = v.lang;
    let (today, offset) = today_and_offset(&host).await.or_page(lang)?;
    let f = Filter::parse(&q, today).ok_or_else(|| PageError::bad_filter(lang))?;
    let file = format!(
        "journal-{}-{}.csv",
        format::iso_day(f.from_day),
        format::iso_day(f.to_day)
    );
    let stream = futures_util::stream::unfold(Cursor::Start, move |cursor| {
        let host = host.clone();
        let filter = f.store_filter(offset, None, EXPORT_PAGE);
        async move {
            let before = match cursor {
                Cursor::Start => {
                    return Some((
                        Ok(Bytes::from_static(CSV_HEADER.as_bytes())),
                        Cursor::Before(None),
                    ))
                }
                Cursor::Before(b) => b,
                Cursor::Done => return None,
            };
            let page = host
                .store()
                .journal_page(JournalFilter {
                    before_entry_id: before,
                    ..filter
                })
                .await;
            match page {
                Ok(lines) if lines.is_empty() => None,
                Ok(lines) => {
                    let next = lines.last().map(|l| l.entry_id);
                    let mut chunk = String::with_capacity(lines.len() * 96);
                    for l in &lines {
                        chunk.push_str(&csv_line(l, offset));
                    }
                    Some((Ok(Bytes::from(chunk)), Cursor::Before(next)))
                }
                // The client sees a cut-off download rather than a silently short file.
                Err(e) => {
                    tracing::error!(error = %e.report(), "journal export failed");
                    Some((Err(std::io::Error::other(e.report())), Cursor::Done))
                }
            }
        }
    });
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{file}\""),
            ),
        ],
        Body::from_stream(stream),
    )
        .into_response())
}

/// The XLSX export: the same filter and lines as the CSV. Rows are written page by page into a
/// worksheet kept on disk (`constant_memory`), so a year of a large canteen never sits in
/// memory; the finished file is then streamed. Text goes in as text cells, which a spreadsheet
/// never evaluates, so a name like `=cmd|...` stays a name.
pub async fn export_xlsx(
    State(host): State<HostRef>,
    Manager(v): Manager,
    Query(q): Query<JournalQuery>,
) -> Result<Response, PageError> {
    let lang = v.lang;
    let t = lang.tr();
    let (today, offset) = today_and_offset(&host).await.or_page(lang)?;
    let f = Filter::parse(&q, today).ok_or_else(|| PageError::bad_filter(lang))?;
    let name = format!(
        "journal-{}-{}.xlsx",
        format::iso_day(f.from_day),
        format::iso_day(f.to_day)
    );
    let fail = |e: rust_xlsxwriter::XlsxError| PageError::internal(lang, e);
    let mut book = rust_xlsxwriter::Workbook::new();
    let money = rust_xlsxwriter::Format::new().set_num_format("0.00");
    let bold = rust_xlsxwriter::Format::new().set_bold();
    let sheet = book.add_worksheet_with_constant_memory().map_err(fail)?;
    sheet.set_name(t.journal_title).map_err(fail)?;
    let header = [
        t.entry, t.time, t.kind, t.person, t.name, t.cash, t.subsidy, t.amount, t.memo,
    ];
    for (c, h) in header.iter().enumerate() {
        sheet
            .write_string_with_format(0, c as u16, *h, &bold)
            .map_err(fail)?;
    }
    for (c, width) in [8, 17, 10, 12, 14, 10, 10, 10, 30].iter().enumerate() {
        sheet.set_column_width(c as u16, *width).map_err(fail)?;
    }
    let mut row: u32 = 1;
    let mut before = None;
    loop {
        let lines = host
            .store()
            .journal_page(f.store_filter(offset, before, EXPORT_PAGE))
            .await
            .or_page(lang)?;
        let Some(last) = lines.last() else { break };
        before = Some(last.entry_id);
        for l in &lines {
            let yuan = |f: Fen| f.0 as f64 / 100.0;
            sheet
                .write_number(row, 0, l.entry_id as f64)
                .map_err(fail)?;
            sheet
                .write_string(row, 1, local_time(l.at_ms, offset))
                .map_err(fail)?;
            sheet
                .write_string(row, 2, kind_name(&l.kind, t))
                .map_err(fail)?;
            sheet.write_string(row, 3, &l.employee_no).map_err(fail)?;
            sheet.write_string(row, 4, &l.name).map_err(fail)?;
            sheet
                .write_number_with_format(row, 5, yuan(l.cash_delta), &money)
                .map_err(fail)?;
            sheet
                .write_number_with_format(row, 6, yuan(l.subsidy_delta), &money)
                .map_err(fail)?;
            let total = Fen(l.cash_delta.0 + l.subsidy_delta.0);
            sheet
                .write_number_with_format(row, 7, yuan(total), &money)
                .map_err(fail)?;
            sheet.write_string(row, 8, &l.memo).map_err(fail)?;
            row += 1;
        }
    }
    // Compressing the finished workbook is CPU work: off the async workers.
    let file = tokio::task::spawn_blocking(move || -> Result<std::fs::File, String> {
        let mut out = tempfile::tempfile().map_err(|e| e.to_string())?;
        book.save_to_writer(&mut out).map_err(|e| e.to_string())?;
        Ok(out)
    })
    .await
    .map_err(|e| PageError::internal(lang, e))?
    .map_err(|e| PageError::internal(lang, e))?;
    crate::upload::download(
        file,
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        &name,
    )
    .map_err(|e| PageError::internal(lang, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_default_to_the_last_30_days_and_refuse_nonsense() {
        let q = JournalQuery::default();
        let f = Filter::parse(&q, 20_000).expect("defaults");
        assert_eq!((f.from_day, f.to_day), (19_971, 20_000));
        let bad = JournalQuery {
            kind: "drop table".into(),
            ..Default::default()
        };
        assert!(Filter::parse(&bad, 20_000).is_none());
        let bad = JournalQuery {
            from: "yesterday".into(),
            ..Default::default()
        };
        assert!(Filter::parse(&bad, 20_000).is_none());
    }
}
